//! The Messages ingress as a pure translator: requests to the internal shape, answers, chunks
//! and errors back to Anthropic's documented shapes, and the passthrough call.

use std::sync::Arc;

use serde_json::{json, Value};

use super::request::{internal, validate};
use super::*;
use crate::assembler::Assembler;
use crate::providers::{registry, Settings};

fn map(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn translate(v: Value) -> Value {
    let body = map(v);
    validate(&body, false).unwrap();
    Value::Object(internal(&body, false).unwrap().body)
}

#[test]
fn system_blocks_turns_and_parameters_become_the_internal_request() {
    let out = translate(json!({
        "model": "mock/echo", "max_tokens": 100, "stream": true,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
            ]},
        ],
        "stop_sequences": ["END"], "temperature": 0.5, "top_p": 0.9, "top_k": 40,
        "metadata": {"user_id": "user-1"},
        "thinking": {"type": "enabled", "budget_tokens": 8000},
    }));
    assert_eq!(
        out["messages"][0],
        json!({"role": "system", "content": [{"type": "text", "text": "Be brief."}]})
    );
    let parts = &out["messages"][1]["content"];
    assert_eq!(parts[1]["image_url"]["url"], "data:image/png;base64,iVBOR");
    assert_eq!(parts[2]["image_url"]["url"], "https://example.com/a.jpg");
    assert_eq!(out["stop"], json!(["END"]));
    assert_eq!(out["user"], "user-1");
    assert_eq!(out["reasoning_effort"], "medium");
    assert_eq!(
        (
            out["max_tokens"].clone(),
            out["top_k"].clone(),
            out["stream"].clone()
        ),
        (json!(100), json!(40), json!(true))
    );
}

#[test]
fn tool_use_and_tool_results_become_tool_calls_and_tool_messages() {
    let out = translate(json!({
        "model": "m", "max_tokens": 10,
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}},
                  {"type": "custom", "name": "other", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "…", "signature": "sig"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "boom"}], "is_error": true},
                {"type": "text", "text": "And now?"},
            ]},
        ],
    }));
    let m = &out["messages"];
    assert_eq!(m[1]["content"], "Let me check.");
    assert_eq!(
        m[1]["tool_calls"][0]["function"],
        json!({"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"})
    );
    assert_eq!(
        m[2],
        json!({"role": "tool", "tool_call_id": "toolu_1", "content": "Error: boom"})
    );
    assert_eq!(m[3]["role"], "user");
    assert_eq!(
        out["tools"][0]["function"]["parameters"],
        json!({"type": "object"})
    );
    assert_eq!(out["tools"].as_array().unwrap().len(), 2);
    assert_eq!(
        (
            out["tool_choice"].clone(),
            out["parallel_tool_calls"].clone()
        ),
        (json!("required"), json!(false))
    );
    let named = translate(
        json!({"model": "m", "max_tokens": 1, "tools": [{"name": "t", "input_schema": {}}],
        "tool_choice": {"type": "tool", "name": "t"}, "messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!(
        named["tool_choice"],
        json!({"type": "function", "function": {"name": "t"}})
    );
}

#[test]
fn what_cannot_be_honoured_is_a_400_naming_it_or_dropped_on_request() {
    let body = map(
        json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}], "container": "c"}),
    );
    let e = internal(&body, false).err().unwrap();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("container")));
    let dropped = internal(&body, true).unwrap();
    assert_eq!(
        dropped.dropped,
        vec!["container".to_string(), "tools.0".to_string()]
    );
    assert!(!dropped.body.contains_key("tools"));
    let no_max = map(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}));
    assert_eq!(
        validate(&no_max, false).unwrap_err().param.as_deref(),
        Some("max_tokens")
    );
    assert!(validate(&no_max, true).is_ok());
    let bad_role = map(
        json!({"model": "m", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]}),
    );
    assert_eq!(validate(&bad_role, false).unwrap_err().status, 400);
}

fn messages() -> Messages {
    Messages {
        model: "mock/echo".into(),
    }
}

#[test]
fn a_completion_becomes_a_messages_answer() {
    let completion = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Checking.", "reasoning_content": "hmm",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25, "prompt_tokens_details": {"cached_tokens": 8}},
    });
    let out: Value = serde_json::from_slice(
        &messages()
            .reply(completion.to_string().into_bytes())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(out["id"], "msg_chatcmpl-1");
    assert_eq!(
        (
            out["type"].clone(),
            out["role"].clone(),
            out["model"].clone()
        ),
        (json!("message"), json!("assistant"), json!("gpt-4o"))
    );
    assert_eq!(out["content"][0]["type"], "thinking");
    assert_eq!(
        out["content"][1],
        json!({"type": "text", "text": "Checking."})
    );
    assert_eq!(
        out["content"][2],
        json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}})
    );
    assert_eq!(out["stop_reason"], "tool_use");
    assert_eq!(
        out["usage"],
        json!({"input_tokens": 12, "cache_read_input_tokens": 8, "cache_creation_input_tokens": 0, "output_tokens": 5})
    );
}

#[test]
fn errors_take_anthropics_types_and_statuses() {
    for (status, kind, expected) in [
        (400, "invalid_request_error", 400),
        (401, "authentication_error", 401),
        (404, "not_found_error", 404),
        (429, "rate_limit_error", 429),
        (503, "overloaded_error", 529),
        (502, "api_error", 502),
        (504, "api_error", 504),
    ] {
        let (got, body) = messages().error(&ApiError::new(status, "upstream_error", None, "why"));
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(got, expected);
        assert_eq!(
            body,
            json!({"type": "error", "error": {"type": kind, "message": "why"}})
        );
    }
}

/// The named events a stream writer produced: (event name, data).
fn events(out: &[u8]) -> Vec<(String, Value)> {
    String::from_utf8_lossy(out)
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, data) = e.split_once('\n').unwrap();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            let name = name.strip_prefix("event: ").unwrap().to_string();
            assert_eq!(
                data["type"],
                name.as_str(),
                "the event name is the data's type"
            );
            (name, data)
        })
        .collect()
}

#[test]
fn chunks_become_the_messages_event_sequence() {
    let chunks = [
        json!({"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
        json!({"id": "c1", "choices": [{"index": 0, "delta": {"reasoning_content": "think"}}]}),
        json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
        json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": "lo"}}]}),
        json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}}]}),
        json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}}]}),
        json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}}]}),
        json!({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}}),
    ];
    let mut egress = messages().stream(false);
    let mut assembler = Assembler::new(1 << 20);
    let mut out = Vec::new();
    for chunk in chunks {
        let data = chunk.to_string();
        let seen = assembler.add(&data).unwrap();
        egress.chunk(&data, &seen, &mut out);
    }
    egress.done(&mut out);
    let events = events(&out);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    assert_eq!(events[0].1["message"]["model"], "gpt-4o");
    assert_eq!(
        events[3].1["delta"],
        json!({"type": "thinking_delta", "thinking": "think"})
    );
    assert_eq!(
        events[6].1["delta"],
        json!({"type": "text_delta", "text": "Hel"})
    );
    assert_eq!(
        events[9].1["content_block"],
        json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}})
    );
    assert_eq!(
        (
            events[9].1["index"].clone(),
            events[10].1["delta"]["type"].clone()
        ),
        (json!(2), json!("input_json_delta"))
    );
    assert_eq!(events[13].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(events[13].1["usage"]["output_tokens"], 4);
    assert_eq!(events[13].1["usage"]["input_tokens"], 9);
}

#[test]
fn a_failed_stream_ends_with_an_error_event() {
    let mut out = Vec::new();
    messages()
        .stream(false)
        .fail(&ApiError::new(503, "server_error", None, "busy"), &mut out);
    let events = events(&out);
    assert_eq!(
        events[0].1,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    );
}

fn anthropic_target(model: &str) -> Target {
    Target {
        provider: registry::find("anthropic").unwrap(),
        model: model.into(),
        settings: Arc::new(Settings {
            base_url: Some("http://127.0.0.1:9".into()),
            api_key: Some("sk-ant-gateway-fake".into()),
            ..Settings::default()
        }),
    }
}

#[test]
fn the_passthrough_carries_the_clients_body_and_versions_with_the_gateways_key() {
    let raw = br#"{"model":"claude-x","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
    let body = map(serde_json::from_slice(raw).unwrap());
    let client = vec![
        ("x-api-key".to_string(), "sk-client-fake".to_string()),
        (
            "authorization".to_string(),
            "Bearer sk-client-fake".to_string(),
        ),
        ("anthropic-version".to_string(), "2023-06-01".to_string()),
        ("anthropic-beta".to_string(), "tools-2024-04-04".to_string()),
    ];
    let target = anthropic_target("claude-x");
    assert!(is_native(&target));
    let call = native_call(&target, raw, &body, &client, "/v1/messages", true);
    assert_eq!(call.url, "http://127.0.0.1:9/v1/messages");
    assert_eq!(call.body, raw.to_vec(), "the body is sent untouched");
    let header = |n: &str| {
        call.headers
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("x-api-key"), Some("sk-ant-gateway-fake"));
    assert_eq!(header("anthropic-beta"), Some("tools-2024-04-04"));
    assert_eq!(header("authorization"), None);
    assert!(!call
        .headers
        .iter()
        .any(|(_, v)| v.contains("sk-client-fake")));
    let renamed = native_call(
        &anthropic_target("claude-y"),
        raw,
        &body,
        &client,
        "/v1/messages",
        false,
    );
    let sent: Value = serde_json::from_slice(&renamed.body).unwrap();
    assert_eq!(
        (sent["model"].clone(), sent["max_tokens"].clone()),
        (json!("claude-y"), json!(5))
    );
}
