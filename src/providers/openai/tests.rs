use serde_json::{json, Map, Value};

use super::*;
use crate::providers::registry::test_target;

fn context() -> RequestContext<'static> {
    RequestContext {
        drop_unsupported: false,
        client_headers: &[],
    }
}

fn body(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn stream_request_forces_usage_and_keeps_unknown_fields() {
    let target = test_target(
        "openai",
        "gpt-x",
        "http://127.0.0.1:9/v1",
        Some("sk-test-fake"),
    );
    let body = body(json!({"model": "openai/gpt-x", "stream": true, "future_param": {"a": 1}}));
    let call = target
        .dialect()
        .chat_request(&target, body, true, &context())
        .unwrap()
        .call;
    assert_eq!(call.url, "http://127.0.0.1:9/v1/chat/completions");
    assert!(call
        .headers
        .contains(&("authorization", "Bearer sk-test-fake".to_string())));
    let sent: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(sent["model"], "gpt-x");
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert_eq!(sent["future_param"]["a"], 1);
}

#[test]
fn stream_events_are_relayed_as_received_and_a_finish_reason_completes_them() {
    let mut s = StreamState::default();
    let event = |data: &str| SseEvent {
        event: None,
        data: data.into(),
    };
    let data =
        r#"{"id":"c","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}"#;
    match s.on_event(event(data)).unwrap().as_slice() {
        [Emit::Raw(raw)] => assert_eq!(raw, data),
        other => panic!("{other:?}"),
    }
    assert!(s.finish().is_err(), "no finish reason yet: cut");
    s.on_event(event(
        r#"{"choices":[{"delta":{},"finish_reason": "stop"}]}"#,
    ))
    .unwrap();
    assert!(matches!(s.finish().unwrap().as_slice(), [Emit::Done]));
    assert!(matches!(
        s.on_event(event("[DONE]")).unwrap().as_slice(),
        [Emit::Done]
    ));
    assert!(!has_finish_reason(
        r#"{"content":"\"finish_reason\": \"x\""}"#
    ));
}

#[test]
fn provider_errors_keep_message_and_status_rules() {
    let e = STANDARD.parse_error(429, br#"{"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}"#);
    assert_eq!(
        (e.status, e.message.as_str(), e.code.as_deref()),
        (429, "slow down", Some("rate_limit_exceeded"))
    );
    let e = STANDARD.parse_error(500, b"<html>oops</html>");
    assert_eq!(e.status, 502);
    assert!(e.message.contains("oops"));
    assert_eq!(STANDARD.parse_error(503, b"{}").status, 503);
}

#[test]
fn mistral_takes_max_tokens_and_one_choice_without_stream_options() {
    let mistral = test_target("mistral", "m", "http://127.0.0.1:9/v1", Some("k"));
    let dialect = OpenAi::new(false, &[Quirk::MaxTokensOnly, Quirk::NoN]);
    let asked = body(
        json!({"max_completion_tokens": 50, "n": 1, "stream_options": {"include_usage": true}}),
    );
    let (sent, dropped) = dialect.chat_body(&mistral, asked, true, false).unwrap();
    assert!(dropped.is_empty());
    assert_eq!(Value::Object(sent), json!({"max_tokens": 50, "model": "m"}));

    let e = dialect
        .chat_body(&mistral, body(json!({"n": 3})), false, false)
        .unwrap_err();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("n")));
    assert!(e.message.starts_with("Mistral returns one choice"));
    let (sent, dropped) = dialect
        .chat_body(&mistral, body(json!({"n": 3})), false, true)
        .unwrap();
    assert_eq!(dropped, vec!["n"]);
    assert!(!sent.contains_key("n"));
}

#[test]
fn vendors_accepting_stream_options_keep_them() {
    let groq = test_target("groq", "m", "http://127.0.0.1:9/v1", Some("k"));
    let asked = body(json!({"stream_options": {"include_usage": true}, "n": 2}));
    let (sent, _) = OpenAi::new(true, &[])
        .chat_body(&groq, asked, true, false)
        .unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert_eq!(sent["n"], 2);
}

/// Found by the fuzzer: an event whose data is a JSON string naming DeepSeek's cache field
/// (not a chunk) is relayed as it came, not a panic.
#[test]
fn an_event_that_is_not_an_object_but_names_the_cache_field_is_relayed() {
    let mut s = StreamState::default();
    let event = SseEvent {
        event: None,
        data: "\"prompt_cache_hit_tokens\"".into(),
    };
    assert!(matches!(
        s.on_event(event).unwrap().as_slice(),
        [Emit::Raw(_)]
    ));
    let odd = SseEvent {
        event: None,
        data: r#"{"usage": "prompt_cache_hit_tokens", "choices": []}"#.into(),
    };
    assert!(matches!(
        s.on_event(odd).unwrap().as_slice(),
        [Emit::Raw(_)]
    ));
}
