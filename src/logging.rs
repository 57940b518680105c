//! The log files and what keeps secrets out of them.
//!
//! Three files under `LOG_DIR`, each rotating daily and at `LOG_ROTATE_MB` (see `rotation`:
//! the file being written is always `llmcallgateway_<kind>_<date>.log`, full ones become
//! `<date>.1.log`, `<date>.2.log` …):
//! - `system`: start-up summary, one access line per request, warnings, shutdown (the `log`
//!   crate's output at `LOG_LEVEL`, through flexi_logger into [`SystemLogs`]);
//! - `error`: every error line of the system log, alone;
//! - `llm_interactions`: one JSON object per request, written through the recorder's one writer
//!   (by whichever worker or the recorder thread holds it: see `recorder`).
//!
//! [`DiskGuard`] deletes rotated files past `LOG_RETENTION_DAYS` and, oldest first, while all
//! files together exceed `LOG_MAX_TOTAL_MB`. [`Redactor`] replaces configured secrets, API-key
//! lookalikes, `key=` query values and secret-named JSON fields with `***`; the system and error
//! logs pass every line through it. The HTTP client crates are capped at info: their trace
//! output carries request headers, keys included.

use std::borrow::Cow;
use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use aho_corasick::{AhoCorasick, MatchKind};
use flexi_logger::writers::LogWriter;
use flexi_logger::{DeferredNow, Duplicate, LoggerHandle};
use memchr::memmem::Finder;

use crate::config::Config;
use crate::rotation::RotatingFile;

pub use crate::rotation::FILE_PREFIX;

/// JSON field names whose values are secrets wherever they appear (compared without case),
/// in lowercase.
const SECRET_FIELDS: &[&str] = &[
    "authorization",
    "api_key",
    "api-key",
    "apikey",
    "x-api-key",
    "x-goog-api-key",
    "access_token",
    "secret",
    "password",
];

/// Redacts secrets from text and JSON values.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    /// Each secret with its searcher, built once: every interaction line is searched for every
    /// secret, and `str::contains` would build its searcher again on each call.
    secrets: Vec<(String, Finder<'static>)>,
}

impl Redactor {
    /// `secrets`: the configured key values; short ones (under 8 characters) are ignored, since
    /// replacing them would mangle ordinary text and they protect nothing.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| s.len() >= 8).collect();
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let secrets = secrets
            .into_iter()
            .map(|s| {
                let finder = Finder::new(s.as_bytes()).into_owned();
                (s, finder)
            })
            .collect();
        Redactor { secrets }
    }

    /// The secrets a configuration holds.
    pub fn for_config(config: &Config) -> Self {
        Redactor::new(config.secrets())
    }

    /// Replaces secrets in text: configured values, `sk-…`/`AIza…` key lookalikes, bearer
    /// tokens and `key=` query values.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for (secret, finder) in &self.secrets {
            if finder.find(out.as_bytes()).is_some() {
                out = Cow::Owned(out.replace(secret.as_str(), "***"));
            }
        }
        if !self.secrets.is_empty() && memchr::memchr(b'\\', out.as_bytes()).is_some() {
            if let Some(redacted) = self.escaped_secrets(&out) {
                out = Cow::Owned(redacted);
            }
        }
        if needs_pattern_scan(&out) {
            out = Cow::Owned(redact_patterns(&out));
        }
        if let Some(redacted) = redact_secret_fields(&out) {
            out = Cow::Owned(redacted);
        }
        out
    }
}

impl Redactor {
    /// Replaces secrets spelled with JSON escapes (`\/`, `\u0077`, …), as a provider's JSON
    /// encoder may echo a key: each JSON string literal whose escapes could spell printable
    /// characters is decoded, and re-encoded with `***` when it holds a secret. `None` when no
    /// literal does.
    fn escaped_secrets(&self, text: &str) -> Option<String> {
        let bytes = text.as_bytes();
        let mut out: Option<String> = None;
        let mut copied = 0;
        let mut i = 0;
        while let Some(start) = bytes[i..].iter().position(|&b| b == b'"').map(|p| p + i) {
            let mut end = start + 1;
            let mut hides = false;
            while end < bytes.len() && bytes[end] != b'"' {
                if bytes[end] == b'\\' {
                    hides |= matches!(bytes.get(end + 1), Some(b'/' | b'u' | b'\\' | b'"'));
                    end += 1;
                }
                end += 1;
            }
            if end >= bytes.len() {
                break;
            }
            let literal = &text[start..=end];
            if hides {
                if let Ok(decoded) = serde_json::from_str::<String>(literal) {
                    if self
                        .secrets
                        .iter()
                        .any(|(s, _)| decoded.contains(s.as_str()))
                    {
                        let mut clean = decoded;
                        for (secret, _) in &self.secrets {
                            clean = clean.replace(secret.as_str(), "***");
                        }
                        let out = out.get_or_insert_with(String::new);
                        out.push_str(&text[copied..start]);
                        out.push_str(&serde_json::to_string(&clean).unwrap_or_default());
                        copied = end + 1;
                    }
                }
            }
            i = end + 1;
        }
        out.map(|mut out| {
            out.push_str(&text[copied..]);
            out
        })
    }
}

/// Prefixes of key lookalikes that [`redact_patterns`] masks when at least [`KEY_RUN`] token
/// characters follow them at a token boundary.
const KEY_PREFIXES: [&str; 3] = ["sk-", "AIza", "Bearer "];
const KEY_RUN: usize = 16;

fn token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
}

/// Whether [`redact_patterns`] would change `text`, found without copying it. The exact
/// condition, not just the presence of a prefix: an interaction line names an unaliased
/// gateway key as `sk-gw-...abcd`, and on every such line a bare `contains("sk-")` sent the
/// whole line with its bodies through the character-by-character rewrite.
fn needs_pattern_scan(text: &str) -> bool {
    // Built once: this runs over every line the gateway writes.
    static FINDERS: OnceLock<[Finder<'static>; 4]> = OnceLock::new();
    let [sk, aiza, bearer, key] = FINDERS.get_or_init(|| {
        let [a, b, c] = KEY_PREFIXES.map(Finder::new);
        [a, b, c, Finder::new("key=")]
    });
    let bytes = text.as_bytes();
    let lookalike = |finder: &Finder<'_>| {
        let prefix = finder.needle().len();
        finder.find_iter(bytes).any(|i| {
            let boundary = i == 0 || !token_char(bytes[i - 1]);
            let run = bytes[i + prefix..]
                .iter()
                .take_while(|b| token_char(**b))
                .count();
            boundary && run >= KEY_RUN
        })
    };
    [sk, aiza, bearer].into_iter().any(lookalike)
        || key
            .find_iter(bytes)
            .any(|i| i > 0 && matches!(bytes[i - 1], b'?' | b'&' | b'_' | b'-'))
}

/// The secret field names, searched for in a lowercased copy of the text: a case-insensitive
/// automaton has no fast prefilter, and looking at each quote in turn (about 150 in an
/// interaction line) cost 1.3-1.5 µs a line in branch misses, against 0.25 µs for this.
fn secret_field_names() -> &'static AhoCorasick {
    static NAMES: OnceLock<AhoCorasick> = OnceLock::new();
    NAMES.get_or_init(|| {
        // Leftmost-first is exact here: names hold no quote, so a match that is a whole string
        // (a quote before and after) never overlaps another match.
        AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(SECRET_FIELDS)
            .expect("nine short names make an automaton")
    })
}

/// Replaces the string values of JSON fields named like secrets (`"api_key": "…"`, any case)
/// with `***`; `None` when there is none.
fn redact_secret_fields(text: &str) -> Option<String> {
    let lowered = text.as_bytes().to_ascii_lowercase();
    let names = secret_field_names().find_iter(&lowered);
    redact_values_after(text, names.map(|name| (name.start(), name.end())))
}

/// Replaces with `***` the string value of each secret name found in `text` (its start and
/// end, in order) that is a whole JSON string followed by a colon: not one inside a value
/// already passed.
fn redact_values_after(text: &str, names: impl Iterator<Item = (usize, usize)>) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut scanned = 0;
    for (start, end) in names {
        if start < scanned
            || start == 0
            || bytes[start - 1] != b'"'
            || bytes.get(end) != Some(&b'"')
        {
            continue;
        }
        // After the name: optional spaces, a colon, optional spaces, then a string value.
        let mut j = end + 1;
        let skip_spaces = |j: &mut usize| {
            while *j < bytes.len() && matches!(bytes[*j], b' ' | b'\t' | b'\n' | b'\r') {
                *j += 1;
            }
        };
        skip_spaces(&mut j);
        if bytes.get(j) != Some(&b':') {
            continue;
        }
        j += 1;
        skip_spaces(&mut j);
        if bytes.get(j) != Some(&b'"') {
            continue;
        }
        let value_start = j + 1;
        let mut k = value_start;
        while k < bytes.len() && bytes[k] != b'"' {
            k += if bytes[k] == b'\\' { 2 } else { 1 };
        }
        let value_end = k.min(bytes.len());
        if &text[value_start..value_end] != "***" {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(&text[copied..value_start]);
            o.push_str("***");
            copied = value_end;
        }
        scanned = value_end;
    }
    out.map(|mut o| {
        o.push_str(&text[copied..]);
        o
    })
}

/// Replaces key-shaped substrings. A key lookalike is a known prefix followed by at least 16
/// characters of `[A-Za-z0-9_-]`; `key=` values run to the next `&`, space or quote.
fn redact_patterns(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let boundary = i == 0 || !token_char(bytes[i - 1]);
        let prefix = KEY_PREFIXES
            .into_iter()
            .find(|p| boundary && rest.starts_with(p));
        if let Some(p) = prefix {
            let run = rest[p.len()..]
                .bytes()
                .take_while(|b| token_char(*b))
                .count();
            if run >= KEY_RUN {
                out.push_str(p);
                out.push_str("***");
                i += p.len() + run;
                continue;
            }
        }
        if rest.starts_with("key=") && i > 0 && matches!(bytes[i - 1], b'?' | b'&' | b'_' | b'-') {
            let run = rest[4..]
                .bytes()
                .take_while(|b| !matches!(b, b'&' | b' ' | b'"' | b'\'' | b'\\' | b'#'))
                .count();
            out.push_str("key=***");
            i += 4 + run;
            continue;
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        i += c.len_utf8().max(1);
    }
    out
}

/// The redactor the system and error log formats use (a format is a plain `fn`).
static GLOBAL_REDACTOR: OnceLock<Redactor> = OnceLock::new();

fn redacted_format(
    w: &mut dyn std::io::Write,
    now: &mut DeferredNow,
    record: &log::Record,
) -> std::io::Result<()> {
    let message = record.args().to_string();
    let message = match GLOBAL_REDACTOR.get() {
        Some(r) => r.text(&message).into_owned(),
        None => message,
    };
    write!(
        w,
        "{} {:<5} [{}] {}",
        now.format_rfc3339(),
        record.level(),
        record.target(),
        message
    )
}

/// Bytes of the system log kept before a write reaches the file (warnings and errors are
/// written at once; the recorder thread flushes the rest each second).
const SYSTEM_BUFFER: usize = 8 * 1024;
/// Bytes of interaction lines kept before a write reaches the file.
const INTERACTIONS_BUFFER: usize = 64 * 1024;

/// The system log and, for its error lines, the error log: the `log` crate's output.
struct SystemLogs {
    system: RotatingFile,
    errors: RotatingFile,
}

impl LogWriter for SystemLogs {
    fn write(&self, now: &mut DeferredNow, record: &log::Record) -> std::io::Result<()> {
        let mut line = Vec::with_capacity(160);
        redacted_format(&mut line, now, record)?;
        self.system.write_line(&line)?;
        if record.level() == log::Level::Error {
            self.errors.write_line(&line)?;
        }
        if record.level() <= log::Level::Warn {
            self.system.flush()?;
            self.errors.flush()?;
        }
        Ok(())
    }

    fn flush(&self) -> std::io::Result<()> {
        self.system.flush()?;
        self.errors.flush()
    }
}

/// Starts the system and error logs (and warnings on standard error). The handle must live
/// as long as the process logs; `shutdown` flushes it.
pub fn init(config: &Config) -> Result<LoggerHandle, flexi_logger::FlexiLoggerError> {
    let _ = GLOBAL_REDACTOR.set(Redactor::for_config(config));
    let level = if config.debug {
        "debug"
    } else {
        config.log_level.as_str()
    };
    let spec = format!("{level}, ureq=info, ureq_proto=info, rustls=info");
    let (dir, max) = (&config.log_dir, config.log_rotate_bytes);
    let logs = SystemLogs {
        system: RotatingFile::open(dir, "system", max, SYSTEM_BUFFER)?,
        // Errors are rare and wanted at once.
        errors: RotatingFile::open(dir, "error", max, 0)?,
    };
    flexi_logger::Logger::try_with_str(spec)?
        .log_to_writer(Box::new(logs))
        .format(redacted_format)
        .duplicate_to_stderr(Duplicate::Warn)
        .use_utc()
        .start()
}

/// The interactions file, written and flushed through the recorder's one writer.
pub fn interactions_writer(config: &Config) -> std::io::Result<RotatingFile> {
    RotatingFile::open(
        &config.log_dir,
        "llm_interactions",
        config.log_rotate_bytes,
        INTERACTIONS_BUFFER,
    )
}

/// Keeps `LOG_DIR` within its retention and size limits.
pub struct DiskGuard {
    dir: PathBuf,
    /// `None` (`LOG_RETENTION_DAYS=0`): files are kept whatever their age.
    retention: Option<Duration>,
    max_total: u64,
}

impl DiskGuard {
    pub fn new(config: &Config) -> Self {
        DiskGuard {
            dir: config.log_dir.clone(),
            retention: (config.log_retention_days > 0)
                .then(|| Duration::from_secs(u64::from(config.log_retention_days) * 86_400)),
            max_total: config.log_max_total_bytes,
        }
    }

    /// Deletes what is over the limits; returns the files deleted. Files past retention go
    /// whatever they are (a file being written is rotated before its next line once it is a
    /// day old, so an expired one is not being written). For the size cap the newest file of
    /// each kind is the one being written and is kept.
    pub fn enforce(&self) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files: Vec<(PathBuf, SystemTime, u64, String)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let kind = log_kind(&name)?;
                let meta = e.metadata().ok()?;
                Some((e.path(), meta.modified().ok()?, meta.len(), kind))
            })
            .collect();
        // Oldest first.
        files.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        let mut total: u64 = files.iter().map(|f| f.2).sum();
        let now = SystemTime::now();
        let mut deleted = Vec::new();
        for i in 0..files.len() {
            let (path, modified, len, kind) = &files[i];
            let age = now.duration_since(*modified).unwrap_or_default();
            let expired = self.retention.is_some_and(|r| age > r);
            let newest_of_kind = !files[i + 1..].iter().any(|f| &f.3 == kind);
            let over_cap = total > self.max_total && !newest_of_kind;
            if (expired || over_cap) && fs::remove_file(path).is_ok() {
                total = total.saturating_sub(*len);
                deleted.push(path.clone());
            }
        }
        deleted
    }
}

/// `system`, `error` or `llm_interactions` for a gateway log file name.
fn log_kind(name: &str) -> Option<String> {
    let rest = name.strip_prefix(FILE_PREFIX)?.strip_prefix('_')?;
    if !(name.ends_with(".log") || name.ends_with(".log.gz")) {
        return None;
    }
    ["llm_interactions", "system", "error"]
        .into_iter()
        .find(|k| rest.starts_with(&format!("{k}_")))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// How `redact_secret_fields` found names before it searched for them: at every quote, the
    /// text up to the next quote compared with each name. The tests' oracle.
    fn secret_fields_by_quotes(text: &str) -> Option<String> {
        let bytes = text.as_bytes();
        let names = memchr::memchr_iter(b'"', bytes).filter_map(|quote| {
            let start = quote + 1;
            let len = memchr::memchr(b'"', &bytes[start..])?;
            let name = &bytes[start..start + len];
            SECRET_FIELDS
                .iter()
                .any(|f| name.eq_ignore_ascii_case(f.as_bytes()))
                .then_some((start, start + len))
        });
        redact_values_after(text, names)
    }

    /// Text made of the pieces that matter to the scan: quotes, colons, spaces, escapes, secret
    /// names in any case, `***`, and other words.
    fn jsonish() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("\"".to_string()),
            Just(":".to_string()),
            Just(" ".to_string()),
            Just("\\".to_string()),
            Just("***".to_string()),
            Just(",".to_string()),
            Just("{".to_string()),
            (0..SECRET_FIELDS.len(), any::<u16>()).prop_map(|(i, case)| {
                SECRET_FIELDS[i]
                    .chars()
                    .enumerate()
                    .map(|(k, c)| {
                        if case & (1 << (k % 16)) != 0 {
                            c.to_ascii_uppercase()
                        } else {
                            c
                        }
                    })
                    .collect()
            }),
            "[a-zA-Z_ -]{1,6}",
            "[é€x]{1,2}",
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    #[test]
    fn secret_names_are_found_where_a_quote_by_quote_scan_finds_them_in_tricky_text() {
        let cases = [
            r#""api_key":"\"secret":"v""#,
            r#""secret"secret":"v""#,
            r#""x-api-key":"a","API_KEY" : "b""#,
            r#""password":"***","Password":"p""#,
            r#"{"Authorization":"Bearer x\"y","z":1}"#,
            r#""api_key":"abc\"#,
            r#""api_key": 12, "secret":"s""#,
            r#""Secret""#,
            r#""secret":"#,
            r#"""api_key":"v""#,
            r#""api_key":"v""password":"w""#,
            r#""x-goog-api-key"	:
 "k""#,
            r#""access_token":"é€","apikey":"""#,
        ];
        for text in cases {
            assert_eq!(
                redact_secret_fields(text),
                secret_fields_by_quotes(text),
                "{text}"
            );
        }
    }

    proptest! {
        #[test]
        fn secret_names_are_found_where_a_quote_by_quote_scan_finds_them(text in jsonish()) {
            prop_assert_eq!(redact_secret_fields(&text), secret_fields_by_quotes(&text));
        }
    }

    #[test]
    fn the_pattern_precheck_says_yes_exactly_when_the_rewrite_changes_the_text() {
        let cases = [
            r#"{"key_name":"sk-gw-...vhdY","team":null}"#,
            "sk-0123456789abcdef",
            "sk-0123456789abcde",
            "xsk-0123456789abcdefgh",
            "Bearer sk-gw-0123456789abcdef0123",
            "AIzaSyA-0123456789abcdef",
            "?key=abc",
            "monkey=banana",
            "&key=",
            "key=at-start",
            "one sk- alone, sk-short and a sk-0123456789abcdefghij at the end",
            "",
        ];
        for text in cases {
            assert_eq!(
                needs_pattern_scan(text),
                redact_patterns(text) != text,
                "{text:?}"
            );
        }
    }

    #[test]
    fn configured_secrets_and_key_lookalikes_are_redacted() {
        let r = Redactor::new([
            "my-configured-secret-value".to_string(),
            "short".to_string(),
        ]);
        assert_eq!(
            r.text("a my-configured-secret-value b short"),
            "a *** b short"
        );
        assert_eq!(
            r.text("key sk-proj-abcdefghijklmnop1234 and sk-ant-api03-ABCDEFGHIJKLMNOPQRST"),
            "key sk-*** and sk-***"
        );
        assert_eq!(
            r.text("Authorization: Bearer abcdefghijklmnopqrstuvwxyz"),
            "Authorization: Bearer ***"
        );
        assert_eq!(
            r.text(
                "/v1beta/models/x:generate?alt=sse&key=AIzaSyFAKEFAKEFAKEFAKEFAKEFAKEFAKE123&z=1"
            ),
            "/v1beta/models/x:generate?alt=sse&key=***&z=1"
        );
        assert_eq!(
            r.text("task-list and sk-short ok"),
            "task-list and sk-short ok"
        );
        assert_eq!(
            r.text("中文 sk-abcdefghijklmnopqrstu 中文"),
            "中文 sk-*** 中文"
        );
    }

    #[test]
    fn secret_named_fields_are_redacted_in_json_text() {
        let r = Redactor::default();
        let text = json!({"api_key": "x\"y", "nested": [{"Authorization": "Bearer y"}], "keep": "z", "password": 5})
            .to_string();
        let v: serde_json::Value = serde_json::from_str(&r.text(&text)).unwrap();
        assert_eq!(
            v,
            json!({"api_key": "***", "nested": [{"Authorization": "***"}], "keep": "z", "password": 5})
        );
        assert_eq!(r.text(r#"{"API_KEY" : "abc"}"#), r#"{"API_KEY" : "***"}"#);
        assert_eq!(
            r.text(r#"say "secret" and "api_key""#),
            r#"say "secret" and "api_key""#
        );
    }

    #[test]
    fn log_kinds_are_recognised_by_name() {
        assert_eq!(
            log_kind("llmcallgateway_system_2026-11-26.log").as_deref(),
            Some("system")
        );
        assert_eq!(
            log_kind("llmcallgateway_llm_interactions_2026-11-26.restart-0001.log").as_deref(),
            Some("llm_interactions")
        );
        assert_eq!(log_kind("other.log"), None);
        assert_eq!(log_kind("llmcallgateway_trends.jsonl"), None);
    }
}
