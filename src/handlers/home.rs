//! `GET /`: where to go from here, as a small HTML page for browsers and as JSON for API
//! clients (the API docs, the dashboard, the model list, the health check); and
//! `GET /favicon.ico`, which every browser asks for.

use serde_json::json;

use crate::exchange::Exchange;
use crate::http::{Responder, Response};

/// The gateway's icon (SVG; browsers take it from `/favicon.ico` by its content type).
const FAVICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#3b6ef5"/><stop offset="1" stop-color="#14b8a6"/></linearGradient></defs><rect width="32" height="32" rx="8" fill="url(#g)"/><path d="M6 23 L13 14 L18 19 L26 8" fill="none" stroke="#fff" stroke-width="3.5" stroke-linecap="round" stroke-linejoin="round"/></svg>"##;

/// (path without the leading `/`, what it is), in the order shown.
const LINKS: &[(&str, &str, &str)] = &[
    ("docs", "docs", "the API, to read and try (Swagger UI)"),
    ("redoc", "redoc", "the same API as a reference (ReDoc)"),
    (
        "dashboard",
        "dashboard",
        "live metrics and the requests explorer",
    ),
    ("models", "v1/models", "the models this gateway serves"),
    ("health", "health", "the health check"),
    ("openapi", "openapi.json", "the OpenAPI description"),
];

/// `GET /`.
pub fn root(x: &Exchange, res: &mut Responder<'_>) {
    let accept = x.req.header("accept").unwrap_or("");
    let version = env!("CARGO_PKG_VERSION");
    if !accept.contains("text/html") {
        let links: serde_json::Map<String, serde_json::Value> = LINKS
            .iter()
            .map(|(name, path, _)| (name.to_string(), json!(format!("/{path}"))))
            .collect();
        let body = json!({
            "name": "llmcallgateway",
            "version": version,
            "about": "An OpenAI-compatible LLM API gateway: point an OpenAI SDK's base_url at http://<this host>/v1.",
            "links": links,
        });
        let _ = x.send_json(res, 200, body.to_string().into_bytes(), Vec::new());
        return;
    }
    let items: String = LINKS
        .iter()
        .map(|(_, path, what)| format!("<li><a href=\"{path}\">/{path}</a> — {what}</li>"))
        .collect();
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><meta name=\"color-scheme\" content=\"light dark\">\
         <title>LLMCallGateway</title><style>body{{font:15px/1.5 system-ui,sans-serif;max-width:640px;\
         margin:48px auto;padding:0 20px}}code{{font-size:14px}}</style></head><body>\
         <h1>LLMCallGateway <small>{version}</small></h1><p>An OpenAI-compatible LLM API gateway. \
         Point an OpenAI SDK's <code>base_url</code> at <code>http://&lt;this host&gt;/v1</code>.</p>\
         <ul>{items}</ul></body></html>"
    );
    let mut response = Response::new(200, "text/html; charset=utf-8", page);
    response
        .headers
        .push(("cache-control".into(), "no-cache".into()));
    let _ = x.send(res, response);
}

/// `GET /favicon.ico`.
pub fn favicon(x: &Exchange, res: &mut Responder<'_>) {
    let mut response = Response::new(200, "image/svg+xml", FAVICON);
    response
        .headers
        .push(("cache-control".into(), "public, max-age=86400".into()));
    let _ = x.send(res, response);
}
