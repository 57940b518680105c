//! Unit tests of the Gemini dialect: requests compared as JSON with the fixtures, answers,
//! streams and errors translated from them.

use super::*;
use crate::providers::Emit;
use crate::upstream::SseEvent;
use base64::Engine;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/gemini/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/gemini/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path).unwrap()
}

fn body(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn target(model: &str) -> Target {
    crate::providers::registry::test_target(
        "gemini",
        model,
        "http://127.0.0.1:9",
        Some("fake-gemini-key"),
    )
}

#[test]
fn the_key_goes_in_a_header_and_the_path_names_the_method() {
    let req = body(
        json!({"model": "gemini/gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}),
    );
    let p = chat_request(&target("gemini-2.5-flash"), req.clone(), false, false).unwrap();
    assert_eq!(
        p.call.url,
        "http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert!(p
        .call
        .headers
        .contains(&("x-goog-api-key", "fake-gemini-key".to_string())));
    assert!(!p.call.url.contains("key="));
    let p = chat_request(&target("gemini-2.5-flash"), req.clone(), true, false).unwrap();
    assert_eq!(
        p.call.url,
        "http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert!(chat_request(&target("x/../y"), req, false, false).is_err());
}

#[test]
fn tool_round_trip_request_matches_the_fixture() {
    let req = body(json!({
        "model": "gemini-2.5-flash",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_0", "type": "function",
              "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"celsius\"}"}}]},
            {"role": "tool", "tool_call_id": "call_0", "content": "{\"temperature\": 21, \"sky\": \"clear\"}"}
        ],
        "tools": [
            {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
              "parameters": {"type": "object", "$schema": "http://json-schema.org/draft-07/schema#",
                "additionalProperties": false,
                "properties": {"city": {"type": "string", "description": "City name"},
                               "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"}},
                "required": ["city"]}, "strict": true}},
            {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    }));
    let (sent, dropped) = chat_body(&req, false).unwrap();
    assert_eq!(sent, fixture("tool_result.request.json"));
    assert!(dropped.is_empty());
}

#[test]
fn thought_signatures_ride_in_the_tool_call_id_and_come_back() {
    let answer = json!({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "c2ln"}]}, "finishReason": "STOP"}]});
    let reply = chat_response("m", serde_json::to_vec(&answer).unwrap()).unwrap();
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    let id = v["choices"][0]["message"]["tool_calls"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(id, "call_0__thought__c2ln");
    let req = body(json!({"messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [{"id": id, "type": "function", "function": {"name": "f", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": id, "content": "done"}]}));
    let (sent, _) = chat_body(&req, false).unwrap();
    assert_eq!(sent["contents"][1]["parts"][0]["thoughtSignature"], "c2ln");
    assert_eq!(
        sent["contents"][2]["parts"][0]["functionResponse"]["response"],
        json!({"result": "done"})
    );
}

#[test]
fn unsupported_parameters_are_refused_or_dropped() {
    let req = body(
        json!({"messages": [{"role": "user", "content": "hi"}], "logit_bias": {"1": 2}, "user": "u1"}),
    );
    let e = chat_body(&req, false).unwrap_err();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("logit_bias")));
    assert!(e.message.contains("DROP_UNSUPPORTED_PARAMS"));
    let (sent, dropped) = chat_body(&req, true).unwrap();
    assert_eq!(dropped, vec!["logit_bias".to_string()]);
    assert!(!sent.to_string().contains("logit"));
    let bad = body(json!({"messages": [], "temperature": "hot"}));
    assert_eq!(
        chat_body(&bad, false).unwrap_err().param.as_deref(),
        Some("temperature")
    );
}

#[test]
fn unanswered_tool_results_are_refused() {
    let req = body(json!({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}));
    let e = chat_body(&req, false).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("messages[0].tool_call_id"));
}

#[test]
fn answer_becomes_a_chat_completion_with_usage_details() {
    let reply = chat_response("gemini-x", fixture_bytes("usage_cached.response.json")).unwrap();
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["id"], "chatcmpl-resp-cache-1");
    assert_eq!(v["model"], "gemini-2.5-flash");
    let m = &v["choices"][0]["message"];
    assert_eq!(m["content"], "The answer is 42.");
    assert_eq!(m["reasoning_content"], "Thinking about it…");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        reply.usage.unwrap(),
        json!({"prompt_tokens": 2100, "completion_tokens": 127, "total_tokens": 2227,
               "prompt_tokens_details": {"cached_tokens": 2048},
               "completion_tokens_details": {"reasoning_tokens": 120}})
    );
}

#[test]
fn finish_reasons_map_to_openai_ones() {
    assert_eq!(finish_reason("STOP", false), "stop");
    assert_eq!(finish_reason("STOP", true), "tool_calls");
    assert_eq!(finish_reason("MAX_TOKENS", true), "length");
    for r in [
        "SAFETY",
        "RECITATION",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
    ] {
        assert_eq!(finish_reason(r, false), "content_filter");
    }
    assert_eq!(finish_reason("OTHER", false), "stop");
    let blocked = br#"{"promptFeedback": {"blockReason": "SAFETY"}}"#.to_vec();
    let v: Value = serde_json::from_slice(&chat_response("m", blocked).unwrap().body).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    assert!(chat_response("m", b"{}".to_vec()).is_err());
    assert!(chat_response("m", b"<html>".to_vec()).is_err());
}

#[test]
fn google_errors_keep_message_and_status_and_name_the_code() {
    let e = parse_error(429, &fixture_bytes("error_429.json"));
    assert_eq!(
        (e.status, e.code.as_deref()),
        (429, Some("RESOURCE_EXHAUSTED"))
    );
    assert!(e.message.starts_with("You exceeded your current quota"));
    assert_eq!(
        e.headers,
        vec![("retry-after".to_string(), "37".to_string())]
    );
    assert_eq!(
        parse_error(500, &fixture_bytes("error_500.json")).status,
        502
    );
    assert_eq!(
        parse_error(503, &fixture_bytes("error_503.json")).status,
        503
    );
    assert_eq!(
        parse_error(403, &fixture_bytes("error_403.json")).kind,
        "permission_error"
    );
    let e = parse_error(
        400,
        br#"[{"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}]"#,
    );
    assert_eq!((e.status, e.message.as_str()), (400, "bad"));
    let e = parse_error(502, b"<html>gateway</html>");
    assert_eq!(
        (e.status, e.code.as_deref()),
        (502, Some("upstream_http_502"))
    );
    assert!(e.message.contains("gateway"));
}

fn play(sse: &str) -> Vec<Emit> {
    let mut state = stream::StreamState::new("gemini-x");
    let mut out = Vec::new();
    for data in sse.split("\n\n").filter_map(|e| e.strip_prefix("data: ")) {
        out.extend(
            state
                .on_event(SseEvent {
                    event: None,
                    data: data.into(),
                })
                .unwrap(),
        );
    }
    out
}

fn chunks(emits: &[Emit]) -> Vec<Value> {
    emits
        .iter()
        .filter_map(|e| match e {
            Emit::Chunk(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn stream_emits_role_content_finish_usage_then_done() {
    let emits = play(&String::from_utf8(fixture_bytes("stream_text.sse")).unwrap());
    assert!(matches!(emits.last(), Some(Emit::Done)));
    let c = chunks(&emits);
    assert!(c.iter().all(|c| c["id"] == "chatcmpl-resp-stream-1"));
    assert_eq!(
        c[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": "The sky"})
    );
    let text: String = c
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "The sky is blue because of Rayleigh scattering.");
    assert_eq!(c[c.len() - 2]["choices"][0]["finish_reason"], "stop");
    let usage = &c[c.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 41);
}

#[test]
fn streamed_tool_call_is_whole_with_index_and_matches_the_answer() {
    let emits = play(&String::from_utf8(fixture_bytes("stream_tool_call.sse")).unwrap());
    let c = chunks(&emits);
    let calls = &c[0]["choices"][0]["delta"]["tool_calls"];
    let answer = chat_response("m", fixture_bytes("tool_call.response.json")).unwrap();
    let v: Value = serde_json::from_slice(&answer.body).unwrap();
    let mut expected = v["choices"][0]["message"]["tool_calls"][0].clone();
    expected["index"] = json!(0);
    assert_eq!(calls, &json!([expected]));
    assert_eq!(c[1]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn malformed_or_error_events_fail_the_stream_without_panicking() {
    let mut s = stream::StreamState::new("m");
    let ev = |d: &str| SseEvent {
        event: None,
        data: d.into(),
    };
    assert_eq!(s.on_event(ev("{not json")).unwrap_err().status, 502);
    assert_eq!(s.on_event(ev("[1,2]")).unwrap_err().status, 502);
    let e = s
        .on_event(ev(
            r#"{"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}"#,
        ))
        .unwrap_err();
    assert_eq!((e.status, e.message.as_str()), (503, "overloaded"));
    assert!(s.on_event(ev("")).unwrap().is_empty());
}

#[test]
fn embeddings_keep_order_and_encode_base64_on_request() {
    let req = body(
        json!({"model": "gemini/gemini-embedding-001", "input": ["first", "second", "third"], "dimensions": 3}),
    );
    let call = embeddings_request(&target("gemini-embedding-001"), &req).unwrap();
    assert_eq!(
        call.url,
        "http://127.0.0.1:9/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    let sent: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(sent, fixture("embeddings.request.json"));
    let reply = embeddings_response(
        "gemini-embedding-001",
        fixture_bytes("embeddings.response.json"),
        false,
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(v["data"][2]["index"], 2);
    assert_eq!(v["data"][2]["embedding"], json!([-0.7, 0.8, -0.9]));
    assert!(reply.usage.is_none() && v["usage"].is_null());
    let reply = embeddings_response("m", fixture_bytes("embeddings.response.json"), true).unwrap();
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    assert_eq!(f32::from_le_bytes(bytes[0..4].try_into().unwrap()), 0.1f32);
    let tokens = body(json!({"input": [[1, 2]]}));
    match embeddings_request(&target("m"), &tokens) {
        Err(e) => assert_eq!(e.param.as_deref(), Some("input")),
        Ok(_) => panic!("token arrays were accepted"),
    }
}
