//! The `llmcallgateway` binary: arguments and configuration, start, wait for SIGINT or
//! SIGTERM, graceful shutdown. Exit codes: 0 after a clean shutdown, 1 when the listener
//! cannot be opened, 2 for an invalid configuration or argument.

use std::io::Write;
use std::process::ExitCode;

use llmcallgateway::config::{Config, VARIABLES};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

fn help() -> String {
    let mut text = format!(
        "llmcallgateway {}\nAn OpenAI-compatible LLM API gateway.\n\n\
         Usage: llmcallgateway [--check | --help | --version]\n\n\
         Options:\n  --check    validate the configuration, print it (secrets masked) and exit\n  \
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
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
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
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("llmcallgateway: {e}");
            return ExitCode::from(2);
        }
    };
    if check {
        println!("{}", config.describe());
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
    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
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
    signals.forever().next();
    log::info!(
        "shutting down: finishing requests in flight (up to {:?})",
        config.server.shutdown_grace
    );
    // A second signal stops at once.
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            std::process::exit(130);
        }
    });
    let clean = running.shutdown();
    log::info!("stopped{}", if clean { "" } else { " (grace period over)" });
    logger.flush();
    logger.shutdown();
    ExitCode::SUCCESS
}
