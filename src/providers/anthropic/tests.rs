//! The Anthropic adapter's pure functions, against the fixtures in `tests/fixtures/anthropic/`.

use serde_json::{json, Value};

use super::*;
use crate::providers::registry::test_target;
use crate::providers::Emit;
use crate::upstream::SseEvent;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/anthropic/",
            $name
        ))
    };
}

fn target() -> Target {
    test_target(
        "anthropic",
        "claude-sonnet-4-5",
        "http://127.0.0.1:9",
        Some("sk-ant-test-fake"),
    )
}

fn prepare(body: Value, headers: &[(String, String)], drop: bool) -> Result<Prepared, ApiError> {
    let context = RequestContext {
        drop_unsupported: drop,
        client_headers: headers,
    };
    let stream = body["stream"] == true;
    chat_request(
        &target(),
        body.as_object().unwrap().clone(),
        stream,
        &context,
    )
}

fn sent(body: Value) -> Value {
    let prepared = prepare(body, &[], false).unwrap();
    serde_json::from_slice(&prepared.call.body).unwrap()
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn plain_chat_goes_to_v1_messages_with_key_version_and_default_max_tokens() {
    let prepared = prepare(
        json!({"model": "anthropic/claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hello"}]}),
        &[("Anthropic-Beta".into(), "prompt-caching-2024-07-31".into())],
        false,
    )
    .unwrap();
    let call = &prepared.call;
    assert_eq!(call.url, "http://127.0.0.1:9/v1/messages");
    let header = |n: &str| {
        call.headers
            .iter()
            .find(|(h, _)| *h == n)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("x-api-key"), Some("sk-ant-test-fake"));
    assert_eq!(header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(header("anthropic-beta"), Some("prompt-caching-2024-07-31"));
    assert_eq!(header("authorization"), None);
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(body, parse(fixture!("request_plain_chat.json")));
}

#[test]
fn system_messages_are_lifted_and_sampling_and_user_are_mapped() {
    let body = sent(json!({
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": "Hello"},
        ],
        "max_tokens": 100, "temperature": 0.2, "top_p": 0.9, "user": "user-42",
    }));
    assert_eq!(body, parse(fixture!("request_system_prompt.json")));
}

#[test]
fn consecutive_turns_of_one_role_are_merged() {
    let body = sent(json!({"model": "m", "messages": [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
        {"role": "user", "content": "What is my name?"},
        {"role": "user", "content": "Answer in one word."},
    ]}));
    assert_eq!(body, parse(fixture!("request_multi_turn.json")));
}

#[test]
fn data_urls_become_base64_sources_and_https_urls_url_sources() {
    let body = sent(
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Compare these images."},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="}},
            {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg", "detail": "high"}},
        ]}]}),
    );
    assert_eq!(body, parse(fixture!("request_image_input.json")));
    let e = prepare(
        json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}),
        &[],
        false,
    )
    .err()
    .unwrap();
    assert_eq!(
        (e.status, e.param.as_deref()),
        (400, Some("messages[0].content"))
    );
}

pub fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]},
    }})
}

#[test]
fn tools_and_a_named_tool_choice_are_translated() {
    let body = sent(json!({"model": "m", "max_tokens": 1024,
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [weather_tool()],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    }));
    assert_eq!(body, parse(fixture!("request_tool_call.json")));
    let choice = |c: Value| {
        sent(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [weather_tool()], "tool_choice": c}))["tool_choice"].clone()
    };
    assert_eq!(choice(json!("required")), json!({"type": "any"}));
    assert_eq!(choice(json!("none")), json!({"type": "none"}));
    assert_eq!(choice(json!("auto")), json!({"type": "auto"}));
}

#[test]
fn tool_calls_and_consecutive_tool_results_make_one_user_turn() {
    let body = sent(
        json!({"model": "m", "max_tokens": 1024, "parallel_tool_calls": false,
        "tools": [weather_tool()],
        "messages": [
            {"role": "user", "content": "What is the weather in Paris and Rome?"},
            {"role": "assistant", "content": "Let me check both.", "tool_calls": [
                {"id": "toolu_01A", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "toolu_01B", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "toolu_01A", "content": "18 degrees, cloudy"},
            {"role": "tool", "tool_call_id": "toolu_01B", "content": "24 degrees, sunny"},
        ]}),
    );
    assert_eq!(body, parse(fixture!("request_tool_result.json")));
}

#[test]
fn json_schema_output_is_a_forced_tool() {
    let body = sent(json!({"model": "m",
        "messages": [{"role": "user", "content": "Give me a city and its population."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "city", "description": "A city and its population", "strict": true,
            "schema": {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}}, "required": ["city", "population"], "additionalProperties": false}}},
    }));
    assert_eq!(body, parse(fixture!("request_json_output.json")));
}

#[test]
fn stop_becomes_stop_sequences_and_unknown_fields_pass_through() {
    let body = sent(
        json!({"model": "m", "messages": [{"role": "user", "content": "Count to ten."}], "stop": "5"}),
    );
    assert_eq!(body, parse(fixture!("request_stop_sequence.json")));
    let body = sent(
        json!({"model": "m", "messages": [{"role": "user", "content": "Say hello"}], "stream": true,
        "stream_options": {"include_usage": true}, "thinking": {"type": "enabled", "budget_tokens": 1024}}),
    );
    assert_eq!(body, parse(fixture!("request_streamed_text.json")));
}

#[test]
fn unsupported_params_are_a_400_naming_them_or_dropped_on_request() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"50256": -100}, "n": 2, "presence_penalty": 0, "seed": 7});
    let e = prepare(body.clone(), &[], false).err().unwrap();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("logit_bias")));
    assert!(e.message.contains("DROP_UNSUPPORTED_PARAMS"));
    let prepared = prepare(body, &[], true).unwrap();
    assert_eq!(prepared.dropped, ["logit_bias", "n", "seed"]);
    let sent: Value = serde_json::from_slice(&prepared.call.body).unwrap();
    for gone in ["logit_bias", "n", "seed", "presence_penalty"] {
        assert!(sent.get(gone).is_none(), "{gone} was sent");
    }
    // Values that ask for nothing are accepted as they are.
    let ok = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 1, "frequency_penalty": 0.0, "logprobs": false});
    assert!(prepare(ok, &[], false).unwrap().dropped.is_empty());
}

#[test]
fn text_answer_becomes_a_chat_completion() {
    let reply = response(fixture!("response_plain_chat.json").as_bytes()).unwrap();
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(v["id"], "msg_01XFDUDYJgAACzvnptvVoYEL");
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(v["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(
        v["choices"][0],
        json!({"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?", "refusal": null}, "logprobs": null, "finish_reason": "stop"})
    );
    assert_eq!(reply.usage.unwrap()["total_tokens"], 22);
}

#[test]
fn tool_use_becomes_tool_calls_with_string_arguments() {
    let reply = response(fixture!("response_tool_call.json").as_bytes()).unwrap();
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris", "unit": "celsius"}));
}

#[test]
fn json_tool_answer_is_unwrapped_into_content() {
    let reply = response(fixture!("response_json_output.json").as_bytes()).unwrap();
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "stop");
    assert!(choice["message"].get("tool_calls").is_none());
    let content: Value =
        serde_json::from_str(choice["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"city": "Paris", "population": 2102650}));
}

#[test]
fn stop_reasons_map_to_finish_reasons() {
    assert_eq!(finish_reason(Some("end_turn"), false), "stop");
    assert_eq!(finish_reason(Some("stop_sequence"), false), "stop");
    assert_eq!(finish_reason(Some("max_tokens"), false), "length");
    assert_eq!(finish_reason(Some("tool_use"), false), "tool_calls");
    assert_eq!(finish_reason(Some("tool_use"), true), "stop");
    let reply = response(fixture!("response_max_tokens.json").as_bytes()).unwrap();
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
}

#[test]
fn cache_tokens_count_as_prompt_tokens_and_thinking_stays_out_of_content() {
    let reply = response(fixture!("response_cached.json").as_bytes()).unwrap();
    let usage = reply.usage.unwrap();
    assert_eq!(
        usage,
        json!({"prompt_tokens": 2257, "completion_tokens": 393, "total_tokens": 2650, "prompt_tokens_details": {"cached_tokens": 2048, "cache_write_tokens": 188}})
    );
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    let message = &v["choices"][0]["message"];
    assert_eq!(message["content"], "The document describes the gateway.");
    assert_eq!(
        message["reasoning_content"],
        "The user wants a summary of the cached document."
    );
}

#[test]
fn a_non_message_answer_is_a_502() {
    assert_eq!(response(b"not json").err().unwrap().status, 502);
    assert_eq!(response(b"{\"id\":1}").err().unwrap().status, 502);
}

#[test]
fn errors_keep_message_and_status_rules() {
    let cases = [
        (
            400,
            fixture!("error_400.json"),
            400,
            "invalid_request_error",
        ),
        (401, fixture!("error_401.json"), 401, "authentication_error"),
        (429, fixture!("error_429.json"), 429, "rate_limit_error"),
        (529, fixture!("error_529.json"), 503, "overloaded_error"),
        (500, fixture!("error_500.json"), 502, "api_error"),
    ];
    for (status, body, expected, kind) in cases {
        let e = parse_error(status, body.as_bytes());
        let upstream: Value = serde_json::from_str(body).unwrap();
        assert_eq!(e.status, expected, "{body}");
        assert_eq!(e.kind, kind);
        assert_eq!(e.message, upstream["error"]["message"]);
    }
    let e = parse_error(529, fixture!("error_529.json").as_bytes());
    assert!(e.headers.contains(&("retry-after".into(), "2".into())));
    let e = parse_error(502, b"<html>bad gateway</html>");
    assert_eq!(e.status, 502);
    assert!(e.message.contains("bad gateway"));
}

/// Every event of an SSE fixture (`event:` and `data:` lines).
pub fn sse_events(text: &str) -> Vec<SseEvent> {
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let mut e = SseEvent::default();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    e.event = Some(v.into());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    e.data = v.into();
                }
            }
            e
        })
        .collect()
}

fn translate(text: &str) -> (Vec<Value>, bool) {
    let mut state = stream::StreamState::default();
    let mut chunks = Vec::new();
    let mut done = false;
    for event in sse_events(text) {
        for emit in state.on_event(event).unwrap() {
            match emit {
                Emit::Chunk(c) => chunks.push(c),
                Emit::Done => done = true,
                Emit::Raw(..) => panic!("raw emit"),
            }
        }
    }
    (chunks, done)
}

#[test]
fn streamed_text_becomes_chunks_with_role_finish_and_usage() {
    let (chunks, done) = translate(fixture!("stream_text.sse"));
    assert!(done);
    assert!(chunks.iter().all(|c| c["id"] == "msg_01StreamText5k4j"));
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello, world!");
    let reasoning: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str())
        .collect();
    assert_eq!(reasoning, "A greeting is expected.");
    let n = chunks.len();
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[n - 1]["choices"], json!([]));
    assert_eq!(
        chunks[n - 1]["usage"],
        json!({"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40, "prompt_tokens_details": {"cached_tokens": 0}})
    );
}

#[test]
fn streamed_tool_call_has_index_id_name_then_argument_fragments() {
    let (chunks, _) = translate(fixture!("stream_tool_call.sse"));
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(
        calls[0],
        &json!({"index": 0, "id": "toolu_01A09q90qw90lq917835lq9", "type": "function", "function": {"name": "get_weather", "arguments": ""}})
    );
    assert!(calls[1..]
        .iter()
        .all(|c| c.get("id").is_none() && c["index"] == 0));
    let args: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(parse(&args), json!({"city": "Paris", "unit": "celsius"}));
    let finish: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0].get("finish_reason"))
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!("tool_calls")]);
}

#[test]
fn streamed_json_output_is_content() {
    let (chunks, _) = translate(fixture!("stream_json_output.sse"));
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        parse(&text),
        json!({"city": "Paris", "population": 2102650})
    );
    assert!(chunks
        .iter()
        .all(|c| c["choices"][0]["delta"].get("tool_calls").is_none()));
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "stop"));
}

#[test]
fn a_second_tool_call_gets_the_next_index() {
    let mut state = stream::StreamState::default();
    let ev = |d: Value| SseEvent {
        event: None,
        data: d.to_string(),
    };
    state.on_event(ev(json!({"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 1}}}))).unwrap();
    state.on_event(ev(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))).unwrap();
    state.on_event(ev(json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "a", "name": "f", "input": {}}}))).unwrap();
    let out = state.on_event(ev(json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "b", "name": "g", "input": {}}}))).unwrap();
    let Emit::Chunk(c) = &out[0] else { panic!() };
    assert_eq!(c["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
    let out = state.on_event(ev(json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}}))).unwrap();
    let Emit::Chunk(c) = &out[0] else { panic!() };
    assert_eq!(c["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
}

#[test]
fn unknown_events_are_ignored_and_error_events_and_bad_json_fail() {
    let mut state = stream::StreamState::default();
    let ev = |d: &str| SseEvent {
        event: None,
        data: d.into(),
    };
    assert!(state.on_event(ev(r#"{"type":"ping"}"#)).unwrap().is_empty());
    assert!(state
        .on_event(ev(r#"{"type":"something_new","x":1}"#))
        .unwrap()
        .is_empty());
    assert!(state.on_event(ev("{not json")).is_err());
    let e = state
        .on_event(ev(
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ))
        .unwrap_err();
    assert_eq!((e.status, e.message.as_str()), (503, "Overloaded"));
    let mut state = stream::StreamState::default();
    let err = sse_events(fixture!("stream_error.sse"))
        .into_iter()
        .find_map(|e| state.on_event(e).err())
        .unwrap();
    assert_eq!(err.kind, "overloaded_error");
}
