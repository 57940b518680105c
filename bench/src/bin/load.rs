//! load: a keep-alive HTTP/1.1 load generator for the gateway benchmark.
//!
//! `load run --url URL [--mode nonstream|stream|get] [-c C] [-d SECS | -n COUNT] [--warmup SECS]
//!           [--events N] [--ms M] [--model NAME] [--include-usage] [--timeout SECS] [--label L]
//!           [--idle N] [--key KEY]`
//!   `--key KEY` is sent as the bearer token (default `sk-fake-bench`): a gateway key.
//!   `--idle N` first opens N keep-alive connections, makes one request on each and holds them
//!   open, idle, for the whole run: the latency measured is a new client's among idle pools.
//!
//! C client threads, each with its own keep-alive connection (reconnecting after a close or an
//! error), send the same request for D seconds (after a warm-up whose requests are not counted)
//! or until COUNT requests have started. Per request it records the latency (request write to
//! the end of the body) and, for streams, the time to the first SSE event. It counts as errors:
//! connect failures, non-2xx statuses, bad framing, a close before the body ended, read timeouts,
//! and for streams an `error` event, a missing finish chunk, a missing `data: [DONE]` or a number
//! of events other than N+2 (role + N content + finish; +1 usage chunk with --include-usage).
//! It prints one JSON line on stdout.
//!
//! `load startup [--runs R] [--settle-ms MS] -- CMD [ARGS...]`: starts CMD R times with
//! HOST=127.0.0.1 and PORT=<a free port>, polls (connect, then `GET /health`) every 1 ms until a
//! 200, and prints the time from spawn to that answer, plus the child's VmRSS and thread count
//! MS milliseconds after it was ready. Each child is then killed.
//!
//! `load free-port`: prints a free loopback TCP port.
#![forbid(unsafe_code)]

use llmcallgateway_bench::{Conn, SseParser};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => usage(),
    };
    match cmd {
        "run" => run(parse_run(rest)),
        "startup" => startup(rest),
        "free-port" => {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            println!("{}", l.local_addr().expect("addr").port());
        }
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: load run --url URL [--mode nonstream|stream|get] [-c C] [-d SECS | -n COUNT]\n\
         \x20               [--warmup SECS] [--events N] [--ms M] [--model NAME] [--include-usage]\n\
         \x20               [--idle N]\n\
         \x20               [--timeout SECS] [--label L] [--key KEY]\n\
         \x20      load startup [--runs R] [--settle-ms MS] -- CMD [ARGS...]\n\
         \x20      load free-port"
    );
    std::process::exit(2)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    NonStream,
    Stream,
    Get,
}

#[derive(Clone, Debug)]
struct Opts {
    addr: SocketAddr,
    host: String,
    path: String,
    mode: Mode,
    conns: usize,
    secs: f64,
    count: Option<u64>,
    warmup: f64,
    events: u64,
    ms: u64,
    model: String,
    /// The bearer token sent (a gateway key when the gateway has keys).
    key: String,
    /// Keep-alive connections held idle during the run.
    idle: usize,
    include_usage: bool,
    timeout: f64,
    label: String,
}

fn parse_run(args: &[String]) -> Opts {
    let mut url = None;
    let mut o = Opts {
        addr: "127.0.0.1:1".parse().unwrap(),
        host: String::new(),
        path: String::new(),
        mode: Mode::NonStream,
        conns: 1,
        secs: 5.0,
        count: None,
        warmup: 0.5,
        events: 10,
        ms: 0,
        model: "gpt-4o-mini".into(),
        key: "sk-fake-bench".into(),
        idle: 0,
        include_usage: false,
        timeout: 30.0,
        label: String::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| usage());
        match a.as_str() {
            "--url" => url = Some(val()),
            "--mode" => {
                o.mode = match val().as_str() {
                    "nonstream" | "json" => Mode::NonStream,
                    "stream" | "sse" => Mode::Stream,
                    "get" => Mode::Get,
                    _ => usage(),
                }
            }
            "-c" => o.conns = val().parse().unwrap_or_else(|_| usage()),
            "-d" => o.secs = val().parse().unwrap_or_else(|_| usage()),
            "-n" => o.count = Some(val().parse().unwrap_or_else(|_| usage())),
            "--warmup" => o.warmup = val().parse().unwrap_or_else(|_| usage()),
            "--events" => o.events = val().parse().unwrap_or_else(|_| usage()),
            "--ms" => o.ms = val().parse().unwrap_or_else(|_| usage()),
            "--model" => o.model = val(),
            "--key" => o.key = val(),
            "--include-usage" => o.include_usage = true,
            "--timeout" => o.timeout = val().parse().unwrap_or_else(|_| usage()),
            "--label" => o.label = val(),
            "--idle" => o.idle = val().parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let url = url.unwrap_or_else(|| usage());
    let rest = url.strip_prefix("http://").unwrap_or_else(|| {
        eprintln!("load: only http:// URLs");
        std::process::exit(2)
    });
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    o.host = hostport.to_string();
    o.path = path.to_string();
    o.addr = hostport
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| {
            eprintln!("load: cannot resolve {hostport}");
            std::process::exit(2)
        });
    o.conns = o.conns.max(1);
    if o.count.is_some() {
        o.warmup = 0.0;
    }
    o
}

/// The request bytes every client thread sends.
fn request_bytes(o: &Opts) -> Vec<u8> {
    match o.mode {
        Mode::Get => format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: llmcallgateway-bench\r\nAccept: */*\r\n\r\n",
            o.path, o.host
        )
        .into_bytes(),
        Mode::NonStream | Mode::Stream => {
            let body = if o.mode == Mode::Stream {
                let usage = if o.include_usage {
                    r#","stream_options":{"include_usage":true}"#
                } else {
                    ""
                };
                format!(
                    r#"{{"model":"{}","messages":[{{"role":"user","content":"events={} ms={}"}}],"stream":true{}}}"#,
                    o.model, o.events, o.ms, usage
                )
            } else {
                format!(
                    r#"{{"model":"{}","messages":[{{"role":"user","content":"Say hello."}}],"max_tokens":16}}"#,
                    o.model
                )
            };
            format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: llmcallgateway-bench\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nAccept: {}\r\nContent-Length: {}\r\n\r\n{}",
                o.path,
                o.host,
                o.key,
                if o.mode == Mode::Stream { "text/event-stream" } else { "application/json" },
                body.len(),
                body
            )
            .into_bytes()
        }
    }
}

/// What one client thread collected.
#[derive(Default)]
struct Tally {
    /// (latency ns, time to first event ns or 0, end offset from run start in ns)
    samples: Vec<(u64, u64, u64)>,
    errors: BTreeMap<String, u64>,
    events: u64,
    /// Requests finished during the warm-up (not in the figures; for CPU per request).
    warm: u64,
}

impl Tally {
    fn error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_string()).or_default() += 1;
    }
}

/// How a single request went.
enum Outcome {
    Ok {
        first_event: Option<Instant>,
        events: u64,
        keep: bool,
    },
    Err {
        kind: String,
        keep: bool,
    },
}

fn run(o: Opts) {
    let req = Arc::new(request_bytes(&o));
    let o = Arc::new(o);
    let _idle = hold_idle(&o, &req);
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(o.warmup);
    let deadline = measure_from + Duration::from_secs_f64(o.secs);
    let started = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::with_capacity(o.conns);
    for i in 0..o.conns {
        let (o, req, started, done) = (o.clone(), req.clone(), started.clone(), done.clone());
        let h = thread::Builder::new()
            .name(format!("client-{i}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                let t = client(&o, &req, start, measure_from, deadline, &started);
                done.fetch_add(1, Ordering::Relaxed);
                t
            });
        match h {
            Ok(h) => handles.push(h),
            Err(e) => {
                eprintln!("load: cannot start client thread {i}: {e}");
                break;
            }
        }
    }
    // Bounded in time: a hung client cannot hold the run past this.
    let hard_stop = match o.count {
        Some(_) => start + Duration::from_secs_f64(o.timeout * 2.0 + 60.0),
        None => deadline + Duration::from_secs_f64(o.timeout + 10.0),
    };
    let spawned = handles.len();
    while done.load(Ordering::Relaxed) < spawned as u64 && Instant::now() < hard_stop {
        thread::sleep(Duration::from_millis(5));
    }
    let hung = spawned as u64 - done.load(Ordering::Relaxed);
    let mut all = Tally::default();
    for h in handles {
        if h.is_finished() {
            if let Ok(t) = h.join() {
                all.samples.extend(t.samples);
                all.events += t.events;
                all.warm += t.warm;
                for (k, v) in t.errors {
                    *all.errors.entry(k).or_default() += v;
                }
            }
        }
    }
    if hung > 0 {
        *all.errors.entry("hung_client".into()).or_default() += hung;
    }
    if spawned < o.conns {
        *all.errors.entry("thread_spawn".into()).or_default() += (o.conns - spawned) as u64;
    }
    report(&o, all, start, measure_from);
    // Hung threads (if any) must not keep the process alive.
    io::stdout().flush().ok();
    std::process::exit(0);
}

/// Opens `o.idle` keep-alive connections, one request each, and returns them to be held
/// (idle) until the process exits. Failures are counted and reported on stderr.
fn hold_idle(o: &Opts, req: &[u8]) -> Vec<Conn> {
    let mut held = Vec::with_capacity(o.idle);
    let mut failed = 0;
    for _ in 0..o.idle {
        let Ok(s) = TcpStream::connect_timeout(&o.addr, Duration::from_secs(5)) else {
            failed += 1;
            continue;
        };
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(Duration::from_secs_f64(o.timeout)));
        let mut c = Conn::new(s, 16 * 1024);
        match one_request(&mut c, o, req, Instant::now()) {
            Outcome::Ok { keep: true, .. } => held.push(c),
            _ => failed += 1,
        }
    }
    if failed > 0 {
        eprintln!("load: {failed} of {} idle connections failed", o.idle);
    }
    held
}

fn client(
    o: &Opts,
    req: &[u8],
    start: Instant,
    measure_from: Instant,
    deadline: Instant,
    started: &AtomicU64,
) -> Tally {
    let mut t = Tally::default();
    let mut conn: Option<Conn> = None;
    let timeout = Duration::from_secs_f64(o.timeout);
    loop {
        match o.count {
            Some(n) => {
                if started.fetch_add(1, Ordering::Relaxed) >= n {
                    break;
                }
            }
            None => {
                if Instant::now() >= deadline {
                    break;
                }
            }
        }
        let t0 = Instant::now();
        if conn.is_none() {
            match TcpStream::connect_timeout(&o.addr, Duration::from_secs(5)) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    let _ = s.set_read_timeout(Some(timeout));
                    let _ = s.set_write_timeout(Some(timeout));
                    conn = Some(Conn::new(s, 16 * 1024));
                }
                Err(e) => {
                    if t0 >= measure_from {
                        t.error(&format!("connect_{}", kind_name(&e)));
                    }
                    thread::sleep(Duration::from_millis(2));
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected");
        let outcome = one_request(c, o, req, t0);
        let t1 = Instant::now();
        let counted = t0 >= measure_from;
        if !counted {
            t.warm += 1;
        }
        match outcome {
            Outcome::Ok {
                first_event,
                events,
                keep,
            } => {
                if counted {
                    let ttfe = first_event.map_or(0, |f| (f - t0).as_nanos() as u64);
                    t.samples.push((
                        (t1 - t0).as_nanos() as u64,
                        ttfe,
                        (t1 - start).as_nanos() as u64,
                    ));
                    t.events += events;
                }
                if !keep {
                    conn = None;
                }
            }
            Outcome::Err { kind, keep } => {
                if counted {
                    t.error(&kind);
                }
                if !keep {
                    conn = None;
                }
            }
        }
    }
    t
}

fn kind_name(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timeout",
        io::ErrorKind::UnexpectedEof => "early_close",
        io::ErrorKind::InvalidData => "bad_framing",
        io::ErrorKind::ConnectionReset => "reset",
        io::ErrorKind::ConnectionRefused => "refused",
        io::ErrorKind::BrokenPipe => "broken_pipe",
        _ => "io",
    }
}

fn one_request(c: &mut Conn, o: &Opts, req: &[u8], t0: Instant) -> Outcome {
    let fail = |kind: String| Outcome::Err { kind, keep: false };
    if let Err(e) = c.write_all(req) {
        return fail(format!("write_{}", kind_name(&e)));
    }
    let head = match c.read_head() {
        Ok(Some(h)) => h,
        Ok(None) => return fail("early_close".into()),
        Err(e) => return fail(kind_name(&e).into()),
    };
    let ok_status = (200..300).contains(&head.status);
    if !ok_status || o.mode != Mode::Stream {
        let mut body_len = 0usize;
        let r = c.read_body(&head, false, &mut |b| body_len += b.len());
        let keep = !head.close && r.is_ok();
        return match r {
            Err(e) => Outcome::Err {
                kind: kind_name(&e).into(),
                keep,
            },
            Ok(()) if !ok_status => Outcome::Err {
                kind: format!("status_{}", head.status),
                keep,
            },
            Ok(()) if body_len == 0 => Outcome::Err {
                kind: "empty_body".into(),
                keep,
            },
            Ok(()) => Outcome::Ok {
                first_event: None,
                events: 0,
                keep,
            },
        };
    }
    let mut sse = SseParser::default();
    let mut first_event = None;
    let (mut events, mut usage_events) = (0u64, 0u64);
    let (mut done, mut finish, mut error_event, mut after_done) = (false, false, false, false);
    let r = c.read_body(&head, false, &mut |bytes| {
        sse.feed(bytes, &mut |data| {
            if first_event.is_none() {
                first_event = Some(Instant::now());
            }
            if done {
                after_done = true;
            } else if data == b"[DONE]" {
                done = true;
            } else if contains(data, b"\"error\"") && !contains(data, b"\"choices\"") {
                error_event = true;
            } else if contains(data, b"\"choices\":[]") {
                usage_events += 1;
            } else {
                events += 1;
                if contains(data, b"\"finish_reason\":\"") {
                    finish = true;
                }
            }
        })
    });
    let keep = !head.close && r.is_ok();
    let _ = t0;
    let expected_usage = u64::from(o.include_usage);
    let kind = if let Err(e) = r {
        Some(if done {
            format!("after_done_{}", kind_name(&e))
        } else {
            kind_name(&e).to_string()
        })
    } else if error_event {
        Some("error_event".into())
    } else if !done {
        Some("no_done".into())
    } else if after_done || sse.pending() {
        Some("data_after_done".into())
    } else if !finish {
        Some("no_finish".into())
    } else if events != o.events + 2 {
        Some("event_count".into())
    } else if usage_events != expected_usage {
        Some("usage_chunk".into())
    } else {
        None
    };
    match kind {
        Some(kind) => Outcome::Err { kind, keep },
        None => Outcome::Ok {
            first_event,
            events,
            keep,
        },
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    llmcallgateway_bench::find(hay, needle).is_some()
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx] as f64 / 1000.0
}

fn report(o: &Opts, t: Tally, start: Instant, measure_from: Instant) {
    let n = t.samples.len();
    let from_ns = (measure_from - start).as_nanos() as u64;
    let last_end = t.samples.iter().map(|s| s.2).max().unwrap_or(from_ns);
    let window = (last_end.saturating_sub(from_ns)) as f64 / 1e9;
    let window = if window > 0.0 { window } else { o.secs };
    let mut lat: Vec<u64> = t.samples.iter().map(|s| s.0).collect();
    let mut ttfe: Vec<u64> = t.samples.iter().map(|s| s.1).filter(|&x| x > 0).collect();
    lat.sort_unstable();
    ttfe.sort_unstable();
    let errors: u64 = t.errors.values().sum();
    let kinds: Vec<String> = t
        .errors
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    let mode = match o.mode {
        Mode::NonStream => "nonstream",
        Mode::Stream => "stream",
        Mode::Get => "get",
    };
    let mean = if n > 0 {
        lat.iter().sum::<u64>() as f64 / n as f64 / 1000.0
    } else {
        0.0
    };
    println!(
        concat!(
            "{{\"label\":\"{}\",\"mode\":\"{}\",\"c\":{},\"events\":{},\"ms\":{},\"requests\":{},",
            "\"errors\":{},\"error_kinds\":{{{}}},\"secs\":{:.3},\"rps\":{:.1},",
            "\"p50_us\":{:.1},\"p90_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1},\"mean_us\":{:.1},",
            "\"ttfe_p50_us\":{:.1},\"ttfe_p99_us\":{:.1},\"sse_events\":{},\"all_requests\":{}}}"
        ),
        o.label,
        mode,
        o.conns,
        if o.mode == Mode::Stream { o.events } else { 0 },
        if o.mode == Mode::Stream { o.ms } else { 0 },
        n,
        errors,
        kinds.join(","),
        window,
        n as f64 / window,
        pct(&lat, 0.50),
        pct(&lat, 0.90),
        pct(&lat, 0.99),
        pct(&lat, 1.0),
        mean,
        pct(&ttfe, 0.50),
        pct(&ttfe, 0.99),
        t.events,
        n as u64 + errors + t.warm,
    );
}

/// `load startup`: time from spawn to the first 200 on `GET /health`, and RSS once ready.
fn startup(args: &[String]) {
    let mut runs = 5usize;
    let mut settle_ms = 300u64;
    let mut it = args.iter();
    let mut cmd: Vec<String> = Vec::new();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => {
                runs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--settle-ms" => {
                settle_ms = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--" => {
                cmd = it.by_ref().cloned().collect();
                break;
            }
            _ => usage(),
        }
    }
    if cmd.is_empty() {
        usage();
    }
    let mut times = Vec::new();
    let mut rss = Vec::new();
    let mut threads = Vec::new();
    let mut failures = 0;
    for _ in 0..runs {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let t0 = Instant::now();
        let mut child = match Command::new(&cmd[0])
            .args(&cmd[1..])
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("load startup: cannot start {}: {e}", cmd[0]);
                std::process::exit(1);
            }
        };
        let limit = t0 + Duration::from_secs(10);
        let mut ready = None;
        while Instant::now() < limit {
            if health_ok(&addr) {
                ready = Some(t0.elapsed());
                break;
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(1));
        }
        match ready {
            Some(d) => {
                times.push(d.as_secs_f64() * 1000.0);
                thread::sleep(Duration::from_millis(settle_ms));
                let (r, th) = proc_status(child.id());
                rss.push(r);
                threads.push(th);
            }
            None => failures += 1,
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let med = |v: &[f64]| if v.is_empty() { 0.0 } else { v[v.len() / 2] };
    let mut rss_sorted = rss.clone();
    rss_sorted.sort_unstable();
    println!(
        "{{\"runs\":{},\"failures\":{},\"ready_ms_min\":{:.1},\"ready_ms_median\":{:.1},\"ready_ms_max\":{:.1},\"ready_rss_kb_median\":{},\"ready_threads\":{}}}",
        runs,
        failures,
        times.first().copied().unwrap_or(0.0),
        med(&times),
        times.last().copied().unwrap_or(0.0),
        rss_sorted.get(rss_sorted.len() / 2).copied().unwrap_or(0),
        threads.first().copied().unwrap_or(0),
    );
}

/// One `GET /health` on a fresh connection; true on a 200.
fn health_ok(addr: &SocketAddr) -> bool {
    let Ok(s) = TcpStream::connect_timeout(addr, Duration::from_millis(100)) else {
        return false;
    };
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut c = Conn::new(s, 4096);
    let req = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if c.write_all(req.as_bytes()).is_err() {
        return false;
    }
    match c.read_head() {
        Ok(Some(h)) => h.status == 200 && c.read_body(&h, false, &mut |_| {}).is_ok(),
        _ => false,
    }
}

/// (VmRSS kB, Threads) from /proc/PID/status.
fn proc_status(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("Threads:"))
}
