//! Provider streams read without blocking, over a real socket: a loopback provider answers with
//! chunked event streams whose events come with pauses, split across chunks (and chunk heads
//! apart from their data), plain or gzip-encoded, directly, through a CONNECT proxy, or over
//! TLS (records cut across TCP segments); the gateway's agents call it and read the events by
//! polling (over TLS, as the relay loop will: on each `Pending`, waiting for the connection's
//! next readable edge), then reuse the pooled connection for an ordinary blocking call.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll as Readiness, Token};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned, SupportedProtocolVersion};

use super::*;

const EVENTS: usize = 5;

/// The stream's events, `data: {"n":i}`.
fn event_bytes() -> Vec<Vec<u8>> {
    (0..EVENTS)
        .map(|i| format!("data: {{\"n\":{i}}}\n\n").into_bytes())
        .collect()
}

/// Writes one chunk, its head apart from its data (one write for the data and its line end,
/// so that over TLS the last record of a chunk is the one completing its events).
fn chunk(stream: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    stream.write_all(format!("{:x}\r\n", data.len()).as_bytes())?;
    stream.flush()?;
    thread::sleep(Duration::from_millis(5));
    stream.write_all(&[data, b"\r\n"].concat())?;
    stream.flush()
}

/// The events as chunks 30 ms apart, each chunk the end of one event and the start of the
/// next; gzip-encoded (each chunk a sync-flushed piece of one gzip member) when asked. After
/// each chunk, `gate` is told how many events the chunks so far complete, and the stream goes
/// on only if it returns true (a provider may wait there until the client read them).
fn answer_stream(
    stream: &mut impl Write,
    gzip: bool,
    gate: &dyn Fn(usize) -> bool,
) -> std::io::Result<()> {
    let encoding = if gzip {
        "Content-Encoding: gzip\r\n"
    } else {
        ""
    };
    stream.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n{encoding}\
             Transfer-Encoding: chunked\r\n\r\n"
        )
        .as_bytes(),
    )?;
    let mut pieces = Vec::new();
    let mut carry = Vec::new();
    for event in event_bytes() {
        let (head, tail) = event.split_at(event.len() / 2);
        carry.extend_from_slice(head);
        pieces.push(std::mem::take(&mut carry));
        carry.extend_from_slice(tail);
    }
    pieces.push(carry);
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Chunk i completes events 0..i.
    for (completed, piece) in pieces.into_iter().enumerate() {
        let data = if gzip {
            encoder.write_all(&piece)?;
            encoder.flush()?;
            std::mem::take(encoder.get_mut())
        } else {
            piece
        };
        chunk(stream, &data)?;
        if !gate(completed) {
            return Err(std::io::Error::other(
                "the client did not read the events sent",
            ));
        }
        thread::sleep(Duration::from_millis(30));
    }
    if gzip {
        chunk(stream, &encoder.finish()?)?;
    }
    stream.write_all(b"0\r\n\r\n")?;
    stream.flush()
}

/// Reads one request (head and `Content-Length` body); its path, `None` at the end.
fn read_request(reader: &mut impl BufRead) -> Option<String> {
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|n| *n > 0)?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).ok().filter(|n| *n > 0)?;
        if line.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(path)
}

/// A provider's answer to `path`: `/stream` and `/gzip` event streams (`gate` as in
/// [`answer_stream`]), anything else a short JSON body after a pause (a read that did not wait
/// would find nothing).
fn answer(out: &mut impl Write, path: &str, gate: &dyn Fn(usize) -> bool) -> std::io::Result<()> {
    match path {
        "/stream" => answer_stream(out, false, gate),
        "/gzip" => answer_stream(out, true, gate),
        // A response head of about 6 and 12 KB: many long headers, as some front ends add.
        "/head6k" | "/head12k" => {
            let n = if path == "/head6k" { 60 } else { 120 };
            let mut head = String::from("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n");
            for i in 0..n {
                head.push_str(&format!("x-filler-{i:03}: {}\r\n", "f".repeat(80)));
            }
            head.push_str("Content-Length: 11\r\n\r\n{\"ok\":true}");
            out.write_all(head.as_bytes())
        }
        _ => {
            thread::sleep(Duration::from_millis(30));
            out.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                  Content-Length: 11\r\n\r\n{\"ok\":true}",
            )
        }
    }
}

/// A provider on 127.0.0.1 answering `/stream` and `/gzip` with event streams, anything
/// else with a short JSON body; its base URL and the count of connections it accepted.
fn provider() -> (String, Arc<AtomicUsize>) {
    let (port, accepted) = listen(|stream| {
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        while let Some(path) = read_request(&mut reader) {
            if path == "/close" {
                // Answers, then closes the connection without saying so.
                let _ = writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
                return;
            }
            if path == "/trailing" {
                // Answers, then sends bytes past the body, and keeps the connection open.
                let _ = writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
                thread::sleep(Duration::from_millis(20));
                let _ = writer.write_all(b"HTTP/1.1 200 OK\r\n");
                continue;
            }
            if answer(&mut writer, &path, &|_| true).is_err() {
                return;
            }
        }
    });
    (format!("http://127.0.0.1:{port}"), accepted)
}

/// Accepts connections on 127.0.0.1 and serves each on a thread of its own with `serve` (its
/// reads time out after 10 s); the port and the count of connections accepted.
fn listen(serve: impl Fn(TcpStream) + Clone + Send + 'static) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            let serve = serve.clone();
            thread::spawn(move || {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                serve(stream);
            });
        }
    });
    (port, accepted)
}

/// Reads every event of `answer` by polling without blocking (1 ms naps between polls, a few
/// seconds at most; each poll enters `NonBlockingReads` again, as a relay loop does on each
/// readiness event); the events and how many polls found nothing. The first poll that finds
/// nothing also checks that the answer's descriptor becomes readable when the provider sends.
fn poll_all(answer: Answer) -> (Vec<SseEvent>, usize) {
    let fd = answer.fd.expect("a provider's answer names its connection");
    // Before the reader: a gzip decoder reads the body's first bytes as it is made.
    let _non_blocking = NonBlockingReads::enter();
    let mut events = answer.into_events();
    let (mut got, mut pending) = (Vec::new(), 0);
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < until, "the stream did not end in time");
        let _poll = NonBlockingReads::enter();
        match events.poll_event() {
            Poll::Ready(Ok(Some(event))) => got.push(event),
            Poll::Ready(Ok(None)) => return (got, pending),
            Poll::Ready(Err(e)) => panic!("the stream broke: {e:?}"),
            Poll::Pending => {
                if pending == 0 {
                    let mut readiness = Readiness::new().unwrap();
                    readiness
                        .registry()
                        .register(&mut SourceFd(&fd), Token(0), Interest::READABLE)
                        .unwrap();
                    let mut ready = Events::with_capacity(1);
                    readiness
                        .poll(&mut ready, Some(Duration::from_secs(2)))
                        .unwrap();
                    assert!(!ready.is_empty(), "the descriptor never became readable");
                    readiness.registry().deregister(&mut SourceFd(&fd)).unwrap();
                }
                pending += 1;
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

fn assert_all_events(got: &[SseEvent]) {
    let expected: Vec<String> = (0..EVENTS).map(|i| format!("{{\"n\":{i}}}")).collect();
    let data: Vec<&str> = got.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data, expected);
}

fn call(url: &str, path: &str) -> Call {
    Call {
        idle_timeout: Some(Duration::from_secs(5)),
        ..Call::post(format!("{url}{path}"), Vec::new(), b"{}".to_vec())
    }
}

#[test]
fn a_stream_is_read_without_blocking_and_its_connection_reused() {
    let (url, accepted) = provider();
    let agents = Agents::new(Duration::from_secs(2), Duration::from_secs(5));
    let answer = post(agents.get(), &call(&url, "/stream")).unwrap();
    assert_eq!(answer.status(), 200);
    let (got, pending) = poll_all(answer);
    assert_all_events(&got);
    assert!(pending > 0, "no poll found the body empty");

    // The pooled connection, back to blocking reads: the answer comes after a pause.
    let answer = post(
        agents.get(),
        &Call::post(format!("{url}/plain"), Vec::new(), b"{}".to_vec()),
    )
    .unwrap();
    assert!(answer.fd.is_some());
    assert_eq!(answer.read().unwrap().body, b"{\"ok\":true}");
    // And a stream read by waiting.
    let mut events = post(agents.get(), &call(&url, "/stream"))
        .unwrap()
        .into_events();
    let mut got = Vec::new();
    while let Some(event) = events.next_event().unwrap() {
        got.push(event);
    }
    assert_all_events(&got);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the connection was not reused"
    );
}

#[test]
fn a_gzip_stream_is_read_without_blocking() {
    let (url, accepted) = provider();
    let agents = Agents::new(Duration::from_secs(2), Duration::from_secs(5));
    let answer = post(agents.get(), &call(&url, "/gzip")).unwrap();
    // ureq decodes it (and drops the header): the events read are the plain ones.
    let (got, pending) = poll_all(answer);
    assert_all_events(&got);
    assert!(pending > 0, "no poll found the body empty");
    let answer = post(agents.get(), &call(&url, "/plain")).unwrap();
    assert_eq!(answer.read().unwrap().body, b"{\"ok\":true}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the connection was not reused"
    );
}

#[test]
fn an_answer_made_in_process_names_no_connection() {
    assert!(Answer::local(200, &[], Vec::new()).fd.is_none());
}

/// Calls `path` (whose answer is `{}`), then another path after a pause: ureq's probe of the
/// pooled connection must have found it unusable, so the second call opened a new one.
fn assert_the_connection_is_replaced_after(path: &str) {
    let (url, accepted) = provider();
    let agents = Agents::new(Duration::from_secs(2), Duration::from_secs(5));
    let answer = post(agents.get(), &call(&url, path)).unwrap();
    assert_eq!(answer.read().unwrap().body, b"{}");
    thread::sleep(Duration::from_millis(100));
    let answer = post(agents.get(), &call(&url, "/plain")).unwrap();
    assert_eq!(answer.read().unwrap().body, b"{\"ok\":true}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

/// ureq's probe of a pooled connection, kept: one the provider closed is not reused.
#[test]
fn a_pooled_connection_the_provider_closed_is_replaced() {
    assert_the_connection_is_replaced_after("/close");
}

/// ureq's probe of a pooled connection, kept: one on which the provider sent bytes past its
/// answer is not reused (the next answer would be read from them).
#[test]
fn a_pooled_connection_with_bytes_past_its_answer_is_replaced() {
    assert_the_connection_is_replaced_after("/trailing");
}

/// A provider's response head must fit the connection's input buffer (8 KiB): one of 6 KB is
/// read whole after a request body was sent; one of 12 KB fails the call at once with an error
/// that says so (it said the provider had disconnected).
#[test]
fn a_response_head_within_the_input_buffer_is_read_and_a_larger_one_fails_the_call() {
    let (url, _) = provider();
    let agents = Agents::new(Duration::from_secs(2), Duration::from_secs(5));
    let body = vec![b' '; 20_000];
    let answer = post(
        agents.get(),
        &Call::post(format!("{url}/head6k"), Vec::new(), body.clone()),
    )
    .unwrap();
    assert_eq!(answer.header("x-filler-059").map(|v| v.len()), Some(80));
    assert_eq!(answer.read().unwrap().body, b"{\"ok\":true}");

    let started = Instant::now();
    let failed = post(
        agents.get(),
        &Call::post(format!("{url}/head12k"), Vec::new(), body),
    );
    let error = failed.err().expect("a 12 KB head was taken");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(error.status, 502);
    assert!(
        error
            .message
            .contains("response head is longer than the 8192 bytes"),
        "{}",
        error.message
    );
}

/// A CONNECT proxy on 127.0.0.1 tunnelling to whatever it is asked; its URL and the count of
/// tunnels it opened.
fn connect_proxy() -> (String, Arc<AtomicUsize>) {
    let (port, tunnels) = listen(|client| {
        let mut reader = BufReader::new(client.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let target = line.split_whitespace().nth(1).unwrap().to_string();
        while reader.read_line(&mut line).unwrap() > 0 && !line.ends_with("\r\n\r\n") {}
        let upstream = TcpStream::connect(target).unwrap();
        let mut client_out = client.try_clone().unwrap();
        client_out
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .unwrap();
        let mut upstream_in = upstream.try_clone().unwrap();
        thread::spawn(move || std::io::copy(&mut reader, &mut upstream_in));
        let mut upstream = upstream;
        let _ = std::io::copy(&mut upstream, &mut client_out);
    });
    (format!("http://127.0.0.1:{port}"), tunnels)
}

#[test]
fn a_stream_through_a_connect_proxy_is_read_without_blocking() {
    let (url, accepted) = provider();
    let (proxy, tunnels) = connect_proxy();
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(Some(ureq::Proxy::new(&proxy).unwrap()))
        .build();
    let agent = ureq::Agent::with_parts(
        config,
        SteppedConnector::default(),
        InlineResolver::default(),
    );
    let answer = post(&agent, &call(&url, "/stream")).unwrap();
    let (got, pending) = poll_all(answer);
    assert_all_events(&got);
    assert!(pending > 0);
    let answer = post(&agent, &call(&url, "/plain")).unwrap();
    assert_eq!(answer.read().unwrap().body, b"{\"ok\":true}");
    assert_eq!(tunnels.load(Ordering::SeqCst), 1);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

/// How many events of the stream being read the client has got, shared with a provider that
/// sends nothing more until the client got every event it sent (see [`tls_provider`]).
#[derive(Default)]
struct Progress {
    got: Mutex<usize>,
    changed: Condvar,
}

impl Progress {
    fn set(&self, got: usize) {
        *self.got.lock().unwrap() = got;
        self.changed.notify_all();
    }

    /// Waits until the client got `events` events; false if it did not within 3 s.
    fn wait_for(&self, events: usize) -> bool {
        let got = self.got.lock().unwrap();
        let (_got, waited) = self
            .changed
            .wait_timeout_while(got, Duration::from_secs(3), |got| *got < events)
            .unwrap();
        !waited.timed_out()
    }
}

/// A TLS connection's writer sending each write as its own record, the record's bytes in two
/// TCP segments 2 ms apart: a reader meets records cut in two, as well as events and chunks
/// cut across records.
struct Records<'a> {
    tls: &'a mut StreamOwned<ServerConnection, TcpStream>,
}

impl Write for Records<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.tls.conn.writer().write(buf)?;
        let mut record = Vec::new();
        while self.tls.conn.wants_write() {
            self.tls.conn.write_tls(&mut record)?;
        }
        let (first, rest) = record.split_at(record.len() / 2);
        self.tls.sock.write_all(first)?;
        thread::sleep(Duration::from_millis(2));
        self.tls.sock.write_all(rest)?;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A provider over TLS (`version` only) on 127.0.0.1, its certificate made for `localhost`
/// and 127.0.0.1 at the start: `/stream` and `/gzip` answer event streams written record by
/// record ([`Records`]) in lockstep with the client (each chunk is sent only once the client
/// got every event the chunks before it complete, as `progress` says, so a client that stops
/// on data it already holds is never sent more), anything else a short JSON body after a
/// pause. Returns its base URL (`https://localhost:PORT`), its certificate, and the count of
/// connections it accepted.
fn tls_provider(
    version: &'static SupportedProtocolVersion,
    progress: Arc<Progress>,
) -> (String, CertificateDer<'static>, Arc<AtomicUsize>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let certificate = certified.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certificate.clone()], key.into())
            .unwrap();
    let config = Arc::new(config);
    let (port, accepted) = listen(move |stream| {
        stream.set_nodelay(true).unwrap();
        let connection = ServerConnection::new(config.clone()).unwrap();
        let mut reader = BufReader::new(StreamOwned::new(connection, stream));
        let gate = |events| progress.wait_for(events);
        while let Some(path) = read_request(&mut reader) {
            let mut records = Records {
                tls: reader.get_mut(),
            };
            if answer(&mut records, &path, &gate).is_err() {
                return;
            }
        }
    });
    (format!("https://localhost:{port}"), certificate, accepted)
}

/// The gateway's agents ([`Agents::new`]) trusting only `certificate`.
fn agents_trusting(certificate: &CertificateDer<'static>) -> Agents {
    let roots = vec![ureq::tls::Certificate::from_der(certificate.as_ref()).to_owned()];
    let tls = TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots)))
        .build();
    Agents::with_tls(Duration::from_secs(2), Duration::from_secs(5), tls)
}

/// Reads every event of `answer` as the relay loop will: polls until `Pending`, then waits for
/// the next readable edge of the connection (mio, edge-triggered: epoll's `EPOLLET`) for 2 s at
/// most, then polls again. A wait that runs out fails the test: after `Pending`, nothing may
/// be left above the socket (in rustls, ureq or the event reader) that the socket will not
/// signal, and the lockstep provider sends nothing more while the client holds an event it has
/// not returned. Tells `progress` of each event got; returns the events and how many polls
/// found nothing.
fn poll_by_edges(answer: Answer, progress: &Progress) -> (Vec<SseEvent>, usize) {
    let fd = answer.fd.expect("a provider's answer names its connection");
    let mut readiness = Readiness::new().unwrap();
    readiness
        .registry()
        .register(&mut SourceFd(&fd), Token(0), Interest::READABLE)
        .unwrap();
    let mut ready = Events::with_capacity(4);
    let _non_blocking = NonBlockingReads::enter();
    let mut events = answer.into_events();
    let (mut got, mut pending) = (Vec::new(), 0);
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < until, "the stream did not end in time");
        // Entered again after each readiness, as the relay loop's pump is.
        let _poll = NonBlockingReads::enter();
        match events.poll_event() {
            Poll::Ready(Ok(Some(event))) => {
                got.push(event);
                progress.set(got.len());
            }
            Poll::Ready(Ok(None)) => break,
            Poll::Ready(Err(e)) => panic!("the stream broke after {} events: {e:?}", got.len()),
            Poll::Pending => {
                pending += 1;
                readiness
                    .poll(&mut ready, Some(Duration::from_secs(2)))
                    .unwrap();
                assert!(
                    !ready.is_empty(),
                    "no readable edge after a poll found nothing ({} events got)",
                    got.len()
                );
            }
        }
    }
    readiness.registry().deregister(&mut SourceFd(&fd)).unwrap();
    (got, pending)
}

/// A stream over TLS read by polling on readable edges; then, on the same pooled TLS
/// connection, a blocking JSON call and a stream read by waiting.
fn tls_stream_read_on_edges(version: &'static SupportedProtocolVersion, path: &str) {
    let progress = Arc::new(Progress::default());
    let (url, certificate, accepted) = tls_provider(version, progress.clone());
    let agents = agents_trusting(&certificate);
    let answer = post(agents.get(), &call(&url, path)).unwrap();
    assert_eq!(answer.status(), 200);
    let (got, pending) = poll_by_edges(answer, &progress);
    assert_all_events(&got);
    assert!(pending > 0, "no poll found the body empty");

    // The pooled TLS connection, back to blocking reads: the answer comes after a pause.
    let answer = post(agents.get(), &call(&url, "/plain")).unwrap();
    assert!(answer.fd.is_some());
    assert_eq!(answer.read().unwrap().body, b"{\"ok\":true}");
    progress.set(0);
    let mut events = post(agents.get(), &call(&url, path)).unwrap().into_events();
    let mut got = Vec::new();
    while let Some(event) = events.next_event().unwrap() {
        got.push(event);
        progress.set(got.len());
    }
    assert_all_events(&got);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the TLS connection was not reused"
    );
}

#[test]
fn a_tls13_stream_is_read_on_readable_edges_and_its_connection_reused() {
    tls_stream_read_on_edges(&rustls::version::TLS13, "/stream");
}

#[test]
fn a_tls12_stream_is_read_on_readable_edges_and_its_connection_reused() {
    tls_stream_read_on_edges(&rustls::version::TLS12, "/stream");
}

#[test]
fn a_gzip_stream_over_tls_is_read_on_readable_edges() {
    tls_stream_read_on_edges(&rustls::version::TLS13, "/gzip");
}
