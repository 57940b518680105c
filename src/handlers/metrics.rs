//! The metrics endpoints: `GET /metrics` (JSON, or the Prometheus text format when the client
//! asks for `text/plain` or OpenMetrics, as Prometheus' scraper does), `/metrics/prometheus`,
//! `/metrics/models`, `/metrics/trends` and the `/dashboard` page that draws them. Each reads
//! a copy of what the recorder keeps (and the router's counters and deployment health); none
//! holds the recorder's lock longer than that.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::exchange::Exchange;
use crate::handlers::query_param;
use crate::http::{Responder, Response};
use crate::metrics::Metrics;
use crate::pricing::PRICES_DATE;
use crate::prometheus::{self, Gauges};
use crate::recorder::Live;

/// The dashboard: one self-contained page (no external script or style). The Requests view's
/// script is a file of its own (the page would pass 800 lines) and is inlined where the page
/// marks it, once.
const DASHBOARD: &str = include_str!("dashboard.html");
const EXPLORER: &str = include_str!("explorer.js");
const EXPLORER_MARK: &str = "<!-- explorer.js is inlined here -->";

fn dashboard_page() -> &'static str {
    static PAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PAGE.get_or_init(|| {
        DASHBOARD.replacen(EXPLORER_MARK, &format!("<script>\n{EXPLORER}</script>"), 1)
    })
}

/// Time slots a trends answer may hold.
const MAX_BUCKETS: i64 = 5000;

fn live<'a>(x: &'a Exchange, res: &mut Responder<'_>) -> Option<&'a Live> {
    let live = x.gw.recorder.live();
    if live.is_none() {
        let e = ApiError::new(
            404,
            "invalid_request_error",
            Some("metrics_disabled"),
            "Metrics are turned off (METRICS=false).",
        );
        x.send_error(res, &e);
    }
    live
}

fn snapshot(live: &Live) -> Metrics {
    live.metrics
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

fn gauges(x: &Exchange) -> Gauges {
    let routing = x.gw.routing();
    Gauges {
        retries_total: routing.counters.retries.load(Ordering::Relaxed),
        fallbacks_total: routing.counters.fallbacks.load(Ordering::Relaxed),
        deployments: routing.deployment_states(),
        uptime_seconds: x.gw.started.elapsed().as_secs_f64(),
        in_flight: x.gw.in_flight.load(Ordering::Relaxed),
        recorder_queue_depth: x.gw.recorder.depth(),
        recorder_queue_max_depth: x.gw.recorder.max_depth(),
        keys: x.gw.access.usage_by_key(),
        server: x.gw.server.get().and_then(|load| load.now()),
    }
}

/// `GET /metrics`: JSON, unless the client prefers the Prometheus text format.
pub fn get(x: &Exchange, res: &mut Responder<'_>) {
    let accept = x.req.header("accept").unwrap_or("");
    let wants_text =
        accept.contains("text/plain") || accept.contains("application/openmetrics-text");
    if wants_text && !accept.contains("application/json") {
        return prometheus_text(x, res);
    }
    let Some(live) = live(x, res) else { return };
    let m = snapshot(live);
    let g = gauges(x);
    let body = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": g.uptime_seconds,
        "in_flight": g.in_flight,
        "recorder_queue": {"depth": g.recorder_queue_depth, "max_depth": g.recorder_queue_max_depth},
        "server": g.server.map(|s| json!({
            "connections": {
                "open": s.connections_open,
                "parked": s.connections_parked,
                "queued": s.connections_queued,
                "relayed": s.connections_relayed,
                "max": s.connections_max,
            },
            "workers": {"busy": s.workers_busy, "started": s.workers_started, "max": s.workers_max},
        })),
        "prices_date": PRICES_DATE,
        "totals": m.total.to_json(),
        "providers": m.by_provider.iter().map(|(p, s)| (p.clone(), s.to_json())).collect::<serde_json::Map<_, _>>(),
        "models": m.model_count(),
        "keys": g.keys.iter().map(|k| json!({
            "key": k.key,
            "team": k.team,
            "requests": k.requests,
            "prompt_tokens": k.prompt_tokens,
            "completion_tokens": k.completion_tokens,
            "spend_usd": k.spend,
            "unpriced_requests": k.unpriced_requests,
        })).collect::<Vec<_>>(),
        "routing": {
            "retries_total": g.retries_total,
            "fallbacks_total": g.fallbacks_total,
            "deployments": g.deployments.iter().map(|d| json!({
                "alias": d.alias,
                "provider": d.provider,
                "model": d.model,
                "cooling": d.cooling,
                "consecutive_failures": d.consecutive_fails,
                "in_flight": d.in_flight,
            })).collect::<Vec<_>>(),
        },
    });
    let _ = x.send_json(res, 200, body.to_string().into_bytes(), Vec::new());
}

/// `GET /metrics/prometheus`.
pub fn prometheus_text(x: &Exchange, res: &mut Responder<'_>) {
    let Some(live) = live(x, res) else { return };
    let text = prometheus::render(&snapshot(live), &gauges(x));
    let response = Response::new(200, prometheus::CONTENT_TYPE, text);
    let _ = x.send(res, response);
}

/// `GET /metrics/models`: usage per model.
pub fn models(x: &Exchange, res: &mut Responder<'_>) {
    let Some(live) = live(x, res) else { return };
    let m = snapshot(live);
    let data: Vec<Value> = m
        .models()
        .map(|(provider, model, s)| {
            let mut v = s.to_json();
            v["model"] = json!(model);
            v["provider"] = json!(provider);
            v
        })
        .collect();
    let body = json!({"object": "list", "data": data});
    let _ = x.send_json(res, 200, body.to_string().into_bytes(), Vec::new());
}

/// `GET /metrics/trends?hours=24&bucket=5m&provider=…&model=…`.
pub fn trends(x: &Exchange, res: &mut Responder<'_>) {
    let Some(live) = live(x, res) else { return };
    let query = x.req.query();
    // History is kept LOG_RETENTION_DAYS, or (0) for good: then any span up to ten years.
    let retention_days = match x.gw.config.log_retention_days {
        0 => 3650,
        days => i64::from(days),
    };
    let retention_hours = retention_days * 24;
    let hours = match query_param(query, "hours") {
        None => 24,
        Some(h) => match h.parse::<i64>() {
            Ok(h) if (1..=retention_hours).contains(&h) => h,
            _ => {
                let message = format!(
                    "`hours` must be a whole number from 1 to {retention_hours}, not {h:?}."
                );
                return x.send_error(res, &ApiError::invalid(Some("hours"), message));
            }
        },
    };
    let bucket = match query_param(query, "bucket").as_deref() {
        None => [60, 300, 3600, 86_400]
            .into_iter()
            .find(|b| hours * 3600 / b <= 300)
            .unwrap_or(86_400),
        Some("1m") => 60,
        Some("5m") => 300,
        Some("1h") => 3600,
        Some("1d") => 86_400,
        Some(other) => {
            let message = format!("`bucket` must be one of 1m, 5m, 1h, 1d, not {other:?}.");
            return x.send_error(res, &ApiError::invalid(Some("bucket"), message));
        }
    };
    if bucket < 3600 && hours * 3600 > crate::trends::MINUTE_HORIZON {
        let message = "Minute buckets cover the last 48 hours; use bucket=1h or 1d for longer.";
        return x.send_error(res, &ApiError::invalid(Some("bucket"), message));
    }
    if hours * 3600 / bucket > MAX_BUCKETS {
        let message =
            format!("That asks for more than {MAX_BUCKETS} buckets; use a larger bucket.");
        return x.send_error(res, &ApiError::invalid(Some("bucket"), message));
    }
    let model = query_param(query, "model").filter(|m| !m.is_empty());
    let provider = query_param(query, "provider").filter(|p| !p.is_empty());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let series = live.trends.lock().unwrap_or_else(|e| e.into_inner()).query(
        now,
        hours,
        bucket,
        provider.as_deref(),
        model.as_deref(),
    );
    let body = json!({
        "hours": hours,
        "bucket_seconds": bucket,
        "provider": provider,
        "model": model,
        "buckets": series,
    });
    let _ = x.send_json(res, 200, body.to_string().into_bytes(), Vec::new());
}

/// `GET /dashboard`.
pub fn dashboard(x: &Exchange, res: &mut Responder<'_>) {
    let mut response = Response::new(200, "text/html; charset=utf-8", dashboard_page());
    response
        .headers
        .push(("cache-control".into(), "no-cache".into()));
    let _ = x.send(res, response);
}
