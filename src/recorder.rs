//! The recorder: the interactions log, the live metrics and the trends, behind one writer.
//! Each worker, once its answer is sent, logs the access (and error) line, renders its
//! request's redacted interaction line, queues it on a bounded channel (full: it helps drain,
//! nothing is ever dropped), and writes what is queued if nobody else holds the writer. The
//! recorder thread sweeps up what workers left every 10 ms, flushes every second (the system
//! log too), writes closed trend minutes, keeps the log directory within its limits, and on
//! `stop` drains the queue, writes the open trend minutes and flushes before returning.
//! Measured why (bench/recorder.sh): one consumer thread woken per request cost a context
//! switch each, and under saturation it got too little CPU to keep up. Each line written is
//! also kept in the explorer's ring of recent lines (`explorer::Recent`), as logged.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use memchr::memmem::Finder;
use serde::de::IgnoredAny;
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{Config, LogBodies};
use crate::events::{rfc3339_micros, unix_now, Attempt, Body, Interaction, Outcome};
use crate::explorer::Recent;
use crate::logging::{DiskGuard, Redactor};
use crate::metrics::{Metrics, Observation};
use crate::pricing::Tokens;
use crate::rotation::RotatingFile;
use crate::trends::{Sample, Trends};

/// Records in flight between the workers and the recorder, at most.
const CHANNEL_CAPACITY: usize = 8192;
/// Embedding values kept per vector in a summarised embeddings response.
const EMBEDDING_PREVIEW: usize = 4;

/// A finished request, its bodies already rendered into its log line (if one is kept), with
/// the byte where the line's bodies begin.
struct Record(Box<Interaction>, Option<(String, usize)>);

/// Records handled per turn of whoever holds the writer.
const BATCH: usize = 256;

/// The live metrics and trends: written by the recorder thread, read by handlers for as long
/// as a copy (or a bounded query) takes.
pub struct Live {
    pub metrics: Mutex<Metrics>,
    pub trends: Mutex<Trends>,
}

/// The workers' handle on the recorder thread.
pub struct Recorder {
    tx: Sender<Record>,
    /// The queue's other end, for workers that help when it is full.
    rx: Receiver<Record>,
    stop: Arc<Stop>,
    writer: Arc<Mutex<Writer>>,
    max_depth: AtomicUsize,
    thread: Mutex<Option<JoinHandle<()>>>,
    live: Option<Arc<Live>>,
    recent: Arc<Mutex<Recent>>,
    render: Render,
}

impl Recorder {
    /// Starts the thread. Fails when the interactions file cannot be opened.
    pub fn start(config: &Config) -> std::io::Result<Recorder> {
        let writer = match config.log_bodies {
            LogBodies::None => None,
            _ => {
                std::fs::create_dir_all(&config.log_dir)?;
                Some(crate::logging::interactions_writer(config)?)
            }
        };
        let (tx, rx) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
        let live = config.metrics.then(|| {
            Arc::new(Live {
                metrics: Mutex::new(Metrics::default()),
                trends: Mutex::new(Trends::load(
                    &config.log_dir,
                    config.log_retention_days,
                    unix_now() as i64,
                )),
            })
        });
        if live.is_some() {
            std::fs::create_dir_all(&config.log_dir)?;
        }
        let recent = Arc::new(Mutex::new(Recent::new(config.explorer_recent)));
        let render = Render {
            lines: writer.is_some() || config.explorer_recent > 0,
            access: config.access_log,
            bodies: config.log_bodies,
            max_body: config.log_max_body_bytes,
            redactor: Redactor::for_config(config),
        };
        let writer = Arc::new(Mutex::new(Writer {
            live: live.clone(),
            file: writer,
            recent: recent.clone(),
            guard: DiskGuard::new(config),
        }));
        let stop = Arc::new(Stop::default());
        let (thread_writer, thread_rx, thread_stop) = (writer.clone(), rx.clone(), stop.clone());
        let thread = thread::Builder::new()
            .name("recorder".into())
            .spawn(move || run(&thread_writer, &thread_rx, &thread_stop))?;
        Ok(Recorder {
            tx,
            rx,
            stop,
            writer,
            max_depth: AtomicUsize::new(0),
            thread: Mutex::new(Some(thread)),
            live,
            recent,
            render,
        })
    }

    /// The live metrics and trends, unless `METRICS=false`.
    pub fn live(&self) -> Option<&Live> {
        self.live.as_deref()
    }

    /// Hands a finished request's record over. Called on the worker once its answer is sent:
    /// the access and error lines are logged and the interaction line is rendered here, in
    /// parallel across workers. The record is queued, and the worker then writes what is queued
    /// if nobody else holds the writer: one writer at a time, in queue order, and no thread
    /// woken per request. Nothing is ever dropped: when the queue is full the worker waits for
    /// the writer and drains a batch before queuing its record.
    pub fn record(&self, mut interaction: Interaction) {
        let route = self.render.redactor.text(&interaction.route).into_owned();
        log_request(&interaction, &route, self.render.access);
        if interaction.access_only && interaction.http_status < 400 {
            return;
        }
        let bodies = Bodies {
            request: interaction.request_body.take(),
            response: interaction.response_body.take(),
            client: interaction.client_body.take(),
        };
        let line = self
            .render
            .lines
            .then(|| self.render.line(&interaction, &route, bodies));
        let record = Record(Box::new(interaction), line);
        self.max_depth
            .fetch_max(self.tx.len() + 1, Ordering::Relaxed);
        if let Err(TrySendError::Full(record)) = self.tx.try_send(record) {
            lock(&self.writer).drain(&self.rx, BATCH);
            let _ = self.tx.send(record);
        }
        // Write what is queued now, unless someone else is at it (they will get to this
        // record, or the recorder thread's next sweep will).
        if let Ok(mut writer) = self.writer.try_lock() {
            writer.drain(&self.rx, BATCH);
        }
    }

    /// The most recent interaction lines, for the explorer.
    pub fn recent(&self) -> &Mutex<Recent> {
        &self.recent
    }

    /// Records waiting for the recorder now.
    pub fn depth(&self) -> usize {
        self.tx.len()
    }

    /// The most records ever seen waiting at once.
    pub fn max_depth(&self) -> usize {
        self.max_depth.load(Ordering::Relaxed)
    }

    /// Writes everything sent so far, flushes, and ends the thread.
    pub fn stop(&self) {
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
        if self.stop.ask(StopState::Asked(ack_tx)) {
            let _ = ack_rx.recv_timeout(Duration::from_secs(30));
        }
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

/// A recorder dropped without `stop` ends its thread without draining (as at a panic).
impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.ask(StopState::Abandoned);
    }
}

/// How the recorder thread sleeps between sweeps and is asked to stop: a condition variable.
/// (A channel's `recv_timeout` spins and calls `sched_yield` a few times before it parks, on
/// each of the thread's hundred wake-ups a second: more CPU than a worker relaying streams.)
#[derive(Default)]
struct Stop {
    state: Mutex<StopState>,
    wake: Condvar,
}

#[derive(Default)]
enum StopState {
    #[default]
    Running,
    /// Drain, flush, then acknowledge.
    Asked(Sender<()>),
    /// The recorder is gone: end now.
    Abandoned,
}

impl Stop {
    /// Asks the thread to stop (once: false when it was asked already).
    fn ask(&self, how: StopState) -> bool {
        let mut state = lock(&self.state);
        if !matches!(*state, StopState::Running) {
            return false;
        }
        *state = how;
        self.wake.notify_one();
        true
    }

    /// Sleeps up to `timeout` unless asked to stop; what was asked.
    fn wait(&self, timeout: Duration) -> StopState {
        let state = lock(&self.state);
        let (mut state, _) = self
            .wake
            .wait_timeout_while(state, timeout, |s| matches!(s, StopState::Running))
            .unwrap_or_else(|e| e.into_inner());
        match std::mem::take(&mut *state) {
            // Taken once: a later `ask` finds it no longer running.
            StopState::Running => StopState::Running,
            asked => {
                *state = StopState::Abandoned;
                asked
            }
        }
    }
}

/// What the recorder owns: the interactions file, the live figures, the disk guard. One
/// holder at a time: a worker writing the queue after its answer, or the recorder thread.
struct Writer {
    live: Option<Arc<Live>>,
    file: Option<RotatingFile>,
    recent: Arc<Mutex<Recent>>,
    guard: DiskGuard,
}

/// How a record becomes its interaction line: which bodies to keep, and the redaction.
struct Render {
    /// Whether lines are rendered: for the interactions file (`LOG_BODIES` other than
    /// `none`) or the explorer's ring (`EXPLORER_RECENT` above 0).
    lines: bool,
    /// Whether each request gets an access line (`ACCESS_LOG`).
    access: bool,
    bodies: LogBodies,
    max_body: usize,
    redactor: Redactor,
}

/// The bodies a record carries to its line.
struct Bodies {
    request: Option<Body>,
    response: Option<Body>,
    client: Option<Body>,
}

/// The access line of every request (unless `ACCESS_LOG=false`), the line of a failed one at
/// the level it deserves ([`failure_level`]), and with `DEBUG=true` (or `LOG_LEVEL=debug`) a
/// line with the routing decision, where it went (the base URL; a key is never part of it),
/// each attempt and the dropped parameters.
fn log_request(i: &Interaction, route: &str, access: bool) {
    let ms = i.processing_time.as_secs_f64() * 1000.0;
    if access {
        log::info!(
            target: "access",
            "{} {} {} {:.1}ms model={} id={}",
            i.method,
            route,
            i.http_status,
            ms,
            i.model_requested.as_deref().unwrap_or("-"),
            i.request_id
        );
    }
    if let Some(error) = &i.error {
        log::log!(
            failure_level(i),
            "request {} failed: status={} kind={} code={} message={}",
            i.request_id,
            i.http_status,
            error["error"]["type"].as_str().unwrap_or("-"),
            error["error"]["code"].as_str().unwrap_or("-"),
            error["error"]["message"].as_str().unwrap_or("-"),
        );
    }
    if log::log_enabled!(log::Level::Debug) && !i.access_only {
        let attempts: Vec<String> = i
            .attempts
            .iter()
            .map(|a| {
                let base = a.api_base.as_deref().unwrap_or("built in");
                format!(
                    "{} at {base}: {} in {:.1}ms",
                    a.deployment, a.status, a.latency_ms
                )
            })
            .collect();
        log::debug!(
            "request {} {} {}: model {} -> {}/{} at {}; attempts [{}]; dropped params [{}]; queue wait {:.3}ms",
            i.request_id,
            i.method,
            route,
            i.model_requested.as_deref().unwrap_or("-"),
            i.provider.unwrap_or("-"),
            i.model.as_deref().unwrap_or("-"),
            i.api_base.as_deref().unwrap_or("-"),
            attempts.join("; "),
            i.dropped_params.join(", "),
            i.queue_wait.as_secs_f64() * 1000.0,
        );
    }
}

/// How loud a failed request is in the system log (and so on standard error, which shows
/// warnings and errors): the gateway's own faults and the providers' failures (5xx) are
/// errors, and so is a provider refusing the gateway's own key (401, 403: the operator must
/// act); a provider's rate limit (429) is a warning; a client's mistake (any other 4xx, a
/// browser's 404 for a missing page included) is information, since only the client can fix
/// it.
fn failure_level(i: &Interaction) -> log::Level {
    let provider_answered = !i.attempts.is_empty() || i.upstream_latency.is_some();
    match i.http_status {
        500.. => log::Level::Error,
        401 | 403 if provider_answered => log::Level::Error,
        429 if provider_answered => log::Level::Warn,
        _ => log::Level::Info,
    }
}

/// How often the recorder thread picks up records no worker wrote.
const SWEEP: Duration = Duration::from_millis(10);

/// The recorder thread. It never waits on the queue itself (a waiting receiver would be woken
/// by every send, a context switch per request): every `SWEEP` it writes what workers left in
/// the queue; once a second it flushes, writes closed trend minutes and keeps the log directory
/// within its limits; on stop it drains the queue, writes the open trend minutes and flushes.
fn run(writer: &Mutex<Writer>, rx: &Receiver<Record>, stop: &Stop) {
    lock(writer).guard.enforce();
    let mut last_tick = Instant::now();
    loop {
        match stop.wait(SWEEP) {
            StopState::Running => {}
            StopState::Asked(ack) => {
                let mut w = lock(writer);
                w.drain(rx, usize::MAX);
                w.persist_trends(true);
                w.flush();
                let _ = ack.send(());
                return;
            }
            StopState::Abandoned => return,
        }
        let mut w = lock(writer);
        // What is queued now, not what keeps coming: workers write their own while they can.
        w.drain(rx, rx.len());
        if last_tick.elapsed() >= Duration::from_secs(1) {
            w.flush();
            // The system log too: its access lines are buffered until now.
            log::logger().flush();
            w.persist_trends(false);
            for path in w.guard.enforce() {
                log::info!("deleted old log file {}", path.display());
            }
            last_tick = Instant::now();
        }
    }
}

impl Writer {
    /// Handles up to `most` records that are already queued.
    fn drain(&mut self, rx: &Receiver<Record>, most: usize) {
        for _ in 0..most {
            match rx.try_recv() {
                Ok(record) => self.write(record),
                Err(_) => return,
            }
        }
    }

    fn persist_trends(&self, all: bool) {
        if let Some(live) = &self.live {
            lock(&live.trends).persist(unix_now() as i64, all);
        }
    }

    /// Counts an API call in the metrics and the trends.
    fn observe(&self, i: &Interaction, usage: Option<&Value>) {
        let Some(live) = &self.live else { return };
        if !i.api_call {
            return;
        }
        let tokens = usage.and_then(Tokens::from_usage);
        let observation = Observation {
            interaction: i,
            tokens,
            reasoning_tokens: usage
                .and_then(|u| u["completion_tokens_details"]["reasoning_tokens"].as_u64())
                .unwrap_or(0),
            cost: i.cost,
            error_kind: i
                .error
                .as_ref()
                .and_then(|e| e["error"]["type"].as_str().map(str::to_string)),
        };
        let mut metrics = lock(&live.metrics);
        let model = metrics.observe(&observation);
        let sample = Sample {
            error: i.outcome() != Outcome::Success && i.outcome() != Outcome::ClientClosed,
            prompt_tokens: tokens.map_or(0, |t| t.prompt),
            completion_tokens: tokens.map_or(0, |t| t.completion),
            cost_usd: i.cost,
            has_usage: tokens.is_some(),
            latency_seconds: i.processing_time.as_secs_f64(),
        };
        let provider = i.provider.unwrap_or("(none)");
        lock(&live.trends).observe(i.timestamp.unix_timestamp(), provider, model, &sample);
    }

    fn flush(&self) {
        if let Some(file) = &self.file {
            let _ = file.flush();
        }
    }

    fn write(&mut self, Record(i, line): Record) {
        self.observe(&i, i.usage.as_ref());
        let Some((line, meta_end)) = line else { return };
        lock(&self.recent).push(&line, meta_end);
        let Some(file) = &self.file else { return };
        if let Err(e) = file.write_line(line.as_bytes()) {
            log::error!("cannot write the interactions log: {e}");
        }
    }
}

impl Render {
    /// The record as one redacted JSON line, and the byte where its bodies begin (the
    /// explorer reads the fields before it without parsing the bodies). Bodies are embedded as
    /// the JSON text they were exchanged as, not parsed into a tree and written again: that is
    /// most of the cost of a line, and the bodies are the bulk of it.
    fn line(&self, i: &Interaction, route: &str, bodies: Bodies) -> (String, usize) {
        let fields = serde_json::to_string(&self.fields(i, route)).unwrap_or_default();
        // Redacted apart from the bodies, so that `meta_end` stays true; copied only when a
        // secret was found.
        let mut line = match self.redactor.text(&fields) {
            Cow::Borrowed(_) => fields,
            Cow::Owned(redacted) => redacted,
        };
        // The object's closing brace gives way to the bodies.
        line.pop();
        let meta_end = line.len();
        let bodies = [
            ("client_request", self.body(bodies.client, None)),
            ("downstream_request", self.body(bodies.request, None)),
            ("downstream_response", self.body(bodies.response, i.chunks)),
        ];
        let size = bodies
            .iter()
            .map(|(name, body)| name.len() + body.as_ref().map_or(4, String::len) + 4)
            .sum::<usize>();
        let mut rest = String::with_capacity(size + 1);
        for (name, body) in bodies {
            rest.push_str(",\"");
            rest.push_str(name);
            rest.push_str("\":");
            rest.push_str(body.as_deref().unwrap_or("null"));
        }
        rest.push('}');
        line.push_str(&self.redactor.text(&rest));
        (line, meta_end)
    }

    fn fields<'a>(&self, i: &'a Interaction, route: &'a str) -> Line<'a> {
        let secs = |d: Duration| d.as_secs_f64();
        Line {
            timestamp: rfc3339_micros(i.timestamp),
            request_id: &i.request_id,
            method: &i.method,
            route,
            client: Client {
                address: i.client_addr.to_string(),
                user_agent: i.user_agent.as_deref(),
            },
            key_name: i.key_name.as_deref(),
            team: i.team.as_deref(),
            model_requested: i.model_requested.as_deref(),
            model: i.model.as_deref(),
            provider: i.provider,
            api_base: i.api_base.as_deref(),
            stream: i.stream,
            http_status: i.http_status,
            status: i.outcome().as_str(),
            error: i.error.as_ref().map(|e| &e["error"]),
            processing_time: secs(i.processing_time),
            upstream_latency: i.upstream_latency.map(secs),
            time_to_first_token: i.time_to_first_token.map(secs),
            gateway_overhead_ms: i.gateway_overhead.map(|d| d.as_secs_f64() * 1000.0),
            queue_wait_ms: i.queue_wait.as_secs_f64() * 1000.0,
            usage: usage(i),
            usage_source: i.usage.as_ref().map(|_| {
                if i.usage_estimated {
                    "estimated"
                } else {
                    "provider"
                }
            }),
            cost_usd: i.cost,
            dropped_params: &i.dropped_params,
            attempts: &i.attempts,
        }
    }

    /// A body as the log keeps it: its JSON text (a JSON string when it is not JSON), embedding
    /// vectors summarised unless `full`, a stream's event count added, then capped when
    /// `truncated`. Secrets are redacted with the whole line.
    fn body(&self, body: Option<Body>, chunks: Option<u64>) -> Option<String> {
        if matches!(self.bodies, LogBodies::Metadata | LogBodies::None) {
            return None;
        }
        let summarise = self.bodies != LogBodies::Full;
        let text = match body? {
            Body::Raw(bytes) if summarise && is_embeddings_list(&bytes) => {
                let mut value: Value = serde_json::from_slice(&bytes).ok()?;
                summarise_embeddings(&mut value);
                value.to_string()
            }
            Body::Raw(bytes) => match String::from_utf8(bytes) {
                // In valid JSON a line break can only be white space between tokens (inside a
                // string it must be escaped), so it can go: the log is one object per line.
                Ok(text) if memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_some() => {
                    text.replace(['\n', '\r'], " ")
                }
                Ok(text) => text,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            },
            Body::Value(mut value) => {
                if summarise {
                    summarise_embeddings(&mut value);
                }
                if let (Some(chunks), Value::Object(map)) = (chunks, &mut value) {
                    map.insert("chunks".into(), json!(chunks));
                }
                value.to_string()
            }
        };
        let text = if self.bodies == LogBodies::Truncated && text.len() > self.max_body {
            let mut cut = self.max_body;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            json!({"truncated": true, "original_bytes": text.len(), "head": &text[..cut]})
                .to_string()
        } else {
            text
        };
        // Validated once, here (no tree is built, nothing is copied); a body that is not JSON
        // is logged as a JSON string.
        if serde_json::from_str::<IgnoredAny>(&text).is_ok() {
            Some(text)
        } else {
            Some(Value::String(text).to_string())
        }
    }
}

/// The usage in one shape: prompt, completion, total, cached and reasoning tokens.
fn usage(i: &Interaction) -> Option<Usage> {
    let usage = i.usage.as_ref().filter(|u| u.is_object())?;
    let n = |v: &Value| v.as_u64();
    let prompt = n(&usage["prompt_tokens"]);
    let completion = n(&usage["completion_tokens"]);
    Some(Usage {
        cached_tokens: n(&usage["prompt_tokens_details"]["cached_tokens"]),
        completion_tokens: completion,
        prompt_tokens: prompt,
        reasoning_tokens: n(&usage["completion_tokens_details"]["reasoning_tokens"]),
        total_tokens: n(&usage["total_tokens"]).or(prompt.zip(completion).map(|(p, c)| p + c)),
    })
}

/// Whether a body is an embeddings list (worth parsing to summarise its vectors).
/// Asked of every logged body: one SIMD search, where comparing a window at every byte cost
/// about 15 instructions a byte (a tenth of recording a chat call).
fn is_embeddings_list(bytes: &[u8]) -> bool {
    static EMBEDDING: OnceLock<Finder<'static>> = OnceLock::new();
    EMBEDDING
        .get_or_init(|| Finder::new(b"\"embedding\""))
        .find(bytes)
        .is_some()
}

/// Replaces each `data[].embedding` with its size and first values.
fn summarise_embeddings(value: &mut Value) {
    if value.get("object").and_then(Value::as_str) != Some("list") {
        return;
    }
    let Some(data) = value.get_mut("data").and_then(Value::as_array_mut) else {
        return;
    };
    for item in data {
        let summary = match item.get("embedding") {
            Some(Value::Array(v)) => json!({
                "dimensions": v.len(),
                "first": v.iter().take(EMBEDDING_PREVIEW).collect::<Vec<_>>(),
            }),
            Some(Value::String(b64)) => json!({"base64_chars": b64.len()}),
            _ => continue,
        };
        item["embedding"] = summary;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Serialize)]
struct Client<'a> {
    address: String,
    user_agent: Option<&'a str>,
}

/// One line of the interactions log, fields in reading order, but for the bodies. Every line has every key
/// (`null` or empty when it does not apply), so a reader never has to guess. It borrows what
/// the interaction holds: rendering a line copies nothing but into the line itself.
#[derive(Serialize)]
struct Line<'a> {
    timestamp: String,
    request_id: &'a str,
    method: &'a str,
    route: &'a str,
    client: Client<'a>,
    /// The gateway key's name (never the key) and its team; null without keys.
    key_name: Option<&'a str>,
    team: Option<&'a str>,
    model_requested: Option<&'a str>,
    model: Option<&'a str>,
    provider: Option<&'static str>,
    api_base: Option<&'a str>,
    stream: bool,
    http_status: u16,
    status: &'static str,
    error: Option<&'a Value>,
    processing_time: f64,
    upstream_latency: Option<f64>,
    time_to_first_token: Option<f64>,
    gateway_overhead_ms: Option<f64>,
    /// Time waiting for a worker before `processing_time` began.
    queue_wait_ms: f64,
    usage: Option<Usage>,
    /// `provider` or `estimated` (the provider reported none); null without usage.
    usage_source: Option<&'static str>,
    cost_usd: Option<f64>,
    dropped_params: &'a [String],
    attempts: &'a [Attempt],
    // Then, written by `Render::line`: `client_request` (the client's body, when the request
    // was refused before any provider call), `downstream_request`, `downstream_response`.
}

/// The line's usage: keys in alphabetical order, as they were when this was a JSON map.
#[derive(Serialize)]
struct Usage {
    cached_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens: Option<u64>,
    reasoning_tokens: Option<u64>,
    total_tokens: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_borrows_its_fields_and_keeps_bodies_as_sent_or_as_strings() {
        let render = Render {
            lines: true,
            access: false,
            bodies: LogBodies::Truncated,
            max_body: 1024,
            redactor: Redactor::new(["sk-fake-redacted-secret".to_string()]),
        };
        let mut i = Interaction::new(
            "req-1".into(),
            "POST",
            "/v1/chat/completions",
            "127.0.0.1:9".parse().unwrap(),
        );
        i.usage = Some(json!({"prompt_tokens": 3, "completion_tokens": 4}));
        i.error = Some(json!({"error": {"message": "m", "type": "t"}}));
        let bodies = Bodies {
            client: None,
            request: Some(Body::Raw(br#" {"key":"sk-fake-redacted-secret"}"#.to_vec())),
            response: Some(Body::Raw(b"not json".to_vec())),
        };
        let (line, meta_end) = render.line(&i, "/v1/chat/completions", bodies);
        assert!(line[meta_end..].starts_with(r#","client_request":null"#));
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["request_id"], "req-1");
        assert_eq!(value["error"], json!({"message": "m", "type": "t"}));
        assert_eq!(
            value["usage"],
            json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7,
                   "cached_tokens": null, "reasoning_tokens": null})
        );
        assert_eq!(value["downstream_request"], json!({"key": "***"}));
        assert_eq!(value["downstream_response"], "not json");
    }

    #[test]
    fn embedding_vectors_are_summarised() {
        let mut v = json!({"object":"list","data":[{"embedding":[0.1,0.2,0.3,0.4,0.5,0.6]},{"embedding":"AAAA"}]});
        summarise_embeddings(&mut v);
        assert_eq!(v["data"][0]["embedding"]["dimensions"], 6);
        assert_eq!(
            v["data"][0]["embedding"]["first"].as_array().unwrap().len(),
            4
        );
        assert_eq!(v["data"][1]["embedding"]["base64_chars"], 4);
    }
}
