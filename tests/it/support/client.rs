//! Generic helpers for the gateway tests: a small blocking HTTP/1.1 client over `TcpStream`
//! that parses status, headers, `Content-Length` and chunked bodies and reads SSE events one
//! at a time (so a test controls exactly when it reads), plus assertions on the OpenAI error
//! shape and a bounded wait.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any single read from the gateway may block before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// A complete answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// The SSE `data:` payloads of a complete streamed body.
    pub fn events(&self) -> Vec<String> {
        split_events(&self.text())
    }
}

pub fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// One request on a fresh connection (`connection: close`), answer read completely.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut conn = Conn::open(addr);
    conn.write_request(method, path, headers, body);
    conn.read_reply()
}

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, "GET", path, &[], b"")
}

pub fn post_json(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    send(
        addr,
        "POST",
        path,
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    )
}

/// A client connection read step by step.
pub struct Conn {
    reader: BufReader<TcpStream>,
    /// The last request was HEAD: its answer has no body whatever it declares.
    head_only: bool,
}

/// A response head.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            reader: BufReader::new(stream),
            head_only: false,
        }
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    /// Writes a request with `connection: close` and a `content-length` when there is a body.
    pub fn write_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) {
        self.head_only = method == "HEAD";
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nhost: gateway.test\r\nconnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let stream = self.reader.get_mut();
        stream
            .write_all(head.as_bytes())
            .expect("write request head");
        stream.write_all(body).expect("write request body");
    }

    /// POSTs a JSON body.
    pub fn post_json(&mut self, path: &str, body: &Value) {
        let bytes = body.to_string();
        self.write_request(
            "POST",
            path,
            &[("content-type", "application/json")],
            bytes.as_bytes(),
        );
    }

    pub fn read_head(&mut self) -> Head {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read status line");
        let mut parts = line.split_whitespace();
        assert_eq!(parts.next(), Some("HTTP/1.1"), "status line {line:?}");
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("read header line");
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                break;
            }
            let (name, value) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header {l:?}"));
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        Head { status, headers }
    }

    /// Reads the body the head announces (`content-length`, chunked, or until close).
    pub fn read_body(&mut self, head: &Head) -> Vec<u8> {
        if self.head_only || head.status == 204 || head.status == 304 {
            return Vec::new();
        }
        if let Some(len) = head.header("content-length") {
            let mut body = vec![0; len.parse().expect("content-length")];
            self.reader.read_exact(&mut body).expect("read body");
            return body;
        }
        if head
            .header("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
        {
            let mut body = Vec::new();
            while let Some(chunk) = self.read_chunk() {
                body.extend(chunk);
            }
            return body;
        }
        let mut body = Vec::new();
        self.reader
            .read_to_end(&mut body)
            .expect("read body to close");
        body
    }

    pub fn read_reply(&mut self) -> Reply {
        let head = self.read_head();
        let body = self.read_body(&head);
        Reply {
            status: head.status,
            headers: head.headers,
            body,
        }
    }

    /// One chunk of a chunked body; `None` at the last chunk or when the connection ended
    /// before it (a truncated body).
    pub fn read_chunk(&mut self) -> Option<Vec<u8>> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let size_text = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_text, 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
        if size == 0 {
            line.clear();
            let _ = self.reader.read_line(&mut line);
            return None;
        }
        let mut data = vec![0; size + 2];
        self.reader.read_exact(&mut data).ok()?;
        assert_eq!(&data[size..], b"\r\n", "chunk not followed by CRLF");
        data.truncate(size);
        Some(data)
    }

    /// Reads the body as SSE, event by event (the head must already be read).
    pub fn sse(self) -> Sse {
        Sse {
            conn: self,
            pending: String::new(),
            ended: false,
        }
    }

    /// Closes the connection both ways (the client going away).
    pub fn close(self) {
        let _ = self.stream().shutdown(Shutdown::Both);
    }
}

/// An SSE body read incrementally from a chunked response.
pub struct Sse {
    conn: Conn,
    pending: String,
    ended: bool,
}

impl Sse {
    /// The next event's `data:` payload, or `None` when the body ended.
    pub fn next_event(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let raw: String = self.pending.drain(..end + 2).collect();
                if let Some(data) = event_data(&raw) {
                    return Some(data);
                }
                continue;
            }
            if self.ended {
                return None;
            }
            match self.conn.read_chunk() {
                Some(bytes) => self
                    .pending
                    .push_str(std::str::from_utf8(&bytes).expect("SSE is UTF-8")),
                None => self.ended = true,
            }
        }
    }

    /// Every remaining event.
    pub fn rest(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(e) = self.next_event() {
            out.push(e);
            assert!(out.len() < 10_000, "endless stream");
        }
        out
    }

    pub fn into_conn(self) -> Conn {
        self.conn
    }
}

/// The `data:` payloads of an SSE text.
pub fn split_events(text: &str) -> Vec<String> {
    text.split("\n\n").filter_map(event_data).collect()
}

fn event_data(raw: &str) -> Option<String> {
    let lines: Vec<&str> = raw
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// Asserts the OpenAI error shape (`{"error":{"message","type","param","code"}}`, all four
/// keys, a non-empty message) and returns the inner object.
pub fn assert_error_shape(body: &Value) -> serde_json::Map<String, Value> {
    let error = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("no error object in {body}"));
    for key in ["message", "type", "param", "code"] {
        assert!(error.contains_key(key), "error lacks {key:?}: {body}");
    }
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "empty message: {body}"
    );
    assert!(error["type"].is_string(), "type not a string: {body}");
    error.clone()
}

/// Asserts a reply is an error with this status in the OpenAI shape, with a request id.
pub fn assert_error(reply: &Reply, status: u16) -> serde_json::Map<String, Value> {
    assert_eq!(reply.status, status, "body: {}", reply.text());
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "content-type {:?}",
        reply.header("content-type")
    );
    assert!(reply.header("x-request-id").is_some(), "no x-request-id");
    assert_error_shape(&reply.json())
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `s` looks like a UUID (8-4-4-4-12 hex).
pub fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Reads a fixture under `tests/fixtures/`.
pub fn fixture(path: &str) -> String {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("fixture {full}: {e}"))
}

pub fn fixture_json(path: &str) -> Value {
    serde_json::from_str(&fixture(path)).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}
