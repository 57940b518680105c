//! The headers every answer carries: `x-request-id` (the client's when sane, else a UUID) on
//! successes, errors and streams alike; `x-gateway-overhead-ms` on relayed answers; CORS
//! preflight and `CORS_ALLOW_ORIGINS`.

use serde_json::json;

use crate::support::client::{is_uuid, post_json, send, Reply};
use crate::support::gateway::Gateway;
use crate::support::upstream::{MockUpstream, Script};

fn echo() -> String {
    json!({"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}).to_string()
}

/// One request of each kind: success, stream, relayed, 400, 404, 405, 413, upstream error.
fn every_kind_of_answer(gw: &Gateway, extra: &[(&str, &str)]) -> Vec<(&'static str, Reply)> {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(extra);
    let post = |path: &str, body: &str| send(gw.addr, "POST", path, &headers, body.as_bytes());
    let stream = json!({"model": "mock/lorem", "stream": true, "messages": [{"role": "user", "content": "3"}]}).to_string();
    let relayed = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
    let limited = json!({"model": "rate-limited", "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
    vec![
        ("mock chat", post("/v1/chat/completions", &echo())),
        ("mock stream", post("/v1/chat/completions", &stream)),
        ("relayed", post("/v1/chat/completions", &relayed)),
        ("upstream 429", post("/v1/chat/completions", &limited)),
        ("400", post("/v1/chat/completions", "{")),
        ("404", send(gw.addr, "GET", "/v1/nowhere", extra, b"")),
        ("405", send(gw.addr, "GET", "/v1/embeddings", extra, b"")),
        ("413", post("/v1/chat/completions", &"x".repeat(5000))),
        ("health", send(gw.addr, "GET", "/health", extra, b"")),
        (
            "preflight",
            send(gw.addr, "OPTIONS", "/v1/chat/completions", extra, b""),
        ),
    ]
}

fn gateway_with_upstream() -> (MockUpstream, Gateway) {
    let upstream = MockUpstream::start(|request| {
        if request.json()["model"] == "rate-limited" {
            Script::fixture(429, "openai/error_429_rate_limit.json")
        } else {
            Script::fixture(200, "openai/chat_completion.json")
        }
    });
    let gw = Gateway::in_front_of(&upstream, &[("MAX_REQUEST_BYTES", "4096")]);
    (upstream, gw)
}

#[test]
fn a_sane_client_request_id_is_echoed_on_every_answer() {
    let (_upstream, gw) = gateway_with_upstream();
    let id = "req-Abc_123.xyz:42";
    for (kind, reply) in every_kind_of_answer(&gw, &[("x-request-id", id)]) {
        assert_eq!(reply.header("x-request-id"), Some(id), "{kind}: {reply:?}");
    }
}

#[test]
fn a_missing_or_insane_request_id_is_replaced_by_a_uuid() {
    let (_upstream, gw) = gateway_with_upstream();
    let long = "x".repeat(200);
    for id in [None, Some("has space"), Some(long.as_str()), Some("naïve")] {
        let extra: Vec<(&str, &str)> = id.map(|v| ("x-request-id", v)).into_iter().collect();
        let mut seen = Vec::new();
        for (kind, reply) in every_kind_of_answer(&gw, &extra) {
            let got = reply
                .header("x-request-id")
                .unwrap_or_else(|| panic!("{kind}: no id"));
            assert!(is_uuid(got), "{kind}: {got:?} for client id {id:?}");
            seen.push(got.to_string());
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 10, "each answer has its own id");
    }
}

#[test]
fn overhead_header_is_on_relayed_and_mock_answers() {
    let (_upstream, gw) = gateway_with_upstream();
    let answers = every_kind_of_answer(&gw, &[]);
    for (kind, reply) in &answers {
        if ["mock chat", "mock stream", "relayed"].contains(kind) {
            let ms: f64 = reply
                .header("x-gateway-overhead-ms")
                .unwrap_or_else(|| panic!("{kind}: no overhead header"))
                .parse()
                .unwrap();
            assert!(ms >= 0.0 && ms.is_finite(), "{kind}: {ms}");
        }
    }
}

#[test]
fn cors_preflight_is_answered_204_with_the_allowed_methods_and_headers() {
    let gw = Gateway::start(&[]);
    let reply = send(
        gw.addr,
        "OPTIONS",
        "/v1/chat/completions",
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
        ],
        b"",
    );
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    let methods = reply.header("access-control-allow-methods").unwrap();
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{methods}"
    );
    let headers = reply
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );
    assert!(reply.header("x-request-id").is_some());
    assert!(reply.body.is_empty());

    // A simple request from a browser gets the origin and the exposed headers.
    let reply = send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("origin", "https://app.example"),
            ("content-type", "application/json"),
        ],
        echo().as_bytes(),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    let exposed = reply.header("access-control-expose-headers").unwrap();
    assert!(
        exposed.contains("x-request-id") && exposed.contains("retry-after"),
        "{exposed}"
    );
}

#[test]
fn cors_allow_origins_list_is_honoured() {
    let gw = Gateway::start(&[("CORS_ALLOW_ORIGINS", "https://a.example, https://b.example")]);
    let preflight = |origin: &str| {
        send(
            gw.addr,
            "OPTIONS",
            "/v1/embeddings",
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
            ],
            b"",
        )
    };
    for allowed in ["https://a.example", "https://b.example"] {
        let reply = preflight(allowed);
        assert_eq!(reply.status, 204);
        assert_eq!(reply.header("access-control-allow-origin"), Some(allowed));
        assert!(reply.header("access-control-allow-methods").is_some());
        assert!(reply
            .header("vary")
            .is_some_and(|v| v.to_ascii_lowercase().contains("origin")));
    }
    let reply = preflight("https://evil.example");
    assert!(
        reply.header("access-control-allow-origin").is_none(),
        "{reply:?}"
    );
    assert!(reply.header("access-control-allow-methods").is_none());

    let reply = send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("origin", "https://evil.example"),
            ("content-type", "application/json"),
        ],
        echo().as_bytes(),
    );
    assert_eq!(
        reply.status, 200,
        "CORS is the browser's check, not an auth check"
    );
    assert!(reply.header("access-control-allow-origin").is_none());
    let reply = post_json(gw.addr, "/v1/chat/completions", &json!({}));
    assert!(
        reply.header("access-control-allow-origin").is_none(),
        "no Origin, no CORS headers"
    );
}
