//! Reading requests off a connection: the head with one deadline and size limits (408, 431,
//! 400), then the body by `Content-Length` or strict chunked decoding with a cap (413) and a
//! deadline, and `Expect: 100-continue`. Bytes read past the end of one request stay in the
//! connection's buffer for the next (pipelining). Nothing here allocates by what a client
//! declares: buffers grow only with bytes actually received, and declared sizes are summed
//! with overflow checks. A request refused once its head was parsed (413, 417, a slow or
//! malformed body) comes back with that head, for [`super::Refusal::head`]; one refused
//! earlier comes back with the instant the wait for its head began. The wait for a kept-alive
//! connection's next request is the server's (a short wait here, then the poller): a request
//! is read only once its first bytes are buffered or the socket is readable.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// The most bytes a request head (request line plus headers) may take.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most header fields a request may carry.
pub const MAX_HEADERS: usize = 100;
/// The longest chunk-size line (with extensions) and the most trailer bytes accepted.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// The read buffer for request heads and chunk lines (bodies are read straight into place).
/// Small, since every connection being read holds one (a parked one gives it back).
const SCRATCH_BYTES: usize = 4 * 1024;
/// The most a body grows by per read.
const BODY_READ_BYTES: usize = 64 * 1024;

/// The protocol version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// One parsed request, with its whole body.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target as sent (path and query, not percent-decoded).
    pub target: String,
    pub version: Version,
    /// Header fields in the order received; names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
    /// When the head was complete: the start of this request's own time.
    pub received_at: Instant,
    /// How long the request waited for a worker: from the moment its connection was accepted,
    /// or seen readable by the poller, to a worker taking it up. Zero for a request read on a
    /// connection its worker already held (pipelined, or sent within the worker's short wait
    /// after the previous answer). Not part of `received_at`'s time.
    pub queue_wait: Duration,
}

impl Request {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The target's path, without the query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query string after `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// Whether the client allows the connection to stay open after this request.
    pub(crate) fn wants_keep_alive(&self) -> bool {
        let connection = self.header("connection").unwrap_or("");
        let has = |token: &str| {
            connection
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        match self.version {
            Version::Http11 => !has("close"),
            Version::Http10 => has("keep-alive"),
        }
    }
}

/// Limits and deadlines for reading one request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_body_bytes: u64,
}

/// What a short wait for the next request on a kept-alive connection found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NextRequest {
    /// Bytes arrived (they are buffered).
    Arrived,
    /// Nothing within the wait: park the connection.
    Idle,
    /// The client closed or the socket failed.
    Closed,
}

/// Why no request could be read. `Reject` carries a status to answer before closing.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The client closed, went idle past its deadline, or the socket failed: close quietly.
    Closed,
    /// Answer with this status and message, then close the connection. The request head comes
    /// along when it was read and parsed (its body left empty).
    Reject(u16, &'static str, Option<Request>),
}

/// A refusal found before the head was parsed, or by a helper that does not hold the head.
fn reject(status: u16, message: &'static str) -> ReadError {
    ReadError::Reject(status, message, None)
}

/// A client connection: the socket and the bytes received but not yet consumed.
pub(crate) struct Connection {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    buf: Vec<u8>,
    /// Where reads land before they are appended to `buf`: allocated once per connection,
    /// so that no read zeroes a fresh buffer.
    scratch: Box<[u8]>,
    /// The read timeout currently set on the socket, so that an unchanged one is not set
    /// again (one system call fewer per kept-alive request).
    read_timeout: Option<Duration>,
    /// Requests answered on this connection so far.
    pub served: u64,
    /// When the wait for the current request's head began (when the head deadline started):
    /// the time of a refusal that has no head.
    pub head_wait_began: Instant,
}

impl Connection {
    pub fn new(stream: TcpStream, peer: SocketAddr) -> Self {
        Connection {
            stream,
            peer,
            buf: Vec::new(),
            scratch: vec![0u8; SCRATCH_BYTES].into_boxed_slice(),
            read_timeout: None,
            served: 0,
            head_wait_began: Instant::now(),
        }
    }

    /// Whether bytes of a next request are buffered already (pipelined): it is read at once,
    /// without waiting for the socket.
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Waits up to `wait` for the next request's first bytes.
    pub fn wait_briefly(&mut self, wait: Duration) -> NextRequest {
        match self.fill(wait) {
            Ok(0) => NextRequest::Closed,
            Ok(_) => NextRequest::Arrived,
            Err(e) if is_timeout(&e) => NextRequest::Idle,
            Err(_) => NextRequest::Closed,
        }
    }

    /// Frees the read buffers of a connection about to wait in the poller, or whose request
    /// is being handled, so that an idle connection or an open stream costs its descriptor and
    /// this struct, not 4 KiB more.
    pub fn release_buffers(&mut self) {
        self.buf = Vec::new();
        self.scratch = Box::default();
    }

    /// Whether the peer closed or reset the connection with nothing left to read. Does not
    /// block only when the socket has something to report (data, end or error).
    pub fn hung_up(&self) -> bool {
        let mut probe = [0u8; 1];
        match self.stream.peek(&mut probe) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !is_timeout(&e) && e.kind() != io::ErrorKind::Interrupted,
        }
    }

    /// Reads the next request: the whole head must arrive within the header deadline, and
    /// the body within its own. A refusal after the head was parsed carries the head.
    /// Not inlined into the worker: its frame (the parser's header array) is gone by the time
    /// the handler runs.
    #[inline(never)]
    pub fn read_request(&mut self, limits: &ReadLimits) -> Result<Request, ReadError> {
        // The head deadline runs from when a worker takes the request up, so time spent
        // waiting for a worker or parked between requests is not held against the client.
        self.head_wait_began = Instant::now();
        let head_deadline = self.head_wait_began + limits.header_timeout;
        let head_len = self.read_head(head_deadline)?;
        let (mut request, framing) = parse_head(&self.buf[..head_len], self.peer)?;
        self.buf.drain(..head_len);

        match self.read_body(&request, framing, limits) {
            Ok(body) => request.body = body,
            Err(ReadError::Reject(status, message, _)) => {
                return Err(ReadError::Reject(status, message, Some(request)))
            }
            Err(e) => return Err(e),
        }
        request.received_at = Instant::now();
        Ok(request)
    }

    /// Reads the body of the request whose head is `request`, answering `Expect` first.
    fn read_body(
        &mut self,
        request: &Request,
        framing: Framing,
        limits: &ReadLimits,
    ) -> Result<Vec<u8>, ReadError> {
        if let Some(expect) = request.header("expect") {
            if !expect.eq_ignore_ascii_case("100-continue") {
                return Err(reject(417, "unsupported Expect header"));
            }
        }
        let wants_continue = request.version == Version::Http11
            && request.header("expect").is_some()
            && self.buf.is_empty();
        let body_deadline = Instant::now() + limits.body_timeout;
        match framing {
            Framing::None => Ok(Vec::new()),
            Framing::Length(len) => {
                let len = match usize::try_from(len) {
                    Ok(len) if len as u64 <= limits.max_body_bytes => len,
                    _ => return Err(reject(413, "request body too large")),
                };
                if wants_continue && len > 0 {
                    self.send_continue()?;
                }
                self.read_exact_body(len, body_deadline)
            }
            Framing::Chunked => {
                if wants_continue {
                    self.send_continue()?;
                }
                self.read_chunked_body(limits.max_body_bytes, body_deadline)
            }
        }
    }

    fn send_continue(&mut self) -> Result<(), ReadError> {
        self.stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(|_| ReadError::Closed)
    }

    /// Reads until the buffer holds a complete head and returns its length. Searches only the
    /// newly received bytes for the blank line, so a client sending one byte at a time costs
    /// linear, not quadratic, work.
    fn read_head(&mut self, deadline: Instant) -> Result<usize, ReadError> {
        let mut searched = 0;
        loop {
            if let Some(end) = find_head_end(&self.buf, searched) {
                return Ok(end);
            }
            if self.buf.len() >= MAX_HEAD_BYTES {
                return Err(reject(431, "request head too large"));
            }
            searched = self.buf.len().saturating_sub(3);
            let now = Instant::now();
            if now >= deadline {
                return Err(self.head_timeout());
            }
            match self.fill(deadline - now) {
                Ok(0) => return Err(ReadError::Closed),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => return Err(self.head_timeout()),
                Err(_) => return Err(ReadError::Closed),
            }
        }
    }

    fn head_timeout(&self) -> ReadError {
        if self.buf.is_empty() {
            // Nothing of a request arrived: an idle connection, not a slow client.
            ReadError::Closed
        } else {
            reject(408, "request head not received in time")
        }
    }

    /// Reads once from the socket into the buffer, waiting at most `timeout`.
    fn fill(&mut self, timeout: Duration) -> io::Result<usize> {
        self.set_read_timeout(timeout)?;
        if self.scratch.is_empty() {
            self.scratch = vec![0u8; SCRATCH_BYTES].into_boxed_slice();
        }
        let room = if self.buf.len() < MAX_HEAD_BYTES {
            (MAX_HEAD_BYTES + 1 - self.buf.len()).min(self.scratch.len())
        } else {
            self.scratch.len()
        };
        let n = self.stream.read(&mut self.scratch[..room])?;
        self.buf.extend_from_slice(&self.scratch[..n]);
        Ok(n)
    }

    /// Sets the socket's read timeout (at least 1 ms), unless it is set to that already.
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        let timeout = Some(timeout.max(Duration::from_millis(1)));
        if self.read_timeout != timeout {
            self.read_timeout = None;
            self.stream.set_read_timeout(timeout)?;
            self.read_timeout = timeout;
        }
        Ok(())
    }

    /// Makes sure at least `want` bytes are buffered, reading before `deadline`.
    fn fill_to(&mut self, want: usize, deadline: Instant) -> Result<(), ReadError> {
        while self.buf.len() < want {
            let now = Instant::now();
            if now >= deadline {
                return Err(reject(408, "request body not received in time"));
            }
            match self.fill(deadline - now) {
                Ok(0) => return Err(ReadError::Closed),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {
                    return Err(reject(408, "request body not received in time"))
                }
                Err(_) => return Err(ReadError::Closed),
            }
        }
        Ok(())
    }

    fn read_exact_body(&mut self, len: usize, deadline: Instant) -> Result<Vec<u8>, ReadError> {
        let take = len.min(self.buf.len());
        let mut body = Vec::with_capacity(take);
        body.extend(self.buf.drain(..take));
        self.read_into(&mut body, len, deadline)?;
        Ok(body)
    }

    /// Reads straight from the socket into `body` until it holds `len` bytes. The vector
    /// grows with what arrives, never by what was declared.
    fn read_into(
        &mut self,
        body: &mut Vec<u8>,
        len: usize,
        deadline: Instant,
    ) -> Result<(), ReadError> {
        while body.len() < len {
            let now = Instant::now();
            if now >= deadline {
                return Err(reject(408, "request body not received in time"));
            }
            self.set_read_timeout(deadline - now)
                .map_err(|_| ReadError::Closed)?;
            let filled = body.len();
            let want = (len - filled).min(BODY_READ_BYTES);
            body.resize(filled + want, 0);
            let read = self.stream.read(&mut body[filled..]);
            body.truncate(filled + *read.as_ref().unwrap_or(&0));
            match read {
                Ok(0) => return Err(ReadError::Closed),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {
                    return Err(reject(408, "request body not received in time"))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(ReadError::Closed),
            }
        }
        Ok(())
    }

    /// Decodes a chunked body strictly: hex sizes, CRLF after every chunk, trailers bounded.
    fn read_chunked_body(&mut self, cap: u64, deadline: Instant) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        loop {
            let line_end = self.read_line(MAX_CHUNK_LINE, deadline)?;
            if !self.buf[0].is_ascii_hexdigit() {
                return Err(reject(400, "malformed chunk size"));
            }
            let size = match httparse::parse_chunk_size(&self.buf[..line_end]) {
                Ok(httparse::Status::Complete((used, size))) if used == line_end => size,
                _ => return Err(reject(400, "malformed chunk size")),
            };
            self.buf.drain(..line_end);
            if size == 0 {
                return self.skip_trailers(deadline).map(|()| body);
            }
            // The body's length once this chunk is in; a sum past u64 is no size at all.
            let target = match (body.len() as u64).checked_add(size) {
                None => return Err(reject(400, "malformed chunk size")),
                Some(total) if total > cap => return Err(reject(413, "request body too large")),
                Some(total) => {
                    usize::try_from(total).map_err(|_| reject(413, "request body too large"))?
                }
            };
            let take = (target - body.len()).min(self.buf.len());
            body.extend(self.buf.drain(..take));
            self.read_into(&mut body, target, deadline)?;
            self.fill_to(2, deadline)?;
            if &self.buf[..2] != b"\r\n" {
                return Err(reject(400, "chunk data not followed by CRLF"));
            }
            self.buf.drain(..2);
        }
    }

    /// Skips trailer fields up to the blank line that ends a chunked body.
    fn skip_trailers(&mut self, deadline: Instant) -> Result<(), ReadError> {
        let mut total = 0;
        loop {
            let line_end = self.read_line(MAX_CHUNK_LINE, deadline)?;
            self.buf.drain(..line_end);
            if line_end == 2 {
                return Ok(());
            }
            total += line_end;
            if total > MAX_TRAILER_BYTES {
                return Err(reject(431, "request trailers too large"));
            }
        }
    }

    /// Waits until the buffer starts with a CRLF-terminated line of at most `max` bytes and
    /// returns its length including the CRLF.
    fn read_line(&mut self, max: usize, deadline: Instant) -> Result<usize, ReadError> {
        let mut searched = 0;
        loop {
            if let Some(i) = self.buf[searched..].iter().position(|&b| b == b'\n') {
                let end = searched + i;
                if end == 0 || self.buf[end - 1] != b'\r' {
                    return Err(reject(400, "bare LF in chunked body"));
                }
                return Ok(end + 1);
            }
            if self.buf.len() > max {
                return Err(reject(400, "chunk line too long"));
            }
            searched = self.buf.len();
            self.fill_to(self.buf.len() + 1, deadline)?;
        }
    }
}

impl AsRawFd for Connection {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

/// How a request's body is delimited.
enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// Finds the end of the head (just past the blank line), looking from `from` on.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf[..i].ends_with(b"\r\n\r") {
                return Some(i + 1);
            }
            if i >= 1 && buf[i - 1] == b'\n' {
                return Some(i + 1);
            }
        }
        i += 1;
    }
    None
}

/// Parses a complete head and decides the body framing (RFC 9112 section 6).
fn parse_head(head: &[u8], peer: SocketAddr) -> Result<(Request, Framing), ReadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(reject(400, "malformed request head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(reject(431, "too many request headers"))
        }
        Err(_) => return Err(reject(400, "malformed request head")),
    }
    let version = match parsed.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(reject(505, "HTTP version not supported")),
    };
    let method = parsed.method.unwrap_or("").to_string();
    let target = parsed.path.unwrap_or("").to_string();
    if !(target.starts_with('/') || (target == "*" && method == "OPTIONS")) {
        return Err(reject(400, "request target must be an absolute path"));
    }
    let mut fields = Vec::with_capacity(parsed.headers.len());
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut has_host = false;
    for h in parsed.headers.iter() {
        let value = String::from_utf8_lossy(h.value).trim().to_string();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(&value).ok_or(reject(400, "invalid Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(reject(400, "conflicting Content-Length headers"));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if chunked || !value.eq_ignore_ascii_case("chunked") {
                return Err(reject(501, "only chunked transfer coding is supported"));
            }
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("host") {
            has_host = true;
        }
        fields.push((h.name.to_string(), value));
    }
    if chunked && length.is_some() {
        return Err(reject(
            400,
            "Content-Length together with Transfer-Encoding",
        ));
    }
    if chunked && version == Version::Http10 {
        return Err(reject(400, "Transfer-Encoding in an HTTP/1.0 request"));
    }
    if version == Version::Http11 && !has_host {
        return Err(reject(400, "missing Host header"));
    }
    let framing = match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(0)) | (false, None) => Framing::None,
        (false, Some(n)) => Framing::Length(n),
    };
    let request = Request {
        method,
        target,
        version,
        headers: fields,
        body: Vec::new(),
        peer,
        received_at: Instant::now(),
        queue_wait: Duration::ZERO,
    };
    Ok((request, framing))
}

/// `Content-Length` is 1*DIGIT: no sign, no spaces, no hex, and it must fit a u64.
fn parse_content_length(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn head_end_is_found_across_reads_and_with_bare_lf() {
        assert_eq!(
            find_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest", 0),
            Some(27)
        );
        assert_eq!(find_head_end(b"GET / HTTP/1.1\nHost: a\n\n", 0), Some(24));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0), None);
    }

    #[test]
    fn content_length_must_be_plain_digits() {
        assert_eq!(parse_content_length("42"), Some(42));
        assert_eq!(parse_content_length("+42"), None);
        assert_eq!(parse_content_length("0x10"), None);
        assert_eq!(parse_content_length(""), None);
        assert_eq!(parse_content_length("99999999999999999999999"), None);
    }

    #[test]
    fn conflicting_framing_is_rejected() {
        let head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(
            parse_head(head, peer()),
            Err(ReadError::Reject(400, _, _))
        ));
        let head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
        assert!(matches!(
            parse_head(head, peer()),
            Err(ReadError::Reject(400, _, _))
        ));
        let head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert!(matches!(
            parse_head(head, peer()),
            Err(ReadError::Reject(501, _, _))
        ));
    }

    #[test]
    fn target_must_be_an_absolute_path_and_http11_needs_a_host() {
        let reject =
            |head: &[u8]| matches!(parse_head(head, peer()), Err(ReadError::Reject(400, _, _)));
        assert!(reject(b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(reject(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(reject(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(reject(
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(parse_head(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", peer()).is_ok());
        assert!(parse_head(b"GET / HTTP/1.0\r\n\r\n", peer()).is_ok());
    }

    #[test]
    fn query_and_headers_are_read_as_sent() {
        let (r, _) = parse_head(
            b"GET /v1/models?a=1&b=2 HTTP/1.1\r\nHost: a\r\nX-Thing:  spaced  \r\n\r\n",
            peer(),
        )
        .ok()
        .unwrap();
        assert_eq!(r.path(), "/v1/models");
        assert_eq!(r.query(), Some("a=1&b=2"));
        assert_eq!(r.header("x-thing"), Some("spaced"));
        assert_eq!(r.header("HOST"), Some("a"));
        assert_eq!(r.header("missing"), None);
    }

    #[test]
    fn keep_alive_follows_version_and_connection_header() {
        let (r, _) = parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", peer())
            .ok()
            .unwrap();
        assert!(r.wants_keep_alive());
        let (r, _) = parse_head(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            peer(),
        )
        .ok()
        .unwrap();
        assert!(!r.wants_keep_alive());
        let (r, _) = parse_head(b"GET / HTTP/1.0\r\n\r\n", peer()).ok().unwrap();
        assert!(!r.wants_keep_alive());
        let (r, _) = parse_head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", peer())
            .ok()
            .unwrap();
        assert!(r.wants_keep_alive());
    }
}
