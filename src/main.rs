//! The `llmcallgateway` binary: arguments and configuration, start, wait for SIGINT or
//! SIGTERM, graceful shutdown. Exit codes: 0 after a clean shutdown, 1 when the listener
//! cannot be opened, 2 for an invalid configuration or argument.

use std::io::Write;
use std::process::ExitCode;

use llmcallgateway::config::{Config, VARIABLES};
use llmcallgateway::router::Routing;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// jemalloc, not glibc's malloc: a proxied call makes about 200 allocations, and glibc's
/// spent a quarter of the call's instructions on them (callgrind) with threads on every core;
/// jemalloc's per-thread caches take ~10% off the CPU per request at c=32, and its memory per
/// open stream and per idle connection stays within issue 18's targets (README, Performance).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main` (jemalloc's `malloc_conf`; `_RJEM_MALLOC_CONF` in the
/// environment still overrides them). A thread's cache keeps up to 200 freed objects of each
/// small size and refills half of that at a time, about 94 KB per worker that has served a
/// request; a burst of streams starts hundreds of workers, each waiting on its provider for the
/// response head (issue 18). At most 32 objects of a small size and 2 of a large one: about 44
/// KB per worker, for 0.3% more instructions per proxied call (callgrind, 2,200 calls).
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: Option<&'static std::ffi::c_char> = Some(
    // SAFETY: a byte of a static, nul-terminated string; jemalloc reads it as a C string.
    unsafe { &*JEMALLOC_OPTIONS.as_ptr().cast::<std::ffi::c_char>() },
);
const JEMALLOC_OPTIONS: &[u8] = b"tcache_nslots_small_max:32,tcache_nslots_large:2\0";

/// Turns the calling thread's jemalloc cache on or off: off gives its objects back to the
/// arenas, on starts an empty one (`mallctl thread.tcache.enabled`). The server keeps it on
/// only for workers serving while few requests are in flight (`http::ServerConfig`).
fn thread_cache(on: bool) {
    let mut value = on;
    // SAFETY: the option is a `bool`, written from a live one of that size; nothing is read.
    // It fails only for a wrong name or size (the test below reads the switch back); the cache
    // then stays as it was, which costs memory or time, never correctness.
    let _ = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"thread.tcache.enabled".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            (&mut value as *mut bool).cast(),
            std::mem::size_of::<bool>(),
        )
    };
}

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
    let misspelt = llmcallgateway::misspelt::check_environment();
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
        misspelt.iter().for_each(|w| eprintln!("warning: {w}"));
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
    for warning in &misspelt {
        log::warn!("{warning}");
    }
    // Register before starting, so a signal that arrives during start-up is not lost.
    let mut signals = match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("llmcallgateway: cannot handle signals: {e}");
            return ExitCode::from(1);
        }
    };
    config.server.thread_cache = Some(thread_cache);
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
    let banner = banner(&config, &routing, running.addr());
    log::info!(
        "llmcallgateway {}; configuration:\n{}\n{banner}",
        env!("CARGO_PKG_VERSION"),
        config.describe()
    );
    // The first line is what scripts wait for; the rest is for the person who started it.
    // A reader that stops after the first line (a closed pipe) must not stop the gateway:
    // write errors are ignored, where `println!` would panic.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{banner}").and_then(|()| out.flush());
    drop(out);
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

/// What a person starting the gateway needs to see: where it listens, where its logs go, the
/// dashboard and the API docs, and which model names go to which provider.
fn banner(config: &Config, routing: &Routing, addr: std::net::SocketAddr) -> String {
    let url = format!("http://{addr}");
    let logs = std::fs::canonicalize(&config.log_dir).unwrap_or_else(|_| config.log_dir.clone());
    let mut lines = vec![
        format!("listening on {url}"),
        format!("  logs        {}", logs.display()),
        format!("  dashboard   {url}/dashboard"),
        format!("  API docs    {url}/docs"),
        "  providers (model names → where they go):".to_string(),
    ];
    for provider in llmcallgateway::providers::registry::PROVIDERS {
        let settings = config.provider(provider.name);
        let names = if provider.name == "mock" {
            "mock/echo, mock/lorem, mock/embed".to_string()
        } else {
            let mut names = vec![format!("{}/<model>", provider.name)];
            names.extend(provider.bare_prefixes.iter().map(|p| format!("{p}*")));
            if provider.name == llmcallgateway::providers::registry::UPSTREAM {
                names.push("any other name".into());
            }
            names.join(", ")
        };
        let place = match (provider.name, settings.explicit) {
            ("mock", _) => "built in".to_string(),
            (_, true) => settings
                .base_url
                .clone()
                .unwrap_or_else(|| "(no base URL)".into()),
            (llmcallgateway::providers::registry::UPSTREAM, false) => format!(
                "not configured: set {} (and {}) to serve other models",
                provider.base_var(),
                provider.key_var()
            ),
            _ => continue,
        };
        lines.push(format!("    {:<12} {names} → {place}", provider.name));
    }
    if !routing.aliases.is_empty() {
        let aliases: Vec<&str> = routing.aliases.keys().map(String::as_str).collect();
        lines.push(format!(
            "  config file {} aliases: {}",
            aliases.len(),
            aliases.join(", ")
        ));
    }
    lines.join("\n")
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

#[cfg(test)]
mod tests {
    /// A value of jemalloc's, read through `mallctl`: `T` must be the type jemalloc documents
    /// for `name` (`unsigned` is `u32`).
    fn read<T: Copy + Default>(name: &std::ffi::CStr) -> T {
        let mut value = T::default();
        let mut len = std::mem::size_of::<T>();
        // SAFETY: `value` and `len` are live and sized for the option; nothing is written.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                (&mut value as *mut T).cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(rc, 0, "mallctl {name:?}");
        value
    }

    /// Whether this thread's jemalloc cache is on.
    fn cache_on() -> bool {
        read(c"thread.tcache.enabled")
    }

    #[test]
    fn a_threads_allocator_cache_turns_off_and_on_again() {
        std::thread::spawn(|| {
            assert!(cache_on());
            super::thread_cache(false);
            assert!(!cache_on());
            drop(vec![0u8; 100]);
            super::thread_cache(true);
            assert!(cache_on());
        })
        .join()
        .unwrap();
    }

    /// Issue 18: the first token estimate of a process built `tiktoken-rs`'s encoder and kept
    /// about 40 MB for the process's life (the vocabulary three times over, a heap block per
    /// token), on whichever request or relay thread needed it. Measured on this thread, which
    /// builds the table (no other test of the binary counts tokens): what it allocated and did
    /// not free is what the encoding keeps.
    #[test]
    fn the_first_token_count_keeps_a_few_megabytes_not_forty() {
        let kept = || read::<u64>(c"thread.allocated") - read::<u64>(c"thread.deallocated");
        let before = kept();
        assert_eq!(llmcallgateway::tokens::count("Hello, world!"), 4);
        let kept = kept() - before;
        assert!(kept < 10 << 20, "the first count kept {kept} bytes");
    }

    #[test]
    fn jemalloc_runs_with_the_options_compiled_into_the_binary() {
        assert_eq!(read::<u32>(c"opt.tcache_nslots_small_max"), 32);
        assert_eq!(read::<u32>(c"opt.tcache_nslots_large"), 2);
    }
}
