//! Workers serve requests, not connections: idle keep-alive connections wait in the poller
//! between requests, so a few workers serve thousands of open connections; a parked
//! connection the client closes is reaped; pipelined bytes are served without waiting for
//! readability; with every worker busy a new request is refused at once, never queued for
//! the length of a stream; each request says how long it waited for a worker.

use std::time::{Duration, Instant};

use super::{config, TestServer};
use crate::support::client::wait_until;
use crate::support::raw::{get_within, heavy, Client};

/// One request on `client` (kept alive), answered 200.
fn round_trip(client: &mut Client, path: &str) -> String {
    client.get(path, "");
    let reply = client.read_reply().expect("an answer");
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    assert!(!reply.closes());
    reply.text()
}

#[test]
fn fifth_client_is_answered_at_once_while_four_idle_keep_alive_clients_hold_no_worker() {
    // The defect this design removes: with a worker per connection, four idle keep-alive
    // clients held all four workers and the fifth waited for a keep-alive to time out.
    let mut cfg = config();
    cfg.workers = 4;
    cfg.keepalive_idle = Duration::from_secs(30);
    let server = TestServer::start(cfg);
    let mut idle: Vec<Client> = (0..4).map(|_| Client::connect(server.addr)).collect();
    for client in &mut idle {
        round_trip(client, "/ok");
    }
    for _ in 0..3 {
        let reply = get_within(server.addr, "/ok", Duration::from_secs(1))
            .expect("a fifth client is answered within a second");
        assert_eq!(reply.status, 200);
    }
    // The idle ones are still open and served in turn.
    for client in &mut idle {
        round_trip(client, "/ok");
    }
}

#[test]
fn a_new_request_is_answered_while_5000_idle_keep_alive_connections_are_open() {
    let _heavy = heavy();
    const IDLE: usize = 5000;
    // Both ends of every connection live in this process.
    rlimit::increase_nofile_limit(u64::MAX).expect("raise the open-file limit");
    let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    assert!(
        soft >= 2 * IDLE as u64 + 200,
        "the test needs {} descriptors, the limit is {soft}",
        2 * IDLE + 200
    );
    let mut cfg = config();
    cfg.workers = 4;
    cfg.max_connections = IDLE + 100;
    cfg.keepalive_idle = Duration::from_secs(120);
    cfg.header_timeout = Duration::from_secs(10);
    let server = TestServer::start(cfg);
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        let mut client = Client::connect(server.addr);
        round_trip(&mut client, "/ok");
        idle.push(client);
    }
    assert!(wait_until(Duration::from_secs(10), || server
        .server()
        .parked_connections()
        == IDLE));
    assert_eq!(server.server().open_connections(), IDLE);

    let reply = get_within(server.addr, "/ok", Duration::from_secs(1))
        .expect("a new request is answered within a second");
    assert_eq!(reply.status, 200);
    // Parked connections from anywhere in the crowd are served again.
    for i in [0, IDLE / 2, IDLE - 1] {
        round_trip(&mut idle[i], "/ok");
    }
    drop(idle);
    assert!(
        wait_until(Duration::from_secs(10), || server
            .server()
            .open_connections()
            == 0),
        "closed connections are reaped"
    );
}

#[test]
fn parked_connections_the_clients_close_are_reaped() {
    let mut cfg = config();
    cfg.keepalive_idle = Duration::from_secs(60);
    let server = TestServer::start(cfg);
    let mut clients: Vec<Client> = (0..3).map(|_| Client::connect(server.addr)).collect();
    for client in &mut clients {
        round_trip(client, "/ok");
    }
    assert!(wait_until(Duration::from_secs(5), || server
        .server()
        .parked_connections()
        == 3));
    assert_eq!(server.server().open_connections(), 3);
    // One closes by FIN, one by reset (SO_LINGER 0), one stays.
    let fin = clients.remove(0);
    drop(fin);
    let reset = clients.remove(0);
    socket2::SockRef::from(&reset.stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(reset);
    assert!(
        wait_until(Duration::from_secs(5), || server
            .server()
            .open_connections()
            == 1),
        "both closed connections reaped long before the 60 s idle deadline"
    );
    assert_eq!(server.server().parked_connections(), 1);
    round_trip(&mut clients[0], "/ok");
}

#[test]
fn a_parked_connection_past_the_idle_deadline_is_closed_and_counted_out() {
    let mut cfg = config();
    cfg.keepalive_idle = Duration::from_millis(300);
    let server = TestServer::start(cfg);
    let mut client = Client::connect(server.addr);
    round_trip(&mut client, "/ok");
    let started = Instant::now();
    assert!(client.closes_within(Duration::from_secs(5)));
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(wait_until(Duration::from_secs(5), || server
        .server()
        .open_connections()
        == 0));
}

#[test]
fn pipelined_requests_after_a_parked_wait_are_answered_in_order() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    round_trip(&mut client, "/ok");
    assert!(wait_until(Duration::from_secs(5), || server
        .server()
        .parked_connections()
        == 1));
    // Three requests and the start of a fourth in one write: the poller hands the
    // connection over once; the rest is in the worker's buffer, not the socket.
    let mut batch = String::new();
    for i in 1..=3 {
        let body = format!("request number {i}");
        batch.push_str(&format!(
            "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    }
    batch.push_str("GET /big?n=7 HTTP/1.1\r\nHo");
    client.send(batch);
    for i in 1..=3 {
        let reply = client.read_reply().unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), format!("request number {i}"));
    }
    std::thread::sleep(Duration::from_millis(50));
    client.send("st: test\r\n\r\n");
    assert_eq!(client.read_reply().unwrap().body.len(), 7);
}

#[test]
fn with_every_worker_streaming_a_new_request_gets_503_at_once() {
    let mut cfg = config();
    cfg.workers = 2;
    let server = TestServer::start(cfg);
    let mut streams: Vec<Client> = (0..2).map(|_| Client::connect(server.addr)).collect();
    for stream in &mut streams {
        stream.get("/gated", "");
        assert_eq!(stream.read_stream_head().unwrap().status, 200);
        assert!(stream.read_chunk().unwrap().is_some());
    }
    let started = Instant::now();
    let reply = get_within(server.addr, "/ok", Duration::from_secs(2))
        .expect("an answer within two seconds, not after a stream");
    assert_eq!(reply.status, 503);
    assert!(reply.header("retry-after").is_some());
    assert!(reply.closes());
    assert!(started.elapsed() < Duration::from_secs(2));
    server.gate.open();
    for stream in &mut streams {
        while stream.read_chunk().unwrap().is_some() {}
    }
    server.assert_alive();
}

#[test]
fn queue_wait_is_reported_and_zero_for_a_pipelined_request() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    let first: u64 = round_trip(&mut client, "/queue-wait").parse().unwrap();
    assert!(
        first < 1_000_000,
        "a free worker took it up at once: {first} µs"
    );
    client.send(
        "GET /queue-wait HTTP/1.1\r\nHost: test\r\n\r\nGET /queue-wait HTTP/1.1\r\nHost: test\r\n\r\n",
    );
    let _ = client.read_reply().unwrap();
    let second = client.read_reply().unwrap();
    assert_eq!(
        second.text(),
        "0",
        "read from the buffer by the same worker"
    );
}

/// A worker that has written its answer is counted busy until the scheduler runs it again,
/// and the client that answer woke often runs first: with one worker, clients connecting back
/// to back were refused 503 "every worker is busy" about half the time (1,319 to 1,799 of
/// 3,000 here), on an idle machine too. The parking test with 5,000 idle connections failed
/// now and then for the same reason. A request now waits a moment for a worker that frees up.
#[test]
fn back_to_back_clients_of_a_single_worker_are_never_refused() {
    let mut cfg = config();
    cfg.workers = 1;
    let server = TestServer::start(cfg);
    let mut refused = Vec::new();
    for i in 0..3000 {
        let mut client = Client::connect(server.addr);
        client.get("/ok", "");
        let reply = client.read_reply().expect("an answer");
        if reply.status != 200 {
            refused.push((i, reply.status, reply.text()));
        }
    }
    assert!(
        refused.is_empty(),
        "{} refused, first: {:?}",
        refused.len(),
        refused.first()
    );
}
