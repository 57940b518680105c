//! The `llmcallgateway` binary: arguments and configuration, start, wait for SIGINT or
//! SIGTERM, graceful shutdown. Exit codes: 0 after a clean shutdown, 1 when the listener
//! cannot be opened, 2 for an invalid configuration or argument.

use std::io::Write;
use std::process::ExitCode;

use llmcallgateway::config::{Config, VARIABLES};
use llmcallgateway::router::Routing;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

fn help() -> String {
    let mut text = format!(
        "llmcallgateway {}\nAn OpenAI-compatible LLM API gateway.\n\n\
         Usage: llmcallgateway [--config PATH] [--check | --help | --version]\n\n\
         Options:\n  --config PATH  a LiteLLM proxy config.yaml (as CONFIG_FILE)\n  \
         --check    validate the configuration, print it and the routing table (secrets masked) and exit\n  \
         --help     print this help\n  --version  print the version\n\n\
         Configuration (environment, or a .env file in the working directory):\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, default, doc) in VARIABLES {
        let default = if default.is_empty() {
            "(unset)"
        } else {
            default
        };
        text.push_str(&format!("  {name:<26} {doc} [default: {default}]\n"));
    }
    text
}

fn main() -> ExitCode {
    let mut check = false;
    let mut config_file = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => match args.next() {
                Some(path) => config_file = Some(path.into()),
                None => {
                    eprintln!("llmcallgateway: --config needs a PATH");
                    return ExitCode::from(2);
                }
            },
            "--help" | "-h" => {
                print!("{}", help());
                return ExitCode::SUCCESS;
            }
            "--version" | "-V" => {
                println!("llmcallgateway {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            "--check" => check = true,
            other => {
                eprintln!("llmcallgateway: unknown argument {other:?} (see --help)");
                return ExitCode::from(2);
            }
        }
    }
    let mut config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("llmcallgateway: {e}");
            return ExitCode::from(2);
        }
    };
    if config_file.is_some() {
        config.config_file = config_file;
    }
    // The config file is checked here, so that a bad one stops the start naming file and line.
    let routing = match Routing::load(&config) {
        // A start logs the warnings once, when the gateway loads the table.
        Ok((routing, warnings)) => {
            if check {
                warnings.iter().for_each(|w| eprintln!("warning: {w}"));
            }
            routing
        }
        Err(e) => {
            eprintln!("llmcallgateway: invalid config file: {e}");
            return ExitCode::from(2);
        }
    };
    if check {
        println!("{}\n{}", config.describe(), routing.describe());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = std::fs::create_dir_all(&config.log_dir) {
        eprintln!(
            "llmcallgateway: cannot create LOG_DIR {}: {e}",
            config.log_dir.display()
        );
        return ExitCode::from(1);
    }
    let logger = match llmcallgateway::logging::init(&config) {
        Ok(logger) => logger,
        Err(e) => {
            eprintln!("llmcallgateway: cannot open the log files: {e}");
            return ExitCode::from(1);
        }
    };
    // Register before starting, so a signal that arrives during start-up is not lost.
    let mut signals = match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("llmcallgateway: cannot handle signals: {e}");
            return ExitCode::from(1);
        }
    };
    let running = match llmcallgateway::start(config.clone()) {
        Ok(running) => running,
        Err(e) => {
            eprintln!(
                "llmcallgateway: cannot listen on {}: {e}",
                config.listen_addr()
            );
            return ExitCode::from(1);
        }
    };
    log::info!(
        "llmcallgateway {} listening on http://{}; configuration:\n{}",
        env!("CARGO_PKG_VERSION"),
        running.addr(),
        config.describe()
    );
    let configured: Vec<&str> = llmcallgateway::providers::registry::PROVIDERS
        .iter()
        .filter(|p| config.provider(p.name).explicit)
        .map(|p| p.name)
        .collect();
    log::info!(
        "providers: mock (mock/echo, mock/lorem, mock/embed){}{}",
        if configured.is_empty() { "" } else { ", " },
        configured.join(", ")
    );
    println!("listening on http://{}", running.addr());
    let _ = std::io::stdout().flush();
    let gateway = running.gateway();
    let reload = move |why: &str| match gateway.reload() {
        Ok(()) => log::info!("{why}: the routing table was reloaded"),
        Err(e) => log::error!("{why}: the config file was refused, the old table stays: {e}"),
    };
    if let (true, Some(path)) = (config.enable_reload, config.config_file.clone()) {
        let reload = reload.clone();
        std::thread::spawn(move || watch(&path, reload));
    }
    for signal in signals.forever() {
        if signal != SIGHUP {
            break;
        }
        reload("SIGHUP");
    }
    log::info!(
        "shutting down: finishing requests in flight (up to {:?})",
        config.server.shutdown_grace
    );
    // A second signal stops at once.
    std::thread::spawn(move || {
        if signals.forever().any(|s| s != SIGHUP) {
            std::process::exit(130);
        }
    });
    let clean = running.shutdown();
    log::info!("stopped{}", if clean { "" } else { " (grace period over)" });
    logger.flush();
    logger.shutdown();
    ExitCode::SUCCESS
}

/// ENABLE_RELOAD: looks at the file's modification time each second and reloads when it
/// changes (polling: one `stat` a second needs no watcher crate and works on every mount).
fn watch(path: &std::path::Path, reload: impl Fn(&str)) {
    let modified = || std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut seen = modified();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let now = modified();
        if now.is_some() && now != seen {
            seen = now;
            reload("the config file changed");
        }
    }
}
