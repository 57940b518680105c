//! A byte-exact raw-socket HTTP/1.1 client for the protocol and hostile-input tests: it sends
//! exactly the bytes a test writes and reads one response at a time (Content-Length, chunked,
//! or up to close), reports what the server did with the connection, and measures the
//! process's own resident memory. Request-level helpers for the gateway tests are in
//! `client.rs`.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a client waits for any single read or write before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A loopback client connection with a receive buffer, so that pipelined responses can be
/// read one after the other.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// One response as read off the wire.
#[derive(Debug, Clone)]
pub struct Reply {
    pub version: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// For a chunked body, the chunks as framed by the server.
    pub chunks: Vec<Vec<u8>>,
}

impl Reply {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the server announced it will close the connection.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// What the server did with a connection while the client waited.
#[derive(Debug, PartialEq, Eq)]
pub enum Peer {
    /// The server closed (EOF or reset).
    Closed,
    /// Nothing happened within the wait.
    Open,
    /// Bytes arrived.
    Sent,
}

impl Client {
    /// Connects to `addr` with [`IO_TIMEOUT`] on reads and writes and `TCP_NODELAY` set.
    pub fn connect(addr: SocketAddr) -> Client {
        Client::try_connect(addr, IO_TIMEOUT).expect("connect to the test server")
    }

    pub fn try_connect(addr: SocketAddr, timeout: Duration) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            buf: Vec::new(),
        })
    }

    /// Sets how long a single read may wait.
    pub fn read_timeout(&self, timeout: Duration) {
        self.stream
            .set_read_timeout(Some(timeout))
            .expect("set read timeout");
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream
            .write_all(bytes.as_ref())
            .expect("write to the test server");
    }

    /// Writes all of `bytes`, reporting failure instead of panicking (the server may have
    /// closed already).
    pub fn try_send(&mut self, bytes: impl AsRef<[u8]>) -> io::Result<()> {
        self.stream.write_all(bytes.as_ref())
    }

    /// Sends a GET for `path` with a Host header and any extra header lines.
    pub fn get(&mut self, path: &str, extra: &str) {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n"));
    }

    /// Reads one complete response (interim 1xx responses are returned on their own).
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        self.read_reply_inner(false)
    }

    /// Reads the response to a HEAD request: the head only, whatever it declares.
    pub fn read_head_reply(&mut self) -> io::Result<Reply> {
        self.read_reply_inner(true)
    }

    fn read_reply_inner(&mut self, head_only: bool) -> io::Result<Reply> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > 1024 * 1024 {
                return Err(invalid("response head over 1 MiB"));
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a response head",
                ));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end - 4]).into_owned();
        self.buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("").to_string();
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(&format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(&format!("bad header line {line:?}")))?;
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        let mut reply = Reply {
            version,
            status,
            headers,
            body: Vec::new(),
            chunks: Vec::new(),
        };
        if head_only || (100..200).contains(&status) || status == 204 || status == 304 {
            return Ok(reply);
        }
        let chunked = reply
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if chunked {
            while let Some(chunk) = self.read_chunk()? {
                reply.body.extend_from_slice(&chunk);
                reply.chunks.push(chunk);
            }
        } else if let Some(len) = reply.header("content-length") {
            let len: usize = len.parse().map_err(|_| invalid("bad content-length"))?;
            self.fill_to(len)?;
            reply.body = self.buf.drain(..len).collect();
        } else {
            // No framing: the body runs to the end of the connection.
            while self.fill()? > 0 {
                if self.buf.len() > 64 * 1024 * 1024 {
                    return Err(invalid("unframed body over 64 MiB"));
                }
            }
            reply.body = std::mem::take(&mut self.buf);
        }
        Ok(reply)
    }

    /// Reads the head of a streamed (chunked) response and returns it; read the chunks with
    /// [`Client::read_chunk`].
    pub fn read_stream_head(&mut self) -> io::Result<Reply> {
        self.read_head_reply()
    }

    /// Reads one chunk of a chunked body: `Some(data)`, or `None` for the last chunk (after
    /// the trailers).
    pub fn read_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let line_end = self.read_line()?;
        let line = String::from_utf8_lossy(&self.buf[..line_end - 2]).into_owned();
        self.buf.drain(..line_end);
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| invalid(&format!("bad chunk size line {line:?}")))?;
        if size == 0 {
            loop {
                let end = self.read_line()?;
                self.buf.drain(..end);
                if end == 2 {
                    return Ok(None);
                }
            }
        }
        self.fill_to(size + 2)?;
        if &self.buf[size..size + 2] != b"\r\n" {
            return Err(invalid("chunk data not followed by CRLF"));
        }
        let data = self.buf.drain(..size).collect();
        self.buf.drain(..2);
        Ok(Some(data))
    }

    /// Waits up to `timeout` and reports whether the server closed, sent bytes, or did
    /// nothing. Bytes that arrive stay buffered.
    pub fn wait_peer(&mut self, timeout: Duration) -> Peer {
        if !self.buf.is_empty() {
            return Peer::Sent;
        }
        self.read_timeout(timeout);
        let outcome = match self.fill() {
            Ok(0) => Peer::Closed,
            Ok(_) => Peer::Sent,
            Err(e) if is_timeout(&e) => Peer::Open,
            Err(_) => Peer::Closed,
        };
        self.read_timeout(IO_TIMEOUT);
        outcome
    }

    /// Reads and discards until the server closes, for at most `timeout`; true when it closed.
    pub fn closes_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.buf.clear();
            match self.wait_peer(deadline - now) {
                Peer::Closed => return true,
                Peer::Sent => continue,
                Peer::Open => return false,
            }
        }
    }

    /// Bytes received and not yet consumed by a read_* call.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Closes the sending side only.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    fn read_line(&mut self) -> io::Result<usize> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                return Ok(i + 2);
            }
            if self.buf.len() > 64 * 1024 {
                return Err(invalid("line over 64 KiB"));
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a chunked body",
                ));
            }
        }
    }

    fn fill_to(&mut self, want: usize) -> io::Result<()> {
        while self.buf.len() < want {
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a body",
                ));
            }
        }
        Ok(())
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// One request on a fresh connection with `Connection: close`; the whole response.
pub fn get(addr: SocketAddr, path: &str) -> io::Result<Reply> {
    let mut client = Client::try_connect(addr, IO_TIMEOUT)?;
    client.try_send(format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    ))?;
    client.read_reply()
}

/// Like [`get`], but the connect and the whole answer must come within `within`.
pub fn get_within(addr: SocketAddr, path: &str, within: Duration) -> io::Result<Reply> {
    let started = Instant::now();
    let mut client = Client::try_connect(addr, within)?;
    client.read_timeout(within);
    client.try_send(format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    ))?;
    let reply = client.read_reply()?;
    if started.elapsed() > within {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("answered after {:?}", started.elapsed()),
        ));
    }
    Ok(reply)
}

/// This process's resident set size in KiB, from /proc/self/status.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Serialises the tests that load the machine or measure the whole process (memory, many
/// threads, child processes), so they neither disturb nor are disturbed by one another.
pub fn heavy() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}
