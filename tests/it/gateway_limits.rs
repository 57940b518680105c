//! The gateway under pressure: streams hold no worker, and a client that leaves mid-stream
//! has its upstream call closed; past `MAX_CONNECTIONS` new connections get 503 + `retry-after`; a graceful
//! shutdown lets a stream in flight complete.

use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use serde_json::json;

use crate::support::client::{assert_error, get, post_json, wait_until, Conn};
use crate::support::gateway::Gateway;
use crate::support::upstream::{fixture_events, MockUpstream, Script, Step};

fn stream_request() -> serde_json::Value {
    json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "a long answer please"}],
        "stream": true,
    })
}

/// A stream of `events` content chunks `pace` apart, then a finish chunk and `[DONE]`.
fn paced_stream(events: usize, pace: Duration) -> Script {
    let fixture = fixture_events("openai/chat_completion_stream.sse");
    let mut steps = vec![Step::Event(fixture[0].clone())];
    for _ in 0..events {
        steps.push(Step::Pause(pace));
        steps.push(Step::Event(fixture[1].clone()));
    }
    steps.extend(fixture[3..].iter().cloned().map(Step::Event));
    Script::sse(steps)
}

#[test]
fn streams_hold_no_worker_and_a_client_leaving_mid_stream_closes_the_upstream_call() {
    // 300 × 100 ms: streams that would hold their workers for 30 s. With two workers, four of
    // them are served (the relay loop carries them, issue 18), a request besides them too, and
    // each client that leaves gets its upstream call closed.
    let upstream = MockUpstream::always(paced_stream(300, Duration::from_millis(100)));
    let gw = Gateway::in_front_of(&upstream, &[("WORKERS", "2")]);
    const CLIENTS: usize = 4;
    let mut streams: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let mut conn = Conn::open(gw.addr);
            conn.post_json("/v1/chat/completions", &stream_request());
            let head = conn.read_head();
            assert_eq!(head.status, 200, "client {i}");
            let mut sse = conn.sse();
            assert!(sse.next_event().is_some(), "client {i} got its first event");
            sse
        })
        .collect();
    let echo =
        json!({"model": "mock/echo", "messages": [{"role": "user", "content": "still here?"}]});
    assert_eq!(
        post_json(gw.addr, "/v1/chat/completions", &echo).status,
        200
    );
    // The worker that answered may count as busy until it runs again: the count settles.
    let mut server = serde_json::Value::Null;
    let settled = wait_until(Duration::from_secs(5), || {
        server = get(gw.addr, "/metrics").json()["server"].clone();
        server["connections"]["relayed"] == CLIENTS && server["workers"]["busy"] == 1
    });
    assert!(
        settled,
        "four streams relayed, only the metrics request in a worker: {server}"
    );
    for sse in streams.drain(..) {
        sse.into_conn().close();
    }
    assert!(
        wait_until(Duration::from_secs(10), || upstream.abandoned_streams()
            == CLIENTS),
        "the gateway closed each upstream call: {} of {CLIENTS} seen closed, {} completed",
        upstream.abandoned_streams(),
        upstream.completed_streams()
    );
    assert_eq!(upstream.completed_streams(), 0);
}

#[test]
fn connections_past_max_connections_get_503_with_retry_after() {
    let gw = Gateway::start(&[
        ("MAX_CONNECTIONS", "2"),
        ("WORKERS", "4"),
        ("CLIENT_HEADER_TIMEOUT", "20"),
    ]);
    // Two connections that send nothing hold both places.
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(gw.addr).unwrap())
        .collect();
    // Give the acceptor a moment to count them (it takes connections in arrival order, so
    // the next one is counted after them anyway).
    thread::sleep(Duration::from_millis(100));
    let mut conn = Conn::open(gw.addr);
    let reply = conn.read_reply();
    let e = assert_error(&reply, 503);
    assert_eq!(e["code"], "overloaded");
    assert_eq!(e["type"], "server_error");
    assert!(
        reply
            .header("retry-after")
            .is_some_and(|v| v.parse::<u64>().is_ok()),
        "retry-after {:?}",
        reply.header("retry-after")
    );
    assert_eq!(reply.header("connection"), Some("close"));

    drop(held);
    let echo = json!({"model": "mock/echo", "messages": [{"role": "user", "content": "room now"}]});
    let mut last = 0;
    let recovered = wait_until(Duration::from_secs(10), || {
        last = post_json(gw.addr, "/v1/chat/completions", &echo).status;
        last == 200
    });
    assert!(recovered, "after the held connections closed: {last}");
}

#[test]
fn graceful_shutdown_lets_a_stream_in_flight_complete() {
    let upstream = MockUpstream::always(paced_stream(10, Duration::from_millis(100)));
    let gw = Gateway::in_front_of(&upstream, &[("SHUTDOWN_GRACE_SECS", "10")]);
    let addr = gw.addr;
    let mut conn = Conn::open(addr);
    conn.post_json("/v1/chat/completions", &stream_request());
    assert_eq!(conn.read_head().status, 200);
    let mut sse = conn.sse();
    let first = sse.next_event().expect("first event before shutdown");
    let shutdown = thread::spawn(move || gw.shutdown());
    let mut events = vec![first];
    events.extend(sse.rest());
    assert_eq!(
        events.len(),
        1 + 10 + 1 + 1,
        "every chunk, the usage chunk dropped: {events:?}"
    );
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(
        shutdown.join().unwrap(),
        "shutdown finished within the grace period"
    );
    assert_eq!(upstream.completed_streams(), 1);
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "no longer listening"
    );
}
