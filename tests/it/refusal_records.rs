//! Requests the HTTP layer refuses on its own (malformed head or chunk, 408, 413, 431, 503 at
//! the connection cap) and CORS preflights are answered through the gateway's exchange: each
//! refusal is one interaction line with its status, error kind and client address, counted in
//! the metrics, and carries the client's `x-request-id` when its head was readable.

use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use crate::support::client::{assert_error, send, wait_until};
use crate::support::gateway::Gateway;
use crate::support::logs::interaction_lines;
use crate::support::raw::Client;

/// Sends raw bytes on a fresh connection and reads the answer.
fn raw(gw: &Gateway, bytes: &str) -> crate::support::raw::Reply {
    let mut c = Client::connect(gw.addr);
    c.send(bytes);
    c.read_reply().expect("an answer")
}

#[test]
fn each_refusal_is_one_interaction_line_with_the_clients_request_id_when_readable() {
    let gw = Gateway::start(&[("MAX_REQUEST_BYTES", "1024"), ("CLIENT_BODY_TIMEOUT", "1")]);
    // 413: the head is read, the body refused.
    let big = raw(
        &gw,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nx-request-id: too-big-1\r\ncontent-type: application/json\r\ncontent-length: 999999\r\n\r\n",
    );
    assert_eq!(big.status, 413);
    assert_eq!(big.header("x-request-id"), Some("too-big-1"));
    // 400: a malformed chunked body, after a readable head.
    let chunked = raw(
        &gw,
        "POST /v1/embeddings HTTP/1.1\r\nHost: t\r\nx-request-id: bad-chunk-1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    );
    assert_eq!(chunked.status, 400);
    assert_eq!(chunked.header("x-request-id"), Some("bad-chunk-1"));
    // 408: the body never comes.
    let mut slow = Client::connect(gw.addr);
    slow.send("POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nx-request-id: slow-body-1\r\ncontent-length: 10\r\n\r\n{");
    let timed_out = slow.read_reply().expect("a 408");
    assert_eq!(timed_out.status, 408);
    assert_eq!(timed_out.header("x-request-id"), Some("slow-body-1"));
    // 431 and a malformed head: no head to read an id from, so a fresh one.
    let huge = raw(
        &gw,
        &format!(
            "GET /health HTTP/1.1\r\nHost: t\r\nx-big: {}\r\n\r\n",
            "a".repeat(70_000)
        ),
    );
    assert_eq!(huge.status, 431);
    let garbage = raw(&gw, "NOT A REQUEST\r\n\r\n");
    assert_eq!(garbage.status, 400);
    for reply in [&huge, &garbage] {
        let id = reply
            .header("x-request-id")
            .expect("an id on every refusal");
        assert!(crate::support::client::is_uuid(id), "{id}");
    }
    // The metrics count them as failed calls of no provider.
    let metrics = send(gw.addr, "GET", "/metrics", &[], b"").json();
    let requests = metrics["totals"]["requests"].as_u64().unwrap_or(0);
    assert!(requests >= 5, "{metrics}");

    let dir = gw.stop_keeping_logs();
    let lines = interaction_lines(&dir);
    let by_id = |id: &str| {
        lines
            .iter()
            .filter(|l| l["request_id"] == id)
            .collect::<Vec<_>>()
    };
    for (id, status, route) in [
        ("too-big-1", 413, "/v1/chat/completions"),
        ("bad-chunk-1", 400, "/v1/embeddings"),
        ("slow-body-1", 408, "/v1/chat/completions"),
    ] {
        let found = by_id(id);
        assert_eq!(found.len(), 1, "one line for {id}: {lines:?}");
        let line = found[0];
        assert_eq!(line["http_status"], status);
        assert_eq!(line["status"], "error");
        assert_eq!(line["route"], route);
        assert!(line["client"]["address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"));
        assert!(line["error"]["message"].is_string(), "{line}");
    }
    for status in [431, 400] {
        assert!(
            lines
                .iter()
                .any(|l| l["http_status"] == status && l["route"] == ""),
            "a head-less {status} is recorded: {lines:?}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_503_at_the_connection_cap_is_recorded() {
    let gw = Gateway::start(&[("MAX_CONNECTIONS", "1"), ("CLIENT_HEADER_TIMEOUT", "20")]);
    let held = TcpStream::connect(gw.addr).unwrap();
    thread::sleep(Duration::from_millis(100));
    let mut c = Client::connect(gw.addr);
    let reply = c.read_reply().expect("a 503");
    assert_eq!(reply.status, 503);
    assert!(reply.header("x-request-id").is_some());
    drop(held);
    let dir = gw.stop_keeping_logs();
    let mut found = Vec::new();
    let seen = wait_until(Duration::from_secs(5), || {
        found = interaction_lines(&dir);
        found.iter().any(|l| l["http_status"] == 503)
    });
    assert!(seen, "{found:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_cors_preflight_is_recorded_with_the_status_it_sent() {
    let gw = Gateway::start(&[]);
    let reply = send(
        gw.addr,
        "OPTIONS",
        "/v1/chat/completions",
        &[
            ("origin", "http://app.example"),
            ("access-control-request-method", "POST"),
            ("x-request-id", "preflight-1"),
        ],
        b"",
    );
    assert_eq!(reply.status, 204);
    let not_found = send(gw.addr, "GET", "/nope", &[("x-request-id", "nope-1")], b"");
    assert_error(&not_found, 404);
    let dir = gw.stop_keeping_logs();
    let lines = interaction_lines(&dir);
    let line = lines
        .iter()
        .find(|l| l["request_id"] == "preflight-1")
        .expect("the preflight's line");
    assert_eq!(line["http_status"], 204);
    assert_eq!(line["status"], "success");
    let _ = std::fs::remove_dir_all(dir);
}
