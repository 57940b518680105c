//! Starting a gateway for a test: `Config::from_lookup` over a map of variables (port 0,
//! small timeouts by default, a log and a data directory of its own, the test's own values on
//! top), and a guard that shuts it down gracefully when the test ends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use llmcallgateway::{Config, Running};

use super::upstream::MockUpstream;

/// Defaults that keep tests fast and bounded; a test's own variables override them.
const DEFAULTS: &[(&str, &str)] = &[
    ("HOST", "127.0.0.1"),
    ("PORT", "0"),
    ("WORKERS", "8"),
    ("KEEPALIVE_IDLE_SECS", "1"),
    ("CLIENT_HEADER_TIMEOUT", "5"),
    ("CLIENT_BODY_TIMEOUT", "5"),
    ("CLIENT_SEND_TIMEOUT", "5"),
    ("SHUTDOWN_GRACE_SECS", "5"),
    ("UPSTREAM_CONNECT_TIMEOUT", "2"),
    ("UPSTREAM_TIMEOUT", "5"),
    ("STREAM_IDLE_TIMEOUT", "5"),
];

/// A running gateway; shut down gracefully when dropped. Its logs go to a directory of its
/// own (`log_dir`), removed at the end unless the test chose the directory itself.
pub struct Gateway {
    running: Option<Running>,
    pub addr: SocketAddr,
    pub log_dir: PathBuf,
    owns_log_dir: bool,
    /// The store's directory (`DATA_DIR`): the test's own, or a temporary one removed at the end.
    pub data_dir: PathBuf,
    owns_data_dir: bool,
}

/// A fresh, empty directory under the system's temporary directory.
pub fn temp_dir(label: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("llmcg-{label}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

impl Gateway {
    /// A gateway with only the built-in mock models (no provider configured).
    pub fn start(vars: &[(&str, &str)]) -> Gateway {
        let mut map: HashMap<String, String> = DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let owns_log_dir = !map.contains_key("LOG_DIR");
        let log_dir = match map.get("LOG_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => temp_dir("logs"),
        };
        map.insert("LOG_DIR".into(), log_dir.display().to_string());
        let owns_data_dir = !map.contains_key("DATA_DIR");
        let data_dir = match map.get("DATA_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => temp_dir("data"),
        };
        map.insert("DATA_DIR".into(), data_dir.display().to_string());
        let config = Config::from_lookup(|name| map.get(name).cloned()).expect("test config");
        let running = llmcallgateway::start(config).expect("start gateway");
        Gateway {
            addr: running.addr(),
            running: Some(running),
            log_dir,
            owns_log_dir,
            data_dir,
            owns_data_dir,
        }
    }

    /// A gateway whose OpenAI-compatible provider is `upstream`.
    pub fn in_front_of(upstream: &MockUpstream, vars: &[(&str, &str)]) -> Gateway {
        let base = upstream.base_url();
        let mut all = vec![
            ("LITELLM_BASE_URL", base.as_str()),
            ("LITELLM_API_KEY", "sk-test-fake-key"),
        ];
        all.extend_from_slice(vars);
        Gateway::start(&all)
    }

    /// Graceful shutdown now; true when everything in flight finished within the grace.
    pub fn shutdown(mut self) -> bool {
        self.running.take().map(Running::shutdown).unwrap_or(true)
    }

    /// Graceful shutdown, keeping the log directory for the test to read (and remove).
    /// Panics when requests in flight did not finish within the grace period.
    pub fn stop_keeping_logs(mut self) -> PathBuf {
        self.owns_log_dir = false;
        let clean = self.running.take().map(Running::shutdown).unwrap_or(true);
        assert!(clean, "requests in flight finished within the grace period");
        self.log_dir.clone()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown();
        }
        if self.owns_log_dir {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
        if self.owns_data_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}
