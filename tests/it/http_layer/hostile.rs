//! Hostile input: slow, huge, malformed and contradictory requests. After every attack the
//! server (which runs in this test process) is alive and answers a normal request within a
//! second.

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use super::{config, TestServer};
use crate::support::raw::{heavy, is_timeout, rss_kib, Client};

/// Sends `bytes` on a new connection and returns the status of the answer, checking that the
/// server closes the connection after it.
fn rejected_with(server: &TestServer, bytes: &[u8]) -> u16 {
    let mut client = Client::connect(server.addr);
    // The server may answer and close before everything is written; that is fine.
    let _ = client.try_send(bytes);
    let reply = client.read_reply().expect("an answer to the bad request");
    assert!(reply.closes(), "a rejected request closes the connection");
    assert!(
        client.closes_within(Duration::from_secs(5)),
        "the server closes after rejecting"
    );
    reply.status
}

#[test]
fn slow_head_gets_408_then_close() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    client.send("GET /ok HTTP/1.1\r\nHost: te");
    let started = Instant::now();
    let reply = client.read_reply().expect("a 408 answer");
    assert_eq!(reply.status, 408);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "not cut before the header deadline"
    );
    assert!(client.closes_within(Duration::from_secs(5)));
    server.assert_alive();
}

#[test]
fn trickled_head_is_cut_at_the_header_deadline_not_per_read() {
    // One byte every 100 ms keeps each read short; the deadline covers the whole head.
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    let head = b"GET /ok HTTP/1.1\r\nHost: test\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut cut = false;
    for byte in head.iter() {
        if client.try_send([*byte]).is_err() {
            cut = true;
            break;
        }
        if client.wait_peer(Duration::from_millis(100)) != crate::support::raw::Peer::Open {
            cut = true;
            break;
        }
    }
    assert!(cut, "the server cut the trickle before the head was done");
    let reply = client.read_reply().expect("a 408 answer");
    assert_eq!(reply.status, 408);
    server.assert_alive();
}

#[test]
fn head_over_64_kib_gets_431() {
    let server = TestServer::start(config());
    let mut head = String::from("GET /ok HTTP/1.1\r\nHost: test\r\n");
    for i in 0..100 {
        head.push_str(&format!("X-Pad-{i}: {}\r\n", "p".repeat(700)));
    }
    head.push_str("\r\n");
    assert!(head.len() > 64 * 1024);
    assert_eq!(rejected_with(&server, head.as_bytes()), 431);
    server.assert_alive();
}

#[test]
fn one_mebibyte_header_line_gets_431() {
    let server = TestServer::start(config());
    let head = format!(
        "GET /ok HTTP/1.1\r\nHost: test\r\nX-Huge: {}\r\n\r\n",
        "h".repeat(1024 * 1024)
    );
    assert_eq!(rejected_with(&server, head.as_bytes()), 431);
    server.assert_alive();
}

#[test]
fn ten_thousand_headers_get_431() {
    let server = TestServer::start(config());
    let mut head = String::from("GET /ok HTTP/1.1\r\nHost: test\r\n");
    for i in 0..10_000 {
        head.push_str(&format!("X-{i}: v\r\n"));
    }
    head.push_str("\r\n");
    assert_eq!(rejected_with(&server, head.as_bytes()), 431);
    server.assert_alive();
}

#[test]
fn a_few_hundred_headers_within_64_kib_get_431_too_many() {
    let server = TestServer::start(config());
    let mut head = String::from("GET /ok HTTP/1.1\r\nHost: test\r\n");
    for i in 0..150 {
        head.push_str(&format!("X-{i}: v\r\n"));
    }
    head.push_str("\r\n");
    assert!(head.len() < 64 * 1024);
    assert_eq!(rejected_with(&server, head.as_bytes()), 431);
    server.assert_alive();
}

#[test]
fn malformed_request_lines_get_400() {
    let server = TestServer::start(config());
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET\r\nHost: test\r\n\r\n",
        b"GET /ok HTTP/1.1 extra\r\nHost: test\r\n\r\n",
        b"GET /o k HTTP/1.1\r\nHost: test\r\n\r\n",
        b"GET /ok HTTX/1.1\r\nHost: test\r\n\r\n",
        b"GET http//no-slash HTTP/1.1\r\nHost: test\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
        b"GET /ok HTTP/1.1\r\nBad Header Name: v\r\nHost: test\r\n\r\n",
        b"GET /ok HTTP/1.1\r\n\r\n",
    ] {
        let status = rejected_with(&server, bad);
        assert_eq!(status, 400, "for {:?}", String::from_utf8_lossy(bad));
    }
    server.assert_alive();
}

#[test]
fn unterminated_64_mib_head_is_cut_with_bounded_memory() {
    let _heavy = heavy();
    let server = TestServer::start(config());
    let before = rss_kib();
    let mut client = Client::connect(server.addr);
    let mut writer = client.stream.try_clone().unwrap();
    let sender = thread::spawn(move || {
        // 64 MiB of one endless request line, written from a small buffer.
        let piece = vec![b'a'; 64 * 1024];
        let _ = writer.write_all(b"GET /");
        let mut written = 0usize;
        while written < 64 * 1024 * 1024 {
            if writer.write_all(&piece).is_err() {
                break;
            }
            written += piece.len();
        }
        written
    });
    let reply = client
        .read_reply()
        .expect("an answer while the client still sends");
    assert_eq!(reply.status, 431);
    assert!(client.closes_within(Duration::from_secs(10)));
    let written = sender.join().unwrap();
    let grown_kib = rss_kib().saturating_sub(before);
    assert!(
        grown_kib < 50 * 1024,
        "resident memory grew by {grown_kib} KiB after {written} bytes"
    );
    server.assert_alive();
}

#[test]
fn content_length_of_100_tb_with_short_body_gets_413_at_once() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    client
        .send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100000000000000\r\n\r\nshort");
    let reply = client.read_reply().unwrap();
    // Not a 408 after waiting for the body: the declared length alone decides.
    assert_eq!(reply.status, 413);
    assert!(reply.closes());
    server.assert_alive();
}

#[test]
fn content_length_over_max_body_bytes_gets_413() {
    let server = TestServer::start(config());
    let body = vec![b'b'; 64 * 1024 + 1];
    let mut bytes = format!(
        "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(&body);
    assert_eq!(rejected_with(&server, &bytes), 413);
    // Exactly the cap is fine.
    let mut client = Client::connect(server.addr);
    let body = vec![b'b'; 64 * 1024];
    client.send(format!(
        "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    client.send(&body);
    let reply = client.read_reply().unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), body.len());
    server.assert_alive();
}

#[test]
fn chunked_body_over_max_body_bytes_gets_413() {
    let server = TestServer::start(config());
    let mut bytes =
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..5 {
        bytes.extend_from_slice(b"4000\r\n");
        bytes.extend_from_slice(&[b'c'; 0x4000]);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(rejected_with(&server, &bytes), 413);
    // A chunk declaring an absurd size is refused before any of it arrives.
    let huge = b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFF\r\nabc";
    assert_eq!(rejected_with(&server, huge), 413);
    server.assert_alive();
}

#[test]
fn malformed_chunked_bodies_get_400() {
    let server = TestServer::start(config());
    let head = "POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (what, body) in [
        ("bad hex", "zz\r\nhello\r\n0\r\n\r\n"),
        ("negative size", "-5\r\nhello\r\n0\r\n\r\n"),
        (
            "missing CRLF after data",
            "5\r\nhelloXX5\r\nhello\r\n0\r\n\r\n",
        ),
        ("bare LF after size", "5\nhello\r\n0\r\n\r\n"),
        ("bare LF after data", "5\r\nhello\n0\r\n\r\n"),
        (
            "size overflowing u64",
            "1ffffffffffffffffff\r\nx\r\n0\r\n\r\n",
        ),
    ] {
        let status = rejected_with(&server, format!("{head}{body}").as_bytes());
        assert_eq!(status, 400, "for {what}");
    }
    server.assert_alive();
}

#[test]
fn chunk_sizes_summing_past_u64_get_400() {
    // One byte, then a chunk of u64::MAX bytes: their sum does not fit a u64.
    let server = TestServer::start(config());
    let status = rejected_with(
        &server,
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
          1\r\na\r\nffffffffffffffff\r\nbcd\r\n0\r\n\r\n",
    );
    assert_eq!(status, 400);
    // Alone, a chunk that large is only too large.
    let status = rejected_with(
        &server,
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
          ffffffffffffffff\r\nbcd\r\n0\r\n\r\n",
    );
    assert_eq!(status, 413);
    server.assert_alive();
    assert!(
        crate::support::client::wait_until(Duration::from_secs(10), || server
            .server()
            .open_connections()
            == 0),
        "no connection left counted"
    );
}

#[test]
fn content_length_with_transfer_encoding_gets_400() {
    let server = TestServer::start(config());
    let status = rejected_with(
        &server,
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(status, 400);
    let status = rejected_with(
        &server,
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(status, 400);
    server.assert_alive();
}

#[test]
fn invalid_or_conflicting_content_lengths_get_400() {
    let server = TestServer::start(config());
    for cl in [
        "Content-Length: -1",
        "Content-Length: 1e3",
        "Content-Length: 5\r\nContent-Length: 6",
    ] {
        let status = rejected_with(
            &server,
            format!("POST /echo HTTP/1.1\r\nHost: test\r\n{cl}\r\n\r\nhello").as_bytes(),
        );
        assert_eq!(status, 400, "for {cl:?}");
    }
    server.assert_alive();
}

#[test]
fn slow_body_gets_408() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    client.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc");
    let reply = client.read_reply().expect("a 408 answer");
    assert_eq!(reply.status, 408);
    assert!(client.closes_within(Duration::from_secs(5)));
    // A chunked body stalled in the middle of a chunk is cut the same way.
    let mut client = Client::connect(server.addr);
    client.send("POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc");
    assert_eq!(client.read_reply().unwrap().status, 408);
    server.assert_alive();
}

#[test]
fn client_that_connects_and_sends_nothing_is_closed_quietly() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    assert!(client.closes_within(Duration::from_secs(10)));
    assert!(
        client.buffered().is_empty(),
        "no 408 for an empty connection"
    );
    server.assert_alive();
}

#[test]
fn five_hundred_slowloris_connections_are_cut_while_normal_requests_are_served() {
    let _heavy = heavy();
    let mut cfg = config();
    cfg.workers = 600;
    cfg.max_connections = 700;
    // Long enough that the slow connections are still open for several rounds below even
    // when the 500 connects take a while on a loaded machine.
    cfg.header_timeout = Duration::from_secs(2);
    let server = TestServer::start(cfg);
    const N: usize = 500;
    let head = b"GET /ok HTTP/1.1\r\nHost: test\r\nX-Slow: ";
    let mut conns = Vec::with_capacity(N);
    for _ in 0..N {
        // The first byte goes out at once: a connection that sends nothing at all is closed
        // quietly at the deadline, not answered 408.
        let mut client = Client::connect(server.addr);
        client.send(&head[..1]);
        client.stream.set_nonblocking(true).unwrap();
        conns.push((client.stream, Vec::<u8>::new(), false));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut served_meanwhile = 0;
    let mut round = 1usize;
    while conns.iter().any(|(_, _, done)| !done) && Instant::now() < deadline {
        for (stream, got, done) in conns.iter_mut().filter(|c| !c.2) {
            let byte = head.get(round).copied().unwrap_or(b'a');
            match stream.write(&[byte]) {
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(_) => {}
            }
            let mut buf = [0u8; 1024];
            loop {
                match std::io::Read::read(stream, &mut buf) {
                    Ok(0) => {
                        *done = true;
                        break;
                    }
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if is_timeout(&e) => break,
                    Err(_) => {
                        *done = true;
                        break;
                    }
                }
            }
        }
        // A normal request in every round while slow connections are still open (counting
        // every fifth round failed when a loaded machine made the rounds few).
        if conns.iter().any(|(_, _, done)| !done) {
            server.assert_alive();
            served_meanwhile += 1;
        }
        round += 1;
        thread::sleep(Duration::from_millis(100));
    }
    let open = conns.iter().filter(|c| !c.2).count();
    assert_eq!(open, 0, "{open} slow connections were never cut");
    let answered_408 = conns
        .iter()
        .filter(|(_, got, _)| got.starts_with(b"HTTP/1.1 408"))
        .count();
    assert_eq!(answered_408, N, "every slow connection got a 408");
    assert!(served_meanwhile >= 2);
    server.assert_alive();
}
