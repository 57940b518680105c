//! The gateway's own log (start-up, warnings, errors) on standard error, at `LOG_LEVEL`
//! (`DEBUG=true` lowers it to debug). The HTTP client crates are capped at info: their trace
//! output would carry request headers, keys included.

use crate::config::Config;

/// Starts logging. The returned handle must live as long as the process logs.
pub fn init(config: &Config) -> Option<flexi_logger::LoggerHandle> {
    let level = if config.debug {
        "debug"
    } else {
        config.log_level.as_str()
    };
    let spec = format!("{level}, ureq=info, ureq_proto=info, rustls=info");
    flexi_logger::Logger::try_with_str(spec)
        .ok()?
        .log_to_stderr()
        .format(flexi_logger::detailed_format)
        .start()
        .ok()
}
