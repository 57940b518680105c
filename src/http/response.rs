//! Writing responses: fixed bodies with `Content-Length` in one write, and chunked streams
//! where every `Stream::send` leaves the process as one chunk at once (`TCP_NODELAY` is set on
//! the socket, and nothing buffers in between). A failed or timed-out write means the client
//! is gone; it is reported as [`ClientGone`] so the handler can stop its own work.

use std::io::Write;
use std::net::TcpStream;
use std::time::Instant;

use super::chunked::frame_chunk;
use super::relay::{guarded, Pump, Pumped};
use super::request::Version;

/// A fixed response: status, headers and the whole body.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub fn text(status: u16, body: &str) -> Self {
        Response::new(status, "text/plain; charset=utf-8", body)
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// The client closed the connection or stopped reading: whatever is being produced for it
/// can stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientGone;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Nothing written yet.
    Pending,
    /// A complete response was written.
    Done,
    /// Stream headers were written and the stream has not been finished.
    Streaming,
    /// A write failed: the connection is unusable.
    Broken,
    /// Stream headers were written and the rest of the body went to the relay loop.
    Detached,
}

/// A stream handed to the relay loop, for the server to pass on with its connection.
pub(crate) struct Detached {
    pub pump: Box<dyn Pump>,
    pub chunked: bool,
    pub keep_alive: bool,
    /// When the worker wrote the first body bytes, if it wrote some before handing over.
    pub first_sent: Option<Instant>,
}

/// The most body bytes a worker writes itself before it hands a stream over even though its
/// source still has more (one relay pump's worth): a provider that sends without pause does
/// not keep the worker.
const WORKER_PUMP_BYTES: usize = 64 * 1024;

/// The handler's way to answer one request, once.
pub struct Responder<'a> {
    stream: &'a mut TcpStream,
    version: Version,
    head_only: bool,
    keep_alive: bool,
    pub(crate) state: State,
    /// Whether a stream may be handed to the relay loop (the server has one).
    relay: bool,
    detached: Option<Detached>,
}

impl<'a> Responder<'a> {
    pub(crate) fn new(
        stream: &'a mut TcpStream,
        version: Version,
        head_only: bool,
        keep_alive: bool,
    ) -> Self {
        Responder {
            stream,
            version,
            head_only,
            keep_alive,
            state: State::Pending,
            relay: false,
            detached: None,
        }
    }

    /// Lets a stream be handed to the relay loop ([`Stream::detach`]).
    pub(crate) fn allow_relay(&mut self) {
        self.relay = true;
    }

    /// The stream handed to the relay loop, if the handler detached one.
    pub(crate) fn take_detached(&mut self) -> Option<Detached> {
        self.detached.take()
    }

    /// Whether the connection stays open after this response.
    pub(crate) fn keep_alive(&self) -> bool {
        self.keep_alive && self.state == State::Done
    }

    /// Whether an answer (or the start of one) has been written.
    pub fn is_started(&self) -> bool {
        self.state != State::Pending
    }

    /// Writes a complete response. For `HEAD` the body is left out (its length still shown).
    pub fn send(&mut self, response: Response) -> Result<(), ClientGone> {
        if self.is_started() {
            return Ok(());
        }
        let mut out = Vec::with_capacity(256 + response.body.len());
        self.write_head(&mut out, response.status, &response.headers);
        let _ = write!(out, "content-length: {}\r\n\r\n", response.body.len());
        if !self.head_only {
            out.extend_from_slice(&response.body);
        }
        self.state = State::Done;
        self.write(&out)
    }

    /// Starts a streamed response: the head goes out now, the body as chunks, one per
    /// `Stream::send`. HTTP/1.0 clients get the raw bytes and the connection closed at the end.
    pub fn stream(
        &mut self,
        status: u16,
        headers: &[(String, String)],
    ) -> Result<Stream<'_, 'a>, ClientGone> {
        if self.is_started() {
            return Err(ClientGone);
        }
        let chunked = self.version == Version::Http11 && !self.head_only;
        if !chunked {
            self.keep_alive = false;
        }
        let mut out = Vec::with_capacity(256);
        self.write_head(&mut out, status, headers);
        if chunked {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        out.extend_from_slice(b"\r\n");
        self.state = State::Streaming;
        self.write(&out)?;
        if self.head_only {
            self.state = State::Done;
        }
        Ok(Stream {
            responder: self,
            chunked,
            buf: Vec::new(),
        })
    }

    fn write_head(&self, out: &mut Vec<u8>, status: u16, headers: &[(String, String)]) {
        let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason(status));
        for (name, value) in headers {
            if is_framing_header(name) || has_line_break(name) || has_line_break(value) {
                continue;
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        match (self.keep_alive, self.version) {
            (false, _) => out.extend_from_slice(b"connection: close\r\n"),
            (true, Version::Http10) => out.extend_from_slice(b"connection: keep-alive\r\n"),
            (true, Version::Http11) => {}
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ClientGone> {
        if self.state == State::Broken {
            return Err(ClientGone);
        }
        match self.stream.write_all(bytes) {
            Ok(()) => Ok(()),
            Err(_) => {
                self.state = State::Broken;
                Err(ClientGone)
            }
        }
    }
}

/// A response body in flight. Each `send` is one chunk, written to the socket immediately.
/// Dropping a stream without `finish` closes the connection, so the client sees a truncated
/// body rather than a complete one.
pub struct Stream<'r, 'a> {
    responder: &'r mut Responder<'a>,
    chunked: bool,
    buf: Vec<u8>,
}

impl Stream<'_, '_> {
    /// Sends one piece of the body (for SSE: one whole event) and pushes it to the socket.
    pub fn send(&mut self, data: &[u8]) -> Result<(), ClientGone> {
        if data.is_empty() || self.responder.state != State::Streaming {
            return match self.responder.state {
                State::Broken => Err(ClientGone),
                _ => Ok(()),
            };
        }
        if !self.chunked {
            return self.responder.write(data);
        }
        self.buf.clear();
        frame_chunk(&mut self.buf, data, false);
        let framed = std::mem::take(&mut self.buf);
        let result = self.responder.write(&framed);
        self.buf = framed;
        result
    }

    /// Whether [`Stream::detach`] would take the stream.
    pub fn can_detach(&self) -> bool {
        self.responder.relay && self.responder.state == State::Streaming
    }

    /// Hands the rest of the body to the relay loop, which pumps `pump` whenever its source is
    /// readable and writes what it makes, on a relay thread; the handler returns and its worker
    /// is free. Gives the pump back when the server has no relay loop or the stream is not
    /// open (a `HEAD` request, a failed write): the caller then drives it itself.
    ///
    /// What the source has already is pumped and written here first (up to
    /// [`WORKER_PUMP_BYTES`]): a body that is all there (a short answer, a fast provider) ends on
    /// this worker, recorded through [`Pump::finish`], without waking a relay thread; a stream
    /// is handed over at its source's first wait. A client gone here, or a pump that panics
    /// (logged, as on a relay thread), ends the stream as not delivered and the connection is
    /// closed.
    pub fn detach(mut self, mut pump: Box<dyn Pump>) -> Result<(), Box<dyn Pump>> {
        if !self.can_detach() {
            return Err(pump);
        }
        let mut out = Vec::new();
        let mut written = 0;
        let mut first_sent = None;
        loop {
            out.clear();
            let Some(pumped) = guarded("pump", || pump.pump(&mut out)) else {
                self.responder.state = State::Broken;
                guarded("finish", || pump.finish(first_sent, false));
                return Ok(());
            };
            if pumped == Pumped::End {
                let delivered = self.finish_with(&out).is_ok();
                if delivered && !out.is_empty() {
                    first_sent.get_or_insert_with(Instant::now);
                }
                guarded("finish", || pump.finish(first_sent, delivered));
                return Ok(());
            }
            if self.send(&out).is_err() {
                guarded("finish", || pump.finish(first_sent, false));
                return Ok(());
            }
            // As on a relay thread: the first bytes count as sent once the socket took them.
            if !out.is_empty() {
                first_sent.get_or_insert_with(Instant::now);
            }
            written += out.len();
            if pumped == Pumped::Blocked || written >= WORKER_PUMP_BYTES {
                break;
            }
        }
        self.responder.detached = Some(Detached {
            pump,
            chunked: self.chunked,
            keep_alive: self.responder.keep_alive,
            first_sent,
        });
        self.responder.state = State::Detached;
        Ok(())
    }

    /// Ends the body. The connection can then be reused.
    pub fn finish(self) -> Result<(), ClientGone> {
        self.finish_with(&[])
    }

    /// Sends a last piece of the body and ends it, in one write.
    pub fn finish_with(mut self, data: &[u8]) -> Result<(), ClientGone> {
        if self.responder.state != State::Streaming {
            return match self.responder.state {
                State::Broken => Err(ClientGone),
                _ => Ok(()),
            };
        }
        if !self.chunked {
            self.responder.write(data)?;
        } else {
            self.buf.clear();
            frame_chunk(&mut self.buf, data, true);
            let framed = std::mem::take(&mut self.buf);
            self.responder.write(&framed)?;
        }
        self.responder.state = State::Done;
        Ok(())
    }
}

/// Headers the layer writes itself; a handler's copies are dropped so framing stays ours.
fn is_framing_header(name: &str) -> bool {
    ["content-length", "transfer-encoding", "connection"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

fn has_line_break(s: &str) -> bool {
    s.bytes().any(|b| b == b'\r' || b == b'\n')
}

/// The reason phrase for a status (informational only; clients ignore it).
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_the_layer_produces_has_its_reason_phrase() {
        for status in [100, 200, 400, 408, 413, 417, 431, 500, 501, 503, 505] {
            assert_ne!(reason(status), "Status", "for {status}");
        }
        assert_eq!(reason(299), "Status");
    }

    #[test]
    fn framing_and_injected_headers_from_a_handler_are_dropped() {
        assert!(is_framing_header("Content-Length"));
        assert!(is_framing_header("transfer-encoding"));
        assert!(is_framing_header("CONNECTION"));
        assert!(!is_framing_header("content-type"));
        assert!(has_line_break("a\r\nset-cookie: x"));
        assert!(!has_line_break("plain value"));
    }
}
