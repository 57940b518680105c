//! The gateway binary as a child process, for tests that read the system and error logs (the
//! process-wide logger is only set up by the binary).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::client::wait_until;
use super::gateway::temp_dir;

/// The gateway binary as a child process, so the system and error logs (the process-wide
/// logger) are written too; stopped with SIGTERM when dropped.
pub struct Binary {
    child: Child,
    pub addr: std::net::SocketAddr,
    data_dir: PathBuf,
}

impl Binary {
    pub fn start(vars: &[(&str, &str)]) -> Binary {
        let data_dir = temp_dir("binary-data");
        let mut child = Command::new(env!("CARGO_BIN_EXE_llmcallgateway"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", "0")
            // The store goes to a temporary directory, not the repository, unless the test says.
            .env("DATA_DIR", &data_dir)
            .envs(vars.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .expect(&line)
            .parse()
            .unwrap();
        Binary {
            child,
            addr,
            data_dir,
        }
    }

    /// Sends a signal by name (`HUP`, …).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status();
        assert!(sent.unwrap().success(), "kill -{name}");
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let exited = wait_until(Duration::from_secs(10), || {
            self.child.try_wait().unwrap().is_some()
        });
        assert!(exited, "the gateway exits after SIGTERM");
        assert!(self.child.wait().unwrap().success(), "exit code 0");
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
