//! The record of one request: who asked what, where it went, what came back, how long it
//! took, what it used. Workers fill it in as the request goes; it is sent to the recorder
//! exactly once, when the request's `Exchange` is dropped, whatever path the request took.
//! Bodies travel as the raw bytes exchanged with the provider: parsing, trimming and
//! redacting them is the recorder's work, off the request path.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use time::OffsetDateTime;

/// Seconds since the Unix epoch: the one clock for `created` fields and trend minutes.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `2026-11-26T08:00:00.123456+00:00`.
pub fn rfc3339_micros(t: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6][offset_hour sign:mandatory]:[offset_minute]"
    );
    t.format(&format).unwrap_or_default()
}

/// How a request ended, as the interactions log names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Error,
    ClientClosed,
    Timeout,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::ClientClosed => "client_closed",
            Outcome::Timeout => "timeout",
        }
    }
}

/// A body as exchanged: raw bytes, or a value the gateway built (a reassembled stream).
#[derive(Debug, Clone)]
pub enum Body {
    Raw(Vec<u8>),
    Value(Value),
}

/// One provider call of a request: the deployment, how it ended and how long it took.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Attempt {
    /// The alias (or the plain model name) the deployment serves.
    pub alias: String,
    /// `provider/model`.
    pub deployment: String,
    pub api_base: Option<String>,
    /// 200 when it answered, else the status the gateway gives its failure (502 for a
    /// provider's 5xx, 504 for a timeout, the provider's own for a refusal or a 429).
    pub status: u16,
    pub latency_ms: f64,
    /// The failure's message.
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Interaction {
    pub timestamp: OffsetDateTime,
    pub started: Instant,
    pub request_id: String,
    pub method: String,
    /// The path, with any query string redacted by the recorder.
    pub route: String,
    pub client_addr: SocketAddr,
    pub user_agent: Option<String>,
    /// The gateway key's name (never the key) and team, when keys are in use.
    pub key_name: Option<String>,
    pub team: Option<String>,
    pub model_requested: Option<String>,
    pub model: Option<String>,
    pub provider: Option<&'static str>,
    pub api_base: Option<String>,
    pub stream: bool,
    /// The body sent to the provider (for the built-in models: the client's request).
    pub request_body: Option<Body>,
    /// The body as the client sent it, kept when the request was refused before any provider
    /// call (malformed, invalid, an unknown model): the one request a user most needs to see.
    pub client_body: Option<Body>,
    /// Non-stream: the body received; stream: the reassembled `chat.completion`.
    pub response_body: Option<Body>,
    /// Stream events relayed to the client.
    pub chunks: Option<u64>,
    pub http_status: u16,
    /// Set when a request ends in a way the status alone does not tell (client gone, timeout).
    pub outcome: Option<Outcome>,
    pub error: Option<Value>,
    pub upstream_latency: Option<Duration>,
    pub time_to_first_token: Option<Duration>,
    pub gateway_overhead: Option<Duration>,
    /// How long the request waited for a worker before its own time began (see
    /// `http::Request::queue_wait`); zero for one read at once.
    pub queue_wait: Duration,
    /// The provider's usage object (OpenAI shape) when it reported one.
    pub usage: Option<Value>,
    /// The usage is the gateway's estimate: the provider reported none.
    pub usage_estimated: bool,
    /// USD, from the usage and the price table; `None` when unknown (no usage or no price).
    pub cost: Option<f64>,
    /// A chat or embeddings call: counted in the metrics.
    pub api_call: bool,
    /// A monitoring or docs request (`/health`, `/metrics*`, `/v1/models` …): an access line
    /// only, unless it was refused (an error status), so probes and dashboards do not flood
    /// the interactions log.
    pub access_only: bool,
    /// Request parameters dropped because the provider cannot honour them.
    pub dropped_params: Vec<String>,
    /// Each provider call the router made for the request, in order.
    pub attempts: Vec<Attempt>,
    /// Set once the request is over (by the drop guard).
    pub processing_time: Duration,
}

impl Interaction {
    pub fn new(request_id: String, method: &str, route: &str, client_addr: SocketAddr) -> Self {
        Interaction {
            timestamp: OffsetDateTime::now_utc(),
            started: Instant::now(),
            request_id,
            method: method.to_string(),
            route: route.to_string(),
            client_addr,
            user_agent: None,
            key_name: None,
            team: None,
            model_requested: None,
            model: None,
            provider: None,
            api_base: None,
            stream: false,
            request_body: None,
            client_body: None,
            response_body: None,
            chunks: None,
            http_status: 0,
            outcome: None,
            error: None,
            upstream_latency: None,
            time_to_first_token: None,
            gateway_overhead: None,
            queue_wait: Duration::ZERO,
            usage: None,
            usage_estimated: false,
            cost: None,
            api_call: false,
            access_only: false,
            dropped_params: Vec::new(),
            attempts: Vec::new(),
            processing_time: Duration::ZERO,
        }
    }

    /// How it ended: an explicit outcome, else success for 2xx and error otherwise.
    pub fn outcome(&self) -> Outcome {
        self.outcome
            .unwrap_or(if (200..300).contains(&self.http_status) {
                Outcome::Success
            } else {
                Outcome::Error
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_microseconds_and_an_offset() {
        let t = time::macros::datetime!(2026-11-26 08:00:00.123456 UTC);
        assert_eq!(rfc3339_micros(t), "2026-11-26T08:00:00.123456+00:00");
    }
}
