//! The mock upstream: a small threaded HTTP/1.1 server on `std::net` (127.0.0.1, port 0)
//! that plays an OpenAI-compatible provider. Each test scripts its answers (status, headers,
//! a fixed body or SSE steps with pauses, gates, an abrupt close, or a hang before the head)
//! and reads back every request it received (method, path, headers, body). It also counts the
//! streams whose reader went away before the script ended, so a test can see the gateway let
//! go of an upstream call.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use serde_json::Value;

use super::client::{fixture, header};

/// The longest a gate or a pause holds a stream, so no test can hang on a forgotten gate.
const MAX_HOLD: Duration = Duration::from_secs(20);

/// A request the mock received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("upstream request body is JSON")
    }
}

/// One step of a streamed (chunked) body.
#[derive(Clone, Debug)]
pub enum Step {
    /// One SSE event with this `data:` payload, written as one chunk.
    Event(String),
    /// Raw bytes written as one chunk.
    Raw(String),
    /// Binary bytes written as one chunk (AWS event-stream messages).
    Bytes(Vec<u8>),
    /// Waits this long before the next step.
    Pause(Duration),
    /// Waits until the test sends on (or drops) the gate's sender.
    Gate(Receiver<()>),
    /// Drops the connection without the terminating chunk.
    Cut,
}

/// An answer's body.
#[derive(Clone, Debug)]
pub enum Body {
    /// A fixed body with `content-length`.
    Fixed(Vec<u8>),
    /// A chunked body written step by step, ended by the last chunk unless cut.
    Steps(Vec<Step>),
}

/// What the mock answers to one request.
#[derive(Clone, Debug)]
pub struct Script {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// Sleep this long before writing anything (a provider that never answers in time).
    pub hang: Option<Duration>,
}

impl Script {
    pub fn json(status: u16, body: &str) -> Script {
        Script {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Body::Fixed(body.as_bytes().to_vec()),
            hang: None,
        }
    }

    /// A JSON answer from a fixture under `tests/fixtures/`.
    pub fn fixture(status: u16, path: &str) -> Script {
        Script::json(status, &fixture(path))
    }

    /// An SSE answer (`text/event-stream`, chunked) made of these steps.
    pub fn sse(steps: Vec<Step>) -> Script {
        Script {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            body: Body::Steps(steps),
            hang: None,
        }
    }

    /// The events of an SSE fixture file, one step each.
    pub fn sse_fixture(path: &str) -> Script {
        Script::sse(fixture_events(path).into_iter().map(Step::Event).collect())
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Script {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn hang(mut self, how_long: Duration) -> Script {
        self.hang = Some(how_long);
        self
    }
}

/// The `data:` payloads of an SSE fixture, in order.
pub fn fixture_events(path: &str) -> Vec<String> {
    super::client::split_events(&fixture(path))
}

/// A gate: the stream waits at `Step::Gate(gate.step())` until `open()`.
pub struct Gate {
    tx: Sender<()>,
    rx: Receiver<()>,
}

impl Gate {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Gate {
        let (tx, rx) = crossbeam_channel::unbounded();
        Gate { tx, rx }
    }

    pub fn step(&self) -> Step {
        Step::Gate(self.rx.clone())
    }

    pub fn open(&self) {
        let _ = self.tx.send(());
    }
}

type Responder = dyn Fn(&Recorded) -> Script + Send + Sync;

struct State {
    requests: Mutex<Vec<Recorded>>,
    responder: Box<Responder>,
    stopping: AtomicBool,
    /// Streams whose reader went away before the script ended.
    abandoned: AtomicUsize,
    /// Streams whose script ran to its end.
    completed: AtomicUsize,
}

/// A running mock provider. Stops accepting when dropped.
pub struct MockUpstream {
    addr: SocketAddr,
    state: Arc<State>,
}

impl MockUpstream {
    /// Starts a mock that answers every request with `respond(request)`.
    pub fn start(respond: impl Fn(&Recorded) -> Script + Send + Sync + 'static) -> MockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind mock upstream");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            requests: Mutex::new(Vec::new()),
            responder: Box::new(respond),
            stopping: AtomicBool::new(false),
            abandoned: AtomicUsize::new(0),
            completed: AtomicUsize::new(0),
        });
        let accept_state = state.clone();
        thread::Builder::new()
            .name("mock-upstream".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept_state.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let conn_state = accept_state.clone();
                    let _ = thread::Builder::new()
                        .name("mock-conn".into())
                        .spawn(move || serve(stream, &conn_state));
                }
            })
            .unwrap();
        MockUpstream { addr, state }
    }

    /// Starts a mock that gives every request the same answer.
    pub fn always(script: Script) -> MockUpstream {
        MockUpstream::start(move |_| script.clone())
    }

    /// The base URL to configure as `LITELLM_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The only request received so far (fails when there were more or none).
    pub fn only_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "requests: {requests:?}");
        requests.into_iter().next().unwrap()
    }

    pub fn abandoned_streams(&self) -> usize {
        self.state.abandoned.load(Ordering::SeqCst)
    }

    pub fn completed_streams(&self) -> usize {
        self.state.completed.load(Ordering::SeqCst)
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// Serves one connection: one request, one answer, then close.
fn serve(stream: TcpStream, state: &State) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let Some(request) = read_request(&stream) else {
        return;
    };
    state.requests.lock().unwrap().push(request.clone());
    let script = (state.responder)(&request);
    let mut stream = stream;
    if let Some(hang) = script.hang {
        thread::sleep(hang.min(MAX_HOLD));
    }
    let mut head = format!("HTTP/1.1 {} Mock\r\nconnection: close\r\n", script.status);
    for (name, value) in &script.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match script.body {
        Body::Fixed(body) => {
            head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
            let mut out = head.into_bytes();
            out.extend_from_slice(&body);
            let _ = stream.write_all(&out);
        }
        Body::Steps(steps) => {
            head.push_str("transfer-encoding: chunked\r\n\r\n");
            if stream.write_all(head.as_bytes()).is_err() {
                state.abandoned.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if play(&mut stream, steps) {
                state.completed.fetch_add(1, Ordering::SeqCst);
            } else {
                state.abandoned.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    let _ = stream.flush();
    // Let the reader see our FIN before the socket goes away.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 1024];
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = stream.read(&mut sink);
}

/// Plays the steps of a streamed body; false when the reader went away first.
fn play(stream: &mut TcpStream, steps: Vec<Step>) -> bool {
    let chunk = |data: &str| format!("{:x}\r\n{data}\r\n", data.len());
    for step in steps {
        let written = match step {
            Step::Event(data) => stream.write_all(chunk(&format!("data: {data}\n\n")).as_bytes()),
            Step::Raw(text) => stream.write_all(chunk(&text).as_bytes()),
            Step::Bytes(bytes) => {
                let mut out = format!("{:x}\r\n", bytes.len()).into_bytes();
                out.extend_from_slice(&bytes);
                out.extend_from_slice(b"\r\n");
                stream.write_all(&out)
            }
            Step::Pause(d) => {
                if !pause(stream, d.min(MAX_HOLD)) {
                    return false;
                }
                Ok(())
            }
            Step::Gate(rx) => {
                let _ = rx.recv_timeout(MAX_HOLD);
                Ok(())
            }
            Step::Cut => {
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return true;
            }
        };
        if written.is_err() {
            return false;
        }
    }
    stream.write_all(b"0\r\n\r\n").is_ok()
}

/// Waits `d`, watching the socket: false as soon as the reader has closed its end.
fn pause(stream: &mut TcpStream, d: Duration) -> bool {
    let deadline = std::time::Instant::now() + d;
    let mut probe = [0u8; 64];
    loop {
        let now = std::time::Instant::now();
        if now >= deadline {
            return true;
        }
        let _ = stream.set_read_timeout(Some((deadline - now).min(Duration::from_millis(50))));
        match stream.read(&mut probe) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return false,
        }
    }
}

/// Reads one request: head, then a `content-length` or chunked body.
fn read_request(stream: &TcpStream) -> Option<Recorded> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut body = Vec::new();
    if let Some(len) = header(&headers, "content-length") {
        body.resize(len.parse().ok()?, 0);
        reader.read_exact(&mut body).ok()?;
    } else if header(&headers, "transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            line.clear();
            reader.read_line(&mut line).ok()?;
            let size = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
            let mut data = vec![0; size + 2];
            if size == 0 {
                line.clear();
                reader.read_line(&mut line).ok()?;
                break;
            }
            reader.read_exact(&mut data).ok()?;
            body.extend_from_slice(&data[..size]);
        }
    }
    Some(Recorded {
        method,
        path,
        headers,
        body,
    })
}
