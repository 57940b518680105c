//! One request's exchange with its client: the request id, the headers every answer carries
//! (`x-request-id`, CORS), the ways to answer (a response, JSON, an error in the OpenAI shape,
//! or an SSE stream whose events, errors included, are written as they come), and the
//! request's [`Interaction`] record, which every answer updates and which is handed to the
//! recorder exactly once, when the exchange's last holder drops it (the handler, or a stream
//! the relay loop carries on after the handler returned), whichever way the request ended. Every
//! answer goes through here, so the recorded status is the status sent. Requests the HTTP
//! layer refuses on its own are recorded here too ([`refused`]).

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::access::{self, Admission, Caller};
use crate::config::LogBodies;
use crate::error::ApiError;
use crate::events::{Body, Interaction, Outcome};
use crate::gateway::Gateway;
use crate::http::{ClientGone, Refusal, Request, Responder, Response, Stream};
use crate::pricing::{Price, Tokens};
use crate::providers::Target;
use crate::router::{Failure, Plan};

/// Headers a browser client may read from our answers.
const EXPOSED_HEADERS: &str =
    "x-request-id, x-gateway-overhead-ms, x-gateway-attempts, retry-after, retry-after-ms, x-should-retry, \
     x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests, \
     x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens";

/// One request's exchange, shared: the handler holds it, and so does a stream it hands to the
/// relay loop ([`Exchange::share`]), which may outlive the handler. The record goes to the
/// recorder when the last holder drops it, so a relayed stream is recorded when it ends.
pub struct Exchange(Arc<Shared>);

/// What an [`Exchange`] holds. Locked state rather than cells: a relayed stream fills in the
/// record on a relay thread.
pub struct Shared {
    pub gw: Arc<Gateway>,
    pub req: Arc<Request>,
    pub request_id: String,
    /// Headers every answer carries (`x-request-id`, CORS, a keyed call's `x-ratelimit-*`).
    common: Mutex<Vec<(String, String)>>,
    /// The gateway key's admission, settled from the record when the exchange ends.
    admission: Mutex<Option<Admission>>,
    /// The request body holds secrets (the key routes): never kept in the record.
    withhold_body: AtomicBool,
    record: Mutex<Interaction>,
    /// Provider calls made so far (the router's retries and fallbacks each add one).
    attempts: AtomicU32,
    /// The serving deployment's own price (a config file's `model_info`), over the table's.
    price: Mutex<Option<Price>>,
}

impl Deref for Exchange {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Locks one of the exchange's parts; a panic elsewhere while it was held leaves it usable
/// (each part is consistent after every single write).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Exchange {
    pub fn new(gw: Arc<Gateway>, req: Arc<Request>) -> Self {
        let (request_id, common) = identify(&gw, Some(&req));
        let mut record = Interaction::new(request_id.clone(), &req.method, &req.target, req.peer);
        record.started = req.received_at;
        record.queue_wait = req.queue_wait;
        record.user_agent = req.header("user-agent").map(str::to_string);
        Exchange(Arc::new(Shared {
            gw,
            req,
            request_id,
            common: Mutex::new(common),
            admission: Mutex::new(None),
            withhold_body: AtomicBool::new(false),
            record: Mutex::new(record),
            attempts: AtomicU32::new(0),
            price: Mutex::new(None),
        }))
    }

    /// Another holder of this exchange, for a stream that goes on after its handler returns.
    pub fn share(&self) -> Exchange {
        Exchange(self.0.clone())
    }
}

impl Shared {
    /// Takes an admitted call: its `x-ratelimit-*` headers go on every answer, and it is
    /// settled when the exchange ends.
    pub fn admit(&self, mut admission: Admission) {
        lock(&self.common).extend(admission.headers.drain(..));
        *lock(&self.admission) = Some(admission);
    }

    /// Names the caller in the record: the key's name and team.
    pub fn name_caller(&self, caller: &Caller) {
        let mut record = self.record();
        record.key_name = Some(caller.name().to_string());
        record.team = caller.team().map(str::to_string);
    }

    /// Who is calling, when keys are in use.
    pub fn caller(&self) -> Option<Caller> {
        lock(&self.admission).as_ref().map(|a| a.caller.clone())
    }

    /// Keeps the request body out of the record (it holds a key).
    pub fn withhold_body(&self) {
        self.withhold_body.store(true, Ordering::Relaxed);
    }

    /// Records who serves the request.
    pub fn note_target(&self, target: &Target) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        *lock(&self.price) = target.settings.price;
        let mut record = self.record();
        record.provider = Some(target.provider.name);
        record.model = Some(target.model.clone());
        record.api_base = target.settings.base_url.clone();
    }

    /// Walks the request's plan (see [`Plan::walk`]) and records each provider call it made.
    pub fn walk(
        &self,
        plan: &Plan,
        body: Map<String, Value>,
        attempt: impl FnMut(&Target, Map<String, Value>) -> Result<(), Failure>,
    ) -> Result<(), ApiError> {
        if let Some(caller) = self.caller() {
            if !caller.allows(&plan.requested) {
                return Err(access::model_not_allowed(&caller, &plan.requested));
            }
            if caller.refuses_unpriced() && !self.priced(plan) {
                return Err(access::model_not_priced(&caller, &plan.requested));
            }
        }
        let result = plan.walk(body, attempt);
        self.record().attempts = plan.attempts();
        result
    }

    /// Whether every candidate of a plan has a known price (its own, or the table's).
    fn priced(&self, plan: &Plan) -> bool {
        let prices = &self.gw.config.prices;
        plan.candidates.iter().all(|t| {
            t.settings.price.is_some()
                || prices.lookup(&plan.requested).is_some()
                || prices
                    .lookup(&format!("{}/{}", t.provider.name, t.model))
                    .is_some()
                || prices.lookup(&t.model).is_some()
        })
    }

    /// Marks this request as monitoring or docs: an access line, not an interaction line,
    /// unless it is refused.
    pub fn mark_access_only(&self) {
        self.record().access_only = true;
    }

    /// `x-gateway-attempts`: how many provider calls the answer took, once there was one.
    fn attempts_header(&self) -> Option<(String, String)> {
        let n = self.attempts.load(Ordering::Relaxed);
        (n > 0).then(|| ("x-gateway-attempts".to_string(), n.to_string()))
    }

    /// Marks this request as an API call: counted in flight now, and in the metrics.
    pub fn mark_api_call(&self) {
        self.record().api_call = true;
        self.gw.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the provider's usage and what it cost; returns the cost header when the price
    /// is known (an unpriced model gets none rather than a made-up zero).
    pub fn set_usage(&self, usage: Option<Value>) -> Option<(String, String)> {
        let mut record = self.record();
        let tokens = usage.as_ref().and_then(Tokens::from_usage);
        let prices = &self.gw.config.prices;
        record.cost = tokens.and_then(|t| {
            if let Some(price) = *lock(&self.price) {
                return Some(price.cost(t));
            }
            let names = [record.model_requested.as_deref(), record.model.as_deref()];
            names.into_iter().flatten().find_map(|m| prices.cost(m, t))
        });
        if let (Some(admission), Some(cost)) = (lock(&self.admission).as_ref(), record.cost) {
            self.gw.access.note_cost(admission, cost);
        }
        record.usage = usage;
        record
            .cost
            .map(|c| ("x-gateway-cost-usd".to_string(), format!("{c:.8}")))
    }

    /// Records usage the gateway estimated because the provider reported none, like
    /// [`Exchange::set_usage`].
    pub fn set_estimated_usage(&self, usage: Value) -> Option<(String, String)> {
        self.record().usage_estimated = true;
        self.set_usage(Some(usage))
    }

    /// Whether the interactions log keeps bodies (else they are not even copied).
    pub fn keeps_bodies(&self) -> bool {
        matches!(
            self.gw.config.log_bodies,
            LogBodies::Full | LogBodies::Truncated
        )
    }

    /// How much streamed text to keep for the log.
    pub fn log_text_limit(&self) -> usize {
        match self.gw.config.log_bodies {
            LogBodies::Full => 64 * 1024 * 1024,
            LogBodies::Truncated => self.gw.config.log_max_body_bytes,
            LogBodies::Metadata | LogBodies::None => 0,
        }
    }

    /// The request's record, to fill in as the request goes.
    pub fn record(&self) -> MutexGuard<'_, Interaction> {
        lock(&self.record)
    }

    /// Time spent in the gateway so far, not counting `upstream` (time waiting for a provider).
    /// Also recorded as the request's gateway overhead.
    pub fn overhead(&self, upstream: Duration) -> (&'static str, String) {
        let overhead = self.req.received_at.elapsed().saturating_sub(upstream);
        self.record().gateway_overhead = Some(overhead);
        let ms = overhead.as_secs_f64() * 1000.0;
        ("x-gateway-overhead-ms", format!("{ms:.3}"))
    }

    /// Sends a whole response with the headers every answer carries, and records its status.
    pub fn send(&self, res: &mut Responder<'_>, mut response: Response) -> Result<(), ClientGone> {
        self.record().http_status = response.status;
        response.headers.extend(lock(&self.common).iter().cloned());
        response.headers.extend(self.attempts_header());
        let sent = res.send(response);
        if sent.is_err() {
            self.record().outcome = Some(Outcome::ClientClosed);
        }
        sent
    }

    pub fn send_json(
        &self,
        res: &mut Responder<'_>,
        status: u16,
        body: Vec<u8>,
        extra: Vec<(String, String)>,
    ) -> Result<(), ClientGone> {
        let mut response = Response::new(status, "application/json", body);
        response.headers.extend(extra);
        self.send(res, response)
    }

    /// Answers 200 with a JSON value the gateway built, plus `extra` headers.
    pub fn send_value(
        &self,
        res: &mut Responder<'_>,
        value: &Value,
        mut extra: Vec<(String, String)>,
    ) -> Result<(), ClientGone> {
        let (name, ms) = self.overhead(Duration::ZERO);
        extra.push((name.into(), ms));
        let body = serde_json::to_vec(value).unwrap_or_default();
        self.send_json(res, 200, body, extra)
    }

    /// Answers with an error (when nothing was sent yet).
    pub fn send_error(&self, res: &mut Responder<'_>, error: &ApiError) {
        if res.is_started() {
            return;
        }
        self.record_error(error);
        let _ = self.send_json(res, error.status, error.to_body(), error.headers.clone());
    }

    /// Records an error as the request's outcome (504s count as timeouts). Explicitly: a
    /// stream that fails has already sent its 200.
    pub fn record_error(&self, error: &ApiError) {
        let mut record = self.record();
        record.error = Some(error.to_value());
        record.outcome = Some(if error.status == 504 {
            Outcome::Timeout
        } else {
            Outcome::Error
        });
    }

    /// Starts an SSE answer with the common headers plus `extra`.
    pub fn start_sse<'r, 's>(
        &self,
        res: &'r mut Responder<'s>,
        extra: Vec<(String, String)>,
    ) -> Result<Stream<'r, 's>, ClientGone> {
        let mut headers = vec![
            ("content-type".to_string(), "text/event-stream".to_string()),
            ("cache-control".into(), "no-cache".into()),
            ("x-accel-buffering".into(), "no".into()),
        ];
        headers.extend(lock(&self.common).iter().cloned());
        headers.extend(self.attempts_header());
        headers.extend(extra);
        self.record().http_status = 200;
        let started = res.stream(200, &headers);
        if started.is_err() {
            self.record().outcome = Some(Outcome::ClientClosed);
        }
        started
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let mut record = std::mem::replace(
            self.record
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
            Interaction::new(String::new(), "", "", self.req.peer),
        );
        record.processing_time = self.req.received_at.elapsed();
        if record.http_status == 0 {
            // Nothing was answered: the worker will answer 500 on the handler's behalf.
            record.http_status = 500;
        }
        let refused_before_call = record.error.is_some() && record.request_body.is_none();
        let withheld = *self.withhold_body.get_mut();
        if refused_before_call && !self.req.body.is_empty() && self.keeps_bodies() && !withheld {
            record.client_body = Some(Body::Raw(self.req.body.clone()));
        }
        if withheld {
            record.response_body = None;
        }
        if let Some(admission) = self
            .admission
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            self.gw.access.settle(admission, &record);
        }
        if record.api_call {
            self.gw.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        self.gw.recorder.record(record);
    }
}

/// The request id (the client's own when sane, else a new one) and the headers every answer
/// to the request carries: `x-request-id`, and CORS's when its origin is allowed.
fn identify(gw: &Gateway, req: Option<&Request>) -> (String, Vec<(String, String)>) {
    let request_id = match req.and_then(|r| r.header("x-request-id")) {
        Some(id) if is_sane_request_id(id) => id.to_string(),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    let mut common = vec![("x-request-id".to_string(), request_id.clone())];
    if let Some(origin) = req.and_then(|r| r.header("origin")) {
        if let Some(allowed) = gw.allowed_origin(origin) {
            common.push(("access-control-allow-origin".into(), allowed.to_string()));
            common.push((
                "access-control-expose-headers".into(),
                EXPOSED_HEADERS.into(),
            ));
            if allowed != "*" {
                common.push(("vary".into(), "origin".into()));
            }
        }
    }
    (request_id, common)
}

/// The answer to a request the HTTP layer refuses on its own (400, 408, 413, 431, 503; or a
/// 500 after the handler failed): the error in the OpenAI shape with the request's id (the
/// client's own when its head was read), recorded as an interaction and counted in the
/// metrics, unless the handler had already recorded the request itself.
pub fn refused(gw: &Gateway, refusal: &Refusal<'_>) -> Response {
    let error = match refusal.status {
        413 => ApiError::protocol(
            413,
            &format!(
                "The request body is larger than this gateway accepts: at most {} bytes (MAX_REQUEST_BYTES).",
                gw.config.server.max_body_bytes
            ),
        ),
        status => ApiError::protocol(status, refusal.message),
    };
    let (request_id, common) = identify(gw, refusal.head);
    let mut response = Response::new(refusal.status, "application/json", error.to_body());
    response.headers.extend(common);
    if !refusal.after_handler {
        let (method, route) = refusal
            .head
            .map_or(("", ""), |r| (r.method.as_str(), r.target.as_str()));
        let mut record = Interaction::new(request_id, method, route, refusal.peer);
        record.started = refusal.received_at;
        record.user_agent = refusal
            .head
            .and_then(|r| r.header("user-agent"))
            .map(str::to_string);
        record.http_status = refusal.status;
        record.error = Some(error.to_value());
        record.api_call = true;
        record.processing_time = refusal.received_at.elapsed();
        gw.recorder.record(record);
    }
    response
}

/// A client's own request id is kept when it is 1–128 printable ASCII characters.
fn is_sane_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Writes one SSE `data:` event.
pub fn sse_data(out: &mut Vec<u8>, data: &str) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_must_be_short_printable_ascii() {
        assert!(is_sane_request_id("req-123_abc"));
        assert!(!is_sane_request_id(""));
        assert!(!is_sane_request_id("has space"));
        assert!(!is_sane_request_id(&"x".repeat(129)));
        assert!(!is_sane_request_id("naïve"));
    }
}
