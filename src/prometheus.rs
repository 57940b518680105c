//! The metrics in the Prometheus text exposition format (version 0.0.4): names
//! `llmcallgateway_*`, counters ending in `_total`, real histograms (`_bucket` with `le`,
//! `_sum`, `_count`), and labels limited to `provider`, `model`, `status_class`,
//! `error_kind` and (for the config file's deployments) `alias`, so the series count stays
//! bounded by the models served and the deployments configured.

use std::fmt::Write;

use crate::access::KeyUsage;
use crate::http::LoadNow;
use crate::metrics::{Histogram, Metrics, Stats};
use crate::router::DeploymentState;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Gauges that live outside the recorder's aggregates.
pub struct Gauges {
    pub uptime_seconds: f64,
    pub in_flight: usize,
    pub recorder_queue_depth: usize,
    pub recorder_queue_max_depth: usize,
    /// The router's retries and fallbacks since start.
    pub retries_total: u64,
    pub fallbacks_total: u64,
    pub deployments: Vec<DeploymentState>,
    /// Calls of each gateway key settled by this instance.
    pub keys: Vec<KeyUsage>,
    /// The HTTP server's connections and workers (none before it runs).
    pub server: Option<LoadNow>,
}

pub fn render(m: &Metrics, g: &Gauges) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let series: Vec<(String, &Stats)> = m
        .models()
        .map(|(provider, model, stats)| {
            let labels = format!(
                "provider=\"{}\",model=\"{}\"",
                escape(provider),
                escape(model)
            );
            (labels, stats)
        })
        .collect();

    gauge(
        &mut out,
        "uptime_seconds",
        "Seconds since the gateway started.",
        g.uptime_seconds,
    );
    gauge(
        &mut out,
        "in_flight_requests",
        "API calls being handled now.",
        g.in_flight as f64,
    );
    gauge(
        &mut out,
        "recorder_queue_depth",
        "Interaction records waiting for the recorder thread.",
        g.recorder_queue_depth as f64,
    );
    gauge(
        &mut out,
        "recorder_queue_max_depth",
        "The most interaction records ever seen waiting at once.",
        g.recorder_queue_max_depth as f64,
    );

    if let Some(load) = &g.server {
        for (name, help, n) in [
            (
                "connections_open",
                "Open client connections: served, queued or parked.",
                load.connections_open,
            ),
            (
                "connections_parked",
                "Client connections parked between requests (no worker held).",
                load.connections_parked,
            ),
            (
                "connections_queued",
                "Client connections with a request waiting for a worker.",
                load.connections_queued,
            ),
            (
                "connections_relayed",
                "Client connections whose stream the relay loop carries (no worker held).",
                load.connections_relayed,
            ),
            (
                "connections_max",
                "MAX_CONNECTIONS: past it new connections get a 503.",
                load.connections_max,
            ),
            (
                "workers_busy",
                "Workers inside a request (a stream on its worker included).",
                load.workers_busy,
            ),
            (
                "workers_started",
                "Worker threads running now.",
                load.workers_started,
            ),
            (
                "workers_max",
                "WORKERS: with every one busy a new request gets a 503.",
                load.workers_max,
            ),
        ] {
            gauge(&mut out, name, help, n as f64);
        }
    }

    for (name, help, n) in [
        (
            "retries_total",
            "Attempts the router made again after a provider failure.",
            g.retries_total,
        ),
        (
            "fallbacks_total",
            "Times the router moved on to a fallback model.",
            g.fallbacks_total,
        ),
    ] {
        header(&mut out, name, "counter", help);
        let _ = writeln!(out, "llmcallgateway_{name} {n}");
    }
    type KeyOf = fn(&KeyUsage) -> f64;
    let key_counters: [(&str, &str, KeyOf); 5] = [
        (
            "key_requests_total",
            "API calls of a gateway key settled by this instance.",
            |k| k.requests as f64,
        ),
        (
            "key_spend_usd_total",
            "USD spent by a gateway key's priced calls on this instance.",
            |k| k.spend,
        ),
        (
            "key_prompt_tokens_total",
            "Prompt tokens of a gateway key's calls on this instance.",
            |k| k.prompt_tokens as f64,
        ),
        (
            "key_completion_tokens_total",
            "Completion tokens of a gateway key's calls on this instance.",
            |k| k.completion_tokens as f64,
        ),
        (
            "key_unpriced_requests_total",
            "Calls of a gateway key whose model has no known price (not charged).",
            |k| k.unpriced_requests as f64,
        ),
    ];
    for (name, help, value) in key_counters {
        header(&mut out, name, "counter", help);
        for k in &g.keys {
            let _ = writeln!(
                out,
                "llmcallgateway_{name}{{key=\"{}\",team=\"{}\"}} {}",
                escape(&k.key),
                escape(k.team.as_deref().unwrap_or("")),
                number(value(k))
            );
        }
    }
    type Of = fn(&DeploymentState) -> f64;
    let deployment_gauges: [(&str, &str, Of); 3] = [
        (
            "deployment_cooling",
            "1 while a deployment of an alias is in cooldown (skipped), else 0.",
            |d| f64::from(u8::from(d.cooling)),
        ),
        (
            "deployment_consecutive_failures",
            "Provider failures of a deployment since its last success.",
            |d| f64::from(d.consecutive_fails),
        ),
        (
            "deployment_in_flight",
            "Calls to a deployment in flight now.",
            |d| d.in_flight as f64,
        ),
    ];
    for (name, help, value) in deployment_gauges {
        header(&mut out, name, "gauge", help);
        for d in &g.deployments {
            let _ = writeln!(
                out,
                "llmcallgateway_{name}{{alias=\"{}\",provider=\"{}\",model=\"{}\"}} {}",
                escape(&d.alias),
                escape(d.provider),
                escape(&d.model),
                number(value(d))
            );
        }
    }
    header(
        &mut out,
        "requests_total",
        "counter",
        "API calls by response status class.",
    );
    for (labels, s) in &series {
        let mut classes = [0u64; 6];
        for (status, n) in &s.by_status {
            classes[usize::from(status / 100).min(5)] += n;
        }
        for (class, n) in classes.iter().enumerate().filter(|(_, n)| **n > 0) {
            let _ = writeln!(
                out,
                "llmcallgateway_requests_total{{{labels},status_class=\"{class}xx\"}} {n}"
            );
        }
    }
    header(
        &mut out,
        "errors_total",
        "counter",
        "Failed API calls by error kind.",
    );
    for (labels, s) in &series {
        for (kind, n) in &s.by_error_kind {
            let _ = writeln!(
                out,
                "llmcallgateway_errors_total{{{labels},error_kind=\"{}\"}} {n}",
                escape(kind)
            );
        }
    }
    type Field = fn(&Stats) -> f64;
    let counters: [(&str, &str, Field); 8] = [
        (
            "client_closed_total",
            "API calls whose client left before the end.",
            |s| s.client_closed as f64,
        ),
        (
            "prompt_tokens_total",
            "Prompt (input) tokens, as the providers reported them.",
            |s| s.prompt_tokens as f64,
        ),
        (
            "completion_tokens_total",
            "Completion (output) tokens, as the providers reported them.",
            |s| s.completion_tokens as f64,
        ),
        (
            "cached_tokens_total",
            "Prompt tokens served from the providers' caches.",
            |s| s.cached_tokens as f64,
        ),
        (
            "reasoning_tokens_total",
            "Completion tokens spent on reasoning.",
            |s| s.reasoning_tokens as f64,
        ),
        (
            "estimated_tokens_total",
            "Prompt and completion tokens the gateway estimated (the provider reported none); also in the prompt and completion totals.",
            |s| s.estimated_tokens as f64,
        ),
        (
            "cost_usd_total",
            "Cost in US dollars of the priced calls.",
            |s| s.cost_usd,
        ),
        (
            "unpriced_requests_total",
            "Calls with usage but no known price (their cost is not in cost_usd_total).",
            |s| s.unpriced as f64,
        ),
    ];
    for (name, help, field) in counters {
        header(&mut out, name, "counter", help);
        for (labels, s) in &series {
            let _ = writeln!(
                out,
                "llmcallgateway_{name}{{{labels}}} {}",
                number(field(s))
            );
        }
    }
    type Hist = fn(&Stats) -> &Histogram;
    let histograms: [(&str, &str, Hist); 5] = [
        (
            "request_duration_seconds",
            "Time from the request received to the response complete.",
            |s| &s.processing,
        ),
        (
            "upstream_latency_seconds",
            "Time waiting for the provider.",
            |s| &s.upstream,
        ),
        (
            "time_to_first_token_seconds",
            "Time from the request received to the first streamed event sent.",
            |s| &s.ttft,
        ),
        (
            "gateway_overhead_seconds",
            "Time spent in the gateway itself.",
            |s| &s.overhead,
        ),
        (
            "queue_wait_seconds",
            "Time a request waited for a worker before its own time began.",
            |s| &s.queue_wait,
        ),
    ];
    for (name, help, field) in histograms {
        header(&mut out, name, "histogram", help);
        for (labels, s) in &series {
            histogram(&mut out, name, labels, field(s));
        }
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP llmcallgateway_{name} {help}");
    let _ = writeln!(out, "# TYPE llmcallgateway_{name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "llmcallgateway_{name} {}", number(value));
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let mut cumulative = 0;
    for (i, n) in h.counts.iter().enumerate() {
        cumulative += n;
        let le = h.bounds.get(i).map_or("+Inf".to_string(), |b| number(*b));
        let _ = writeln!(
            out,
            "llmcallgateway_{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "llmcallgateway_{name}_sum{{{labels}}} {}",
        number(h.sum)
    );
    let _ = writeln!(out, "llmcallgateway_{name}_count{{{labels}}} {}", h.count);
}

/// A float as Prometheus writes it (integers without a fraction).
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn histograms_are_cumulative_and_end_with_inf() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(5.0);
        let mut out = String::new();
        histogram(&mut out, "x_seconds", "model=\"m\"", &h);
        assert!(out.contains("llmcallgateway_x_seconds_bucket{model=\"m\",le=\"0.1\"} 1\n"));
        assert!(out.contains("le=\"1\"} 2\n"));
        assert!(out.contains("le=\"+Inf\"} 3\n"));
        assert!(out.contains("llmcallgateway_x_seconds_count{model=\"m\"} 3\n"));
    }
}
