//! Hostile request bodies over real sockets (issue 19, "Hostile network, extended"; the
//! connection-level cases are in `http_layer`): JSON nested 10,000 deep, invalid UTF-8, model
//! ids made of `../`, `%2e%2e`, NUL and control characters, and a 100,000-message chat within
//! the size cap. Each is a truthful 4xx or a 200, never a 5xx or a dead worker, and a hostile
//! model id never changes the path the provider is called on.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::client::{assert_error, get, post_json, send};
use crate::support::gateway::Gateway;
use crate::support::upstream::{MockUpstream, Script};

const ROUTES: &[&str] = &["/v1/chat/completions", "/v1/embeddings"];

/// The gateway still answers a plain request afterwards (no worker or process was lost).
fn still_serves(gateway: &Gateway) {
    let reply = post_json(
        gateway.addr,
        "/v1/chat/completions",
        &json!({"model": "mock/echo", "messages": [{"role": "user", "content": "still here"}]}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(get(gateway.addr, "/health").status, 200);
}

#[test]
fn json_nested_ten_thousand_levels_deep_is_a_400_not_a_stack_overflow() {
    let gateway = Gateway::start(&[]);
    let depth = 10_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let inside = format!(
        "{{\"model\":\"mock/echo\",\"messages\":[{{\"role\":\"user\",\"content\":\"x\",\"extra\":{arrays}}}]}}"
    );
    for route in ROUTES {
        for body in [&arrays, &objects, &inside, &"[".repeat(depth)] {
            let reply = send(
                gateway.addr,
                "POST",
                route,
                &[("content-type", "application/json")],
                body.as_bytes(),
            );
            let error = assert_error(&reply, 400);
            assert_eq!(error["type"], "invalid_request_error");
        }
    }
    still_serves(&gateway);
}

#[test]
fn invalid_utf8_in_a_body_is_a_400() {
    let gateway = Gateway::start(&[]);
    let bodies: [&[u8]; 4] = [
        b"{\"model\":\"mock/echo\xff\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        b"{\"model\":\"mock/echo\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\x28\"}]}",
        b"{\"model\":\"mock/echo\",\"messages\":[{\"role\":\"user\",\"content\":\"\xed\xa0\x80\"}]}",
        b"\xfe\xff\x00{\x00}",
    ];
    for route in ROUTES {
        for body in bodies {
            let reply = send(
                gateway.addr,
                "POST",
                route,
                &[("content-type", "application/json")],
                body,
            );
            assert_error(&reply, 400);
        }
    }
    still_serves(&gateway);
}

/// Model ids a client might use to reach another path or confuse a log or a header.
const HOSTILE_MODELS: &[&str] = &[
    "../../etc/passwd",
    "..",
    "mock/../admin",
    "%2e%2e/%2e%2e/admin",
    "mock%2F..%2Fecho",
    "a\u{0}b",
    "\u{0}",
    "mock/echo\u{0}",
    "x\r\nx-injected: 1",
    "\u{1b}[2J\u{7}",
    "\u{202e}ohce/kcom",
    "azure/..",
    "bedrock/..",
    "gemini/../../v1/files",
    "anthropic/..%2F..",
];

#[test]
fn hostile_model_ids_are_refused_cleanly_with_only_the_mock_models() {
    let gateway = Gateway::start(&[]);
    for model in HOSTILE_MODELS {
        for (route, body) in [
            (
                "/v1/chat/completions",
                json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
            ),
            ("/v1/embeddings", json!({"model": model, "input": "hi"})),
        ] {
            let reply = post_json(gateway.addr, route, &body);
            assert!(
                matches!(reply.status, 400 | 401 | 404),
                "{route} {model:?}: {} {}",
                reply.status,
                reply.text()
            );
            assert_error(&reply, reply.status);
            assert!(
                reply.headers.iter().all(|(n, _)| n != "x-injected"),
                "{model:?} set a header"
            );
        }
        // The same ids as the path of /v1/models/{id}: percent-encoded, and raw when they can
        // stand in a request line.
        let encoded =
            percent_encoding::utf8_percent_encode(model, percent_encoding::NON_ALPHANUMERIC);
        let raw = model.replace(['\0', '\r', '\n', ' ', '\u{1b}', '\u{7}'], "");
        let mut paths = vec![format!("/v1/models/{encoded}")];
        if raw == *model {
            paths.push(format!("/v1/models/{raw}"));
        }
        for path in paths {
            let reply = get(gateway.addr, &path);
            assert!(
                matches!(reply.status, 400 | 404),
                "GET {path:?}: {} {}",
                reply.status,
                reply.text()
            );
        }
    }
    still_serves(&gateway);
}

#[test]
fn hostile_model_ids_never_change_the_path_the_provider_is_called_on() {
    let upstream = MockUpstream::always(Script::fixture(200, "openai/chat_completion.json"));
    let gateway = Gateway::in_front_of(&upstream, &[]);
    for model in HOSTILE_MODELS {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        let reply = post_json(gateway.addr, "/v1/chat/completions", &body);
        assert!(
            reply.status < 500,
            "{model:?}: {} {}",
            reply.status,
            reply.text()
        );
    }
    for request in upstream.requests() {
        assert_eq!(
            request.path,
            "/v1/chat/completions",
            "{:?}",
            request.json()["model"]
        );
    }
}

#[test]
fn a_hundred_thousand_messages_within_the_size_cap_are_answered() {
    let gateway = Gateway::start(&[("CLIENT_BODY_TIMEOUT", "30")]);
    let messages: Vec<Value> = (0..100_000)
        .map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": "w"}))
        .chain([json!({"role": "user", "content": "the last word"})])
        .collect();
    let body = json!({"model": "mock/echo", "messages": messages});
    assert!(body.to_string().len() < 32 * 1024 * 1024);
    let started = Instant::now();
    let reply = post_json(gateway.addr, "/v1/chat/completions", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answer = reply.json();
    assert_eq!(answer["choices"][0]["message"]["content"], "the last word");
    assert!(answer["usage"]["prompt_tokens"].as_u64().unwrap() > 300_000);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    still_serves(&gateway);
}
