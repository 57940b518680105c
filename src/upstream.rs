//! Transport to providers: one shared, pooled `ureq` Agent, a `send` that never turns a
//! provider's 4xx/5xx into a transport error, the mapping of transport failures to 502/504,
//! and an SSE event reader with a bounded event size. It knows no dialect.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ureq::http::Response;
use ureq::Body;

use crate::config::Config;
use crate::error::ApiError;
use crate::providers::bedrock::eventstream;

/// Largest non-stream response body read from a provider (large embedding batches included).
const MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;
/// Largest single SSE event accepted from a provider; a longer one is a broken stream.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// The HTTP clients, shared by all workers: a few independent pools, each worker thread always
/// using the same one. ureq keeps one lock per pool, held while it picks and checks an idle
/// connection; with a single pool, a worker descheduled while holding it stalls every other
/// (measured in `bench/`). Settings from `shared/research/tech.md`: statuses are answers, not
/// errors; idle pools large enough that concurrent calls reuse connections; 16 KiB buffers so a
/// thousand open streams stay light.
pub struct Agents {
    agents: Vec<ureq::Agent>,
}

/// Independent connection pools.
const POOLS: usize = 8;

impl Agents {
    pub fn new(config: &Config) -> Self {
        let agents = (0..POOLS)
            .map(|_| {
                ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .max_idle_connections(128)
                    .max_idle_connections_per_host(64)
                    .input_buffer_size(16 * 1024)
                    .output_buffer_size(16 * 1024)
                    .timeout_connect(Some(config.upstream_connect_timeout))
                    .timeout_recv_response(Some(config.upstream_timeout))
                    .user_agent(concat!("llmcallgateway/", env!("CARGO_PKG_VERSION")))
                    .no_delay(true)
                    .build()
                    .into()
            })
            .collect();
        Agents { agents }
    }

    /// This thread's client.
    pub fn get(&self) -> &ureq::Agent {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static POOL: usize = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        &self.agents[POOL.with(|p| *p) % self.agents.len()]
    }
}

/// One call to a provider.
pub struct Call {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// For streams: the longest silence allowed between two reads of the body.
    pub idle_timeout: Option<Duration>,
}

/// A provider's answer, headers received; the body not yet read.
pub struct Answer {
    pub response: Response<Body>,
    /// From sending the request to receiving the response head.
    pub latency: Duration,
}

impl Answer {
    pub fn status(&self) -> u16 {
        self.response.status().as_u16()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Reads the whole body (bounded).
    pub fn read_body(&mut self) -> Result<Vec<u8>, ApiError> {
        self.response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| transport_error(e, "reading the provider's response"))
    }

    /// The body as a stream of events: SSE, or AWS event-stream messages when the provider
    /// answered `application/vnd.amazon.eventstream` (Bedrock).
    pub fn into_events(self) -> EventReader {
        let binary = self
            .header("content-type")
            .is_some_and(|t| t.starts_with(eventstream::CONTENT_TYPE));
        let body = self.response.into_body().into_reader();
        if binary {
            EventReader::event_stream(body)
        } else {
            EventReader::new(body)
        }
    }
}

/// Sends a POST with a JSON body.
pub fn post(agent: &ureq::Agent, call: &Call) -> Result<Answer, ApiError> {
    let mut request = agent.post(&call.url);
    for (name, value) in &call.headers {
        request = request.header(*name, value);
    }
    let request = request.content_type("application/json");
    let started = Instant::now();
    let sent = match call.idle_timeout {
        // A request-level configuration copies the agent's; only streams need one.
        Some(idle) => request
            .config()
            .timeout_per_read(Some(idle))
            .build()
            .send(&call.body[..]),
        None => request.send(&call.body[..]),
    };
    let response = sent.map_err(|e| transport_error(e, "calling the provider"))?;
    Ok(Answer {
        response,
        latency: started.elapsed(),
    })
}

/// Sends a GET (a provider's model list), the whole exchange bounded by `timeout`; returns the
/// status and the body (bounded).
pub fn get(
    agent: &ureq::Agent,
    url: &str,
    headers: &[(&'static str, String)],
    timeout: Duration,
) -> Result<(u16, Vec<u8>), ApiError> {
    let mut request = agent.get(url);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let mut response = request
        .config()
        .timeout_global(Some(timeout))
        .build()
        .call()
        .map_err(|e| transport_error(e, "listing the provider's models"))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(16 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| transport_error(e, "reading the provider's model list"))?;
    Ok((status, body))
}

/// Maps a transport failure to the status a client should see: 504 when the provider was
/// too slow, 502 when it could not be reached or broke the protocol. URLs in messages never
/// carry query strings (they may hold keys).
pub fn transport_error(e: ureq::Error, doing: &str) -> ApiError {
    match e {
        ureq::Error::Timeout(which) => ApiError::gateway_timeout(format!(
            "The provider did not answer in time while {doing} ({which})."
        )),
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            ApiError::gateway_timeout(format!(
                "The provider did not answer in time while {doing}."
            ))
        }
        ureq::Error::BodyExceedsLimit(limit) => ApiError::bad_gateway(
            "upstream_response_too_large",
            format!("The provider's response exceeded {limit} bytes."),
        ),
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => ApiError::bad_gateway(
            "upstream_unreachable",
            format!("Could not connect to the provider while {doing}."),
        ),
        other => ApiError::bad_gateway(
            "upstream_unreachable",
            format!(
                "The provider connection failed while {doing}: {}",
                describe(&other)
            ),
        ),
    }
}

/// A transport error's text without any URL in it.
fn describe(e: &ureq::Error) -> String {
    let text = e.to_string();
    match text.find("http") {
        Some(i) => text[..i].trim_end().to_string(),
        None => text,
    }
}

/// One server-sent event.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SseEvent {
    /// The `event:` field, when the provider names its events (Anthropic does).
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub data: String,
}

/// Reads SSE events one at a time from a provider's body, as they arrive; or, made with
/// [`EventReader::event_stream`], AWS event-stream messages, each decoded (checksums checked)
/// into an [`SseEvent`] named by its event type, so the relay stays the same.
pub struct EventReader {
    reader: BufReader<Box<dyn Read + Send>>,
    line: Vec<u8>,
    binary: bool,
}

/// A read failure as the relay sees it.
fn stream_error(e: io::Error) -> StreamError {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => StreamError::Idle,
        _ if e.to_string().contains("timeout") => StreamError::Idle,
        _ => StreamError::Broken(e.to_string()),
    }
}

/// Why the event stream stopped.
#[derive(Debug)]
pub enum StreamError {
    /// No byte for longer than the idle timeout.
    Idle,
    /// A transport failure or a protocol violation (oversized event, invalid UTF-8).
    Broken(String),
}

impl EventReader {
    pub fn new(body: impl Read + Send + 'static) -> Self {
        EventReader {
            // The HTTP client buffers the socket already; this buffer only needs to hold
            // enough to find line ends, and every open stream holds one.
            reader: BufReader::with_capacity(4 * 1024, Box::new(body)),
            line: Vec::with_capacity(512),
            binary: false,
        }
    }

    /// A reader of AWS event-stream messages (`application/vnd.amazon.eventstream`).
    pub fn event_stream(body: impl Read + Send + 'static) -> Self {
        EventReader {
            binary: true,
            ..EventReader::new(body)
        }
    }

    /// Fills `line[range]` unless the body ends first; the number of bytes read.
    fn read_full(&mut self, range: std::ops::Range<usize>) -> Result<usize, StreamError> {
        let mut filled = range.start;
        while filled < range.end {
            match self.reader.read(&mut self.line[filled..range.end]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(stream_error(e)),
            }
        }
        Ok(filled - range.start)
    }

    /// The next event-stream message as an event, `Ok(None)` at the end of the body.
    fn next_message(&mut self) -> Result<Option<SseEvent>, StreamError> {
        let cut = || StreamError::Broken("the event stream ended inside a message".into());
        self.line.clear();
        self.line.resize(eventstream::PRELUDE, 0);
        match self.read_full(0..eventstream::PRELUDE)? {
            0 => return Ok(None),
            n if n < eventstream::PRELUDE => return Err(cut()),
            _ => {}
        }
        let prelude: [u8; eventstream::PRELUDE] = self.line[..eventstream::PRELUDE]
            .try_into()
            .map_err(|_| cut())?;
        let total = eventstream::total_length(&prelude).map_err(StreamError::Broken)?;
        if total > MAX_EVENT_BYTES {
            return Err(StreamError::Broken(format!(
                "an event exceeded {MAX_EVENT_BYTES} bytes"
            )));
        }
        self.line.resize(total, 0);
        if self.read_full(eventstream::PRELUDE..total)? < total - eventstream::PRELUDE {
            return Err(cut());
        }
        let message = eventstream::decode(&self.line).map_err(StreamError::Broken)?;
        Ok(Some(message.into_event()))
    }

    /// Reads what is left of a finished stream (at most `max` bytes), so the connection ends
    /// cleanly and goes back to the pool: the HTTP client reuses a connection only when its
    /// body was read to the end. Returns whether the end was reached.
    pub fn drain(&mut self, max: u64) -> bool {
        let mut rest = (&mut self.reader).take(max + 1);
        matches!(io::copy(&mut rest, &mut io::sink()), Ok(n) if n <= max)
    }

    /// Whether a whole further event has already been received (its blank line is in the
    /// buffer), so reading it cannot wait on the network.
    pub fn has_complete_event(&self) -> bool {
        if self.binary {
            let buffered = self.reader.buffer();
            return buffered.len() >= eventstream::PRELUDE
                && u32::from_be_bytes([buffered[0], buffered[1], buffered[2], buffered[3]])
                    as usize
                    <= buffered.len();
        }
        self.reader
            .buffer()
            .windows(2)
            .any(|w| w == b"\n\n" || w == b"\n\r")
    }

    /// The next event, `Ok(None)` at the end of the body.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, StreamError> {
        if self.binary {
            return self.next_message();
        }
        let mut event = SseEvent::default();
        let mut has_data = false;
        let mut size = 0usize;
        loop {
            self.line.clear();
            let n = (&mut self.reader)
                .take((MAX_EVENT_BYTES - size) as u64 + 1)
                .read_until(b'\n', &mut self.line)
                .map_err(stream_error)?;
            if n == 0 {
                return Ok(has_data.then_some(event));
            }
            size += n;
            if size > MAX_EVENT_BYTES {
                return Err(StreamError::Broken(format!(
                    "an event exceeded {MAX_EVENT_BYTES} bytes"
                )));
            }
            let line = std::str::from_utf8(&self.line)
                .map_err(|_| StreamError::Broken("the stream is not valid UTF-8".into()))?
                .trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if has_data {
                    return Ok(Some(event));
                }
                event.event = None;
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "data" => {
                    if has_data {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                    has_data = true;
                }
                "event" => event.event = Some(value.to_string()),
                _ => {} // comments (":"), id, retry
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Vec<SseEvent> {
        let mut r = EventReader::new(io::Cursor::new(text.as_bytes().to_vec()));
        let mut out = Vec::new();
        while let Some(e) = r.next_event().unwrap() {
            out.push(e);
        }
        out
    }

    #[test]
    fn sse_events_are_split_on_blank_lines_and_comments_skipped() {
        let got = events(": keep-alive\n\ndata: {\"a\":1}\n\nevent: ping\r\ndata: x\r\ndata: y\r\n\r\ndata: [DONE]\n\n");
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].data, "{\"a\":1}");
        assert_eq!(got[1].event.as_deref(), Some("ping"));
        assert_eq!(got[1].data, "x\ny");
        assert_eq!(got[2].data, "[DONE]");
    }

    #[test]
    fn only_a_whole_buffered_event_counts_as_ready() {
        let mut r = EventReader::new(io::Cursor::new(b"data: 1\n\ndata: 2".to_vec()));
        r.next_event().unwrap();
        assert!(!r.has_complete_event());
        let mut r = EventReader::new(io::Cursor::new(b"data: 1\n\ndata: 2\r\n\r\n".to_vec()));
        r.next_event().unwrap();
        assert!(r.has_complete_event());
    }

    #[test]
    fn event_stream_messages_are_read_one_at_a_time_and_checked() {
        let mut bytes = eventstream::encode_event("messageStart", r#"{"role":"assistant"}"#);
        bytes.extend(eventstream::encode_event("messageStop", "{}"));
        let mut r = EventReader::event_stream(io::Cursor::new(bytes.clone()));
        let first = r.next_event().unwrap().unwrap();
        assert_eq!(first.event.as_deref(), Some("messageStart"));
        assert_eq!(first.data, r#"{"role":"assistant"}"#);
        assert!(r.has_complete_event());
        assert_eq!(
            r.next_event().unwrap().unwrap().event.as_deref(),
            Some("messageStop")
        );
        assert!(!r.has_complete_event());
        assert!(r.next_event().unwrap().is_none());

        let mut corrupt = bytes.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        let mut r = EventReader::event_stream(io::Cursor::new(corrupt));
        r.next_event().unwrap();
        assert!(matches!(r.next_event(), Err(StreamError::Broken(_))));
        let mut r = EventReader::event_stream(io::Cursor::new(bytes[..bytes.len() - 3].to_vec()));
        r.next_event().unwrap();
        assert!(matches!(r.next_event(), Err(StreamError::Broken(_))));
    }

    #[test]
    fn a_last_event_without_blank_line_is_still_delivered() {
        assert_eq!(events("data: tail").len(), 1);
    }
}
