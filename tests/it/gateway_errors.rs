//! Every failure reaches the client with a truthful status and the OpenAI error shape
//! `{"error":{"message","type","param","code"}}`; after stream headers went out, as one SSE
//! `data:` event with that shape and no `[DONE]`.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::client::{
    assert_error, assert_error_shape, fixture_json, post_json, send, Conn, Reply,
};
use crate::support::gateway::Gateway;
use crate::support::upstream::{fixture_events, Body, MockUpstream, Script, Step};

fn chat(stream: bool) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    })
}

/// The events of a streamed reply that must end with an error event (and no `[DONE]`).
fn stream_error(reply: &Reply) -> serde_json::Map<String, Value> {
    assert_eq!(reply.status, 200, "stream headers were already sent");
    let events = reply.events();
    assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");
    let last: Value = serde_json::from_str(events.last().expect("an error event"))
        .unwrap_or_else(|e| panic!("last event is not JSON ({e}): {events:?}"));
    assert_error_shape(&last)
}

#[test]
fn malformed_json_is_a_400() {
    let gw = Gateway::start(&[]);
    for (path, body) in [
        ("/v1/chat/completions", &b"{\"model\": \"mock/echo\", "[..]),
        ("/v1/embeddings", b"not json"),
        ("/v1/chat/completions", b"[1, 2]"),
        ("/v1/chat/completions", b""),
    ] {
        let reply = send(
            gw.addr,
            "POST",
            path,
            &[("content-type", "application/json")],
            body,
        );
        let e = assert_error(&reply, 400);
        assert_eq!(e["type"], "invalid_request_error", "{path}");
        assert_eq!(e["param"], Value::Null);
    }
}

#[test]
fn missing_or_ill_typed_model_is_a_400_naming_model() {
    let gw = Gateway::start(&[]);
    let messages = json!([{"role": "user", "content": "hi"}]);
    for model in [
        None,
        Some(json!(null)),
        Some(json!(42)),
        Some(json!("")),
        Some(json!(["a"])),
    ] {
        let mut body = json!({"messages": messages, "input": "x"});
        if let Some(m) = &model {
            body["model"] = m.clone();
        }
        for path in ["/v1/chat/completions", "/v1/embeddings"] {
            let e = assert_error(&post_json(gw.addr, path, &body), 400);
            assert_eq!(e["param"], "model", "{path} with model {model:?}");
        }
    }
}

#[test]
fn missing_or_ill_typed_messages_is_a_400_naming_messages() {
    let gw = Gateway::start(&[]);
    for messages in [
        None,
        Some(json!("hi")),
        Some(json!({"role": "user"})),
        Some(json!([])),
    ] {
        let mut body = json!({"model": "mock/echo"});
        if let Some(m) = &messages {
            body["messages"] = m.clone();
        }
        let e = assert_error(&post_json(gw.addr, "/v1/chat/completions", &body), 400);
        assert_eq!(e["param"], "messages", "messages {messages:?}");
    }
    let body = json!({"model": "mock/echo", "messages": [{"content": "no role"}]});
    let e = assert_error(&post_json(gw.addr, "/v1/chat/completions", &body), 400);
    assert_eq!(e["param"], "messages[0].role");
    let body = json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}], "stream": "yes"});
    let e = assert_error(&post_json(gw.addr, "/v1/chat/completions", &body), 400);
    assert_eq!(e["param"], "stream");
}

#[test]
fn missing_or_ill_typed_input_is_a_400_naming_input() {
    let gw = Gateway::start(&[]);
    for input in [
        None,
        Some(json!(null)),
        Some(json!(7)),
        Some(json!([])),
        Some(json!([""])),
        Some(json!(["a", 1])),
        Some(json!([-1, 2])),
        Some(json!([[1], []])),
        Some(json!({"text": "a"})),
    ] {
        let mut body = json!({"model": "mock/embed"});
        if let Some(i) = &input {
            body["input"] = i.clone();
        }
        let e = assert_error(&post_json(gw.addr, "/v1/embeddings", &body), 400);
        assert_eq!(e["param"], "input", "input {input:?}");
    }
}

#[test]
fn unknown_route_is_a_404_and_wrong_method_a_405() {
    let gw = Gateway::start(&[]);
    for path in ["/v1/nope", "/v2/chat/completions", "/v1/completionsx"] {
        let e = assert_error(&send(gw.addr, "GET", path, &[], b""), 404);
        assert_eq!(e["code"], "unknown_url", "{path}");
    }
    for (method, path, allowed) in [
        ("GET", "/v1/chat/completions", "POST"),
        ("PUT", "/v1/embeddings", "POST"),
        ("POST", "/v1/models", "GET"),
        ("DELETE", "/health", "GET"),
    ] {
        let reply = send(gw.addr, method, path, &[], b"");
        let e = assert_error(&reply, 405);
        assert_eq!(e["code"], "method_not_allowed");
        assert!(
            reply.header("allow").is_some_and(|a| a.contains(allowed)),
            "{method} {path}: allow {:?}",
            reply.header("allow")
        );
    }
}

#[test]
fn body_over_max_request_bytes_is_a_413() {
    let gw = Gateway::start(&[("MAX_REQUEST_BYTES", "1024")]);
    let big =
        json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x".repeat(2000)}]});
    let e = assert_error(&post_json(gw.addr, "/v1/chat/completions", &big), 413);
    assert_eq!(e["code"], "request_too_large");
    assert_eq!(
        e["message"],
        "The request body is larger than this gateway accepts: at most 1024 bytes (MAX_REQUEST_BYTES)."
    );
    let small = json!({"model": "mock/echo", "messages": [{"role": "user", "content": "fits"}]});
    assert_eq!(
        post_json(gw.addr, "/v1/chat/completions", &small).status,
        200
    );
}

#[test]
fn unknown_model_without_a_provider_is_404_model_not_found() {
    let gw = Gateway::start(&[]);
    for (path, body) in [
        ("/v1/chat/completions", chat(false)),
        ("/v1/chat/completions", chat(true)),
        (
            "/v1/embeddings",
            json!({"model": "text-embedding-3-small", "input": "x"}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "mock/nope", "messages": [{"role": "user", "content": "x"}]}),
        ),
    ] {
        let e = assert_error(&post_json(gw.addr, path, &body), 404);
        assert_eq!(e["code"], "model_not_found", "{path} {body}");
        assert_eq!(e["param"], "model");
    }
}

#[test]
fn unreachable_provider_is_a_502() {
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{closed_port}/v1");
    let gw = Gateway::start(&[("LITELLM_BASE_URL", &base), ("LITELLM_API_KEY", "sk-x")]);
    for body in [chat(false), chat(true)] {
        let e = assert_error(&post_json(gw.addr, "/v1/chat/completions", &body), 502);
        assert_eq!(e["code"], "upstream_unreachable");
        assert!(!e["message"].as_str().unwrap().contains("sk-x"));
    }
    let body = json!({"model": "text-embedding-3-small", "input": "x"});
    assert_error(&post_json(gw.addr, "/v1/embeddings", &body), 502);
}

#[test]
fn provider_silent_past_upstream_timeout_is_a_504() {
    let upstream = MockUpstream::always(
        Script::fixture(200, "openai/chat_completion.json").hang(Duration::from_secs(4)),
    );
    let gw = Gateway::in_front_of(&upstream, &[("UPSTREAM_TIMEOUT", "0.5")]);
    for body in [chat(false), chat(true)] {
        let e = assert_error(&post_json(gw.addr, "/v1/chat/completions", &body), 504);
        assert_eq!(e["code"], "upstream_timeout");
        // Which provider, which model, after how long.
        let message = e["message"].as_str().unwrap();
        let (_, after) = message
            .split_once(": openai (model gpt-4o-mini) after ")
            .unwrap_or_else(|| panic!("{message}"));
        let secs: f64 = after.strip_suffix(" s.").unwrap().parse().unwrap();
        assert!((0.5..4.0).contains(&secs), "{message}");
    }
}

#[test]
fn stream_silent_past_the_idle_timeout_is_cut_with_an_sse_error_event() {
    let events = fixture_events("openai/chat_completion_stream.sse");
    let upstream = MockUpstream::always(Script::sse(vec![
        Step::Event(events[0].clone()),
        Step::Pause(Duration::from_secs(5)),
        Step::Event(events[1].clone()),
    ]));
    let gw = Gateway::in_front_of(
        &upstream,
        &[("STREAM_IDLE_TIMEOUT", "0.5"), ("UPSTREAM_TIMEOUT", "5")],
    );
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat(true));
    let e = stream_error(&reply);
    assert_eq!(e["code"], "upstream_timeout");
    assert_eq!(reply.events()[0], events[0], "what came before is relayed");
    assert_eq!(reply.events().len(), 2);
}

#[test]
fn provider_4xx_errors_pass_through_with_their_message() {
    for (status, fixture) in [
        (400, "error_400_invalid_value"),
        (401, "error_401_invalid_api_key"),
        (404, "error_404_model_not_found"),
        (429, "error_429_rate_limit"),
    ] {
        let path = format!("openai/{fixture}.json");
        let upstream = MockUpstream::always(
            Script::fixture(status, &path)
                .with_header("retry-after", "2")
                .with_header("x-ratelimit-remaining-tokens", "0"),
        );
        let gw = Gateway::in_front_of(&upstream, &[]);
        let expected = fixture_json(&path)["error"].clone();
        for body in [
            chat(false),
            chat(true),
            json!({"model": "text-embedding-3-small", "input": "x"}),
        ] {
            let route = if body.get("input").is_some() {
                "/v1/embeddings"
            } else {
                "/v1/chat/completions"
            };
            let reply = post_json(gw.addr, route, &body);
            let e = assert_error(&reply, status);
            assert_eq!(Value::Object(e), expected, "{status} on {route}");
            if status == 429 {
                assert_eq!(reply.header("retry-after"), Some("2"), "{route}");
            }
        }
    }
}

#[test]
fn provider_500_becomes_502_and_503_stays_503() {
    for (upstream_status, client_status, fixture) in [
        (500, 502, "error_500_server"),
        (503, 503, "error_503_overloaded"),
    ] {
        let path = format!("openai/{fixture}.json");
        let upstream = MockUpstream::always(
            Script::fixture(upstream_status, &path).with_header("retry-after", "3"),
        );
        let gw = Gateway::in_front_of(&upstream, &[]);
        for body in [chat(false), chat(true)] {
            let reply = post_json(gw.addr, "/v1/chat/completions", &body);
            let e = assert_error(&reply, client_status);
            assert_eq!(e["message"], fixture_json(&path)["error"]["message"]);
            assert_eq!(e["code"], format!("upstream_http_{upstream_status}"));
            if upstream_status == 503 {
                assert_eq!(reply.header("retry-after"), Some("3"));
            }
        }
    }
    // A 500 whose body is not JSON keeps a trace of it in the message.
    let upstream = MockUpstream::always(Script {
        headers: vec![("content-type".into(), "text/html".into())],
        ..Script::json(500, "<html>upstream exploded</html>")
    });
    let gw = Gateway::in_front_of(&upstream, &[]);
    let e = assert_error(
        &post_json(gw.addr, "/v1/chat/completions", &chat(false)),
        502,
    );
    assert!(e["message"].as_str().unwrap().contains("upstream exploded"));
}

#[test]
fn malformed_provider_json_is_a_502() {
    for (route, body) in [
        ("/v1/chat/completions", chat(false)),
        (
            "/v1/embeddings",
            json!({"model": "text-embedding-3-small", "input": "x"}),
        ),
    ] {
        for bad in [
            "{\"id\": \"chatcmpl-1\", \"choices\": [",
            "",
            "[1,2,3]",
            "<html></html>",
        ] {
            let upstream = MockUpstream::always(Script::json(200, bad));
            let gw = Gateway::in_front_of(&upstream, &[]);
            let e = assert_error(&post_json(gw.addr, route, &body), 502);
            assert_eq!(
                e["code"], "upstream_bad_response",
                "{route} answered {bad:?}"
            );
        }
    }
}

#[test]
fn malformed_provider_sse_event_ends_the_stream_with_an_error_event() {
    let events = fixture_events("openai/chat_completion_stream.sse");
    let upstream = MockUpstream::always(Script::sse(vec![
        Step::Event(events[0].clone()),
        Step::Event("{\"id\": \"chatcmpl-123\", \"choices\": [".into()),
        Step::Event(events[1].clone()),
        Step::Event("[DONE]".into()),
    ]));
    let gw = Gateway::in_front_of(&upstream, &[]);
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat(true));
    let e = stream_error(&reply);
    assert_eq!(e["code"], "upstream_bad_response");
    assert_eq!(reply.events()[0], events[0]);
    assert_eq!(reply.events().len(), 2, "nothing after the bad event");
    // The gateway lives on.
    assert_eq!(
        post_json(
            gw.addr,
            "/v1/chat/completions",
            &json!({"model": "mock/echo", "messages": [{"role": "user", "content": "ok"}]})
        )
        .status,
        200
    );
}

#[test]
fn stream_ending_without_done_or_finish_reason_ends_with_an_error_event() {
    let events = fixture_events("openai/chat_completion_stream.sse");
    let upstream = MockUpstream::always(Script::sse(
        events[..3].iter().cloned().map(Step::Event).collect(),
    ));
    let gw = Gateway::in_front_of(&upstream, &[]);
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat(true));
    let e = stream_error(&reply);
    assert_eq!(e["code"], "upstream_stream_truncated");
    assert_eq!(reply.events()[..3], events[..3]);
}

#[test]
fn stream_cut_mid_body_ends_with_an_error_event() {
    let events = fixture_events("openai/chat_completion_stream.sse");
    let upstream = MockUpstream::always(Script::sse(vec![
        Step::Event(events[0].clone()),
        Step::Event(events[1].clone()),
        Step::Cut,
    ]));
    let gw = Gateway::in_front_of(&upstream, &[]);
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat(true));
    let e = stream_error(&reply);
    assert_eq!(reply.events()[..2], events[..2]);
    assert!(
        ["upstream_stream_broken", "upstream_stream_truncated"]
            .contains(&e["code"].as_str().unwrap()),
        "{e:?}"
    );
}

#[test]
fn provider_error_event_inside_a_stream_is_relayed_and_ends_the_stream() {
    let events = fixture_events("openai/chat_completion_stream.sse");
    let in_stream_error = r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#;
    let upstream = MockUpstream::always(Script::sse(vec![
        Step::Event(events[0].clone()),
        Step::Event(in_stream_error.into()),
        Step::Event(events[1].clone()),
    ]));
    let gw = Gateway::in_front_of(&upstream, &[]);
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat(true));
    let e = stream_error(&reply);
    assert_eq!(
        reply.events(),
        vec![events[0].clone(), in_stream_error.to_string()]
    );
    assert_eq!(e["type"], "server_error");
}

#[test]
fn errors_before_a_stream_starts_are_plain_json_not_sse() {
    let upstream = MockUpstream::always(Script::fixture(429, "openai/error_429_rate_limit.json"));
    let gw = Gateway::in_front_of(&upstream, &[]);
    let mut conn = Conn::open(gw.addr);
    conn.post_json("/v1/chat/completions", &chat(true));
    let reply = conn.read_reply();
    assert_error(&reply, 429);
    assert!(reply.header("content-length").is_some());
}

#[test]
fn for_streams_the_idle_timeout_also_bounds_the_wait_for_response_headers() {
    // Documented limit (README, STREAM_IDLE_TIMEOUT): ureq's per-read timeout, which is how the
    // idle timeout is enforced, also applies while reading the response head, and ureq 3 cannot
    // change it after the head. So a stream's head must arrive within the shorter of the two.
    let upstream = MockUpstream::always(
        Script::sse_fixture("openai/chat_completion_stream.sse").hang(Duration::from_millis(1500)),
    );
    let gw = Gateway::in_front_of(
        &upstream,
        &[("STREAM_IDLE_TIMEOUT", "0.5"), ("UPSTREAM_TIMEOUT", "10")],
    );
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat(true));
    assert_eq!(reply.status, 504, "{}", reply.text());
}

/// A provider that sends its response head and then stalls the body is cut at
/// `UPSTREAM_TIMEOUT` (504): the deadline covers the whole call, not only the head.
#[test]
fn a_body_stalled_after_the_head_is_cut_at_the_upstream_timeout() {
    let stalled = Script {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: Body::Steps(vec![
            Step::Raw("{\"id\": \"chatcmpl-1\", ".into()),
            Step::Pause(Duration::from_secs(20)),
            Step::Raw("}".into()),
        ]),
        hang: None,
    };
    let upstream = MockUpstream::always(stalled);
    let gw = Gateway::in_front_of(&upstream, &[("UPSTREAM_TIMEOUT", "1")]);
    let started = Instant::now();
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let reply = post_json(gw.addr, "/v1/chat/completions", &body);
    assert_error(&reply, 504);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "cut at the deadline, not when the body would have ended"
    );
}
