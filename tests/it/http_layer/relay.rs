//! Streams handed to the relay loop (`Stream::detach`): they hold no worker, arrive whole and
//! in order (as chunks, with the client's back-pressure), end with the pump's own bytes when
//! their source goes silent, report a client that left or stopped reading, keep their
//! connection alive for the next request (pipelined or not), a pump that panics cuts only its
//! own stream, and graceful shutdown waits for them. What the source has when the stream is
//! detached goes out from the worker (a body that is all there never reaches a relay thread,
//! and a client gone before its first byte gets no time to first byte); a light load stays on
//! the first relay thread; a lane kept busy moves streams to another, and they arrive whole
//! there.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use llmcallgateway::http::{Pump, Pumped, Request, Responder};

use super::{config, param, StreamOutcome, TestHandler, TestServer};
use crate::support::client::wait_until;
use crate::support::raw::{get_within, Client};

/// A pump over one end of a socket pair: passes the bytes on as they come.
struct PairPump {
    source: UnixStream,
    idle: Duration,
    /// Panics on its first pump (`/relayed?panic=1`).
    panics: bool,
    /// Keeps its lane busy this long on every pump (`busy_us`).
    busy: Duration,
    /// Puts an SSE comment naming the relay thread before what each pump read (`lane=1`).
    tag_lane: bool,
    delivered_bytes: usize,
    report: std::sync::mpsc::Sender<StreamOutcome>,
}

impl Pump for PairPump {
    fn source(&self) -> RawFd {
        self.source.as_raw_fd()
    }

    fn idle_timeout(&self) -> Duration {
        self.idle
    }

    fn pump(&mut self, out: &mut Vec<u8>) -> Pumped {
        assert!(!self.panics, "the test pump panics on purpose");
        let spin_until = Instant::now() + self.busy;
        while Instant::now() < spin_until {
            std::hint::spin_loop();
        }
        if self.tag_lane {
            let name = thread::current().name().unwrap_or("?").to_string();
            out.extend_from_slice(format!(": {name}\n\n").as_bytes());
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.source.read(&mut buf) {
                Ok(0) => return Pumped::End,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    self.delivered_bytes += n;
                    if out.len() >= 16 * 1024 {
                        return Pumped::More;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Pumped::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Pumped::End,
            }
        }
    }

    fn idle(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: idle\n\n");
    }

    fn finish(self: Box<Self>, first_sent: Option<Instant>, delivered: bool) {
        let _ = self.report.send(StreamOutcome {
            sent: self.delivered_bytes,
            gone: !delivered,
            first_sent: first_sent.is_some(),
        });
    }
}

/// `/relayed`: the head on the worker, then the pump to the relay loop; a thread writes the
/// events into the pair.
pub(super) fn start(handler: &TestHandler, req: &Request, res: &mut Responder<'_>) {
    let n = param(req, "n").unwrap_or(3) as usize;
    let size = param(req, "size").unwrap_or(0) as usize;
    let pause = Duration::from_millis(param(req, "ms").unwrap_or(10));
    let silent = param(req, "silent").is_some();
    let idle = Duration::from_millis(param(req, "idle_ms").unwrap_or(10_000));
    let (source, mut sink) = UnixStream::pair().expect("a socket pair");
    source.set_nonblocking(true).expect("non-blocking source");
    let write_events = move || {
        for i in 0..n {
            if i > 0 {
                thread::sleep(pause);
            }
            let event = format!("data: {i} {}\n\n", "x".repeat(size));
            if sink.write_all(event.as_bytes()).is_err() {
                return;
            }
        }
        if silent {
            thread::sleep(Duration::from_secs(30));
        }
        // The source ends here.
        drop(sink);
    };
    // `pre=1`: the whole body is in the pair, and its end, before the stream is detached.
    if param(req, "pre").is_some() {
        write_events();
    } else {
        thread::spawn(write_events);
    }
    let report = handler
        .outcomes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let headers = vec![("content-type".to_string(), "text/event-stream".to_string())];
    let Ok(stream) = res.stream(200, &headers) else {
        return;
    };
    let pump = Box::new(PairPump {
        source,
        idle,
        panics: param(req, "panic").is_some(),
        busy: Duration::from_micros(param(req, "busy_us").unwrap_or(0)),
        tag_lane: param(req, "lane").is_some(),
        delivered_bytes: 0,
        report,
    });
    if stream.detach(pump).is_err() {
        panic!("the test server has a relay loop");
    }
}

/// A new connection (reads time out after 5 s) that has sent `GET path`.
fn request(server: &TestServer, path: &str) -> Client {
    let mut client = Client::connect(server.addr);
    client.read_timeout(Duration::from_secs(5));
    client.get(path, "");
    client
}

/// Reads a chunked stream to its end: the events' data lines.
fn read_events(client: &mut Client) -> Vec<String> {
    let head = client.read_stream_head().expect("the stream's head");
    assert_eq!(head.status, 200);
    let mut body = Vec::new();
    while let Some(chunk) = client.read_chunk().expect("a chunk") {
        body.extend(chunk);
    }
    String::from_utf8(body)
        .unwrap()
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.trim_start_matches("data: ").to_string())
        .collect()
}

#[test]
fn a_relayed_stream_holds_no_worker_and_arrives_whole_on_a_reusable_connection() {
    let mut cfg = config();
    cfg.workers = 1;
    let server = TestServer::start(cfg);
    let mut client = request(&server, "/relayed?n=6&ms=100");
    let head = client.read_stream_head().expect("the stream's head");
    assert_eq!(head.status, 200);
    // The only worker is free while the stream runs: with a worker per stream this request
    // would wait in the poller's grace and get a 503.
    for _ in 0..3 {
        let reply = get_within(server.addr, "/ok", Duration::from_secs(2)).expect("an answer");
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let mut body = Vec::new();
    while let Some(chunk) = client.read_chunk().expect("a chunk") {
        body.extend(chunk);
    }
    let expected: String = (0..6).map(|i| format!("data: {i} \n\n")).collect();
    assert_eq!(String::from_utf8(body).unwrap(), expected);
    assert_eq!(
        server.outcome(),
        StreamOutcome {
            sent: expected.len(),
            gone: false,
            first_sent: true
        }
    );
    // The connection serves the next request.
    client.get("/ok", "");
    let reply = client
        .read_reply()
        .expect("the next answer on the same connection");
    assert_eq!(reply.text(), "ok");
    assert!(!reply.closes());
}

/// The time to first byte is when the socket took it: a client reset before the worker's first
/// write of a body that was all there has none (it was stamped before the write once).
#[test]
fn a_body_written_to_a_client_already_gone_has_no_first_byte() {
    let server = TestServer::start(config());
    // Every pump spins 300 ms first, time for the client to read the head and reset.
    let mut client = request(&server, "/relayed?n=3&pre=1&busy_us=300000");
    client.read_stream_head().expect("the stream's head");
    socket2::SockRef::from(&client.stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(client);
    let outcome = server.outcome();
    assert!(outcome.gone, "the body is reported not delivered");
    assert!(!outcome.first_sent, "no first byte reached the client");
    server.assert_alive();
}

#[test]
fn a_large_fast_stream_to_a_slow_reader_arrives_intact() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    client.read_timeout(Duration::from_secs(10));
    // 2,000 events of 2 KB written as fast as the pair takes them; the client reads nothing
    // for a while, so the relay must hold back and resume as the client drains.
    client.get("/relayed?n=2000&size=2000&ms=0", "");
    thread::sleep(Duration::from_millis(300));
    let events = read_events(&mut client);
    assert_eq!(events.len(), 2000);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(*event, format!("{i} {}", "x".repeat(2000)));
    }
    assert!(!server.outcome().gone);
}

#[test]
fn a_silent_source_ends_with_the_pumps_own_bytes_after_its_idle_timeout() {
    let server = TestServer::start(config());
    let mut client = request(&server, "/relayed?n=1&silent=1&idle_ms=300");
    let started = Instant::now();
    let events = read_events(&mut client);
    assert_eq!(events, ["0 ", "idle"]);
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(!server.outcome().gone);
}

#[test]
fn a_client_that_leaves_a_relayed_stream_is_reported_and_its_connection_counted_out() {
    let server = TestServer::start(config());
    let mut client = request(&server, "/relayed?n=50&ms=50");
    client.read_stream_head().expect("the stream's head");
    client.read_chunk().expect("the first chunk");
    drop(client);
    assert!(
        server.outcome().gone,
        "the stream is reported not delivered"
    );
    assert!(
        wait_until(Duration::from_secs(5), || server
            .server()
            .open_connections()
            == 0),
        "the connection is counted out"
    );
    server.assert_alive();
}

#[test]
fn a_client_that_stops_reading_is_dropped_after_the_send_timeout() {
    let mut cfg = config();
    cfg.send_timeout = Duration::from_millis(500);
    let server = TestServer::start(cfg);
    let mut client = Client::connect(server.addr);
    // 20 MB the client never reads: the socket buffers fill and the relay waits on the client.
    client.get("/relayed?n=10000&size=2000&ms=0", "");
    let outcome = server
        .outcomes
        .recv_timeout(Duration::from_secs(10))
        .expect("the stalled stream ends");
    assert!(outcome.gone);
    drop(client);
    server.assert_alive();
}

#[test]
fn a_request_pipelined_behind_a_relayed_stream_is_answered_after_it() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    client.read_timeout(Duration::from_secs(5));
    client.send(
        "GET /relayed?n=3&ms=50 HTTP/1.1\r\nhost: x\r\n\r\nGET /ok HTTP/1.1\r\nhost: x\r\n\r\n",
    );
    let events = read_events(&mut client);
    assert_eq!(events, ["0 ", "1 ", "2 "]);
    let reply = client.read_reply().expect("the pipelined answer");
    assert_eq!(reply.text(), "ok");
}

#[test]
fn graceful_shutdown_waits_for_relayed_streams() {
    let mut server = TestServer::start(config());
    let mut client = request(&server, "/relayed?n=4&ms=150");
    client.read_stream_head().expect("the stream's head");
    let running = server.take();
    let shutdown = thread::spawn(move || running.shutdown());
    let mut body = Vec::new();
    while let Some(chunk) = client.read_chunk().expect("a chunk") {
        body.extend(chunk);
    }
    assert_eq!(
        body.iter().filter(|b| **b == b'\n').count(),
        8,
        "all four events"
    );
    assert!(
        shutdown.join().unwrap(),
        "shutdown finished within its grace"
    );
}

#[test]
fn a_pump_that_panics_cuts_only_its_own_stream() {
    let server = TestServer::start(config());
    let mut steady = request(&server, "/relayed?n=5&ms=100");
    steady.read_stream_head().expect("the steady stream's head");
    let mut doomed = request(&server, "/relayed?panic=1");
    doomed.read_stream_head().expect("the doomed stream's head");
    assert!(
        doomed.read_chunk().is_err(),
        "the panicking stream is cut, not ended"
    );
    assert!(server.outcome().gone, "the cut stream is reported");
    // The other stream on the relay loop goes on to its end, and new ones are carried.
    let mut events = 0;
    while let Some(chunk) = steady.read_chunk().expect("a chunk") {
        events += chunk.iter().filter(|b| **b == b'\n').count() / 2;
    }
    assert_eq!(events, 5);
    let mut next = request(&server, "/relayed?n=2&ms=10");
    assert_eq!(read_events(&mut next), ["0 ", "1 "]);
    assert!(
        wait_until(Duration::from_secs(5), || server
            .server()
            .open_connections()
            == 2),
        "the cut connection is counted out"
    );
}

/// Reads a stream of `/relayed?lane=1` to its end: its events' data, and the threads that
/// carried it (in the order they did): the worker that detached it, then relay threads.
fn read_lanes(client: &mut Client) -> (Vec<String>, Vec<String>) {
    let (mut events, mut lanes) = (Vec::new(), Vec::<String>::new());
    for event in read_events(client) {
        match event.strip_prefix(": ") {
            Some(lane) => {
                if lanes.last().map(String::as_str) != Some(lane) {
                    lanes.push(lane.to_string());
                }
            }
            None => events.push(event),
        }
    }
    (events, lanes)
}

#[test]
fn a_light_load_stays_on_the_first_relay_thread() {
    let server = TestServer::start(config());
    let mut clients: Vec<Client> = (0..4)
        .map(|_| request(&server, "/relayed?n=10&ms=20&lane=1"))
        .collect();
    for client in &mut clients {
        let (events, lanes) = read_lanes(client);
        assert_eq!(events, (0..10).map(|i| format!("{i} ")).collect::<Vec<_>>());
        assert!(lanes[0].starts_with("worker-"), "{lanes:?}");
        assert_eq!(lanes[1..], ["relay-1"]);
    }
}

#[test]
fn a_body_that_is_all_there_when_detached_ends_on_its_worker() {
    let server = TestServer::start(config());
    let mut client = request(&server, "/relayed?n=5&ms=0&pre=1&lane=1");
    let (events, lanes) = read_lanes(&mut client);
    assert_eq!(events, ["0 ", "1 ", "2 ", "3 ", "4 "]);
    assert_eq!(lanes.len(), 1, "no relay thread: {lanes:?}");
    assert!(lanes[0].starts_with("worker-"), "{lanes:?}");
    assert!(!server.outcome().gone);
    client.get("/ok", "");
    let reply = client.read_reply().expect("the next answer");
    assert_eq!(reply.text(), "ok");
}

#[test]
fn a_lane_kept_busy_moves_streams_to_another_and_they_arrive_whole() {
    let server = TestServer::start(config());
    // Each pump keeps its lane busy 2 ms, and each stream has an event every 5 ms: four streams
    // keep one lane busy all the time, so at its next tick it moves about half of them (two
    // per lane keep each 80% busy, under the 80% that makes a lane move streams).
    let mut clients: Vec<Client> = (0..4)
        .map(|_| request(&server, "/relayed?n=80&ms=5&busy_us=2000&lane=1"))
        .collect();
    let mut moved = 0;
    for client in &mut clients {
        let (events, lanes) = read_lanes(client);
        assert_eq!(events, (0..80).map(|i| format!("{i} ")).collect::<Vec<_>>());
        assert!(lanes[0].starts_with("worker-"), "{lanes:?}");
        assert_eq!(lanes[1], "relay-1", "then the first lane: {lanes:?}");
        if lanes.len() > 2 {
            assert_eq!(lanes[2], "relay-2", "and moves to the other: {lanes:?}");
            moved += 1;
        }
        // The connection of a moved stream serves the next request.
        client.get("/ok", "");
        let reply = client.read_reply().expect("the next answer");
        assert_eq!(reply.text(), "ok");
    }
    assert!(moved > 0, "the busy lane moved streams");
}
