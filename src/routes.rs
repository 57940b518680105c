//! The gateway as the HTTP layer's [`Handler`]: the route table ([`ROUTES`]) from method and
//! path to a handler, with and without the `/v1` prefix; CORS preflight; 404 and 405 in the
//! OpenAI error shape; a panic inside a handler answered as a 500 carrying the request id; and
//! the requests the layer refuses, answered and recorded by [`exchange::refused`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::access::Guard;
use crate::error::ApiError;
use crate::exchange::{self, Exchange};
use crate::gateway::Gateway;
use crate::handlers;
use crate::http::{Handler, Refusal, Request, Responder, Response};
use crate::ingress::anthropic::Messages;

/// What a route does; the router dispatches on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Responses,
    Response,
    DeleteResponse,
    Messages,
    CountTokens,
    Embeddings,
    Models,
    Model,
    Health,
    Metrics,
    MetricsPrometheus,
    MetricsModels,
    MetricsTrends,
    Dashboard,
    Root,
    Favicon,
    Interactions,
    Interaction,
    OpenApi,
    SwaggerUi,
    SwaggerUiScript,
    SwaggerUiStyle,
    Redoc,
    RedocScript,
    KeyGenerate,
    KeyInfo,
    KeyUpdate,
    KeyDelete,
    KeyList,
    KeyBlock,
    KeyUnblock,
    AdminSpend,
}

impl Endpoint {
    /// Monitoring, docs and model-list polls: access lines, not interactions (a probe every
    /// ten seconds would otherwise write 8,640 interaction lines a day).
    fn is_monitoring(self) -> bool {
        !matches!(
            self,
            Endpoint::ChatCompletions
                | Endpoint::Completions
                | Endpoint::Responses
                | Endpoint::Response
                | Endpoint::DeleteResponse
                | Endpoint::Messages
                | Endpoint::CountTokens
                | Endpoint::Embeddings
        )
    }
}

/// Every route the router answers, as (method, path, endpoint): the router matches on this
/// table, and `/openapi.json` must describe exactly these paths. Each path also answers with
/// `/v1` added or removed, and with a trailing `/`; a `{…}` segment takes the rest of the path
/// (a model id may hold a `/`). `GET` routes answer `HEAD` too.
pub const ROUTES: &[(&str, &str, Endpoint)] = &[
    ("POST", "/v1/chat/completions", Endpoint::ChatCompletions),
    ("POST", "/v1/completions", Endpoint::Completions),
    ("POST", "/v1/responses", Endpoint::Responses),
    ("GET", "/v1/responses/{response_id}", Endpoint::Response),
    // Reached through the route above (a `{…}` segment takes the rest of the path).
    (
        "GET",
        "/v1/responses/{response_id}/input_items",
        Endpoint::Response,
    ),
    (
        "DELETE",
        "/v1/responses/{response_id}",
        Endpoint::DeleteResponse,
    ),
    ("POST", "/v1/messages", Endpoint::Messages),
    ("POST", "/v1/messages/count_tokens", Endpoint::CountTokens),
    ("POST", "/v1/embeddings", Endpoint::Embeddings),
    ("GET", "/v1/models", Endpoint::Models),
    ("GET", "/v1/models/{model}", Endpoint::Model),
    ("GET", "/health", Endpoint::Health),
    ("GET", "/metrics", Endpoint::Metrics),
    ("GET", "/metrics/prometheus", Endpoint::MetricsPrometheus),
    ("GET", "/metrics/models", Endpoint::MetricsModels),
    ("GET", "/metrics/trends", Endpoint::MetricsTrends),
    ("GET", "/dashboard", Endpoint::Dashboard),
    ("GET", "/", Endpoint::Root),
    ("GET", "/favicon.ico", Endpoint::Favicon),
    ("GET", "/admin/interactions", Endpoint::Interactions),
    ("GET", "/admin/interactions/{id}", Endpoint::Interaction),
    ("GET", "/openapi.json", Endpoint::OpenApi),
    ("GET", "/docs", Endpoint::SwaggerUi),
    (
        "GET",
        "/docs/swagger-ui-bundle.js",
        Endpoint::SwaggerUiScript,
    ),
    ("GET", "/docs/swagger-ui.css", Endpoint::SwaggerUiStyle),
    ("GET", "/redoc", Endpoint::Redoc),
    ("GET", "/redoc/redoc.standalone.js", Endpoint::RedocScript),
    ("POST", "/key/generate", Endpoint::KeyGenerate),
    ("GET", "/key/info", Endpoint::KeyInfo),
    ("POST", "/key/update", Endpoint::KeyUpdate),
    ("POST", "/key/delete", Endpoint::KeyDelete),
    ("GET", "/key/list", Endpoint::KeyList),
    ("POST", "/key/block", Endpoint::KeyBlock),
    ("POST", "/key/unblock", Endpoint::KeyUnblock),
    ("GET", "/admin/spend", Endpoint::AdminSpend),
];

/// What a route requires once any gateway key is configured, read from its path in [`ROUTES`]
/// so that every route added later is covered: `/health` is open; every `/v1/…` route takes a
/// gateway key (rate limits and budgets apply to API calls), as does `/key/info` (a key may
/// read its own); `/key/*` and `/admin/*` take the admin key, which must be configured, except
/// that the interaction records are open while no key at all is configured (local use);
/// everything else (`/metrics*`, `/dashboard`, `/docs`, `/openapi.json`) takes the admin key,
/// or any gateway key when no admin key is configured.
fn guard(endpoint: Endpoint) -> Guard {
    let path = ROUTES.iter().find(|r| r.2 == endpoint).map_or("", |r| r.1);
    if path == "/health" {
        Guard::Open
    } else if path.starts_with("/v1/") || endpoint == Endpoint::KeyInfo {
        Guard::Client {
            counted: !endpoint.is_monitoring(),
        }
    } else if path.starts_with("/admin/interactions") {
        Guard::Records
    } else if path.starts_with("/key/") || path.starts_with("/admin/") {
        Guard::Manage
    } else {
        Guard::Admin
    }
}

/// Authenticates and admits a request as its route requires ([`guard`]): the caller named in
/// the record and its limits' headers on every answer, or the refusal to answer.
fn gate(x: &Exchange, guard: Guard) -> Result<(), ApiError> {
    let access = &x.gw.access;
    let caller = match access.authenticate(&x.req, guard) {
        Ok(Some(caller)) => caller,
        Ok(None) => return Ok(()),
        Err(mut e) => {
            if matches!(guard, Guard::Admin | Guard::Manage | Guard::Records) && e.status == 401 {
                // A browser opening the dashboard or the docs asks for the admin key.
                e.headers.push((
                    "www-authenticate".into(),
                    "Basic realm=\"LLMCallGateway admin\"".into(),
                ));
            }
            return Err(e);
        }
    };
    // Named in the record before admission, so a refusal's line names the key too.
    x.name_caller(&caller);
    let counted = guard == Guard::Client { counted: true };
    // The prompt's tokens, roughly: what the tpm window holds until the real usage is known.
    let estimate = x.req.body.len() as u64 / 4;
    x.admit(access.admit(caller, counted, estimate)?);
    Ok(())
}

/// The path without the `/v1` prefix and a trailing `/`.
fn normalize(path: &str) -> &str {
    let path = match path.strip_prefix("/v1") {
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    };
    path.strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path)
}

/// The route a path takes: its endpoint, the value of its `{…}` segment if it has one, and the
/// method it allows. Where a path has a route for several methods, the one for `method`.
fn route<'p>(method: &str, path: &'p str) -> Option<(Endpoint, &'p str, &'static str)> {
    let path = normalize(path);
    let mut matches = ROUTES.iter().filter_map(|&(allowed, pattern, endpoint)| {
        let pattern = normalize(pattern);
        let param = match pattern.split_once('{') {
            None => (path == pattern).then_some("")?,
            Some((prefix, _)) => path.strip_prefix(prefix).filter(|p| !p.is_empty())?,
        };
        Some((endpoint, param, allowed))
    });
    let first = matches.next()?;
    let takes = |allowed: &str| allowed == method || (allowed == "GET" && method == "HEAD");
    if takes(first.2) {
        return Some(first);
    }
    Some(matches.find(|m| takes(m.2)).unwrap_or(first))
}

impl Handler for Gateway {
    fn handle(self: Arc<Self>, req: &Arc<Request>, res: &mut Responder<'_>) {
        let x = Exchange::new(self, req.clone());
        if req.method == "OPTIONS" {
            return preflight(&x, res);
        }
        let Some((endpoint, param, method)) = route(&req.method, req.path()) else {
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
        if endpoint.is_monitoring() {
            x.mark_access_only();
        }
        let guard = guard(endpoint);
        if let Err(e) = gate(&x, guard) {
            if guard == (Guard::Client { counted: true }) {
                x.mark_api_call();
            }
            return match endpoint {
                Endpoint::Messages | Endpoint::CountTokens => {
                    let ingress = Messages {
                        model: String::new(),
                    };
                    handlers::chat::send_error(&x, res, &ingress, &e);
                }
                _ => x.send_error(res, &e),
            };
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| match endpoint {
            Endpoint::ChatCompletions => handlers::chat::completions(&x, res),
            Endpoint::Completions => handlers::completions::create(&x, res),
            Endpoint::Responses => handlers::responses::create(&x, res),
            Endpoint::Response => handlers::responses::retrieve(&x, res, param),
            Endpoint::DeleteResponse => handlers::responses::delete(&x, res, param),
            Endpoint::Messages => handlers::messages::create(&x, res),
            Endpoint::CountTokens => handlers::messages::count_tokens(&x, res),
            Endpoint::Embeddings => handlers::embeddings::create(&x, res),
            Endpoint::Models => handlers::models::list(&x, res),
            Endpoint::Model => handlers::models::retrieve(&x, res, param),
            Endpoint::Health => handlers::health::get(&x, res),
            Endpoint::Metrics => handlers::metrics::get(&x, res),
            Endpoint::MetricsPrometheus => handlers::metrics::prometheus_text(&x, res),
            Endpoint::MetricsModels => handlers::metrics::models(&x, res),
            Endpoint::MetricsTrends => handlers::metrics::trends(&x, res),
            Endpoint::Dashboard => handlers::metrics::dashboard(&x, res),
            Endpoint::Root => handlers::home::root(&x, res),
            Endpoint::Favicon => handlers::home::favicon(&x, res),
            Endpoint::Interactions => handlers::interactions::list(&x, res),
            Endpoint::Interaction => handlers::interactions::detail(&x, res, param),
            Endpoint::OpenApi => handlers::docs::openapi(&x, res),
            Endpoint::SwaggerUi => handlers::docs::swagger_ui(&x, res),
            Endpoint::SwaggerUiScript => handlers::docs::swagger_ui_script(&x, res),
            Endpoint::SwaggerUiStyle => handlers::docs::swagger_ui_style(&x, res),
            Endpoint::Redoc => handlers::docs::redoc(&x, res),
            Endpoint::RedocScript => handlers::docs::redoc_script(&x, res),
            Endpoint::KeyGenerate => handlers::keys::generate(&x, res),
            Endpoint::KeyInfo => handlers::keys::info(&x, res),
            Endpoint::KeyUpdate => handlers::keys::update(&x, res),
            Endpoint::KeyDelete => handlers::keys::delete(&x, res),
            Endpoint::KeyList => handlers::keys::list(&x, res),
            Endpoint::KeyBlock => handlers::keys::block(&x, res, true),
            Endpoint::KeyUnblock => handlers::keys::block(&x, res, false),
            Endpoint::AdminSpend => handlers::spend::get(&x, res),
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

    fn refuse(&self, refusal: &Refusal<'_>) -> Response {
        exchange::refused(self, refusal)
    }
}

/// Answers a CORS preflight (or a plain OPTIONS) with the methods and headers we accept.
fn preflight(x: &Exchange, res: &mut Responder<'_>) {
    let mut response = Response::new(204, "text/plain", Vec::new());
    response
        .headers
        .push(("allow".into(), "GET, POST, DELETE, OPTIONS".into()));
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
                "GET, POST, DELETE, OPTIONS".into(),
            ),
            ("access-control-allow-headers".into(), requested.to_string()),
            ("access-control-max-age".into(), "86400".into()),
        ]);
    }
    let _ = x.send(res, response);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(path: &str) -> Option<(Endpoint, &str)> {
        route("GET", path).map(|(e, param, _)| (e, param))
    }

    #[test]
    fn routes_answer_with_and_without_the_v1_prefix() {
        let chat = Some((Endpoint::ChatCompletions, ""));
        assert_eq!(endpoint("/v1/chat/completions"), chat);
        assert_eq!(endpoint("/chat/completions"), chat);
        assert_eq!(
            endpoint("/v1/models/mock%2Fecho"),
            Some((Endpoint::Model, "mock%2Fecho"))
        );
        assert_eq!(
            endpoint("/models/mock/echo"),
            Some((Endpoint::Model, "mock/echo"))
        );
        assert_eq!(endpoint("/v1/health/"), Some((Endpoint::Health, "")));
        assert_eq!(endpoint("/messages"), Some((Endpoint::Messages, "")));
        assert_eq!(
            endpoint("/v1/messages/count_tokens"),
            Some((Endpoint::CountTokens, ""))
        );
        assert_eq!(endpoint("/v1/docs"), Some((Endpoint::SwaggerUi, "")));
        assert!(endpoint("/v1").is_none());
        assert!(endpoint("/v1x/models").is_none());
        assert_eq!(endpoint("/models/"), Some((Endpoint::Models, "")));
        assert!(endpoint("/model").is_none());
        assert!(endpoint("/docs/other.js").is_none());
    }

    #[test]
    fn every_route_in_the_table_is_reached_by_its_own_path() {
        for &(method, path, expected) in ROUTES {
            let path = path
                .replace("{model}", "mock/echo")
                .replace("{response_id}", "resp_1");
            let (found, _, allowed) = route(method, &path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!((found, allowed), (expected, method), "{path}");
        }
    }
}
