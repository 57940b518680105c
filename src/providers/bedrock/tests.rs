//! The Bedrock dialect against the fixtures under `tests/fixtures/bedrock/`.

use serde_json::{json, Map, Value};

use super::*;
use crate::providers::registry::test_target;
use crate::providers::Emit;
use crate::upstream::eventstream::{decode, encode_stream, PRELUDE};
use crate::upstream::Answer;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/bedrock/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn body(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn converse(v: Value) -> Value {
    converse_body(&body(v), false).unwrap().0
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}])
}

#[test]
fn requests_match_the_fixtures() {
    assert_eq!(
        converse(json!({"model": "m", "messages": [{"role": "user", "content": "Hello"}]})),
        fixture("request_plain_chat.json")
    );
    assert_eq!(
        converse(
            json!({"model": "m", "max_tokens": 100, "temperature": 0.2, "top_p": 0.9, "stop": "END", "user": "u",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": "Answer in English."},
                {"role": "user", "content": "Hello"},
            ]})
        ),
        fixture("request_system_prompt.json")
    );
    assert_eq!(
        converse(
            json!({"model": "m", "tools": weather_tool(), "tool_choice": "auto",
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}]})
        ),
        fixture("request_tool_call.json")
    );
    assert_eq!(
        converse(
            json!({"model": "m", "tools": weather_tool(), "tool_choice": "auto", "messages": [
                {"role": "user", "content": "What is the weather in Paris?"},
                {"role": "assistant", "content": "Let me check the weather.", "tool_calls": [{"id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"celsius\"}"}}]},
                {"role": "tool", "tool_call_id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "content": "{\"temperature\": 18, \"sky\": \"cloudy\"}"},
            ]})
        ),
        fixture("request_tool_result.json")
    );
}

#[test]
fn images_tool_choices_and_passthrough() {
    let v = converse(
        json!({"model": "m", "tools": weather_tool(), "tool_choice": "required",
        "additionalModelRequestFields": {"top_k": 5},
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
        ]}]}),
    );
    assert_eq!(
        v["messages"][0]["content"][1],
        json!({"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}})
    );
    assert_eq!(v["toolConfig"]["toolChoice"], json!({"any": {}}));
    assert_eq!(v["additionalModelRequestFields"], json!({"top_k": 5}));
    let v = converse(json!({"model": "m", "tools": weather_tool(),
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "messages": [{"role": "user", "content": "x"}]}));
    assert_eq!(
        v["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "get_weather"}})
    );
    let v = converse(
        json!({"model": "m", "tools": weather_tool(), "tool_choice": "none",
        "messages": [{"role": "user", "content": "x"}]}),
    );
    assert!(v.get("toolConfig").is_none());
    let link = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]});
    assert_eq!(converse_body(&body(link), false).unwrap_err().status, 400);
}

#[test]
fn unsupported_parameters_are_named_or_dropped() {
    let b = body(json!({"model": "m", "seed": 7, "n": 1, "logprobs": false,
        "messages": [{"role": "user", "content": "x"}]}));
    let e = converse_body(&b, false).unwrap_err();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("seed")));
    assert_eq!(converse_body(&b, true).unwrap().1, vec!["seed".to_string()]);
}

#[test]
fn the_call_goes_to_the_encoded_model_path_signed() {
    let mut target = test_target(
        "bedrock",
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "https://bedrock-runtime.us-east-1.amazonaws.com",
        None,
    );
    let mut settings = (*target.settings).clone();
    settings
        .extra
        .insert("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE".into());
    settings.extra.insert(
        "AWS_SECRET_ACCESS_KEY",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
    );
    settings.extra.insert("AWS_REGION", "us-east-1".into());
    target.settings = std::sync::Arc::new(settings);
    let call = call_at(
        &target,
        "converse",
        br#"{"messages":[]}"#.to_vec(),
        "application/json",
        "20150830T123600Z",
    );
    assert_eq!(call.url, "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse");
    let auth_header = &call
        .headers
        .iter()
        .find(|(n, _)| *n == "authorization")
        .unwrap()
        .1;
    // The signature botocore computes for the same request at the same time.
    assert!(auth_header
        .ends_with("Signature=c84c9106f7e36a20c48b246768132197e989b39d8a4c0d7f33cd4b1e2ffad460"));
    let bearer = test_target("bedrock", "m", "http://x", Some("bedrock-api-key-x"));
    let call = call_at(
        &bearer,
        "converse-stream",
        vec![],
        "application/vnd.amazon.eventstream",
        "x",
    );
    assert!(call
        .headers
        .contains(&("authorization", "Bearer bedrock-api-key-x".into())));
    assert!(!call.headers.iter().any(|(n, _)| *n == "x-amz-date"));
}

fn reply(name: &str) -> Value {
    let r = response(
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        &serde_json::to_vec(&fixture(name)).unwrap(),
    )
    .unwrap();
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn responses_become_chat_completions() {
    let v = reply("response_plain_chat.json");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "anthropic.claude-3-5-haiku-20241022-v1:0");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello! How can I help you today?"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["total_tokens"], 19);
    let v = reply("response_tool_call.json");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["id"], "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris", "unit": "celsius"}));
    let v = reply("response_tool_result.json");
    assert_eq!(v["usage"]["prompt_tokens"], 770);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 300);
    for (reason, finish) in [
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("content_filtered", "content_filter"),
        ("guardrail_intervened", "content_filter"),
    ] {
        assert_eq!(finish_reason(Some(reason)), finish);
    }
    assert_eq!(response("m", b"{}").err().map(|e| e.status), Some(502));
}

#[test]
fn errors_keep_4xx_and_turn_5xx_into_502() {
    let e = parse_error(429, br#"{"message":"Too many requests"}"#);
    assert_eq!(
        (e.status, e.kind.as_str(), e.message.as_str()),
        (429, "rate_limit_error", "Too many requests")
    );
    let e = parse_error(
        400,
        br#"{"__type":"com.amazon#ValidationException","message":"bad"}"#,
    );
    assert_eq!(
        (e.status, e.code.as_deref()),
        (400, Some("ValidationException"))
    );
    let e = parse_error(500, b"oops");
    assert_eq!(
        (e.status, e.code.as_deref()),
        (502, Some("upstream_http_500"))
    );
}

/// Decodes a stream of messages and feeds them to a translator: the chunks' JSON, and `DONE`.
fn translate(bytes: &[u8]) -> Result<Vec<Value>, ApiError> {
    let mut state = stream::StreamState::new("m");
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let prelude: [u8; PRELUDE] = bytes[at..at + PRELUDE].try_into().unwrap();
        let len = eventstream::total_length(&prelude).unwrap();
        let event = decode(&bytes[at..at + len]).unwrap().into_event();
        at += len;
        for emit in state.on_event(event)? {
            out.push(match emit {
                Emit::Chunk(v) => v,
                Emit::Raw(s) => serde_json::from_str(&s).unwrap(),
                Emit::Done => json!("DONE"),
            });
        }
    }
    Ok(out)
}

#[test]
fn a_text_stream_becomes_chunks() {
    let chunks = translate(&encode_stream(&fixture("stream_text.json"))).unwrap();
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello! How can I help you today?");
    let n = chunks.len();
    assert_eq!(chunks[n - 3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[n - 2]["usage"]["total_tokens"], 19);
    assert_eq!(chunks[n - 2]["choices"], json!([]));
    assert_eq!(chunks[n - 1], "DONE");
    assert!(chunks[..n - 1]
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
}

#[test]
fn a_tool_stream_gives_id_name_and_argument_fragments() {
    let chunks = translate(&encode_stream(&fixture("stream_tool_call.json"))).unwrap();
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(calls[0]["id"], "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let args: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, "{\"city\": \"Paris\", \"unit\": \"celsius\"}");
    assert!(calls.iter().all(|c| c["index"] == 0));
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
}

#[test]
fn an_exception_in_the_stream_is_an_error() {
    let e = translate(&encode_stream(&fixture("stream_exception.json"))).unwrap_err();
    assert_eq!(e.status, 429);
    assert!(e.message.contains("Too many tokens"));
}

fn embed_target(model: &str) -> Target {
    test_target("bedrock", model, "http://127.0.0.1:9", Some("k"))
}

/// A 2xx answer as read from the provider, with Bedrock's token-count header when given.
fn received(body: &[u8], tokens: Option<&str>) -> Received {
    let headers: Vec<(&str, &str)> = tokens
        .map(|n| ("x-amzn-bedrock-input-token-count", n))
        .into_iter()
        .collect();
    Answer::local(200, &headers, body.to_vec()).read().unwrap()
}

#[test]
fn titan_embeds_one_input_per_call_and_cohere_all_in_one() {
    let target = embed_target("amazon.titan-embed-text-v2:0");
    let calls = embeddings_calls(
        &target,
        &body(json!({"input": ["a", "b"], "dimensions": 256})),
    )
    .unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0].url,
        "http://127.0.0.1:9/model/amazon.titan-embed-text-v2%3A0/invoke"
    );
    let sent: Value = serde_json::from_slice(&calls[1].body).unwrap();
    assert_eq!(sent, json!({"inputText": "b", "dimensions": 256}));

    let target = embed_target("cohere.embed-english-v3");
    let calls = embeddings_calls(&target, &body(json!({"input": ["a", "b"]}))).unwrap();
    assert_eq!(calls.len(), 1);
    let sent: Value = serde_json::from_slice(&calls[0].body).unwrap();
    assert_eq!(
        sent,
        json!({"texts": ["a", "b"], "input_type": "search_document"})
    );

    let target = embed_target("anthropic.claude-3-5-haiku-20241022-v1:0");
    let e = embeddings_calls(&target, &body(json!({"input": "a"})))
        .err()
        .unwrap();
    assert_eq!(e.param.as_deref(), Some("model"));
    let target = embed_target("amazon.titan-embed-text-v2:0");
    let e = embeddings_calls(&target, &body(json!({"input": [1, 2]})))
        .err()
        .unwrap();
    assert_eq!(e.param.as_deref(), Some("input"));
}

#[test]
fn embedding_answers_become_one_list() {
    let titan = serde_json::to_vec(&fixture("embed_titan_response.json")).unwrap();
    let r = embeddings_response(
        "m",
        &[received(&titan, None), received(&titan, None)],
        false,
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["data"][1]["embedding"], json!([0.125, -0.5, 0.25, 1.0]));
    assert_eq!(v["usage"]["prompt_tokens"], 6);
    let cohere = serde_json::to_vec(&fixture("embed_cohere_response.json")).unwrap();
    let r = embeddings_response("m", &[received(&cohere, Some("4"))], true).unwrap();
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v["data"][1]["embedding"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes[..4], (-0.125f32).to_le_bytes());
    assert_eq!(v["usage"]["total_tokens"], 4);
    assert!(embeddings_response("m", &[received(b"{}", None)], false).is_err());
}
