//! The gateway as the HTTP layer's [`Handler`]: one `match` from method and path to a
//! handler, with and without the `/v1` prefix; CORS preflight; 404 and 405 in the OpenAI
//! error shape; a panic inside a handler answered as a 500 carrying the request id.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use crate::config::Config;
use crate::error::ApiError;
use crate::handlers;
use crate::http::{Handler, Request, Responder, Response};
use crate::recorder::Recorder;
use crate::reply::Exchange;

/// Everything a request handler may use; shared by all workers.
pub struct Gateway {
    pub config: Config,
    pub agents: crate::upstream::Agents,
    pub recorder: Recorder,
    pub started: Instant,
    /// API calls being handled now.
    pub in_flight: AtomicUsize,
    /// The providers' model lists for `/v1/models`.
    pub models: handlers::models::Cache,
}

impl Gateway {
    pub fn new(config: Config) -> std::io::Result<Self> {
        Ok(Gateway {
            agents: crate::upstream::Agents::new(&config),
            recorder: Recorder::start(&config)?,
            config,
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            models: Default::default(),
        })
    }

    /// The value of `access-control-allow-origin` for a request's `Origin`, if it is allowed.
    pub fn allowed_origin<'o>(&'o self, origin: &'o str) -> Option<&'o str> {
        let origins = &self.config.cors_allow_origins;
        if origins.iter().any(|o| o == "*") {
            Some("*")
        } else {
            origins.iter().any(|o| o == origin).then_some(origin)
        }
    }
}

/// The routes, as (method, path without `/v1`).
#[derive(Debug, PartialEq, Eq)]
enum Route<'p> {
    ChatCompletions,
    Embeddings,
    Models,
    Model(&'p str),
    Health,
    Metrics,
    MetricsPrometheus,
    MetricsModels,
    MetricsTrends,
    Dashboard,
}

fn route(path: &str) -> Option<(Route<'_>, &'static str)> {
    let path = match path.strip_prefix("/v1") {
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    };
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    Some(match path {
        "/chat/completions" => (Route::ChatCompletions, "POST"),
        "/embeddings" => (Route::Embeddings, "POST"),
        "/models" => (Route::Models, "GET"),
        "/health" => (Route::Health, "GET"),
        "/metrics" => (Route::Metrics, "GET"),
        "/metrics/prometheus" => (Route::MetricsPrometheus, "GET"),
        "/metrics/models" => (Route::MetricsModels, "GET"),
        "/metrics/trends" => (Route::MetricsTrends, "GET"),
        "/dashboard" => (Route::Dashboard, "GET"),
        _ => match path.strip_prefix("/models/") {
            Some(id) if !id.is_empty() => (Route::Model(id), "GET"),
            _ => return None,
        },
    })
}

impl Handler for Gateway {
    fn handle(&self, req: &Request, res: &mut Responder<'_>) {
        let x = Exchange::new(self, req);
        if req.method == "OPTIONS" {
            return preflight(&x, res);
        }
        let Some((route, method)) = route(req.path()) else {
            let e = ApiError::new(
                404,
                "invalid_request_error",
                Some("unknown_url"),
                format!("Unknown request URL: {} {}.", req.method, req.path()),
            );
            return x.send_error(res, &e);
        };
        let method_matches = req.method == method || (method == "GET" && req.method == "HEAD");
        if !method_matches {
            let mut e = ApiError::new(
                405,
                "invalid_request_error",
                Some("method_not_allowed"),
                format!(
                    "{} is not allowed on {}; use {method}.",
                    req.method,
                    req.path()
                ),
            );
            e.headers
                .push(("allow".into(), format!("{method}, OPTIONS")));
            return x.send_error(res, &e);
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| match route {
            Route::ChatCompletions => handlers::chat::completions(&x, res),
            Route::Embeddings => handlers::embeddings::create(&x, res),
            Route::Models => handlers::models::list(&x, res),
            Route::Model(id) => handlers::models::retrieve(&x, res, id),
            Route::Health => handlers::health::get(&x, res),
            Route::Metrics => handlers::metrics::get(&x, res),
            Route::MetricsPrometheus => handlers::metrics::prometheus_text(&x, res),
            Route::MetricsModels => handlers::metrics::models(&x, res),
            Route::MetricsTrends => handlers::metrics::trends(&x, res),
            Route::Dashboard => handlers::metrics::dashboard(&x, res),
        }));
        if outcome.is_err() {
            log::error!("request {} panicked in {:?}", x.request_id, req.path());
            let e = ApiError::new(
                500,
                "server_error",
                None,
                "Internal error while handling the request.",
            );
            x.send_error(res, &e);
        }
    }

    fn protocol_error(&self, status: u16, message: &str) -> Response {
        let mut response = Response::new(
            status,
            "application/json",
            ApiError::protocol(status, message).to_body(),
        );
        response
            .headers
            .push(("x-request-id".into(), uuid::Uuid::new_v4().to_string()));
        response
    }
}

/// Answers a CORS preflight (or a plain OPTIONS) with the methods and headers we accept.
fn preflight(x: &Exchange<'_>, res: &mut Responder<'_>) {
    let mut response = Response::new(204, "text/plain", Vec::new());
    response.headers.extend(x.headers());
    response
        .headers
        .push(("allow".into(), "GET, POST, OPTIONS".into()));
    if x.req
        .header("origin")
        .is_some_and(|o| x.gw.allowed_origin(o).is_some())
    {
        let requested = x
            .req
            .header("access-control-request-headers")
            .unwrap_or("authorization, content-type, x-request-id");
        response.headers.extend([
            (
                "access-control-allow-methods".into(),
                "GET, POST, OPTIONS".into(),
            ),
            ("access-control-allow-headers".into(), requested.to_string()),
            ("access-control-max-age".into(), "86400".into()),
        ]);
    }
    let _ = res.send(response);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_answer_with_and_without_the_v1_prefix() {
        assert_eq!(
            route("/v1/chat/completions").unwrap().0,
            Route::ChatCompletions
        );
        assert_eq!(
            route("/chat/completions").unwrap().0,
            Route::ChatCompletions
        );
        assert_eq!(
            route("/v1/models/mock%2Fecho").unwrap().0,
            Route::Model("mock%2Fecho")
        );
        assert_eq!(
            route("/models/mock/echo").unwrap().0,
            Route::Model("mock/echo")
        );
        assert_eq!(route("/v1/health/").unwrap().0, Route::Health);
        assert!(route("/v1").is_none());
        assert!(route("/v1x/models").is_none());
        assert_eq!(route("/models/").unwrap().0, Route::Models);
        assert!(route("/model").is_none());
    }
}
