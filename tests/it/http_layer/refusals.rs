//! What the layer refuses, as the handler hears it through `Handler::refuse`: which refusals
//! carry the parsed request head (413, a slow or malformed body, `Expect`, the 500s after the
//! handler) and which have none (a slow or malformed head, 431, the 503 at the connection cap);
//! that the hook's response is what the client receives; and that a `refuse` which panics
//! costs only its own connection: the open-connection count returns to zero and the server
//! serves on.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use llmcallgateway::http::{
    self, Handler, Refusal, Request, Responder, Response, Server, ServerConfig,
};

use super::{config, TestServer};
use crate::support::client::wait_until;
use crate::support::raw::{get_within, Client, Reply};

/// The parts of a refused request's head the tests look at, copied out of the hook.
#[derive(Debug, Clone)]
struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body_len: usize,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One `Refusal` as the hook received it.
#[derive(Debug, Clone)]
struct Recorded {
    status: u16,
    message: String,
    peer: SocketAddr,
    received_at: Instant,
    head: Option<Head>,
    after_handler: bool,
}

/// Answers `/ok` (200), `/panic` (panics) and `/silent` (answers nothing). Records every
/// refusal and answers it as JSON with `x-refused-by: hook` and the client's `x-request-id`
/// (`none` without a head). With `panic_in_refuse`, `refuse` records and then panics.
struct RecordingHandler {
    refusals: Mutex<Vec<Recorded>>,
    panic_in_refuse: bool,
}

impl Handler for RecordingHandler {
    fn handle(self: Arc<Self>, req: &Arc<Request>, res: &mut Responder<'_>) {
        match req.path() {
            "/ok" => {
                let _ = res.send(Response::text(200, "ok"));
            }
            "/panic" => panic!("the recording handler panics on purpose"),
            "/silent" => {}
            _ => {
                let _ = res.send(Response::text(404, "no such route"));
            }
        }
    }

    fn refuse(&self, refusal: &Refusal<'_>) -> Response {
        let head = refusal.head.map(|h| Head {
            method: h.method.clone(),
            target: h.target.clone(),
            headers: h.headers.clone(),
            body_len: h.body.len(),
        });
        self.refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Recorded {
                status: refusal.status,
                message: refusal.message.to_string(),
                peer: refusal.peer,
                received_at: refusal.received_at,
                head,
                after_handler: refusal.after_handler,
            });
        if self.panic_in_refuse {
            panic!("the recording handler's refuse panics on purpose");
        }
        let request_id = refusal
            .head
            .and_then(|h| h.header("x-request-id"))
            .unwrap_or("none");
        let body = format!(
            "{{\"refused\":{},\"message\":\"{}\"}}",
            refusal.status, refusal.message
        );
        Response::new(refusal.status, "application/json", body)
            .with_header("x-refused-by", "hook")
            .with_header("x-request-id", request_id)
    }
}

/// A server with a [`RecordingHandler`], shut down when dropped.
struct Harness {
    server: Option<Server>,
    addr: SocketAddr,
    handler: Arc<RecordingHandler>,
}

impl Harness {
    fn start(config: ServerConfig, panic_in_refuse: bool) -> Harness {
        let handler = Arc::new(RecordingHandler {
            refusals: Mutex::new(Vec::new()),
            panic_in_refuse,
        });
        let listener = http::bind("127.0.0.1:0".parse().unwrap(), config.backlog).expect("bind");
        let server = Server::start(listener, config, handler.clone()).expect("start the server");
        Harness {
            addr: server.local_addr(),
            server: Some(server),
            handler,
        }
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("server running")
    }

    fn recorded(&self) -> usize {
        self.handler
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The one refusal recorded since the last call (waiting up to 5 s for it), taken out.
    fn one(&self) -> Recorded {
        assert!(
            wait_until(Duration::from_secs(5), || self.recorded() > 0),
            "the hook was called"
        );
        let mut refusals = self
            .handler
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        assert_eq!(refusals.len(), 1, "exactly one refusal: {refusals:?}");
        refusals.remove(0)
    }

    /// The open-connection count drops to zero within 10 s.
    fn assert_no_connection_left(&self) {
        assert!(
            wait_until(Duration::from_secs(10), || self.server().open_connections()
                == 0),
            "open connections still counted: {}",
            self.server().open_connections()
        );
    }

    fn assert_alive(&self) {
        let reply = get_within(self.addr, "/ok", Duration::from_secs(2))
            .expect("a normal request is answered within two seconds");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "ok");
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
    }
}

/// Sends `bytes` on a new connection and reads the answer, which must close the connection.
/// Returns the client (for its address) and the reply.
fn refused(addr: SocketAddr, bytes: &[u8]) -> (Client, Reply) {
    let mut client = Client::connect(addr);
    // The server may answer and close before everything is written.
    let _ = client.try_send(bytes);
    let reply = client
        .read_reply()
        .expect("an answer to the refused request");
    assert!(reply.closes(), "a refusal closes the connection");
    assert!(
        client.closes_within(Duration::from_secs(5)),
        "the server closes after refusing"
    );
    (client, reply)
}

/// The client received what the recording hook returned for `status`.
fn assert_hooks_answer(reply: &Reply, status: u16, message: &str, request_id: &str) {
    assert_eq!(reply.status, status);
    assert_eq!(reply.header("x-refused-by"), Some("hook"));
    assert_eq!(reply.header("x-request-id"), Some(request_id));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        reply.text(),
        format!("{{\"refused\":{status},\"message\":\"{message}\"}}")
    );
}

#[test]
fn huge_content_length_is_refused_with_the_parsed_head_and_the_hooks_answer() {
    let harness = Harness::start(config(), false);
    for (what, expect) in [("plain", ""), ("expect", "Expect: 100-continue\r\n")] {
        let before = Instant::now();
        let request = format!(
            "POST /echo?x=1 HTTP/1.1\r\nHost: test\r\nX-Request-Id: req-{what}\r\n{expect}\
             Content-Length: 100000000000000\r\n\r\nshort"
        );
        let (client, reply) = refused(harness.addr, request.as_bytes());
        let after = Instant::now();
        assert_hooks_answer(
            &reply,
            413,
            "request body too large",
            &format!("req-{what}"),
        );

        let r = harness.one();
        assert_eq!(r.status, 413, "{what}");
        assert_eq!(r.message, "request body too large");
        assert_eq!(r.peer, client.stream.local_addr().unwrap());
        assert!(!r.after_handler);
        assert!(before <= r.received_at && r.received_at <= after, "{what}");
        let head = r.head.expect("the parsed head comes with a 413");
        assert_eq!(head.method, "POST");
        assert_eq!(head.target, "/echo?x=1");
        assert_eq!(head.header("x-request-id"), Some(&*format!("req-{what}")));
        assert_eq!(head.body_len, 0);
        if what == "expect" {
            assert_eq!(head.header("expect"), Some("100-continue"));
        }
    }
    harness.assert_alive();
    harness.assert_no_connection_left();
}

#[test]
fn slow_malformed_or_unexpected_bodies_are_refused_with_the_parsed_head() {
    let harness = Harness::start(config(), false);
    let chunked = "Transfer-Encoding: chunked\r\n\r\n";
    let cases: [(&str, String, u16, &str); 5] = [
        (
            "malformed chunk size",
            format!("{chunked}zz\r\nhello\r\n0\r\n\r\n"),
            400,
            "malformed chunk size",
        ),
        (
            "chunk without CRLF",
            format!("{chunked}5\r\nhelloXX0\r\n\r\n"),
            400,
            "chunk data not followed by CRLF",
        ),
        (
            "slow body",
            "Content-Length: 10\r\n\r\nabc".to_string(),
            408,
            "request body not received in time",
        ),
        (
            "slow chunk",
            format!("{chunked}10\r\nabc"),
            408,
            "request body not received in time",
        ),
        (
            "unsupported Expect",
            "Expect: teapot\r\nContent-Length: 3\r\n\r\nabc".to_string(),
            417,
            "unsupported Expect header",
        ),
    ];
    for (i, (what, rest, status, message)) in cases.iter().enumerate() {
        let request_id = format!("req-{i}");
        let request = format!(
            "PUT /upload/{i} HTTP/1.1\r\nHost: test\r\nX-Request-Id: {request_id}\r\n{rest}"
        );
        let (client, reply) = refused(harness.addr, request.as_bytes());
        assert_hooks_answer(&reply, *status, message, &request_id);
        let r = harness.one();
        assert_eq!(
            (r.status, r.message.as_str()),
            (*status, *message),
            "{what}"
        );
        assert_eq!(r.peer, client.stream.local_addr().unwrap());
        assert!(!r.after_handler);
        let head = r.head.unwrap_or_else(|| panic!("no head for {what}"));
        assert_eq!(head.method, "PUT", "{what}");
        assert_eq!(head.target, format!("/upload/{i}"));
        assert_eq!(head.header("x-request-id"), Some(request_id.as_str()));
        assert_eq!(head.body_len, 0, "{what}: the head comes without a body");
    }
    harness.assert_alive();
    harness.assert_no_connection_left();
}

#[test]
fn refusals_before_a_head_was_parsed_have_no_head() {
    let cfg = config();
    let header_timeout = cfg.header_timeout;
    let harness = Harness::start(cfg, false);
    let mut too_many = String::from("GET /ok HTTP/1.1\r\nHost: test\r\nX-Request-Id: r\r\n");
    for i in 0..150 {
        too_many.push_str(&format!("X-{i}: v\r\n"));
    }
    too_many.push_str("\r\n");
    let too_long = format!(
        "GET /ok HTTP/1.1\r\nHost: test\r\nX-Huge: {}\r\n\r\n",
        "h".repeat(70 * 1024)
    );
    let cases: [(&[u8], u16, &str); 5] = [
        (too_many.as_bytes(), 431, "too many request headers"),
        (too_long.as_bytes(), 431, "request head too large"),
        (b"GARBAGE\r\n\r\n", 400, "malformed request head"),
        (
            b"GET /ok HTTP/1.1\r\nX-Request-Id: r\r\n\r\n",
            400,
            "missing Host header",
        ),
        (
            b"GET /ok HTTP/1.1\r\nHost: te",
            408,
            "request head not received in time",
        ),
    ];
    for (bytes, status, message) in cases {
        let before = Instant::now();
        let (client, reply) = refused(harness.addr, bytes);
        let answered = Instant::now();
        assert_hooks_answer(&reply, status, message, "none");
        let r = harness.one();
        assert_eq!((r.status, r.message.as_str()), (status, message));
        assert!(r.head.is_none(), "no head for {message}");
        assert!(!r.after_handler);
        assert_eq!(r.peer, client.stream.local_addr().unwrap());
        assert!(before <= r.received_at && r.received_at <= answered);
        if status == 408 {
            // The wait for the head began when the head deadline started.
            assert!(answered.duration_since(r.received_at) >= header_timeout);
        }
    }
    harness.assert_alive();
    harness.assert_no_connection_left();
}

#[test]
fn connection_cap_503_is_the_hooks_answer_and_has_no_head() {
    let mut cfg = config();
    cfg.workers = 2;
    cfg.max_connections = 1;
    cfg.header_timeout = Duration::from_secs(20);
    let harness = Harness::start(cfg, false);
    let mut held = Client::connect(harness.addr);
    held.send("GET /ok HTTP/1.1\r\n");
    assert!(wait_until(Duration::from_secs(10), || harness
        .server()
        .open_connections()
        == 1));

    let before = Instant::now();
    let mut over = Client::connect(harness.addr);
    let reply = over.read_reply().expect("an immediate answer over the cap");
    let answered = Instant::now();
    assert_hooks_answer(
        &reply,
        503,
        "the gateway is at its connection limit; retry shortly",
        "none",
    );
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert!(reply.closes());
    assert!(over.closes_within(Duration::from_secs(5)));
    let r = harness.one();
    assert_eq!(r.status, 503);
    assert!(r.head.is_none());
    assert!(!r.after_handler);
    assert_eq!(r.peer, over.stream.local_addr().unwrap());
    assert!(before <= r.received_at && r.received_at <= answered);

    held.send("Host: test\r\nConnection: close\r\n\r\n");
    assert_eq!(held.read_reply().unwrap().status, 200);
    harness.assert_no_connection_left();
    harness.assert_alive();
}

#[test]
fn handler_panic_or_silence_is_refused_after_the_handler_with_the_request() {
    let harness = Harness::start(config(), false);
    for (path, message) in [
        ("/panic", "internal error while handling the request"),
        ("/silent", "the handler produced no response"),
    ] {
        let mut client = Client::connect(harness.addr);
        client.send(format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nX-Request-Id: id{path}\r\nContent-Length: 4\r\n\r\nbody"
        ));
        let reply = client.read_reply().unwrap();
        assert_hooks_answer(&reply, 500, message, &format!("id{path}"));
        assert!(reply.closes());
        let r = harness.one();
        assert_eq!((r.status, r.message.as_str()), (500, message));
        assert!(r.after_handler, "{path}");
        assert_eq!(r.peer, client.stream.local_addr().unwrap());
        let head = r.head.expect("the request comes with a 500");
        assert_eq!((head.method.as_str(), head.target.as_str()), ("POST", path));
        assert_eq!(head.header("x-request-id"), Some(&*format!("id{path}")));
        assert_eq!(head.body_len, 0, "the body is left out");
    }
    harness.assert_alive();
    harness.assert_no_connection_left();
}

#[test]
fn panicking_refuse_closes_only_its_connection_and_gives_the_count_back() {
    let mut cfg = config();
    cfg.workers = 2;
    let harness = Harness::start(cfg, true);
    // More panics than workers: each worker must survive several.
    for i in 0..6 {
        let bad: &[u8] = if i % 2 == 0 {
            b"GARBAGE\r\n\r\n"
        } else {
            b"GET /silent HTTP/1.1\r\nHost: test\r\n\r\n"
        };
        let mut client = Client::connect(harness.addr);
        client.send(bad);
        assert!(
            client.read_reply().is_err(),
            "no answer when refuse panicked"
        );
        assert!(client.closes_within(Duration::from_secs(5)));
        let r = harness.one();
        assert_eq!(r.status, if i % 2 == 0 { 400 } else { 500 });
        harness.assert_no_connection_left();
        harness.assert_alive();
    }
    // A kept-alive connection still serves request after request.
    let mut client = Client::connect(harness.addr);
    for _ in 0..3 {
        client.get("/ok", "");
        assert_eq!(client.read_reply().unwrap().status, 200);
    }
    drop(client);
    harness.assert_no_connection_left();
}

#[test]
fn panicking_refuse_at_the_connection_cap_still_gets_the_default_503() {
    let mut cfg = config();
    cfg.workers = 2;
    cfg.max_connections = 1;
    cfg.header_timeout = Duration::from_secs(20);
    let harness = Harness::start(cfg, true);
    let mut held = Client::connect(harness.addr);
    held.send("GET /ok HTTP/1.1\r\n");
    assert!(wait_until(Duration::from_secs(10), || harness
        .server()
        .open_connections()
        == 1));
    for _ in 0..3 {
        let mut over = Client::connect(harness.addr);
        let reply = over.read_reply().expect("the acceptor answers");
        assert_eq!(reply.status, 503);
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(
            reply.text(),
            "the gateway is at its connection limit; retry shortly"
        );
        assert_eq!(reply.header("retry-after"), Some("1"));
        assert_eq!(harness.one().status, 503);
    }
    held.send("Host: test\r\nConnection: close\r\n\r\n");
    assert_eq!(held.read_reply().unwrap().status, 200);
    harness.assert_no_connection_left();
    harness.assert_alive();
}

#[test]
fn default_refuse_answers_plain_text_with_the_reason() {
    let server = TestServer::start(config());
    let (_, reply) = refused(
        server.addr,
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100000000000000\r\n\r\n",
    );
    assert_eq!(reply.status, 413);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(reply.text(), "request body too large");
    server.assert_alive();
}
