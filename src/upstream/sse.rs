//! Reading a provider's streamed body one event at a time: server-sent events, or AWS
//! event-stream messages ([`super::eventstream`]) decoded into the same [`SseEvent`] so that a
//! relay stays the same whatever the framing. Each event is bounded in size; a read that waits
//! longer than the call's idle timeout is reported as [`StreamError::Idle`]. An event can be
//! waited for ([`EventReader::next_event`]) or polled for ([`EventReader::poll_event`], over a
//! body read inside [`super::NonBlockingReads`]): both run one parser that keeps what it has
//! read of an event between calls, so a poll that found the body empty resumes exactly.

use std::io::{self, BufRead, BufReader, Read};
use std::mem;
use std::os::fd::RawFd;
use std::task::Poll;

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
    /// SSE: the line being read, until its end arrives. Event-stream: the message being read,
    /// sized to the prelude, then to the length the prelude announces.
    line: Vec<u8>,
    binary: bool,
    /// SSE: the fields of the event being read.
    event: SseEvent,
    /// SSE: whether the event being read has a `data` line yet.
    has_data: bool,
    /// The bytes of the event being read so far: SSE, its lines (the one in `line` included);
    /// event-stream, the bytes of `line` filled.
    size: usize,
    /// The provider connection's descriptor (see [`EventReader::source`]).
    source: Option<RawFd>,
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

/// Why the parser stopped short of an event.
enum Stop {
    /// The body has no byte for now (a non-blocking read): the partial event is kept.
    WouldBlock,
    Failed(StreamError),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        if would_block(&e) {
            Stop::WouldBlock
        } else {
            Stop::Failed(stream_error(e))
        }
    }
}

/// Whether a read of the body failed only because the connection had nothing yet. ureq's gzip
/// decoder reports the transport's `WouldBlock` wrapped as a decompression error, its state
/// intact (flate2 resumes a header, a block or a trailer cut short).
fn would_block(e: &io::Error) -> bool {
    let wrapped = || match e.get_ref()?.downcast_ref::<ureq::Error>()? {
        ureq::Error::Io(inner) | ureq::Error::Decompress(_, inner) => Some(inner.kind()),
        _ => None,
    };
    e.kind() == io::ErrorKind::WouldBlock || wrapped() == Some(io::ErrorKind::WouldBlock)
}

impl From<StreamError> for Stop {
    fn from(e: StreamError) -> Stop {
        Stop::Failed(e)
    }
}

fn oversized() -> StreamError {
    StreamError::Broken(format!("an event exceeded {MAX_EVENT_BYTES} bytes"))
}

impl EventReader {
    pub fn new(body: impl Read + Send + 'static) -> Self {
        EventReader {
            // The HTTP client buffers the socket already; this buffer only needs to hold
            // enough to find line ends, and every open stream holds one.
            reader: BufReader::with_capacity(4 * 1024, Box::new(body)),
            line: Vec::with_capacity(512),
            binary: false,
            event: SseEvent::default(),
            has_data: false,
            size: 0,
            source: None,
        }
    }

    /// The provider connection the body is read from, for a relay loop to wait on its
    /// readability ([`super::Answer::fd`]).
    pub fn with_source(mut self, fd: Option<RawFd>) -> Self {
        self.source = fd;
        self
    }

    /// The provider connection's descriptor, when known.
    pub fn source(&self) -> Option<RawFd> {
        self.source
    }

    /// A reader of AWS event-stream messages (`application/vnd.amazon.eventstream`).
    pub fn event_stream(body: impl Read + Send + 'static) -> Self {
        EventReader {
            binary: true,
            ..EventReader::new(body)
        }
    }

    /// The next event, `Ok(None)` at the end of the body, waiting for it as long as the body's
    /// reads do. A read that would block counts as idle, as a read timing out does.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, StreamError> {
        match self.advance() {
            Ok(event) => Ok(event),
            Err(Stop::Failed(e)) => Err(e),
            Err(Stop::WouldBlock) => {
                self.restart();
                Err(StreamError::Idle)
            }
        }
    }

    /// The next event if the body holds it already: `Poll::Pending` when a read of the body
    /// would block (the body is read inside [`super::NonBlockingReads`]), keeping what was read
    /// of the event so that the next call resumes where this one stopped. `Pending` means the
    /// body was read until it had nothing more, so the connection is worth polling for input.
    pub fn poll_event(&mut self) -> Poll<Result<Option<SseEvent>, StreamError>> {
        match self.advance() {
            Ok(event) => Poll::Ready(Ok(event)),
            Err(Stop::Failed(e)) => Poll::Ready(Err(e)),
            Err(Stop::WouldBlock) => Poll::Pending,
        }
    }

    /// Reads on from where the last call stopped; a failure drops the partial event, so that
    /// the next call starts a new one, as a fresh read would.
    fn advance(&mut self) -> Result<Option<SseEvent>, Stop> {
        let result = if self.binary {
            self.next_message()
        } else {
            self.next_sse()
        };
        if let Err(Stop::Failed(_)) = result {
            self.restart();
        }
        result
    }

    /// Forgets the event being read.
    fn restart(&mut self) {
        self.line.clear();
        self.event = SseEvent::default();
        self.has_data = false;
        self.size = 0;
    }

    /// The next server-sent event, `Ok(None)` at the end of the body.
    fn next_sse(&mut self) -> Result<Option<SseEvent>, Stop> {
        loop {
            if !self.read_line()? {
                let has_data = mem::take(&mut self.has_data);
                let event = mem::take(&mut self.event);
                self.size = 0;
                return Ok(has_data.then_some(event));
            }
            let line = std::str::from_utf8(&self.line)
                .map_err(|_| StreamError::Broken("the stream is not valid UTF-8".into()))?
                .trim_end_matches(['\n', '\r']);
            let ended = line.is_empty() && self.has_data;
            if line.is_empty() && !self.has_data {
                self.event.event = None;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "data" => {
                    if self.has_data {
                        self.event.data.push('\n');
                    }
                    self.event.data.push_str(value);
                    self.has_data = true;
                }
                "event" => self.event.event = Some(value.to_string()),
                _ => {} // comments (":"), id, retry, and the blank line
            }
            self.line.clear();
            if ended {
                self.has_data = false;
                self.size = 0;
                return Ok(Some(mem::take(&mut self.event)));
            }
        }
    }

    /// Reads the rest of the current line into `line`: `Ok(true)` once it has its `\n` (or the
    /// body ended after part of it), `Ok(false)` at the end of the body with no line begun.
    /// The event, this line included, may not exceed [`MAX_EVENT_BYTES`].
    fn read_line(&mut self) -> Result<bool, Stop> {
        loop {
            let buffered = match self.reader.fill_buf() {
                Ok(buffered) => buffered,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if buffered.is_empty() {
                return Ok(!self.line.is_empty());
            }
            let (through, ended) = match memchr::memchr(b'\n', buffered) {
                Some(i) => (i + 1, true),
                None => (buffered.len(), false),
            };
            // Never more than one byte past the limit, so an endless line costs no memory.
            let taken = through.min(MAX_EVENT_BYTES + 1 - self.size);
            self.line.extend_from_slice(&buffered[..taken]);
            self.reader.consume(taken);
            self.size += taken;
            if self.size > MAX_EVENT_BYTES {
                return Err(oversized().into());
            }
            if ended {
                return Ok(true);
            }
        }
    }

    /// The next event-stream message as an event, `Ok(None)` at the end of the body.
    fn next_message(&mut self) -> Result<Option<SseEvent>, Stop> {
        let cut = || StreamError::Broken("the event stream ended inside a message".into());
        if self.size == 0 {
            self.line.clear();
            self.line.resize(eventstream::PRELUDE, 0);
        }
        loop {
            let wanted = self.line.len();
            while self.size < wanted {
                match self.reader.read(&mut self.line[self.size..wanted]) {
                    Ok(0) if self.size == 0 => return Ok(None),
                    Ok(0) => return Err(cut().into()),
                    Ok(n) => self.size += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            // A message is longer than its prelude: this is the prelude only.
            if wanted == eventstream::PRELUDE {
                let prelude: [u8; eventstream::PRELUDE] = self.line[..eventstream::PRELUDE]
                    .try_into()
                    .map_err(|_| cut())?;
                let total = eventstream::total_length(&prelude).map_err(StreamError::Broken)?;
                if total > MAX_EVENT_BYTES {
                    return Err(oversized().into());
                }
                self.line.resize(total, 0);
                continue;
            }
            self.size = 0;
            let message = eventstream::decode(&self.line).map_err(StreamError::Broken)?;
            return Ok(Some(message.into_event()));
        }
    }

    /// Reads what is left of a finished stream (at most `max` bytes), so the connection ends
    /// cleanly and goes back to the pool: the HTTP client reuses a connection only when its
    /// body was read to the end. Returns whether the end was reached (not when a read would
    /// block).
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
    /// buffer), so reading it cannot wait on the network. Asked between events; after a
    /// `Poll::Pending` the buffer is empty and the answer is no, rightly.
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

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

    /// A body that has nothing (`WouldBlock`) before every piece it gives: one byte at a
    /// time, or pieces of deterministic pseudo-random lengths up to `max_piece`; once
    /// `flowing` is set, it never has nothing.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        blocked: bool,
        seed: u64,
        max_piece: usize,
        flowing: Arc<AtomicBool>,
    }

    impl Trickle {
        fn new(bytes: Vec<u8>, seed: u64, max_piece: usize) -> Self {
            Trickle {
                bytes,
                at: 0,
                blocked: false,
                seed,
                max_piece,
                flowing: Arc::default(),
            }
        }
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.blocked = !self.blocked && !self.flowing.load(Ordering::Relaxed);
            if self.blocked {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            // xorshift64: the same pieces on every run.
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            let piece = 1 + (self.seed as usize) % self.max_piece;
            let n = piece.min(buf.len()).min(self.bytes.len() - self.at);
            buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    /// Every event up to the end or the first error (its message), and the number of polls
    /// that found nothing.
    fn polled(mut r: EventReader) -> (Vec<Result<SseEvent, String>>, usize) {
        let (mut out, mut pending) = (Vec::new(), 0);
        loop {
            match r.poll_event() {
                Poll::Pending => {
                    pending += 1;
                    assert!(pending < 100_000_000, "no progress");
                }
                Poll::Ready(Ok(Some(e))) => out.push(Ok(e)),
                Poll::Ready(Ok(None)) => return (out, pending),
                Poll::Ready(Err(e)) => {
                    out.push(Err(format!("{e:?}")));
                    return (out, pending);
                }
            }
        }
    }

    fn waited(mut r: EventReader) -> Vec<Result<SseEvent, String>> {
        let mut out = Vec::new();
        loop {
            match r.next_event() {
                Ok(Some(e)) => out.push(Ok(e)),
                Ok(None) => return out,
                Err(e) => {
                    out.push(Err(format!("{e:?}")));
                    return out;
                }
            }
        }
    }

    /// Polling through a body that keeps having nothing gives what waiting gives.
    fn assert_polls_like_waits(bytes: &[u8], binary: bool, max_piece: usize) {
        let make = |body: Box<dyn Read + Send>| {
            if binary {
                EventReader::event_stream(body)
            } else {
                EventReader::new(body)
            }
        };
        let expected = waited(make(Box::new(io::Cursor::new(bytes.to_vec()))));
        for seed in [1, 0x9E37_79B9_7F4A_7C15, 42] {
            let trickle = Trickle::new(bytes.to_vec(), seed, max_piece);
            let (got, pending) = polled(make(Box::new(trickle)));
            assert_eq!(got, expected, "pieces up to {max_piece}, seed {seed}");
            assert!(pending > 0);
        }
    }

    #[test]
    fn polled_sse_resumes_inside_lines_and_events() {
        let streams: [&[u8]; 5] = [
            b": keep-alive\n\ndata: {\"a\":1}\n\nevent: ping\r\ndata: x\r\ndata: y\r\n\r\ndata: [DONE]\n\n",
            b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n: comment\nid: 7\nretry: 10\nevent: delta\ndata: a\ndata:b\ndata\n\nevent: orphan\n\ndata: tail",
            b"data: \xc3\xa9t\xc3\xa9\r\n\r\ndata: \xff\n\n",
            b"\n\n\r\n",
            b"",
        ];
        for bytes in streams {
            for max_piece in [1, 3, 17, 4096] {
                assert_polls_like_waits(bytes, false, max_piece);
            }
        }
        let (got, _) = polled(EventReader::new(Trickle::new(streams[1].to_vec(), 7, 1)));
        let got: Vec<_> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].event.as_deref(), Some("delta"));
        assert_eq!(got[1].data, "a\nb\n");
        assert_eq!(got[2].event, None);
        assert_eq!(got[2].data, "tail");
    }

    #[test]
    fn a_polled_oversized_event_is_an_error() {
        let mut bytes = b"data: small\n\n".to_vec();
        for _ in 0..MAX_EVENT_BYTES / (1024 * 1024) + 1 {
            bytes.extend_from_slice(b"data: ");
            bytes.extend(std::iter::repeat_n(b'x', 1024 * 1024));
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(b"\n");
        let expected = waited(EventReader::new(io::Cursor::new(bytes.clone())));
        assert_eq!(expected.len(), 2);
        assert!(matches!(&expected[1], Err(e) if e.contains("exceeded")));
        let (got, _) = polled(EventReader::new(Trickle::new(bytes.clone(), 3, 1 << 20)));
        assert_eq!(got, expected);
        // One endless line.
        let mut line = b"data: ".to_vec();
        line.extend(std::iter::repeat_n(b'y', MAX_EVENT_BYTES));
        let (got, _) = polled(EventReader::new(Trickle::new(line, 5, 1 << 20)));
        assert!(matches!(&got[..], [Err(e)] if e.contains("exceeded")));
    }

    #[test]
    fn polled_event_stream_resumes_inside_preludes_and_messages() {
        let mut bytes = eventstream::encode_event("messageStart", r#"{"role":"assistant"}"#);
        bytes.extend(eventstream::encode_event(
            "contentBlockDelta",
            &format!(r#"{{"delta":{{"text":"{}"}}}}"#, "z".repeat(5000)),
        ));
        bytes.extend(eventstream::encode_event("messageStop", "{}"));
        for max_piece in [1, 5, 13, 4096] {
            assert_polls_like_waits(&bytes, true, max_piece);
        }
        let (got, _) = polled(EventReader::event_stream(Trickle::new(bytes.clone(), 9, 1)));
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[2].as_ref().unwrap().event.as_deref(),
            Some("messageStop")
        );

        let mut corrupt = bytes.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        let mut bad_prelude = bytes.clone();
        bad_prelude[9] ^= 1;
        for broken in [
            corrupt,
            bad_prelude,
            bytes[..bytes.len() - 3].to_vec(),
            bytes[..bytes.len() - 20].to_vec(),
            bytes[..5].to_vec(),
        ] {
            for max_piece in [1, 7, 4096] {
                assert_polls_like_waits(&broken, true, max_piece);
            }
            let (got, _) = polled(EventReader::event_stream(Trickle::new(broken, 11, 1)));
            assert!(matches!(got.last(), Some(Err(e)) if e.starts_with("Broken")));
        }
    }

    #[test]
    fn a_blocking_read_that_would_block_is_idle_and_drain_is_not_done() {
        let mut r = EventReader::new(Trickle::new(b"data: 1\n\n".to_vec(), 1, 1));
        assert!(matches!(r.next_event(), Err(StreamError::Idle)));
        let mut r = EventReader::new(Trickle::new(b"data: 1\n\n".to_vec(), 1, 1));
        assert!(!r.drain(100));
    }

    #[test]
    fn a_polled_partial_event_is_finished_by_a_waiting_read() {
        let trickle = Trickle::new(b"event: e\ndata: 1\n\ndata: 2\n\n".to_vec(), 1, 4);
        let flowing = trickle.flowing.clone();
        let mut r = EventReader::new(trickle);
        for _ in 0..3 {
            assert!(r.poll_event().is_pending());
            assert!(!r.has_complete_event());
        }
        flowing.store(true, Ordering::Relaxed);
        let event = r.next_event().unwrap().unwrap();
        assert_eq!(event.event.as_deref(), Some("e"));
        assert_eq!(event.data, "1");
        assert_eq!(r.next_event().unwrap().unwrap().data, "2");
        assert!(r.next_event().unwrap().is_none());
    }
}
