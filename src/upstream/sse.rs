//! Reading a provider's streamed body one event at a time: server-sent events, or AWS
//! event-stream messages ([`super::eventstream`]) decoded into the same [`SseEvent`] so that a
//! relay stays the same whatever the framing. Each event is bounded in size; a read that waits
//! longer than the call's idle timeout is reported as [`StreamError::Idle`].

use std::io::{self, BufRead, BufReader, Read};

use super::eventstream;

/// Largest single event accepted from a provider; a longer one is a broken stream.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

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
        // Through the reader's own buffer: `io::copy` would put an 8 KiB buffer on the stack,
        // two pages more that every worker keeps resident (issue 18).
        let mut drained = 0u64;
        loop {
            let n = match self.reader.fill_buf() {
                Ok([]) => return true,
                Ok(buffered) => buffered.len(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            };
            self.reader.consume(n);
            drained += n as u64;
            if drained > max {
                return false;
            }
        }
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
        // Asked after every event: memchr jumps from line end to line end rather than
        // comparing every pair of bytes of the buffer.
        let buffered = self.reader.buffer();
        memchr::memchr_iter(b'\n', buffered)
            .any(|i| matches!(buffered.get(i + 1), Some(b'\n' | b'\r')))
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
    fn a_finished_body_is_drained_only_within_the_limit() {
        let mut r = EventReader::new(io::Cursor::new(b"data: 1\n\n: rest".to_vec()));
        r.next_event().unwrap();
        assert!(r.drain(6));
        let mut r = EventReader::new(io::Cursor::new(b"data: 1\n\n: rest".to_vec()));
        r.next_event().unwrap();
        assert!(!r.drain(5));
    }

    #[test]
    fn a_last_event_without_blank_line_is_still_delivered() {
        assert_eq!(events("data: tail").len(), 1);
    }
}
