//! Live aggregates of the API calls (chat completions and embeddings), kept by the recorder
//! thread and read by handlers as a copy: totals and per model and per provider, requests,
//! outcomes, errors by status and kind, tokens, cost, and latency histograms with fixed
//! buckets (so memory stays the same whatever the traffic, and Prometheus gets real
//! histograms). Model names come from clients, so only names the gateway resolved get their
//! own entry, up to [`MAX_MODELS`]; the rest are counted under `(unresolved)` / `(other)`.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::events::{Interaction, Outcome};
use crate::pricing::Tokens;

/// Upper bounds (seconds) of the latency histograms' buckets; the last bucket is +Inf.
pub const LATENCY_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 25.0, 50.0, 100.0, 300.0, 600.0,
];
/// Upper bounds (seconds) of the gateway-overhead histogram.
pub const OVERHEAD_BOUNDS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];
/// Distinct model entries kept, at most.
pub const MAX_MODELS: usize = 500;

/// A fixed-bucket histogram.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub bounds: &'static [f64],
    /// One count per bound, plus the +Inf bucket; not cumulative.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, value: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += value;
        self.count += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    /// The q-quantile, interpolated linearly inside its bucket (Prometheus'
    /// `histogram_quantile` rule); the +Inf bucket answers its lower bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut seen = 0u64;
        for (i, &n) in self.counts.iter().enumerate() {
            if n > 0 && (seen + n) as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { self.bounds[i - 1] };
                let Some(&upper) = self.bounds.get(i) else {
                    return Some(lower);
                };
                let within = (rank - seen as f64) / n as f64;
                return Some(lower + (upper - lower) * within.clamp(0.0, 1.0));
            }
            seen += n;
        }
        self.bounds.last().copied()
    }

    pub fn summary(&self) -> Value {
        json!({
            "count": self.count,
            "mean": (self.count > 0).then(|| self.sum / self.count as f64),
            "p50": self.quantile(0.5),
            "p90": self.quantile(0.9),
            "p99": self.quantile(0.99),
        })
    }
}

/// Counts and distributions for one slice of the traffic (all of it, a model, a provider).
#[derive(Clone, Debug)]
pub struct Stats {
    pub requests: u64,
    pub successes: u64,
    pub errors: u64,
    pub client_closed: u64,
    pub timeouts: u64,
    pub by_status: BTreeMap<u16, u64>,
    pub by_error_kind: BTreeMap<String, u64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
    /// Prompt and completion tokens that are the gateway's estimate (also in the totals).
    pub estimated_tokens: u64,
    pub cost_usd: f64,
    /// Requests with usage but no known price (their cost is unknown, not zero).
    pub unpriced: u64,
    /// Completion tokens and the seconds spent generating them, for output tokens per second.
    generated_tokens: u64,
    generation_seconds: f64,
    pub processing: Histogram,
    pub upstream: Histogram,
    pub ttft: Histogram,
    pub overhead: Histogram,
    /// Time waiting for a worker (`queue_wait_ms` on the interaction line).
    pub queue_wait: Histogram,
    pub last_used: Option<OffsetDateTime>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            requests: 0,
            successes: 0,
            errors: 0,
            client_closed: 0,
            timeouts: 0,
            by_status: BTreeMap::new(),
            by_error_kind: BTreeMap::new(),
            prompt_tokens: 0,
            completion_tokens: 0,
            cached_tokens: 0,
            reasoning_tokens: 0,
            estimated_tokens: 0,
            cost_usd: 0.0,
            unpriced: 0,
            generated_tokens: 0,
            generation_seconds: 0.0,
            processing: Histogram::new(LATENCY_BOUNDS),
            upstream: Histogram::new(LATENCY_BOUNDS),
            ttft: Histogram::new(LATENCY_BOUNDS),
            overhead: Histogram::new(OVERHEAD_BOUNDS),
            queue_wait: Histogram::new(LATENCY_BOUNDS),
            last_used: None,
        }
    }
}

/// What the recorder learned about one finished API call.
pub struct Observation<'a> {
    pub interaction: &'a Interaction,
    pub tokens: Option<Tokens>,
    pub reasoning_tokens: u64,
    pub cost: Option<f64>,
    pub error_kind: Option<String>,
}

impl Stats {
    fn observe(&mut self, o: &Observation<'_>) {
        let i = o.interaction;
        self.requests += 1;
        *self.by_status.entry(i.http_status).or_default() += 1;
        match i.outcome() {
            Outcome::Success => self.successes += 1,
            Outcome::Error => self.errors += 1,
            Outcome::ClientClosed => self.client_closed += 1,
            Outcome::Timeout => self.timeouts += 1,
        }
        if let Some(kind) = &o.error_kind {
            *self.by_error_kind.entry(kind.clone()).or_default() += 1;
        }
        if let Some(t) = o.tokens {
            self.prompt_tokens += t.prompt;
            self.completion_tokens += t.completion;
            self.cached_tokens += t.cached;
            self.reasoning_tokens += o.reasoning_tokens;
            if i.usage_estimated {
                self.estimated_tokens += t.prompt + t.completion;
            }
            match o.cost {
                Some(c) => self.cost_usd += c,
                None => self.unpriced += 1,
            }
            let generating = i
                .processing_time
                .saturating_sub(i.time_to_first_token.unwrap_or_default());
            if t.completion > 0 && !generating.is_zero() {
                self.generated_tokens += t.completion;
                self.generation_seconds += generating.as_secs_f64();
            }
        }
        self.processing.observe(i.processing_time.as_secs_f64());
        if let Some(d) = i.upstream_latency {
            self.upstream.observe(d.as_secs_f64());
        }
        if let Some(d) = i.time_to_first_token {
            self.ttft.observe(d.as_secs_f64());
        }
        if let Some(d) = i.gateway_overhead {
            self.overhead.observe(d.as_secs_f64());
        }
        self.queue_wait.observe(i.queue_wait.as_secs_f64());
        self.last_used = Some(i.timestamp);
    }

    /// Completed requests that succeeded, of those that ended (client-closed ones excluded).
    pub fn success_rate(&self) -> Option<f64> {
        let ended = self.requests - self.client_closed;
        (ended > 0).then(|| self.successes as f64 / ended as f64)
    }

    pub fn output_tokens_per_second(&self) -> Option<f64> {
        (self.generation_seconds > 0.0)
            .then(|| self.generated_tokens as f64 / self.generation_seconds)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "requests": self.requests,
            "successes": self.successes,
            "errors": self.errors,
            "client_closed": self.client_closed,
            "timeouts": self.timeouts,
            "success_rate": self.success_rate(),
            "errors_by_status": self.by_status.iter().filter(|(s, _)| **s >= 400)
                .map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "errors_by_kind": self.by_error_kind,
            "tokens": {
                "prompt": self.prompt_tokens,
                "completion": self.completion_tokens,
                "total": self.prompt_tokens + self.completion_tokens,
                "cached": self.cached_tokens,
                "reasoning": self.reasoning_tokens,
                "estimated": self.estimated_tokens,
            },
            "output_tokens_per_second": self.output_tokens_per_second(),
            "cost_usd": self.cost_usd,
            "unpriced_requests": self.unpriced,
            "latency_seconds": {
                "processing": self.processing.summary(),
                "upstream": self.upstream.summary(),
                "time_to_first_token": self.ttft.summary(),
                "gateway_overhead": self.overhead.summary(),
                "queue_wait": self.queue_wait.summary(),
            },
            "last_used": self.last_used.map(|t| t.unix_timestamp()),
        })
    }
}

/// All the live aggregates.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub total: Stats,
    /// By provider, then by model as requested.
    by_model: BTreeMap<String, BTreeMap<String, Stats>>,
    models: usize,
    pub by_provider: BTreeMap<String, Stats>,
}

impl Metrics {
    /// Adds one API call; returns the model name it was counted under. Allocates only for a
    /// provider or model seen for the first time (this runs once per request on the recorder).
    pub fn observe(&mut self, o: &Observation<'_>) -> &str {
        let i = o.interaction;
        self.total.observe(o);
        let provider = i.provider.unwrap_or("(none)");
        let model = match (&i.provider, &i.model_requested) {
            (Some(_), Some(m)) => m.as_str(),
            _ => "(unresolved)",
        };
        if !self.by_provider.contains_key(provider) {
            self.by_provider
                .insert(provider.to_string(), Stats::default());
            self.by_model.insert(provider.to_string(), BTreeMap::new());
        }
        if let Some(stats) = self.by_provider.get_mut(provider) {
            stats.observe(o);
        }
        let models = self
            .by_model
            .get_mut(provider)
            .expect("inserted with its provider");
        let key = if models.contains_key(model) || self.models < MAX_MODELS {
            model
        } else {
            "(other)"
        };
        if !models.contains_key(key) {
            models.insert(key.to_string(), Stats::default());
            self.models += 1;
        }
        let bound = std::ops::Bound::Included(key);
        let (name, stats) = models
            .range_mut::<str, _>((bound, bound))
            .next()
            .expect("inserted above");
        stats.observe(o);
        name
    }

    /// Every (provider, model, stats), in order.
    pub fn models(&self) -> impl Iterator<Item = (&str, &str, &Stats)> {
        self.by_model
            .iter()
            .flat_map(|(p, models)| models.iter().map(move |(m, s)| (p.as_str(), m.as_str(), s)))
    }

    /// How many model entries are kept.
    pub fn model_count(&self) -> usize {
        self.models
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_fall_in_the_right_bucket() {
        let mut h = Histogram::new(LATENCY_BOUNDS);
        for _ in 0..90 {
            h.observe(0.003); // bucket (0.0025, 0.005]
        }
        for _ in 0..10 {
            h.observe(2.0); // bucket (1, 2.5]
        }
        let p50 = h.quantile(0.5).unwrap();
        assert!((0.0025..=0.005).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99).unwrap();
        assert!((1.0..=2.5).contains(&p99), "{p99}");
        assert_eq!(h.count, 100);
        h.observe(10_000.0);
        assert_eq!(h.quantile(1.0), Some(600.0));
        assert_eq!(Histogram::new(LATENCY_BOUNDS).quantile(0.5), None);
    }
}
