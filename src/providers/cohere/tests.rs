//! The Cohere adapter's pure functions, against the fixtures in `tests/fixtures/cohere/`.

use serde_json::{json, Value};

use super::*;
use crate::providers::registry::test_target;
use crate::providers::Emit;
use crate::upstream::SseEvent;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/cohere/",
            $name
        ))
    };
}

fn target() -> Target {
    test_target(
        "cohere",
        "command-a-03-2025",
        "http://127.0.0.1:9",
        Some("co-test-fake"),
    )
}

fn prepare(body: Value, drop: bool) -> Result<Prepared, ApiError> {
    let context = RequestContext {
        drop_unsupported: drop,
        client_headers: &[],
    };
    let stream = body["stream"] == true;
    chat_request(
        &target(),
        body.as_object().unwrap().clone(),
        stream,
        &context,
    )
}

fn sent(prepared: &Prepared) -> Value {
    serde_json::from_slice(&prepared.call.body).unwrap()
}

#[test]
fn the_request_goes_to_v2_chat_with_a_bearer_key() {
    let p = prepare(
        json!({"model": "cohere/command-a-03-2025", "messages": [{"role": "user", "content": "Hello"}]}),
        false,
    )
    .unwrap();
    assert_eq!(p.call.url, "http://127.0.0.1:9/v2/chat");
    assert!(p
        .call
        .headers
        .contains(&("authorization", "Bearer co-test-fake".into())));
    let expected: Value = serde_json::from_str(fixture!("request_plain_chat.json")).unwrap();
    assert_eq!(sent(&p), expected);
}

#[test]
fn tool_choice_none_and_required_are_upper_case_and_need_tools() {
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    for (choice, expected) in [("none", json!("NONE")), ("required", json!("REQUIRED"))] {
        let p = prepare(
            json!({"messages": [], "tools": tools, "tool_choice": choice}),
            false,
        )
        .unwrap();
        let body = sent(&p);
        assert_eq!(body["tool_choice"], expected);
        assert_eq!(
            body["tools"][0]["function"]["parameters"],
            json!({"type": "object", "properties": {}})
        );
    }
    let body = sent(&prepare(json!({"messages": [], "tool_choice": "required"}), false).unwrap());
    assert!(body.get("tool_choice").is_none());
    let e = prepare(
        json!({"messages": [], "tools": tools, "tool_choice": {"type": "function", "function": {"name": "g"}}}),
        false,
    )
    .err()
    .unwrap();
    assert_eq!(e.param.as_deref(), Some("tool_choice"));
}

#[test]
fn unsupported_params_are_named_or_dropped() {
    let body = json!({"messages": [], "n": 2, "logprobs": false, "top_logprobs": 0});
    let e = prepare(body.clone(), false).err().unwrap();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("n")));
    let p = prepare(body, true).unwrap();
    assert_eq!(p.dropped, ["n"]);
    assert!(sent(&p).get("n").is_none());
}

#[test]
fn finish_reasons() {
    assert_eq!(finish_reason(Some("COMPLETE")).unwrap(), "stop");
    assert_eq!(finish_reason(Some("STOP_SEQUENCE")).unwrap(), "stop");
    assert_eq!(finish_reason(Some("MAX_TOKENS")).unwrap(), "length");
    assert_eq!(finish_reason(Some("TOOL_CALL")).unwrap(), "tool_calls");
    assert_eq!(
        finish_reason(Some("ERROR_TOXIC")).unwrap(),
        "content_filter"
    );
    assert_eq!(finish_reason(Some("ERROR")).unwrap_err().status, 502);
    assert_eq!(finish_reason(Some("TIMEOUT")).unwrap_err().status, 502);
}

#[test]
fn errors_keep_4xx_and_503_and_make_other_5xx_502() {
    let e = parse_error(400, fixture!("error_400.json").as_bytes());
    assert_eq!((e.status, e.kind.as_str()), (400, "invalid_request_error"));
    assert!(e.message.starts_with("invalid request"));
    let e = parse_error(429, fixture!("error_429.json").as_bytes());
    assert_eq!((e.status, e.kind.as_str()), (429, "rate_limit_error"));
    let e = parse_error(500, fixture!("error_500.json").as_bytes());
    assert_eq!(e.status, 502);
    assert_eq!(e.code.as_deref(), Some("upstream_http_500"));
    assert_eq!(parse_error(503, b"{\"message\":\"x\"}").status, 503);
    let e = parse_error(502, b"<html>bad gateway</html>");
    assert_eq!(e.status, 502);
    assert!(e.message.contains("<html>bad gateway</html>"));
}

fn events(sse: &str) -> Vec<SseEvent> {
    sse.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|b| SseEvent {
            event: None,
            data: b
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap()
                .to_string(),
        })
        .collect()
}

#[test]
fn the_stream_ends_with_finish_usage_and_done() {
    let mut state = stream::StreamState::new("command-a-03-2025");
    let mut out = Vec::new();
    for e in events(fixture!("stream_text.sse")) {
        out.extend(state.on_event(e).unwrap());
    }
    assert!(matches!(out.last(), Some(Emit::Done)));
    let Some(Emit::Chunk(usage)) = out.get(out.len() - 2) else {
        panic!("{out:?}");
    };
    assert_eq!(usage["usage"]["total_tokens"], 40);
    assert_eq!(usage["id"], "29f14a5a-11de-4cae-9800-25e4747408ea");
}

#[test]
fn a_tool_call_delta_before_its_start_is_an_error() {
    let mut state = stream::StreamState::new("m");
    let delta = SseEvent {
        event: None,
        data: json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": "{"}}}}}).to_string(),
    };
    assert_eq!(state.on_event(delta).unwrap_err().status, 502);
}

/// Found by the fuzzer: token counts past u64 (a float saturates to u64::MAX) must not make the
/// usage's total overflow.
#[test]
fn absurd_token_counts_do_not_overflow_the_total() {
    let u = usage(&json!({"tokens": {"input_tokens": 3.6e60, "output_tokens": 6}}));
    assert_eq!(u["total_tokens"], u64::MAX);
}
