//! The HTTP/1.1 layer (`llmcallgateway::http`) on a real socket: a server on 127.0.0.1 port 0
//! with a small test handler, driven by a raw-socket client. This file holds the handler and
//! the protocol tests (keep-alive, pipelining, HTTP/1.0, HEAD, bodies, streams);
//! `http_layer/hostile.rs` attacks the server, `http_layer/lifecycle.rs` covers the connection
//! cap, panics, graceful shutdown and descriptor exhaustion, `http_layer/refusals.rs` what the
//! handler hears of the requests the layer refuses (`Handler::refuse`), `http_layer/parking.rs`
//! idle keep-alive connections parked in the poller instead of holding workers,
//! `http_layer/relay.rs` streams carried by the relay loop instead of a worker,
//! `http_layer/thread_cache.rs` the workers' allocator cache under load.

mod hostile;
mod lifecycle;
mod parking;
mod refusals;
mod relay;
mod thread_cache;

use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use llmcallgateway::http::{self, Handler, Request, Responder, Response, Server, ServerConfig};
use socket2::SockRef;

use crate::support::raw::{get_within, Client, Peer};

/// How a streaming route ended, as the handler saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOutcome {
    /// Events written successfully.
    pub sent: usize,
    /// Whether a write reported `ClientGone`.
    pub gone: bool,
    /// Whether the first byte after the head was counted as sent (the time to first byte).
    pub first_sent: bool,
}

/// A latch the test opens to let a `/gated` stream go on.
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    pub fn open(&self) {
        *self.open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }

    /// Waits for the gate (at most 20 s, so a failing test cannot hang a worker forever).
    fn wait(&self) {
        let guard = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self
            .cv
            .wait_timeout_while(guard, Duration::from_secs(20), |open| !*open);
    }
}

/// Routes: `/ok`, `/echo` (the body back), `/big?n=` (n bytes), `/queue-wait` (the request's
/// queue wait in µs), `/cache` (the worker's allocator cache, `http_layer/thread_cache.rs`),
/// `/panic`, `/silent` (answers nothing), `/slow?ms=`, `/stream?n=&ms=` (n events, a pause
/// between), `/gated` (one event, then waits for the gate, then two more), `/relayed?n=&size=&ms=&silent=&idle_ms=` (a stream
/// handed to the relay loop: n events of `size` bytes from a socket pair a thread writes, a
/// pause between; with `silent` the writer then stays silent, the pump's idle timeout being
/// `idle_ms`). Streams report their outcome on a channel (a relayed one: `sent` = body bytes
/// delivered, `gone` = not delivered).
pub struct TestHandler {
    outcomes: Mutex<Sender<StreamOutcome>>,
    gate: Arc<Gate>,
}

fn param(req: &Request, name: &str) -> Option<u64> {
    req.query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

impl TestHandler {
    fn report(&self, outcome: StreamOutcome) {
        let _ = self
            .outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(outcome);
    }

    fn stream(&self, res: &mut Responder<'_>, events: &[Vec<u8>], pause: Duration, gated: bool) {
        let headers = vec![("content-type".to_string(), "text/event-stream".to_string())];
        let Ok(mut stream) = res.stream(200, &headers) else {
            self.report(StreamOutcome {
                sent: 0,
                gone: true,
                first_sent: false,
            });
            return;
        };
        let mut sent = 0;
        for (i, event) in events.iter().enumerate() {
            if i > 0 {
                if gated && i == 1 {
                    self.gate.wait();
                } else {
                    thread::sleep(pause);
                }
            }
            if stream.send(event).is_err() {
                self.report(StreamOutcome {
                    sent,
                    gone: true,
                    first_sent: sent > 0,
                });
                return;
            }
            sent += 1;
        }
        let gone = stream.finish().is_err();
        self.report(StreamOutcome {
            sent,
            gone,
            first_sent: sent > 0,
        });
    }
}

impl Handler for TestHandler {
    fn handle(self: Arc<Self>, req: &Arc<Request>, res: &mut Responder<'_>) {
        let _ = match req.path() {
            "/ok" => res.send(Response::text(200, "ok")),
            "/echo" => res.send(
                Response::new(200, "application/octet-stream", req.body.clone())
                    .with_header("x-body-len", req.body.len().to_string()),
            ),
            "/big" => {
                let n = param(req, "n").unwrap_or(4096) as usize;
                res.send(Response::new(200, "text/plain", vec![b'x'; n]))
            }
            "/queue-wait" => res.send(Response::text(200, &req.queue_wait.as_micros().to_string())),
            "/cache" => res.send(Response::text(200, thread_cache::state())),
            "/panic" => panic!("the test handler panics on purpose"),
            "/silent" => Ok(()),
            "/slow" => {
                thread::sleep(Duration::from_millis(param(req, "ms").unwrap_or(100)));
                res.send(Response::text(200, "slow"))
            }
            "/stream" => {
                let n = param(req, "n").unwrap_or(3) as usize;
                let ms = param(req, "ms").unwrap_or(10);
                let events: Vec<Vec<u8>> = (0..n)
                    .map(|i| format!("data: {i}\n\n").into_bytes())
                    .collect();
                self.stream(res, &events, Duration::from_millis(ms), false);
                Ok(())
            }
            "/relayed" => {
                relay::start(&self, req, res);
                Ok(())
            }
            "/gated" => {
                let events =
                    ["first", "second", "third"].map(|e| format!("data: {e}\n\n").into_bytes());
                self.stream(res, &events, Duration::ZERO, true);
                Ok(())
            }
            _ => res.send(Response::text(404, "no such route")),
        };
    }
}

/// A running test server and what its handler reports.
pub struct TestServer {
    server: Option<Server>,
    pub addr: SocketAddr,
    pub outcomes: Receiver<StreamOutcome>,
    pub gate: Arc<Gate>,
}

impl TestServer {
    pub fn start(config: ServerConfig) -> TestServer {
        let (tx, rx) = mpsc::channel();
        let gate = Arc::new(Gate::default());
        let handler = Arc::new(TestHandler {
            outcomes: Mutex::new(tx),
            gate: gate.clone(),
        });
        let listener = http::bind("127.0.0.1:0".parse().unwrap(), config.backlog).expect("bind");
        let server = Server::start(listener, config, handler).expect("start the server");
        TestServer {
            addr: server.local_addr(),
            server: Some(server),
            outcomes: rx,
            gate,
        }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("server running")
    }

    /// Takes the server out, for a test that shuts it down itself.
    pub fn take(&mut self) -> Server {
        self.server.take().expect("server running")
    }

    /// The next stream outcome the handler reported, waiting up to 10 s.
    pub fn outcome(&self) -> StreamOutcome {
        self.outcomes
            .recv_timeout(Duration::from_secs(10))
            .expect("the stream handler reports its outcome")
    }

    /// A normal request on a new connection is answered with 200 within a second.
    pub fn assert_alive(&self) {
        let reply = get_within(self.addr, "/ok", Duration::from_secs(1))
            .expect("a normal request is answered within a second");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "ok");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.gate.open();
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
    }
}

/// Small figures so that deadlines pass quickly.
pub fn config() -> ServerConfig {
    ServerConfig {
        workers: 16,
        max_connections: 64,
        keepalive_idle: Duration::from_secs(2),
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        send_timeout: Duration::from_secs(3),
        max_body_bytes: 64 * 1024,
        shutdown_grace: Duration::from_secs(10),
        backlog: 1024,
        relay_lanes: 2,
        thread_cache: None,
        cached_requests: 64,
    }
}

/// The backlog given to `bind` (`LISTEN_BACKLOG`) is what the kernel holds for an acceptor that
/// is behind: with nobody accepting, handshakes complete up to the backlog (Linux admits one
/// more), and later SYNs are dropped, so those connects time out (their retry would come a
/// second later).
#[test]
fn the_listen_backlog_bounds_the_handshakes_waiting_for_accept() {
    for (backlog, expect) in [(8, 8..=9), (64, 24..=24)] {
        let listener = http::bind("127.0.0.1:0".parse().unwrap(), backlog).unwrap();
        let addr = listener.local_addr().unwrap();
        let held: Vec<TcpStream> = (0..24)
            .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(150)).ok())
            .collect();
        assert!(
            expect.contains(&held.len()),
            "backlog {backlog}: {} connections completed",
            held.len()
        );
    }
}

#[test]
fn bind_sets_nodelay_and_address_reuse_on_the_listener() {
    let listener = http::bind("127.0.0.1:0".parse().unwrap(), 1024).unwrap();
    let sock = SockRef::from(&listener);
    assert!(sock.tcp_nodelay().unwrap(), "TCP_NODELAY on the listener");
    assert!(
        sock.reuse_address().unwrap(),
        "SO_REUSEADDR on the listener"
    );
}

#[test]
fn bind_backlog_holds_hundreds_of_unaccepted_connections() {
    // Nobody accepts: every connection must complete in the kernel's accept queue, which a
    // backlog of 128 would not allow (excess SYNs are dropped and connect times out).
    let listener = http::bind("127.0.0.1:0".parse().unwrap(), 1024).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    for i in 0..300 {
        let conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("connection {i} did not complete: {e}"));
        held.push(conn);
    }
    assert_eq!(held.len(), 300);
}

#[test]
fn bind_can_rebind_a_port_with_connections_in_time_wait() {
    let server = TestServer::start(config());
    let addr = server.addr;
    server.assert_alive();
    drop(server);
    // The server closed first, so its side of that connection sits in TIME_WAIT.
    let again = http::bind(addr, 16).expect("rebinding the same port right away");
    assert_eq!(again.local_addr().unwrap(), addr);
}

#[test]
fn fixed_response_has_status_content_length_and_body() {
    let server = TestServer::start(config());
    let reply = crate::support::raw::get(server.addr, "/big?n=3000").unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-length"), Some("3000"));
    assert_eq!(reply.body, vec![b'x'; 3000]);
    assert_eq!(reply.header("content-type"), Some("text/plain"));
}

#[test]
fn unknown_route_is_the_handlers_404() {
    let server = TestServer::start(config());
    let reply = crate::support::raw::get(server.addr, "/nope").unwrap();
    assert_eq!(reply.status, 404);
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    for i in 0..5 {
        client.get(&format!("/big?n={}", 2000 + i), "");
        let reply = client.read_reply().unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body.len(), 2000 + i);
        assert!(!reply.closes());
    }
}

#[test]
fn keep_alive_connection_is_closed_after_the_idle_deadline() {
    let mut cfg = config();
    cfg.keepalive_idle = Duration::from_millis(300);
    let server = TestServer::start(cfg);
    let mut client = Client::connect(server.addr);
    client.get("/ok", "");
    assert_eq!(client.read_reply().unwrap().status, 200);
    assert!(
        client.closes_within(Duration::from_secs(10)),
        "the server closes an idle keep-alive connection"
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    let mut batch = String::new();
    for i in 1..=5 {
        let body = format!("request number {i}");
        batch.push_str(&format!(
            "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    }
    client.send(batch);
    for i in 1..=5 {
        let reply = client.read_reply().unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), format!("request number {i}"));
    }
}

#[test]
fn http10_request_is_answered_and_closed_by_default() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    client.send("GET /ok HTTP/1.0\r\n\r\n");
    let reply = client.read_reply().unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "ok");
    assert!(reply.closes());
    assert!(client.closes_within(Duration::from_secs(5)));
}

#[test]
fn http10_with_connection_keep_alive_stays_open() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    for _ in 0..3 {
        client.send("GET /ok HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let reply = client.read_reply().unwrap();
        assert_eq!(reply.status, 200);
        assert!(reply
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")));
    }
}

#[test]
fn connection_close_is_honoured() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    client.get("/ok", "Connection: close\r\n");
    let reply = client.read_reply().unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.closes());
    assert!(client.closes_within(Duration::from_secs(5)));
}

#[test]
fn head_gets_headers_with_content_length_but_no_body() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    client.send("HEAD /big?n=5000 HTTP/1.1\r\nHost: test\r\n\r\n");
    let reply = client.read_head_reply().unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-length"), Some("5000"));
    // No body follows: the next response on the connection starts right after the head.
    client.get("/ok", "");
    let next = client.read_reply().unwrap();
    assert_eq!(next.status, 200);
    assert_eq!(next.text(), "ok");
}

#[test]
fn chunked_body_with_extensions_and_trailers_is_decoded() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    client.send(
        "POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n\
         1;name=value\r\n \r\n\
         A;a=1;b=\"two\"\r\nchunked!!!\r\n\
         0\r\nX-Trailer: yes\r\nX-Other: 2\r\n\r\n",
    );
    let reply = client.read_reply().unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "hello chunked!!!");
    // The connection is still in step for the next request.
    client.get("/ok", "");
    assert_eq!(client.read_reply().unwrap().text(), "ok");
}

#[test]
fn chunked_body_sent_in_pieces_is_decoded() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    client.send("POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n");
    let mut expected = Vec::new();
    for i in 0..20u8 {
        let data = vec![b'a' + i; 100 + i as usize];
        client.send(format!("{:X}\r\n", data.len()));
        client.send(&data);
        client.send("\r\n");
        expected.extend_from_slice(&data);
    }
    client.send("0\r\n\r\n");
    let reply = client.read_reply().unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, expected);
}

#[test]
fn expect_100_continue_gets_continue_then_the_answer() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    client.send(
        "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    let interim = client.read_reply().unwrap();
    assert_eq!(interim.status, 100);
    client.send("12345");
    let reply = client.read_reply().unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "12345");
}

#[test]
fn expect_100_continue_with_too_large_body_gets_413_without_continue() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    client.send(
        "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n",
    );
    let reply = client.read_reply().unwrap();
    assert_eq!(reply.status, 413, "the final answer comes first, no 100");
    assert!(reply.closes());
    server.assert_alive();
}

#[test]
fn handler_that_answers_nothing_gets_500() {
    let server = TestServer::start(config());
    let reply = crate::support::raw::get(server.addr, "/silent").unwrap();
    assert_eq!(reply.status, 500);
    server.assert_alive();
}

#[test]
fn stream_events_are_sent_one_chunk_each_as_they_are_produced() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    client.get("/gated", "");
    let head = client.read_stream_head().unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    // The handler is blocked at the gate: the first event must already be here.
    let first = client.read_chunk().unwrap();
    assert_eq!(first.as_deref(), Some(&b"data: first\n\n"[..]));
    assert_eq!(client.wait_peer(Duration::from_millis(200)), Peer::Open);
    server.gate.open();
    assert_eq!(
        client.read_chunk().unwrap().as_deref(),
        Some(&b"data: second\n\n"[..])
    );
    assert_eq!(
        client.read_chunk().unwrap().as_deref(),
        Some(&b"data: third\n\n"[..])
    );
    assert_eq!(client.read_chunk().unwrap(), None, "terminating chunk");
    let outcome = server.outcome();
    assert_eq!(
        outcome,
        StreamOutcome {
            sent: 3,
            gone: false,
            first_sent: true
        }
    );
    // A finished stream leaves the connection reusable.
    client.get("/ok", "");
    assert_eq!(client.read_reply().unwrap().text(), "ok");
}

#[test]
fn stream_to_http10_client_is_raw_bytes_then_close() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    client.send("GET /stream?n=3&ms=1 HTTP/1.0\r\n\r\n");
    let reply = client.read_reply().unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.header("transfer-encoding").is_none());
    assert_eq!(reply.text(), "data: 0\n\ndata: 1\n\ndata: 2\n\n");
}

#[test]
fn large_response_on_keep_alive_arrives_whole_each_time() {
    // TCP_NODELAY on accepted sockets cannot be read from the client side, and its effect
    // is a matter of milliseconds, which these tests never assert. What is checked: a
    // response far over one segment arrives whole, repeatedly, on one connection.
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    for _ in 0..10 {
        client.get("/big?n=100000", "");
        let reply = client.read_reply().unwrap();
        assert_eq!(reply.body.len(), 100_000);
    }
}
