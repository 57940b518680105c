//! A worker keeps its allocator cache only while few requests are in flight
//! (`ServerConfig::thread_cache`, `cached_requests`): the layer calls the application's switch
//! on the worker's own thread when the answer changes, before the request is read. The switch
//! here records the state in a thread-local that the `/cache` route reads back.

use std::cell::Cell;

use super::{config, TestServer};
use crate::support::raw::Client;

thread_local! {
    /// The state last set on this thread (a thread starts with its cache on).
    static CACHE_ON: Cell<bool> = const { Cell::new(true) };
}

/// The switch given to the server.
fn switch(on: bool) {
    CACHE_ON.with(|c| c.set(on));
}

/// What the `/cache` route answers: "on" or "off", as the switch last left this thread.
pub fn state() -> &'static str {
    if CACHE_ON.with(Cell::get) {
        "on"
    } else {
        "off"
    }
}

fn cache_state(client: &mut Client) -> String {
    client.get("/cache", "");
    let reply = client.read_reply().expect("an answer");
    assert_eq!(reply.status, 200);
    reply.text()
}

#[test]
fn a_worker_serves_without_its_cache_while_more_requests_than_allowed_are_in_flight() {
    let mut cfg = config();
    cfg.cached_requests = 2;
    cfg.thread_cache = Some(switch);
    let server = TestServer::start(cfg);
    let mut client = Client::connect(server.addr);
    assert_eq!(cache_state(&mut client), "on", "one request in flight");

    // Two streams hold two workers; the next request is the third in flight.
    let mut streams: Vec<Client> = (0..2).map(|_| Client::connect(server.addr)).collect();
    for stream in &mut streams {
        stream.get("/gated", "");
        assert_eq!(stream.read_stream_head().unwrap().status, 200);
        assert!(stream.read_chunk().unwrap().is_some());
    }
    let mut crowded = Client::connect(server.addr);
    assert_eq!(cache_state(&mut crowded), "off", "three requests in flight");

    server.gate.open();
    for stream in &mut streams {
        while stream.read_chunk().unwrap().is_some() {}
    }
    let _ = server.outcome();
    let _ = server.outcome();
    // The same connection at once: most likely the same worker, still lingering for it, which
    // takes its cache back; any other worker has it on.
    assert_eq!(
        cache_state(&mut crowded),
        "on",
        "one request in flight again"
    );
    assert_eq!(cache_state(&mut client), "on");
}

#[test]
fn without_a_switch_the_server_leaves_the_cache_alone() {
    let mut cfg = config();
    cfg.cached_requests = 0;
    let server = TestServer::start(cfg);
    let mut client = Client::connect(server.addr);
    assert_eq!(cache_state(&mut client), "on");
}
