//! The server's life: the connection cap, handler panics, clients that leave mid-stream,
//! graceful shutdown, and an acceptor that survives running out of file descriptors (tested
//! in a child process: this test binary run again with a low descriptor limit).

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use llmcallgateway::http::{self, Server};

use super::{config, StreamOutcome, TestServer};
use crate::support::client::wait_until;
use crate::support::raw::{get, get_within, heavy, Client, Peer};

#[test]
fn connection_cap_answers_503_with_retry_after_without_taking_a_worker() {
    let mut cfg = config();
    cfg.workers = 2;
    cfg.max_connections = 2;
    cfg.header_timeout = Duration::from_secs(20);
    let mut server = TestServer::start(cfg);
    // Two connections, each holding a worker with a head that is not finished yet.
    let mut first = Client::connect(server.addr);
    first.send("GET /ok HTTP/1.1\r\n");
    let mut second = Client::connect(server.addr);
    second.send("GET /ok HTTP/1.1\r\n");
    assert!(wait_until(Duration::from_secs(10), || server
        .server()
        .open_connections()
        == 2));

    let mut third = Client::connect(server.addr);
    let reply = third
        .read_reply()
        .expect("an immediate answer over the cap");
    assert_eq!(reply.status, 503);
    assert!(reply.header("retry-after").is_some());
    assert!(reply.closes());
    assert!(third.closes_within(Duration::from_secs(5)));
    assert_eq!(server.server().open_connections(), 2);

    // Both workers were still free for the held connections.
    for client in [&mut first, &mut second] {
        client.send("Host: test\r\nConnection: close\r\n\r\n");
        assert_eq!(client.read_reply().unwrap().status, 200);
    }
    assert!(wait_until(Duration::from_secs(10), || server
        .server()
        .open_connections()
        == 0));
    server.assert_alive();
    assert!(server.take().shutdown());
}

#[test]
fn handler_panic_gives_500_and_the_next_connection_is_served() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    client.get("/panic", "");
    let reply = client.read_reply().unwrap();
    assert_eq!(reply.status, 500);
    assert!(reply.closes());
    assert!(client.closes_within(Duration::from_secs(5)));
    for _ in 0..3 {
        let reply = get(server.addr, "/ok").unwrap();
        assert_eq!(reply.status, 200);
    }
    server.assert_alive();
}

#[test]
fn stream_learns_the_client_left_on_a_following_write() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    client.get("/stream?n=500&ms=10", "");
    assert_eq!(client.read_stream_head().unwrap().status, 200);
    assert!(client.read_chunk().unwrap().is_some());
    drop(client);
    let outcome = server.outcome();
    assert!(outcome.gone, "the handler was told the client is gone");
    assert!(outcome.sent < 500, "the stream stopped early: {outcome:?}");
    server.assert_alive();
}

#[test]
fn graceful_shutdown_finishes_streams_refuses_new_connections_and_closes_idle_ones() {
    let mut cfg = config();
    cfg.keepalive_idle = Duration::from_secs(60);
    cfg.shutdown_grace = Duration::from_secs(30);
    let mut server = TestServer::start(cfg);
    let addr = server.addr;

    let mut idle = Client::connect(addr);
    idle.get("/ok", "");
    assert_eq!(idle.read_reply().unwrap().status, 200);

    let mut streaming = Client::connect(addr);
    streaming.get("/gated", "");
    assert_eq!(streaming.read_stream_head().unwrap().status, 200);
    assert!(streaming.read_chunk().unwrap().is_some());

    let running = server.take();
    let shutting = thread::spawn(move || running.shutdown());

    // The idle keep-alive connection is closed long before its 60 s idle deadline.
    assert!(
        idle.closes_within(Duration::from_secs(5)),
        "idle connection closed promptly"
    );
    // New connections are refused while the stream is still in flight.
    assert!(
        wait_until(Duration::from_secs(5), || TcpStream::connect_timeout(
            &addr,
            Duration::from_secs(1)
        )
        .is_err()),
        "new connections refused during shutdown"
    );
    assert!(!shutting.is_finished(), "shutdown waits for the stream");

    server.gate.open();
    assert_eq!(
        streaming.read_chunk().unwrap().as_deref(),
        Some(&b"data: second\n\n"[..])
    );
    assert_eq!(
        streaming.read_chunk().unwrap().as_deref(),
        Some(&b"data: third\n\n"[..])
    );
    assert_eq!(streaming.read_chunk().unwrap(), None, "terminating chunk");
    assert_eq!(
        server.outcome(),
        StreamOutcome {
            sent: 3,
            gone: false,
            first_sent: true
        }
    );
    assert!(shutting.join().unwrap(), "shutdown finished within grace");
    assert!(streaming.closes_within(Duration::from_secs(5)));
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

#[test]
fn shutdown_of_an_idle_server_returns_true_promptly() {
    let mut server = TestServer::start(config());
    server.assert_alive();
    let started = Instant::now();
    assert!(server.take().shutdown());
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn shutdown_past_the_grace_period_returns_false() {
    let mut cfg = config();
    cfg.shutdown_grace = Duration::from_millis(300);
    let mut server = TestServer::start(cfg);
    let mut streaming = Client::connect(server.addr);
    streaming.get("/gated", "");
    assert!(streaming.read_stream_head().is_ok());
    assert!(streaming.read_chunk().unwrap().is_some());
    assert!(
        !server.take().shutdown(),
        "a stream outlived the grace period"
    );
    server.gate.open();
}

/// Set in the environment of the child process that runs [`emfile_child_server`].
const CHILD_ENV: &str = "HTTP_LAYER_EMFILE_CHILD";
const CHILD_NOFILE: u64 = 64;

/// Not a test on its own: the server process for
/// [`acceptor_survives_running_out_of_descriptors`], started as a child with a low open-file
/// limit. Prints `listening on http://ADDR` and serves until its stdin closes (at most 2 min).
#[test]
#[ignore = "runs only as the child of acceptor_survives_running_out_of_descriptors"]
fn emfile_child_server() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    // The server raises the soft limit to the hard one, so lower both.
    rlimit::setrlimit(rlimit::Resource::NOFILE, CHILD_NOFILE, CHILD_NOFILE)
        .expect("lower the open-file limit");
    let mut cfg = config();
    cfg.workers = 200;
    cfg.max_connections = 500;
    cfg.header_timeout = Duration::from_secs(60);
    let server = TestServer::start(cfg);
    println!("\nlistening on http://{}", server.addr);
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        let _ = done_tx.send(());
    });
    let _ = done_rx.recv_timeout(Duration::from_secs(120));
}

/// Kills and reaps the child however the test ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn acceptor_survives_running_out_of_descriptors() {
    let _heavy = heavy();
    let name = format!(
        "{}::emfile_child_server",
        module_path!().split_once("::").map_or("", |(_, rest)| rest)
    );
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &name, "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child server");
    let mut child = ChildGuard(child);

    let stdout = child.0.stdout.take().unwrap();
    let (addr_tx, addr_rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            // libtest may print the test's name on the same line first.
            if let Some((_, addr)) = line.split_once("listening on http://") {
                let _ = addr_tx.send(addr.trim().parse::<SocketAddr>().ok());
            }
        }
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the child prints its address")
        .expect("a socket address");
    let reply = get(addr, "/ok").expect("the child server answers");
    assert_eq!(reply.status, 200);

    // More connections than the child has descriptors; they wait in the backlog once it has
    // none left, and its accept() fails with EMFILE meanwhile.
    let mut held = Vec::new();
    for i in 0..100 {
        let conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        held.push(conn);
    }
    thread::sleep(Duration::from_millis(1500));
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the child server is still running with its descriptors exhausted"
    );
    // A request on a connection accepted late (in the backlog now) is not answered yet, or
    // is answered once descriptors free up; either way the process lives on.
    drop(held);

    let recovered = wait_until(Duration::from_secs(10), || {
        get_within(addr, "/ok", Duration::from_secs(2)).is_ok_and(|r| r.status == 200)
    });
    assert!(
        recovered,
        "a new connection is served once descriptors are free"
    );
    let reply = get_within(addr, "/ok", Duration::from_secs(2)).expect("served again");
    assert_eq!(reply.status, 200);
    assert!(child.0.try_wait().unwrap().is_none());
}

#[test]
fn server_started_on_a_bound_listener_reports_its_address() {
    let listener = http::bind("127.0.0.1:0".parse().unwrap(), 64).unwrap();
    let expected = listener.local_addr().unwrap();
    let server = Server::start(
        listener,
        config(),
        std::sync::Arc::new(super::TestHandler {
            outcomes: std::sync::Mutex::new(mpsc::channel().0),
            gate: Default::default(),
        }),
    )
    .unwrap();
    assert_eq!(server.local_addr(), expected);
    assert_eq!(server.open_connections(), 0);
    let mut client = Client::connect(expected);
    client.get("/ok", "");
    assert_eq!(client.read_reply().unwrap().status, 200);
    assert_eq!(client.wait_peer(Duration::from_millis(50)), Peer::Open);
    drop(client);
    assert!(server.shutdown());
}
