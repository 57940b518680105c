//! Reading a test gateway's log directory: its files by kind, and its interaction lines.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The files under `dir` whose names start with `prefix`, in name order.
pub fn log_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    files.sort();
    files
}

/// Every line of the interactions files under `dir`, parsed, in the order the calls began.
pub fn interaction_lines(dir: &Path) -> Vec<Value> {
    let mut lines = Vec::new();
    for path in log_files(dir, "llmcallgateway_llm_interactions_") {
        for line in fs::read_to_string(&path).unwrap().lines() {
            lines.push(
                serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}")),
            );
        }
    }
    // Written as calls end (a stream's line when its relay ends, which may be after the
    // client's next call); `timestamp` is when each began (RFC 3339, UTC, microseconds).
    lines.sort_by(|a, b| a["timestamp"].as_str().cmp(&b["timestamp"].as_str()));
    lines
}
