//! The HTTP/1.1 framing shared by the bench tools: a buffered connection that reads one message
//! head at a time, then a body by `Content-Length`, by chunked transfer coding, or up to the close.
//!
//! Only the bench client, the mock upstream, nginx and the gateway talk through it, so it is small
//! and strict rather than general: it refuses what it does not understand instead of guessing.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::TcpStream;

/// Largest head (start line + headers) accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest read buffer: a chunk larger than this is streamed through, never held whole.
const MAX_BUF: usize = 1024 * 1024;

/// A parsed message head: a request's or a response's.
#[derive(Debug, Default, Clone)]
pub struct Head {
    /// Request: method. Response: HTTP version.
    pub first: String,
    /// Request: target. Response: status code text.
    pub second: String,
    /// Response status (0 for requests).
    pub status: u16,
    pub content_length: Option<usize>,
    pub chunked: bool,
    /// `Connection: close` was sent, or HTTP/1.0 without `keep-alive`.
    pub close: bool,
    pub expect_continue: bool,
}

/// How a body ended badly.
fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn eof(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, msg.to_string())
}

/// A TCP stream with a read buffer that survives between messages (keep-alive, pipelining).
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Conn {
    pub fn new(stream: TcpStream, capacity: usize) -> Self {
        Conn {
            stream,
            buf: vec![0; capacity.max(1024)],
            start: 0,
            end: 0,
        }
    }

    /// Bytes already read and not yet consumed.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Reads more bytes into the buffer; returns how many (0 at end of stream).
    fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < MAX_BUF {
                let n = (self.buf.len() * 2).min(MAX_BUF);
                self.buf.resize(n, 0);
            } else {
                return Err(bad("buffer full"));
            }
        }
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads one message head. `Ok(None)` means the peer closed cleanly before sending a byte
    /// (the normal end of a keep-alive connection).
    pub fn read_head(&mut self) -> io::Result<Option<Head>> {
        let mut scanned: usize = 0;
        loop {
            let avail = &self.buf[self.start..self.end];
            if let Some(pos) = find(&avail[scanned.saturating_sub(3)..], b"\r\n\r\n") {
                let head_end = scanned.saturating_sub(3) + pos;
                let head = parse_head(&avail[..head_end])?;
                self.start += head_end + 4;
                return Ok(Some(head));
            }
            scanned = avail.len();
            if scanned > MAX_HEAD {
                return Err(bad("head too large"));
            }
            if self.fill()? == 0 {
                return if self.start == self.end {
                    Ok(None)
                } else {
                    Err(eof("closed inside a head"))
                };
            }
        }
    }

    /// Reads exactly `n` body bytes, handing them to `sink` as they arrive.
    pub fn read_len(&mut self, mut n: usize, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        while n > 0 {
            if self.start == self.end && self.fill()? == 0 {
                return Err(eof("closed inside a body"));
            }
            let take = n.min(self.end - self.start);
            sink(&self.buf[self.start..self.start + take]);
            self.start += take;
            n -= take;
        }
        Ok(())
    }

    /// Reads the body until the peer closes (a response with neither length nor chunking).
    pub fn read_to_close(&mut self, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        loop {
            if self.start < self.end {
                sink(&self.buf[self.start..self.end]);
                self.start = self.end;
            }
            if self.fill()? == 0 {
                return Ok(());
            }
        }
    }

    /// Reads one CRLF-terminated line; returns its range in the buffer (valid until next read).
    fn line(&mut self) -> io::Result<(usize, usize)> {
        let mut scanned: usize = 0;
        loop {
            if let Some(pos) = find(&self.buf[self.start + scanned..self.end], b"\n") {
                let s = self.start;
                let mut e = self.start + scanned + pos;
                self.start = e + 1;
                if e > s && self.buf[e - 1] == b'\r' {
                    e -= 1;
                }
                return Ok((s, e));
            }
            scanned = self.end - self.start;
            if scanned > 4096 {
                return Err(bad("chunk line too long"));
            }
            if self.fill()? == 0 {
                return Err(eof("closed inside a chunk line"));
            }
        }
    }

    /// Reads a chunked body to its terminating zero chunk (and trailers), handing the data
    /// to `sink` as it arrives. Errors on bad framing or an early close.
    pub fn read_chunked(&mut self, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        loop {
            let (s, e) = self.line()?;
            let line = &self.buf[s..e];
            let hex_end = line
                .iter()
                .position(|&b| b == b';' || b == b' ' || b == b'\t')
                .unwrap_or(line.len());
            let size = parse_hex(&line[..hex_end]).ok_or_else(|| bad("bad chunk size"))?;
            if size == 0 {
                loop {
                    let (s, e) = self.line()?;
                    if s == e {
                        return Ok(());
                    }
                }
            }
            self.read_len(size, sink)?;
            let (s, e) = self.line()?;
            if s != e {
                return Err(bad("chunk data not followed by CRLF"));
            }
        }
    }

    /// Reads the body the head announces. `request` decides the default for a head with
    /// neither length nor chunking (a request has no body; a response runs to the close).
    pub fn read_body(
        &mut self,
        head: &Head,
        request: bool,
        sink: &mut dyn FnMut(&[u8]),
    ) -> io::Result<()> {
        if head.chunked {
            self.read_chunked(sink)
        } else if let Some(n) = head.content_length {
            self.read_len(n, sink)
        } else if request || head.status == 204 || head.status == 304 || head.status < 200 {
            Ok(())
        } else {
            self.read_to_close(sink)
        }
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }
}

/// Parses a head (without the blank line).
pub fn parse_head(bytes: &[u8]) -> io::Result<Head> {
    let text = std::str::from_utf8(bytes).map_err(|_| bad("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let start = lines.next().unwrap_or("");
    let mut parts = start.splitn(3, ' ');
    let a = parts.next().unwrap_or("");
    let b = parts.next().unwrap_or("");
    let c = parts.next().unwrap_or("");
    let mut head = Head::default();
    let version;
    if a.starts_with("HTTP/") {
        version = a;
        head.status = b.parse().map_err(|_| bad("bad status"))?;
        if !(100..=999).contains(&head.status) {
            return Err(bad("bad status"));
        }
    } else {
        version = c;
        if a.is_empty() || b.is_empty() || !c.starts_with("HTTP/") {
            return Err(bad("bad request line"));
        }
    }
    head.first = a.to_string();
    head.second = b.to_string();
    let http10 = version == "HTTP/1.0";
    let mut keep_alive = false;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| bad("bad header line"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value.parse().map_err(|_| bad("bad content-length"))?;
            if head.content_length.is_some_and(|m| m != n) {
                return Err(bad("conflicting content-length"));
            }
            head.content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if value.to_ascii_lowercase().ends_with("chunked") {
                head.chunked = true;
            } else {
                return Err(bad("unsupported transfer-encoding"));
            }
        } else if name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                head.close = true;
            }
            if v.contains("keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = value.eq_ignore_ascii_case("100-continue");
        }
    }
    if http10 && !keep_alive {
        head.close = true;
    }
    Ok(head)
}

fn parse_hex(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 15 {
        return None;
    }
    let mut n = 0usize;
    for &b in s {
        let d = (b as char).to_digit(16)?;
        n = n * 16 + d as usize;
    }
    Some(n)
}

/// First position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let last_start = hay.len() - needle.len();
    let mut i = 0;
    while i <= last_start {
        match hay[i..=last_start].iter().position(|&b| b == first) {
            None => return None,
            Some(p) => {
                i += p;
                if &hay[i..i + needle.len()] == needle {
                    return Some(i);
                }
                i += 1;
            }
        }
    }
    None
}

/// Appends `data` as one HTTP chunk.
pub fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Splits an SSE byte stream into events and hands each event's `data` to a callback.
/// Multiple `data:` lines are joined with `\n`; comments and other fields are ignored.
#[derive(Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
}

impl SseParser {
    pub fn feed(&mut self, bytes: &[u8], on_event: &mut dyn FnMut(&[u8])) {
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            if self.line.is_empty() {
                if self.has_data {
                    on_event(&self.data);
                }
                self.data.clear();
                self.has_data = false;
            } else if let Some(rest) = self.line.strip_prefix(b"data:") {
                let rest = rest.strip_prefix(b" ").unwrap_or(rest);
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(rest);
                self.has_data = true;
            }
            self.line.clear();
        }
    }

    /// True when bytes of an unfinished event are pending.
    pub fn pending(&self) -> bool {
        self.has_data || !self.line.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair(payload: &'static [u8]) -> Conn {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            for piece in payload.chunks(3) {
                s.write_all(piece).unwrap();
            }
        });
        Conn::new(TcpStream::connect(addr).unwrap(), 16)
    }

    #[test]
    fn reads_content_length_then_chunked_on_one_connection() {
        let mut c = pair(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\
HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n",
        );
        let h = c.read_head().unwrap().unwrap();
        assert_eq!(h.status, 200);
        let mut body = Vec::new();
        c.read_body(&h, false, &mut |b| body.extend_from_slice(b))
            .unwrap();
        assert_eq!(body, b"hello");
        let h = c.read_head().unwrap().unwrap();
        assert!(h.chunked);
        body.clear();
        c.read_body(&h, false, &mut |b| body.extend_from_slice(b))
            .unwrap();
        assert_eq!(body, b"abc0123456789abcdef");
        assert!(c.read_head().unwrap().is_none());
    }

    #[test]
    fn early_close_inside_a_chunked_body_is_an_error() {
        let mut c = pair(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
        let h = c.read_head().unwrap().unwrap();
        assert!(c.read_body(&h, false, &mut |_| {}).is_err());
    }

    #[test]
    fn sse_parser_splits_events_across_reads() {
        let mut p = SseParser::default();
        let mut got = Vec::new();
        for piece in [
            &b"data: {\"a\""[..],
            b":1}\r\n\r\n: comment\n\ndata: [DONE]\n",
            b"\n",
        ] {
            p.feed(piece, &mut |e| got.push(e.to_vec()));
        }
        assert_eq!(got, vec![b"{\"a\":1}".to_vec(), b"[DONE]".to_vec()]);
        assert!(!p.pending());
    }

    #[test]
    fn find_locates_needles() {
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert_eq!(find(b"ab", b"abd"), None);
        assert_eq!(find(b"\r\n\r\n", b"\r\n\r\n"), Some(0));
    }
}
