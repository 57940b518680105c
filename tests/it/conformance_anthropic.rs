//! Anthropic conformance: the gateway in front of a mock Anthropic Messages API
//! (`ANTHROPIC_API_BASE` = the mock's root). For each case the request the gateway sends is
//! compared with a fixture under `tests/fixtures/anthropic/`, and the mock plays back a
//! recorded answer, stream or error. Case names are shared with the other native providers'
//! conformance modules.

use serde_json::{json, Value};

use crate::support::client::{
    assert_error, fixture, fixture_json, post_json, send, split_events, Reply,
};
use crate::support::gateway::Gateway;
use crate::support::upstream::{MockUpstream, Script, Step};

const KEY: &str = "sk-ant-test-fake-key";
const MODEL: &str = "anthropic/claude-sonnet-4-5";

/// The mock's root URL (`MockUpstream::base_url` ends in `/v1`, which the adapter adds).
fn root(upstream: &MockUpstream) -> String {
    let base = upstream.base_url();
    base.strip_suffix("/v1").unwrap_or(&base).to_string()
}

fn gateway(upstream: &MockUpstream, vars: &[(&str, &str)]) -> Gateway {
    let base = root(upstream);
    let mut all = vec![
        ("ANTHROPIC_API_BASE", base.as_str()),
        ("ANTHROPIC_API_KEY", KEY),
    ];
    all.extend_from_slice(vars);
    Gateway::start(&all)
}

/// A JSON answer from `tests/fixtures/anthropic/`.
fn answer(status: u16, name: &str) -> Script {
    Script::fixture(status, &format!("anthropic/{name}"))
}

/// An Anthropic SSE fixture played event by event, `event:` lines included.
fn stream(name: &str) -> Script {
    let text = fixture(&format!("anthropic/{name}"));
    Script::sse(
        text.split("\n\n")
            .filter(|b| !b.trim().is_empty())
            .map(|b| Step::Raw(format!("{b}\n\n")))
            .collect(),
    )
}

fn chat(gw: &Gateway, body: Value) -> Reply {
    post_json(gw.addr, "/v1/chat/completions", &body)
}

/// The one request the mock got: a POST to `/v1/messages` with the key and version headers,
/// its body equal to the fixture.
fn assert_sent(upstream: &MockUpstream, expected: &str) -> Value {
    let request = upstream.only_request();
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/v1/messages")
    );
    assert_eq!(request.header("x-api-key"), Some(KEY));
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(request.header("authorization"), None);
    let body = request.json();
    assert_eq!(body, fixture_json(&format!("anthropic/{expected}")));
    body
}

/// A 200 `chat.completion` in OpenAI's shape; its first choice.
fn completion(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text());
    let v = reply.json();
    assert!(v["id"].is_string() && v["created"].is_u64(), "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "claude-sonnet-4-5-20250929");
    let choice = v["choices"][0].clone();
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(choice["message"]["refusal"].is_null() && choice["logprobs"].is_null());
    let usage = &v["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        )
    );
    choice
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

#[test]
fn plain_chat() {
    let upstream = MockUpstream::always(answer(200, "response_plain_chat.json"));
    let gw = gateway(&upstream, &[]);
    let choice = completion(&chat(
        &gw,
        json!({"model": MODEL, "messages": user("Hello")}),
    ));
    assert_eq!(
        choice["message"]["content"],
        "Hello! How can I help you today?"
    );
    assert_eq!(choice["finish_reason"], "stop");
    assert_sent(&upstream, "request_plain_chat.json");
}

#[test]
fn bare_claude_name_routes_to_anthropic() {
    let upstream = MockUpstream::always(answer(200, "response_plain_chat.json"));
    let gw = gateway(&upstream, &[]);
    completion(&chat(
        &gw,
        json!({"model": "claude-sonnet-4-5", "messages": user("Hello")}),
    ));
    assert_sent(&upstream, "request_plain_chat.json");
}

#[test]
fn system_prompt() {
    let upstream = MockUpstream::always(answer(200, "response_plain_chat.json"));
    let gw = gateway(&upstream, &[]);
    completion(&chat(
        &gw,
        json!({"model": MODEL, "max_tokens": 100, "temperature": 0.2, "top_p": 0.9, "user": "user-42",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "system", "content": "Answer in English."},
            {"role": "user", "content": "Hello"},
        ]}),
    ));
    assert_sent(&upstream, "request_system_prompt.json");
}

#[test]
fn multi_turn() {
    let upstream = MockUpstream::always(answer(200, "response_plain_chat.json"));
    let gw = gateway(&upstream, &[]);
    completion(&chat(
        &gw,
        json!({"model": MODEL, "messages": [
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Nice to meet you, Ada."},
            {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]},
            {"role": "user", "content": "Answer in one word."},
        ]}),
    ));
    assert_sent(&upstream, "request_multi_turn.json");
}

#[test]
fn image_input() {
    let upstream = MockUpstream::always(answer(200, "response_plain_chat.json"));
    let gw = gateway(&upstream, &[]);
    completion(&chat(
        &gw,
        json!({"model": MODEL, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Compare these images."},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="}},
            {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"}},
        ]}]}),
    ));
    assert_sent(&upstream, "request_image_input.json");
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]},
    }})
}

fn tool_call_request(stream: bool) -> Value {
    json!({"model": MODEL, "max_tokens": 1024, "stream": stream,
        "messages": user("What is the weather in Paris?"),
        "tools": [weather_tool()],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})
}

#[test]
fn tool_round_trip() {
    let upstream = MockUpstream::start(|request| {
        if request.json()["messages"].as_array().unwrap().len() == 1 {
            answer(200, "response_tool_call.json")
        } else {
            answer(200, "response_tool_result.json")
        }
    });
    let gw = gateway(&upstream, &[]);
    let choice = completion(&chat(&gw, tool_call_request(false)));
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris", "unit": "celsius"}));
    assert_sent(&upstream, "request_tool_call.json");

    // The client sends the assistant message back as it got it, with the tool's result.
    let choice = completion(&chat(
        &gw,
        json!({"model": MODEL, "max_tokens": 1024, "tools": [weather_tool()], "messages": [
            {"role": "user", "content": "What is the weather in Paris?"},
            choice["message"],
            {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "18 degrees, cloudy"},
        ]}),
    ));
    assert_eq!(choice["finish_reason"], "stop");
    let second = upstream.requests()[1].json();
    assert_eq!(
        second["messages"],
        json!([
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"city": "Paris", "unit": "celsius"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "18 degrees, cloudy"}]},
        ])
    );
}

#[test]
fn parallel_tool_results_merge_into_one_user_turn() {
    let upstream = MockUpstream::always(answer(200, "response_tool_result.json"));
    let gw = gateway(&upstream, &[]);
    let choice = completion(&chat(
        &gw,
        json!({"model": MODEL, "max_tokens": 1024, "parallel_tool_calls": false, "tools": [weather_tool()],
        "messages": [
            {"role": "user", "content": "What is the weather in Paris and Rome?"},
            {"role": "assistant", "content": "Let me check both.", "tool_calls": [
                {"id": "toolu_01A", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "toolu_01B", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "toolu_01A", "content": "18 degrees, cloudy"},
            {"role": "tool", "tool_call_id": "toolu_01B", "content": "24 degrees, sunny"},
        ]}),
    ));
    assert!(choice["message"]["content"]
        .as_str()
        .unwrap()
        .contains("Rome"));
    assert_sent(&upstream, "request_tool_result.json");
}

fn json_output_request(stream: bool) -> Value {
    json!({"model": MODEL, "stream": stream, "messages": user("Give me a city and its population."),
        "response_format": {"type": "json_schema", "json_schema": {"name": "city", "description": "A city and its population",
            "schema": {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}}, "required": ["city", "population"], "additionalProperties": false}}}})
}

#[test]
fn json_output() {
    let upstream = MockUpstream::always(answer(200, "response_json_output.json"));
    let gw = gateway(&upstream, &[]);
    let choice = completion(&chat(&gw, json_output_request(false)));
    assert_eq!(choice["finish_reason"], "stop");
    assert!(choice["message"].get("tool_calls").is_none());
    let content: Value =
        serde_json::from_str(choice["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"city": "Paris", "population": 2102650}));
    assert_sent(&upstream, "request_json_output.json");

    let upstream = MockUpstream::always(stream("stream_json_output.sse"));
    let gw = gateway(&upstream, &[]);
    let chunks = stream_chunks(&chat(&gw, json_output_request(true)));
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), content);
}

#[test]
fn stop_sequence() {
    let upstream = MockUpstream::always(answer(200, "response_stop_sequence.json"));
    let gw = gateway(&upstream, &[]);
    let choice = completion(&chat(
        &gw,
        json!({"model": MODEL, "messages": user("Count to ten."), "stop": ["5"]}),
    ));
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["message"]["content"], "1, 2, 3, 4, ");
    assert_sent(&upstream, "request_stop_sequence.json");
}

#[test]
fn max_tokens_is_length() {
    let upstream = MockUpstream::always(answer(200, "response_max_tokens.json"));
    let gw = gateway(&upstream, &[]);
    let choice = completion(&chat(
        &gw,
        json!({"model": MODEL, "messages": user("Tell me a story."), "max_completion_tokens": 3}),
    ));
    assert_eq!(choice["finish_reason"], "length");
    assert_eq!(upstream.only_request().json()["max_tokens"], 3);
}

/// The JSON chunks of a complete stream, which must end with `[DONE]`.
fn stream_chunks(reply: &Reply) -> Vec<Value> {
    assert_eq!(reply.status, 200, "{}", reply.text());
    let events = reply.events();
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let id = &chunks[0]["id"];
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(&c["id"], id, "one id for the whole stream");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    chunks
}

#[test]
fn streamed_text() {
    let upstream = MockUpstream::always(stream("stream_text.sse"));
    let gw = gateway(&upstream, &[]);
    let body = json!({"model": MODEL, "messages": user("Say hello"), "stream": true,
        "stream_options": {"include_usage": true}, "thinking": {"type": "enabled", "budget_tokens": 1024}});
    let chunks = stream_chunks(&chat(&gw, body));
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello, world!");
    let n = chunks.len();
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[n - 1]["choices"], json!([]));
    assert_eq!(chunks[n - 1]["usage"]["total_tokens"], 40);
    let request = upstream.only_request();
    assert_eq!(request.header("accept"), Some("text/event-stream"));
    assert_eq!(
        request.json(),
        fixture_json("anthropic/request_streamed_text.json")
    );

    // Without include_usage the usage-only chunk is not shown.
    let upstream = MockUpstream::always(stream("stream_text.sse"));
    let gw = gateway(&upstream, &[]);
    let chunks = stream_chunks(&chat(
        &gw,
        json!({"model": MODEL, "messages": user("Say hello"), "stream": true}),
    ));
    assert!(chunks
        .iter()
        .all(|c| !c["choices"].as_array().unwrap().is_empty()));
}

#[test]
fn streamed_tool_call_matches_non_stream() {
    let upstream = MockUpstream::start(|request| {
        if request.json()["stream"] == true {
            stream("stream_tool_call.sse")
        } else {
            answer(200, "response_tool_call.json")
        }
    });
    let gw = gateway(&upstream, &[]);
    let whole = completion(&chat(&gw, tool_call_request(false)));
    let chunks = stream_chunks(&chat(&gw, tool_call_request(true)));
    let (mut id, mut name, mut arguments) = (None, None, String::new());
    for c in &chunks {
        for call in c["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(call["index"], 0);
            if let Some(i) = call["id"].as_str() {
                assert!(id.is_none(), "the id comes once");
                id = Some(i.to_string());
                name = call["function"]["name"].as_str().map(str::to_string);
                assert_eq!(call["type"], "function");
            }
            arguments.push_str(call["function"]["arguments"].as_str().unwrap_or_default());
        }
    }
    let expected = &whole["message"]["tool_calls"][0];
    assert_eq!(id.as_deref(), expected["id"].as_str());
    assert_eq!(name.as_deref(), expected["function"]["name"].as_str());
    let streamed: Value = serde_json::from_str(&arguments).unwrap();
    let non_stream: Value =
        serde_json::from_str(expected["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(streamed, non_stream);
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!("tool_calls")]);
}

#[test]
fn usage_with_cached_tokens() {
    let upstream = MockUpstream::always(answer(200, "response_cached.json"));
    let gw = gateway(&upstream, &[]);
    let reply = chat(
        &gw,
        json!({"model": MODEL, "messages": user("Summarise the document.")}),
    );
    let choice = completion(&reply);
    assert_eq!(
        choice["message"]["content"],
        "The document describes the gateway."
    );
    assert_eq!(
        reply.json()["usage"],
        json!({"prompt_tokens": 2257, "completion_tokens": 393, "total_tokens": 2650, "prompt_tokens_details": {"cached_tokens": 2048, "cache_write_tokens": 188}})
    );
    // 21 fresh input tokens at $3, 2048 cache reads at $0.30, 188 cache writes at $3.75
    // (1.25×) and 393 output at $15 per million.
    assert_eq!(reply.header("x-gateway-cost-usd"), Some("0.00727740"));
}

#[test]
fn upstream_errors_keep_status_and_message() {
    for (status, file, expected) in [
        (400, "error_400.json", 400),
        (401, "error_401.json", 401),
        (429, "error_429.json", 429),
        (529, "error_529.json", 503),
        (500, "error_500.json", 502),
    ] {
        let mut script = answer(status, file);
        if status == 429 {
            script = script.with_header("retry-after", "30");
        }
        let upstream = MockUpstream::always(script);
        let gw = gateway(&upstream, &[]);
        let reply = chat(&gw, json!({"model": MODEL, "messages": user("Hello")}));
        let error = assert_error(&reply, expected);
        let upstream_body = fixture_json(&format!("anthropic/{file}"));
        assert_eq!(
            error["message"], upstream_body["error"]["message"],
            "{file}"
        );
        assert_eq!(error["type"], upstream_body["error"]["type"], "{file}");
        match status {
            429 => assert_eq!(reply.header("retry-after"), Some("30")),
            529 => assert_eq!(reply.header("retry-after"), Some("2")),
            _ => {}
        }
    }
}

#[test]
fn upstream_error_event_mid_stream_ends_with_one_error_event() {
    let upstream = MockUpstream::always(stream("stream_error.sse"));
    let gw = gateway(&upstream, &[]);
    let reply = chat(
        &gw,
        json!({"model": MODEL, "messages": user("Hello"), "stream": true}),
    );
    assert_eq!(reply.status, 200);
    let events = reply.events();
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["message"], "Overloaded");
    assert!(!events.iter().any(|e| e == "[DONE]"));
    crate::record_truth::assert_recorded_stream_error(gw, &last["error"]);
}

#[test]
fn malformed_upstream_is_502() {
    let upstream = MockUpstream::always(Script::json(200, "{\"content\": oops"));
    let gw = gateway(&upstream, &[]);
    assert_error(
        &chat(&gw, json!({"model": MODEL, "messages": user("Hello")})),
        502,
    );

    for steps in [
        vec![Step::Raw(
            "event: message_start\ndata: {not json\n\n".into(),
        )],
        // Cut off before message_stop: the client learns the stream is incomplete.
        vec![
            Step::Raw(format!(
                "event: message_start\ndata: {}\n\n",
                json!({"type": "message_start", "message": {"id": "msg_x", "model": "claude-sonnet-4-5", "usage": {"input_tokens": 1}}})
            )),
            Step::Cut,
        ],
    ] {
        let upstream = MockUpstream::always(Script::sse(steps));
        let gw = gateway(&upstream, &[]);
        let reply = chat(
            &gw,
            json!({"model": MODEL, "messages": user("Hello"), "stream": true}),
        );
        assert_eq!(reply.status, 200);
        let events = split_events(&reply.text());
        let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert!(last["error"]["message"].is_string(), "{events:?}");
        assert_eq!(last["error"]["type"], "upstream_error");
    }
}

#[test]
fn no_key_is_401_naming_the_variable() {
    let gw = Gateway::start(&[]);
    let reply = chat(&gw, json!({"model": MODEL, "messages": user("Hello")}));
    let error = assert_error(&reply, 401);
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("ANTHROPIC_API_KEY"));
}

#[test]
fn unsupported_param_is_400_or_dropped_on_request() {
    let upstream = MockUpstream::always(answer(200, "response_plain_chat.json"));
    let gw = gateway(&upstream, &[]);
    let body = json!({"model": MODEL, "messages": user("Hello"), "logit_bias": {"1": 5}});
    let error = assert_error(&chat(&gw, body.clone()), 400);
    assert_eq!(error["param"], "logit_bias");
    assert!(upstream.requests().is_empty());

    let gw = gateway(&upstream, &[("DROP_UNSUPPORTED_PARAMS", "true")]);
    completion(&chat(&gw, body));
    assert_sent(&upstream, "request_plain_chat.json");
}

#[test]
fn anthropic_beta_header_is_passed_through() {
    let upstream = MockUpstream::always(answer(200, "response_plain_chat.json"));
    let gw = gateway(&upstream, &[]);
    let body = json!({"model": MODEL, "messages": user("Hello")}).to_string();
    let reply = send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("content-type", "application/json"),
            ("anthropic-beta", "context-1m-2025-08-07"),
        ],
        body.as_bytes(),
    );
    completion(&reply);
    assert_eq!(
        upstream.only_request().header("anthropic-beta"),
        Some("context-1m-2025-08-07")
    );
}

#[test]
fn embeddings_are_400_naming_model() {
    let upstream = MockUpstream::always(answer(200, "response_plain_chat.json"));
    let gw = gateway(&upstream, &[]);
    let reply = post_json(
        gw.addr,
        "/v1/embeddings",
        &json!({"model": MODEL, "input": "hi"}),
    );
    assert_eq!(assert_error(&reply, 400)["param"], "model");
    assert!(upstream.requests().is_empty());
}

/// `tests/sdk/provider_anthropic.py`: the real OpenAI Python SDK through the gateway to a
/// mock Anthropic API. Skipped (with a note) without the project's virtualenv, never in CI.
#[test]
fn openai_python_sdk_through_anthropic() {
    let Some(python) = crate::sdk::python_or_skip() else {
        return;
    };
    let upstream = MockUpstream::start(|request| {
        let body = request.json();
        match (body["stream"] == true, body.get("tools").is_some()) {
            (true, true) => stream("stream_tool_call.sse"),
            (true, false) => stream("stream_text.sse"),
            (false, true) => answer(200, "response_tool_call.json"),
            (false, false) => answer(200, "response_plain_chat.json"),
        }
    });
    let gw = gateway(&upstream, &[]);
    crate::sdk::pytest(python, gw.addr, &["tests/sdk/provider_anthropic.py"]);
}
