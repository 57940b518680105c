//! The interaction explorer's data: the ring of the most recent interaction lines, exactly as
//! logged (bodies per `LOG_BODIES`, secrets redacted), and the queries over it and, past it,
//! over the interaction files. The recorder feeds the ring as it writes each line; the
//! `/admin/interactions` handlers ask it.
//!
//! Bounds: the ring keeps the last `EXPLORER_RECENT` lines and at most [`RING_MAX_BYTES`] of
//! them (the oldest go first), and one query reads at most [`SCAN_MAX_BYTES`] of interaction
//! files, newest first, read backwards; a page that stops there carries a cursor that goes on
//! from where it stopped. Each line's top-level fields other than the three bodies (its
//! *summary*) are found without parsing the bodies: the recorder notes where they begin, and
//! a file line is split into raw values.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

/// Bytes of interaction lines the ring keeps at most, whatever `EXPLORER_RECENT` says.
pub const RING_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Bytes of interaction files one query reads at most.
pub const SCAN_MAX_BYTES: u64 = 32 * 1024 * 1024;
/// The body fields of a line: everything else is its summary.
const BODIES: [&str; 3] = [
    "client_request",
    "downstream_request",
    "downstream_response",
];
/// How much of a file is read at a time, backwards.
const CHUNK: u64 = 256 * 1024;

/// One line as logged, and where its bodies begin (`,"client_request":…`).
#[derive(Clone)]
struct Entry {
    line: Arc<str>,
    meta_end: usize,
}

impl Entry {
    /// The line's fields without its bodies.
    fn summary(&self) -> Option<Map<String, Value>> {
        let mut meta = String::with_capacity(self.meta_end + 1);
        meta.push_str(self.line.get(..self.meta_end)?);
        meta.push('}');
        serde_json::from_str(&meta).ok()
    }
}

/// The most recent interaction lines, newest last.
pub struct Recent {
    entries: VecDeque<Entry>,
    bytes: usize,
    capacity: usize,
}

impl Recent {
    /// A ring of at most `capacity` lines (and [`RING_MAX_BYTES`]); 0 keeps none.
    pub fn new(capacity: usize) -> Recent {
        Recent {
            entries: VecDeque::new(),
            bytes: 0,
            capacity,
        }
    }

    /// Adds a line; `meta_end` is the byte where its bodies begin.
    pub fn push(&mut self, line: &str, meta_end: usize) {
        if self.capacity == 0 || line.len() > RING_MAX_BYTES {
            return;
        }
        self.entries.push_back(Entry {
            line: Arc::from(line),
            meta_end,
        });
        self.bytes += line.len();
        while self.entries.len() > self.capacity || self.bytes > RING_MAX_BYTES {
            match self.entries.pop_front() {
                Some(old) => self.bytes -= old.line.len(),
                None => break,
            }
        }
    }

    /// The lines held now, newest first (a cheap copy: the lines are shared).
    fn snapshot(&self) -> Vec<Entry> {
        self.entries.iter().rev().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// What a list query asks for. Text filters match exactly (`model` either the name the client
/// sent or the one sent to the provider, `status` an outcome or an HTTP status), `route` and
/// `q` (request id and error message) as case-insensitive substrings; `since` and `until` are
/// timestamps in the lines' own format.
#[derive(Default, Debug)]
pub struct Filter {
    pub model: Option<String>,
    pub provider: Option<String>,
    pub status: Option<String>,
    pub route: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub q: Option<String>,
}

impl Filter {
    fn matches(&self, s: &Map<String, Value>) -> bool {
        let text = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("");
        let lower = |t: &str| t.to_lowercase();
        if let Some(m) = &self.model {
            let full = format!("{}/{}", text("provider"), text("model"));
            if text("model_requested") != m && text("model") != m && &full != m {
                return false;
            }
        }
        if self
            .provider
            .as_deref()
            .is_some_and(|p| text("provider") != p)
        {
            return false;
        }
        if let Some(status) = &self.status {
            let http = s.get("http_status").and_then(Value::as_u64).unwrap_or(0);
            let numeric = status.parse::<u64>().ok();
            if numeric.map_or(text("status") != status, |n| n != http) {
                return false;
            }
        }
        if let Some(route) = &self.route {
            if !lower(text("route")).contains(&lower(route)) {
                return false;
            }
        }
        let ts = text("timestamp");
        if self.since.as_deref().is_some_and(|t| ts < t) {
            return false;
        }
        if self.until.as_deref().is_some_and(|t| ts > t) {
            return false;
        }
        if let Some(q) = &self.q {
            let q = lower(q);
            let message = s
                .get("error")
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if !lower(text("request_id")).contains(&q) && !lower(message).contains(&q) {
                return false;
            }
        }
        true
    }
}

/// Where a page ended: in the ring (records that arrived before this one's timestamp and
/// request id), or in a file (lines before `offset`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    Recent { timestamp: String, id: String },
    File { name: String, offset: u64 },
}

impl Cursor {
    /// Opaque to clients: hex of a small JSON object.
    pub fn encode(&self) -> String {
        let value = match self {
            Cursor::Recent { timestamp, id } => json!({"t": timestamp, "i": id}),
            Cursor::File { name, offset } => json!({"f": name, "o": offset}),
        };
        value
            .to_string()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        if text.len() % 2 != 0 || text.len() > 2048 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
            .collect();
        let value: Value = serde_json::from_slice(&bytes?).ok()?;
        if let (Some(t), Some(i)) = (value["t"].as_str(), value["i"].as_str()) {
            return Some(Cursor::Recent {
                timestamp: t.to_string(),
                id: i.to_string(),
            });
        }
        let name = value["f"].as_str()?;
        // A file name, never a path: the scan stays in LOG_DIR.
        if name.contains(['/', '\\']) || interactions_file(name).is_none() {
            return None;
        }
        Some(Cursor::File {
            name: name.to_string(),
            offset: value["o"].as_u64()?,
        })
    }
}

/// One page of summaries, newest first.
pub struct Page {
    pub data: Vec<Map<String, Value>>,
    pub next: Option<Cursor>,
    pub recent: usize,
    pub scanned_bytes: u64,
}

/// Where the explorer looks: the ring, and the interaction files in `dir` (when kept).
pub struct Sources<'a> {
    pub recent: &'a std::sync::Mutex<Recent>,
    pub dir: Option<&'a Path>,
}

impl Sources<'_> {
    fn snapshot(&self) -> Vec<Entry> {
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .snapshot()
    }

    /// Up to `limit` summaries matching `filter`, from `cursor` on: the ring first, then the
    /// files, skipping lines the ring already showed.
    pub fn list(&self, filter: &Filter, limit: usize, cursor: Option<&Cursor>) -> Page {
        let recent = self.snapshot();
        let mut page = Page {
            data: Vec::new(),
            next: None,
            recent: recent.len(),
            scanned_bytes: 0,
        };
        let mut shown: HashSet<(String, String)> = HashSet::new();
        if !matches!(cursor, Some(Cursor::File { .. })) {
            let mut summaries: Vec<Map<String, Value>> =
                recent.iter().filter_map(Entry::summary).collect();
            shown.extend(summaries.iter().map(identity));
            // Newest first by when each request arrived (records are queued as answers end).
            summaries.sort_by_cached_key(|s| std::cmp::Reverse(identity(s)));
            for summary in summaries {
                let key = identity(&summary);
                let older = match cursor {
                    Some(Cursor::Recent { timestamp, id }) => key < (timestamp.clone(), id.clone()),
                    _ => true,
                };
                if !older || !filter.matches(&summary) {
                    continue;
                }
                if page.data.len() == limit {
                    // The next page starts with this one: everything older than the last shown.
                    let (timestamp, id) = page.data.last().map(identity).unwrap_or(key);
                    page.next = Some(Cursor::Recent { timestamp, id });
                    return page;
                }
                page.data.push(summary);
            }
        }
        let Some(dir) = self.dir else { return page };
        let first_from_files = page.data.len();
        let files = interaction_files(dir);
        let (mut index, mut end) = match cursor {
            Some(Cursor::File { name, offset }) => {
                match files.iter().position(|f| file_name(f) == *name) {
                    Some(i) => (i, Some(*offset)),
                    None => return page,
                }
            }
            _ => (0, None),
        };
        let mut budget = SCAN_MAX_BYTES;
        while let Some(path) = files.get(index) {
            let stop = scan_back(path, end, &mut budget, |line, start| {
                let Some(summary) = file_summary(line) else {
                    return false;
                };
                let key = identity(&summary);
                let newer = matches!(cursor, Some(Cursor::Recent { timestamp, id })
                    if key >= (timestamp.clone(), id.clone()));
                if newer || shown.contains(&key) || !filter.matches(&summary) {
                    return false;
                }
                if page.data.len() == limit {
                    let name = file_name(path);
                    page.next = Some(Cursor::File {
                        name,
                        offset: start + line.len() as u64 + 1,
                    });
                    return true;
                }
                page.data.push(summary);
                false
            });
            match stop {
                Scan::Stopped => break,
                Scan::OutOfBudget(offset) => {
                    page.next = Some(Cursor::File {
                        name: file_name(path),
                        offset,
                    });
                    break;
                }
                Scan::Done => {
                    index += 1;
                    end = None;
                }
            }
        }
        page.scanned_bytes = SCAN_MAX_BYTES - budget;
        // A file holds lines in the order answers ended; within a page, newest first.
        let from_files = page.data.len() - first_from_files;
        if from_files > 1 {
            page.data[first_from_files..].sort_by_cached_key(|s| std::cmp::Reverse(identity(s)));
        }
        page
    }

    /// The newest whole record with this request id, and the bytes of files read to find it.
    pub fn find(&self, id: &str) -> (Option<Value>, u64) {
        let needle = format!("\"request_id\":{}", Value::String(id.to_string()));
        for entry in self.snapshot() {
            if entry.line[..entry.meta_end].contains(&needle) {
                if let Ok(record) = serde_json::from_str(&entry.line) {
                    return (Some(record), 0);
                }
            }
        }
        let Some(dir) = self.dir else {
            return (None, 0);
        };
        let mut budget = SCAN_MAX_BYTES;
        let mut found = None;
        for path in interaction_files(dir) {
            let scan = scan_back(&path, None, &mut budget, |line, _| {
                if !line.contains(&needle) {
                    return false;
                }
                found = serde_json::from_str::<Value>(line)
                    .ok()
                    .filter(|v| v["request_id"] == id);
                found.is_some()
            });
            if !matches!(scan, Scan::Done) {
                break;
            }
        }
        (found, SCAN_MAX_BYTES - budget)
    }
}

/// What makes a record distinct: its timestamp and request id.
fn identity(summary: &Map<String, Value>) -> (String, String) {
    let text = |k: &str| {
        summary
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (text("timestamp"), text("request_id"))
}

/// A file line's fields without its bodies (the bodies are skipped over, not parsed into
/// trees).
fn file_summary(line: &str) -> Option<Map<String, Value>> {
    let raw: BTreeMap<String, &RawValue> = serde_json::from_str(line).ok()?;
    raw.into_iter()
        .filter(|(k, _)| !BODIES.contains(&k.as_str()))
        .map(|(k, v)| Some((k, serde_json::from_str(v.get()).ok()?)))
        .collect()
}

/// The interaction files in `dir`, newest first (by modification time, then name).
fn interaction_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| interactions_file(&e.file_name().to_string_lossy()).is_some())
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    files.sort_by(|a, b| b.cmp(a));
    files.into_iter().map(|(_, p)| p).collect()
}

/// `Some` for the name of an (uncompressed) interactions log file.
fn interactions_file(name: &str) -> Option<()> {
    let prefix = format!("{}_llm_interactions_", crate::logging::FILE_PREFIX);
    (name.starts_with(&prefix) && name.ends_with(".log")).then_some(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// How a backward scan of one file ended.
enum Scan {
    /// The visitor asked to stop.
    Stopped,
    /// The query's byte budget ran out; lines before this offset are unread.
    OutOfBudget(u64),
    /// The whole file (before `end`) was read.
    Done,
}

/// Calls `visit(line, offset)` for each line of `path` before `end` (the file's end when
/// `None`), last line first, reading at most `budget` bytes (taken off it).
fn scan_back(
    path: &Path,
    end: Option<u64>,
    budget: &mut u64,
    mut visit: impl FnMut(&str, u64) -> bool,
) -> Scan {
    let Ok(mut file) = File::open(path) else {
        return Scan::Done;
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let mut pos = end.unwrap_or(len).min(len);
    // The bytes from `pos` up to the end of the line being read.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        if pos == 0 {
            if !tail.is_empty() && visit(&String::from_utf8_lossy(&tail), 0) {
                return Scan::Stopped;
            }
            return Scan::Done;
        }
        if *budget == 0 {
            return Scan::OutOfBudget(pos + tail.len() as u64);
        }
        let start = pos.saturating_sub(CHUNK.min(*budget));
        let mut buf = vec![0; (pos - start) as usize];
        if file.seek(SeekFrom::Start(start)).is_err() || file.read_exact(&mut buf).is_err() {
            return Scan::Done;
        }
        *budget -= pos - start;
        buf.extend_from_slice(&tail);
        let mut line_end = buf.len();
        while let Some(nl) = buf[..line_end].iter().rposition(|&b| b == b'\n') {
            let line = &buf[nl + 1..line_end];
            if !line.is_empty() && visit(&String::from_utf8_lossy(line), start + nl as u64 + 1) {
                return Scan::Stopped;
            }
            line_end = nl;
        }
        tail = buf[..line_end].to_vec();
        pos = start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, model: &str) -> (String, usize) {
        let meta = json!({"timestamp": "2026-12-02T08:00:00.000000+00:00", "request_id": id,
            "model_requested": model, "model": model, "provider": "mock", "route": "/v1/chat/completions",
            "status": "success", "http_status": 200, "error": null})
        .to_string();
        let meta_end = meta.len() - 1;
        let line = format!(
            "{},\"client_request\":null,\"downstream_request\":{{\"model\":\"x\"}},\"downstream_response\":null}}",
            &meta[..meta_end]
        );
        (line, meta_end)
    }

    #[test]
    fn the_ring_keeps_the_newest_lines_within_its_count() {
        let mut ring = Recent::new(3);
        for i in 0..5 {
            let (l, end) = line(&format!("r{i}"), "mock/echo");
            ring.push(&l, end);
        }
        let ids: Vec<String> = ring
            .snapshot()
            .iter()
            .map(|e| e.summary().unwrap()["request_id"].as_str().unwrap().into())
            .collect();
        assert_eq!(ids, ["r4", "r3", "r2"]);
        assert!(ring.snapshot()[0]
            .summary()
            .unwrap()
            .get("downstream_request")
            .is_none());
    }

    #[test]
    fn cursors_round_trip_and_refuse_paths() {
        for c in [
            Cursor::Recent {
                timestamp: "2026-12-02T08:00:00.000000+00:00".into(),
                id: "r1".into(),
            },
            Cursor::File {
                name: "llmcallgateway_llm_interactions_2026-12-02.log".into(),
                offset: 99,
            },
        ] {
            assert_eq!(Cursor::decode(&c.encode()), Some(c));
        }
        let sneaky = Cursor::File {
            name: "../llmcallgateway_llm_interactions_x.log".into(),
            offset: 1,
        };
        assert_eq!(Cursor::decode(&sneaky.encode()), None);
        assert_eq!(Cursor::decode("zz"), None);
    }

    #[test]
    fn a_file_lines_summary_leaves_out_the_bodies() {
        let (l, _) = line("f1", "mock/echo");
        let s = file_summary(&l).unwrap();
        assert_eq!(s["request_id"], "f1");
        assert!(BODIES.iter().all(|b| !s.contains_key(*b)));
    }
}
