//! mock-upstream: a fast OpenAI-shaped chat completions server for the load benchmark.
//!
//! One thread per connection, keep-alive HTTP/1.1, `TCP_NODELAY`. Routes:
//! - `POST /v1/chat/completions` (also `/chat/completions`): without `"stream":true` a small
//!   fixed `chat.completion` JSON with usage; with it, an SSE stream of `chat.completion.chunk`
//!   events: a role chunk, N content chunks, a finish chunk, a usage-only chunk (`choices:[]`)
//!   when `stream_options.include_usage` is true, then `data: [DONE]`.
//! - `GET /health` (and `/v1/health`): `{"status":"ok"}`.
//!
//! N and the pause come from `events=N` and `ms=M` found in the query string or anywhere in the
//! request body (normally the last user message, e.g. `"content":"events=20 ms=50"`); defaults
//! `events=10 ms=0`. With `ms=0` the whole stream goes out in one write (the fastest upstream);
//! with `ms>0` the role chunk goes out at once and each content chunk after a pause of M ms, one
//! write (one HTTP chunk) per event.
//!
//! Usage: `mock-upstream [--host 127.0.0.1] [--port 0]`; prints `listening on http://ADDR`.
#![forbid(unsafe_code)]

use llmcallgateway_bench::{find, push_chunk, Conn, Head};
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::thread;
use std::time::Duration;

const CREATED: u64 = 1_700_000_000;

fn main() {
    let mut host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let mut port = std::env::var("PORT").unwrap_or_else(|_| "0".into());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--host" => host = args.next().expect("--host needs a value"),
            "--port" => port = args.next().expect("--port needs a value"),
            "-h" | "--help" => {
                println!("usage: mock-upstream [--host 127.0.0.1] [--port 0]");
                return;
            }
            other => {
                eprintln!("mock-upstream: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let listener = listen(&format!("{host}:{port}")).expect("bind");
    println!(
        "listening on http://{}",
        listener.local_addr().expect("addr")
    );
    io::stdout().flush().ok();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let spawned = thread::Builder::new()
                    .stack_size(128 * 1024)
                    .spawn(move || serve(stream));
                if let Err(e) = spawned {
                    eprintln!("mock-upstream: spawn failed: {e}");
                }
            }
            Err(e) => {
                eprintln!("mock-upstream: accept: {e}");
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// A listener with a backlog of 4096: a burst of 1,000 connects must not hit SYN retries.
fn listen(addr: &str) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let addr: std::net::SocketAddr = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other("no address"))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Serves requests on one connection until the peer closes or an error.
fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut conn = Conn::new(stream, 16 * 1024);
    let mut body = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(4096);
    loop {
        let head = match conn.read_head() {
            Ok(Some(h)) => h,
            _ => return,
        };
        if head.expect_continue && conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
            return;
        }
        body.clear();
        if conn
            .read_body(&head, true, &mut |b| body.extend_from_slice(b))
            .is_err()
        {
            return;
        }
        out.clear();
        if respond(&mut conn, &head, &body, &mut out).is_err() || head.close {
            return;
        }
    }
}

fn respond(conn: &mut Conn, head: &Head, body: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    let (path, query) = head
        .second
        .split_once('?')
        .unwrap_or((head.second.as_str(), ""));
    let close = if head.close {
        "Connection: close\r\n"
    } else {
        ""
    };
    match (head.first.as_str(), path) {
        ("POST", "/v1/chat/completions") | ("POST", "/chat/completions") => {
            let model = json_str(body, b"model").unwrap_or("gpt-4o-mini");
            if json_true(body, b"stream") {
                let events = number_after(query.as_bytes(), b"events=")
                    .or_else(|| number_after(body, b"events="))
                    .unwrap_or(10)
                    .min(100_000);
                let ms = number_after(query.as_bytes(), b"ms=")
                    .or_else(|| number_after(body, b"ms="))
                    .unwrap_or(0)
                    .min(60_000);
                let usage = json_true(body, b"include_usage");
                stream(conn, out, close, model, events, ms, usage)
            } else {
                let json = format!(
                    concat!(
                        r#"{{"id":"chatcmpl-mock","object":"chat.completion","created":{},"#,
                        r#""model":"{}","system_fingerprint":"fp_mock","choices":[{{"index":0,"#,
                        r#""message":{{"role":"assistant","content":"Hello from the mock upstream.","#,
                        r#""refusal":null}},"logprobs":null,"finish_reason":"stop"}}],"#,
                        r#""usage":{{"prompt_tokens":9,"completion_tokens":7,"total_tokens":16}}}}"#
                    ),
                    CREATED, model
                );
                fixed(conn, out, 200, close, &json)
            }
        }
        ("GET", "/health") | ("GET", "/v1/health") => {
            fixed(conn, out, 200, close, r#"{"status":"ok"}"#)
        }
        _ => fixed(
            conn,
            out,
            404,
            close,
            r#"{"error":{"message":"mock-upstream: no such route","type":"invalid_request_error","param":null,"code":null}}"#,
        ),
    }
}

fn fixed(
    conn: &mut Conn,
    out: &mut Vec<u8>,
    status: u16,
    close: &str,
    json: &str,
) -> io::Result<()> {
    let reason = if status == 200 { "OK" } else { "Not Found" };
    write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{close}\r\n{json}",
        json.len()
    )?;
    conn.write_all(out)
}

/// Writes an SSE stream: role chunk, `events` content chunks `ms` apart, finish chunk,
/// optional usage chunk, `[DONE]`.
fn stream(
    conn: &mut Conn,
    out: &mut Vec<u8>,
    close: &str,
    model: &str,
    events: u64,
    ms: u64,
    usage: bool,
) -> io::Result<()> {
    let usage_null = if usage { r#","usage":null"# } else { "" };
    let prefix = format!(
        r#"data: {{"id":"chatcmpl-mock","object":"chat.completion.chunk","created":{CREATED},"model":"{model}","system_fingerprint":"fp_mock","choices":"#
    );
    let mut ev = String::with_capacity(512);
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n{close}\r\n"
    )?;
    ev.push_str(&prefix);
    ev.push_str(r#"[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]"#);
    ev.push_str(usage_null);
    ev.push_str("}\n\n");
    push_chunk(out, ev.as_bytes());
    for i in 0..events {
        if ms > 0 {
            conn.write_all(out)?;
            out.clear();
            thread::sleep(Duration::from_millis(ms));
        }
        ev.clear();
        ev.push_str(&prefix);
        use std::fmt::Write as _;
        let _ = write!(
            ev,
            r#"[{{"index":0,"delta":{{"content":"tok{i} "}},"logprobs":null,"finish_reason":null}}]{usage_null}}}"#
        );
        ev.push_str("\n\n");
        push_chunk(out, ev.as_bytes());
    }
    ev.clear();
    ev.push_str(&prefix);
    ev.push_str(r#"[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]"#);
    ev.push_str(usage_null);
    ev.push_str("}\n\n");
    push_chunk(out, ev.as_bytes());
    if usage {
        ev.clear();
        ev.push_str(&prefix);
        use std::fmt::Write as _;
        let _ = write!(
            ev,
            r#"[],"usage":{{"prompt_tokens":9,"completion_tokens":{events},"total_tokens":{}}}}}"#,
            events + 9
        );
        ev.push_str("\n\n");
        push_chunk(out, ev.as_bytes());
    }
    push_chunk(out, b"data: [DONE]\n\n");
    out.extend_from_slice(b"0\r\n\r\n");
    conn.write_all(out)
}

/// True when the body holds `"key"` : `true` (any whitespace around the colon).
fn json_true(body: &[u8], key: &[u8]) -> bool {
    let mut from = 0;
    while let Some(v) = value_after_key(body, key, &mut from) {
        if v.starts_with(b"true") {
            return true;
        }
    }
    false
}

/// The string value of the first `"key"` whose value is a plain string (no escapes).
fn json_str<'a>(body: &'a [u8], key: &[u8]) -> Option<&'a str> {
    let mut from = 0;
    while let Some(v) = value_after_key(body, key, &mut from) {
        if let Some(rest) = v.strip_prefix(b"\"") {
            let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
            if rest[end] == b'"' {
                return std::str::from_utf8(&rest[..end]).ok();
            }
            return None;
        }
    }
    None
}

/// Finds the next `"key":` at or after `*from` and returns what follows the colon (trimmed).
fn value_after_key<'a>(body: &'a [u8], key: &[u8], from: &mut usize) -> Option<&'a [u8]> {
    let mut quoted = Vec::with_capacity(key.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(key);
    quoted.push(b'"');
    while *from < body.len() {
        let at = *from + find(&body[*from..], &quoted)?;
        *from = at + quoted.len();
        let rest = trim_start(&body[*from..]);
        if let Some(v) = rest.strip_prefix(b":") {
            return Some(trim_start(v));
        }
    }
    None
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

/// The decimal number right after `pat`, where `pat` starts a word (not `items=` for `ms=`).
fn number_after(hay: &[u8], pat: &[u8]) -> Option<u64> {
    let mut from = 0;
    while from < hay.len() {
        let at = from + find(&hay[from..], pat)?;
        from = at + pat.len();
        if at > 0 && hay[at - 1].is_ascii_alphanumeric() {
            continue;
        }
        let digits: &[u8] = &hay[from..];
        let n = digits.iter().take_while(|c| c.is_ascii_digit()).count();
        if n > 0 && n < 10 {
            return std::str::from_utf8(&digits[..n]).ok()?.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_stream_flags_with_or_without_spaces() {
        let b =
            br#"{"model":"gpt-4o-mini","stream" : true,"stream_options":{"include_usage":true}}"#;
        assert!(json_true(b, b"stream"));
        assert!(json_true(b, b"include_usage"));
        assert!(!json_true(br#"{"stream":false,"x":"stream"}"#, b"stream"));
        assert_eq!(json_str(b, b"model"), Some("gpt-4o-mini"));
    }

    #[test]
    fn reads_pacing_from_message_text() {
        let b = br#"{"messages":[{"role":"user","content":"items=3 events=20 ms=50"}]}"#;
        assert_eq!(number_after(b, b"events="), Some(20));
        assert_eq!(number_after(b, b"ms="), Some(50));
        assert_eq!(number_after(b"items=3", b"ms="), None);
    }
}
