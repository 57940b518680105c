//! Cohere conformance: the gateway in front of a mock Cohere v2 API (`COHERE_API_BASE` = the
//! mock's root). For each case the request the gateway sends is compared with a fixture under
//! `tests/fixtures/cohere/`, and the mock plays back a recorded answer, stream or error. Case
//! names are shared with the other native providers' conformance modules.

use serde_json::{json, Value};

use crate::support::client::{assert_error, fixture, fixture_json, post_json, split_events, Reply};
use crate::support::gateway::Gateway;
use crate::support::upstream::{MockUpstream, Script, Step};

const KEY: &str = "co-test-fake-key";
const MODEL: &str = "cohere/command-a-03-2025";

/// The mock's root URL (`MockUpstream::base_url` ends in `/v1`; the adapter adds `/v2/…`).
fn root(upstream: &MockUpstream) -> String {
    let base = upstream.base_url();
    base.strip_suffix("/v1").unwrap_or(&base).to_string()
}

fn gateway(upstream: &MockUpstream, vars: &[(&str, &str)]) -> Gateway {
    let base = root(upstream);
    let mut all = vec![("COHERE_API_BASE", base.as_str()), ("COHERE_API_KEY", KEY)];
    all.extend_from_slice(vars);
    Gateway::start(&all)
}

/// A JSON answer from `tests/fixtures/cohere/`.
fn answer(status: u16, name: &str) -> Script {
    Script::fixture(status, &format!("cohere/{name}"))
}

/// A Cohere SSE fixture played event by event.
fn stream(name: &str) -> Script {
    let text = fixture(&format!("cohere/{name}"));
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

/// The one request the mock got: a POST to `/v2/chat` with the bearer key, its body equal to
/// the fixture.
fn assert_sent(upstream: &MockUpstream, expected: &str) -> Value {
    let request = upstream.only_request();
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/v2/chat")
    );
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let body = request.json();
    assert_eq!(body, fixture_json(&format!("cohere/{expected}")));
    body
}

/// A 200 `chat.completion` in OpenAI's shape; its first choice.
fn completion(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text());
    let v = reply.json();
    assert!(v["id"].is_string() && v["created"].is_u64(), "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "command-a-03-2025");
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
    let reply = chat(&gw, json!({"model": MODEL, "messages": user("Hello")}));
    let choice = completion(&reply);
    assert_eq!(
        choice["message"]["content"],
        "Hello! How can I help you today?"
    );
    assert_eq!(choice["finish_reason"], "stop");
    // Usage is what the model read and wrote (`tokens`); the billed units are kept apart
    // (the cost is computed from them).
    assert_eq!(
        reply.json()["usage"],
        json!({"prompt_tokens": 495, "completion_tokens": 11, "total_tokens": 506,
            "prompt_tokens_details": {"cached_tokens": 0},
            "billed_units": {"input_tokens": 5, "output_tokens": 9}})
    );
    assert!(reply.header("x-gateway-cost-usd").is_some(), "priced");
    assert_sent(&upstream, "request_plain_chat.json");
}

#[test]
fn bare_command_name_routes_to_cohere() {
    let upstream = MockUpstream::always(answer(200, "response_plain_chat.json"));
    let gw = gateway(&upstream, &[]);
    completion(&chat(
        &gw,
        json!({"model": "command-a-03-2025", "messages": user("Hello")}),
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
        "seed": 42, "frequency_penalty": 0.5, "presence_penalty": 0.25,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": "Answer in English."},
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
    let reply = chat(
        &gw,
        json!({"model": "cohere/command-a-vision-07-2025", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg", "detail": "high"}},
        ]}]}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
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
    assert_eq!(
        choice["message"]["content"],
        "I will look up the weather in Paris."
    );
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "get_weather_1byjy32y4hvq");
    assert_eq!(call["type"], "function");
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
            {"role": "tool", "tool_call_id": "get_weather_1byjy32y4hvq", "content": "18 degrees, cloudy"},
        ]}),
    ));
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(
        choice["message"]["content"],
        "It is 18 degrees and cloudy in Paris."
    );
    let second = upstream.requests()[1].json();
    assert_eq!(
        second["messages"],
        json!([
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "tool_plan": "I will look up the weather in Paris.", "tool_calls": [
                {"id": "get_weather_1byjy32y4hvq", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"celsius\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "get_weather_1byjy32y4hvq", "content": "18 degrees, cloudy"},
        ])
    );
    assert!(second.get("tool_choice").is_none());
}

#[test]
fn json_output() {
    let upstream = MockUpstream::always(answer(200, "response_json_output.json"));
    let gw = gateway(&upstream, &[]);
    let choice = completion(&chat(
        &gw,
        json!({"model": MODEL, "messages": user("Give me a city and its population."),
        "response_format": {"type": "json_schema", "json_schema": {"name": "city",
            "schema": {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}}, "required": ["city", "population"], "additionalProperties": false}}}}),
    ));
    assert_eq!(choice["finish_reason"], "stop");
    let content: Value =
        serde_json::from_str(choice["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"city": "Paris", "population": 2102650}));
    assert_sent(&upstream, "request_json_output.json");

    let upstream = MockUpstream::always(answer(200, "response_json_output.json"));
    let gw = gateway(&upstream, &[]);
    completion(&chat(
        &gw,
        json!({"model": MODEL, "messages": user("Hi"), "response_format": {"type": "json_object"}}),
    ));
    assert_eq!(
        upstream.only_request().json()["response_format"],
        json!({"type": "json_object"})
    );
}

#[test]
fn stop_sequence() {
    let upstream = MockUpstream::always(answer(200, "response_stop_sequence.json"));
    let gw = gateway(&upstream, &[]);
    let choice = completion(&chat(
        &gw,
        json!({"model": MODEL, "messages": user("Count to ten."), "stop": "5"}),
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
    assert!(!id.as_str().unwrap().is_empty());
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(&c["id"], id, "one id for the whole stream");
        assert_eq!(c["model"], "command-a-03-2025");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    chunks
}

#[test]
fn streamed_text() {
    let upstream = MockUpstream::always(stream("stream_text.sse"));
    let gw = gateway(&upstream, &[]);
    let body = json!({"model": MODEL, "messages": user("Say hello"), "stream": true,
        "stream_options": {"include_usage": true},
        "documents": [{"id": "doc-1", "data": {"text": "Greetings are short."}}]});
    let chunks = stream_chunks(&chat(&gw, body));
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello, world!");
    let n = chunks.len();
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[n - 1]["choices"], json!([]));
    assert_eq!(
        chunks[n - 1]["usage"],
        json!({"prompt_tokens": 34, "completion_tokens": 6, "total_tokens": 40,
            "prompt_tokens_details": {"cached_tokens": 0},
            "billed_units": {"input_tokens": 8, "output_tokens": 4}})
    );
    let request = upstream.only_request();
    assert_eq!(request.path, "/v2/chat");
    assert_eq!(request.header("accept"), Some("text/event-stream"));
    assert_eq!(
        request.json(),
        fixture_json("cohere/request_streamed_text.json")
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
    let (mut id, mut name, mut arguments, mut plan) = (None, None, String::new(), String::new());
    for c in &chunks {
        let delta = &c["choices"][0]["delta"];
        plan.push_str(delta["content"].as_str().unwrap_or_default());
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
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
    assert_eq!(plan, whole["message"]["content"].as_str().unwrap());
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
fn upstream_errors_keep_status_and_message() {
    for (status, file, expected, kind) in [
        (400, "error_400.json", 400, "invalid_request_error"),
        (401, "error_401.json", 401, "authentication_error"),
        (429, "error_429.json", 429, "rate_limit_error"),
        (500, "error_500.json", 502, "upstream_error"),
        (503, "error_503.json", 503, "upstream_error"),
    ] {
        let mut script = answer(status, file);
        if status == 429 {
            script = script.with_header("retry-after", "30");
        }
        let upstream = MockUpstream::always(script);
        let gw = gateway(&upstream, &[]);
        let reply = chat(&gw, json!({"model": MODEL, "messages": user("Hello")}));
        let error = assert_error(&reply, expected);
        let upstream_body = fixture_json(&format!("cohere/{file}"));
        assert_eq!(error["message"], upstream_body["message"], "{file}");
        assert_eq!(error["type"], kind, "{file}");
        if status == 429 {
            assert_eq!(reply.header("retry-after"), Some("30"));
        }
    }
}

#[test]
fn malformed_upstream_is_502() {
    let upstream = MockUpstream::always(Script::json(200, "{\"message\": oops"));
    let gw = gateway(&upstream, &[]);
    assert_error(
        &chat(&gw, json!({"model": MODEL, "messages": user("Hello")})),
        502,
    );

    let start =
        json!({"type": "message-start", "id": "x", "delta": {"message": {"role": "assistant"}}});
    for steps in [
        vec![Step::Raw(
            "event: message-start\ndata: {not json\n\n".into(),
        )],
        // Cut off before message-end: the client learns the stream is incomplete.
        vec![
            Step::Raw(format!("event: message-start\ndata: {start}\n\n")),
            Step::Cut,
        ],
        // The model failed mid-answer.
        vec![
            Step::Raw(format!("event: message-start\ndata: {start}\n\n")),
            Step::Raw(format!(
                "event: message-end\ndata: {}\n\n",
                json!({"type": "message-end", "delta": {"finish_reason": "ERROR"}})
            )),
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
        assert!(!events.iter().any(|e| e == "[DONE]"));
    }
}

#[test]
fn no_key_is_401_naming_the_variable() {
    let gw = Gateway::start(&[]);
    for model in [MODEL, "command-r-plus"] {
        let reply = chat(&gw, json!({"model": model, "messages": user("Hello")}));
        let error = assert_error(&reply, 401);
        assert!(error["message"]
            .as_str()
            .unwrap()
            .contains("COHERE_API_KEY"));
    }
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
fn embeddings_batch_keeps_order_and_dimensions() {
    let upstream = MockUpstream::always(answer(200, "embeddings.response.json"));
    let gw = gateway(&upstream, &[]);
    let body = json!({"model": "cohere/embed-v4.0", "input": ["first", "second", "third"],
                      "dimensions": 3, "input_type": "search_query", "encoding_format": "float"});
    let reply = post_json(gw.addr, "/v1/embeddings", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let sent = upstream.only_request();
    assert_eq!(sent.path, "/v2/embed");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(sent.json(), fixture_json("cohere/embeddings.request.json"));
    let v = reply.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "embed-v4.0");
    let vectors: Vec<&Value> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["embedding"])
        .collect();
    assert_eq!(
        vectors,
        [
            &json!([0.1, 0.2, 0.3]),
            &json!([0.4, 0.5, 0.6]),
            &json!([-0.7, 0.8, -0.9])
        ]
    );
    assert!(v["data"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .all(|(i, d)| d["index"] == i));
    assert_eq!(v["usage"], json!({"prompt_tokens": 3, "total_tokens": 3}));

    // Defaults: `search_document`, no dimension; base64 when the client asks for it.
    let upstream = MockUpstream::always(answer(200, "embeddings.response.json"));
    let gw = gateway(&upstream, &[]);
    let reply = post_json(
        gw.addr,
        "/v1/embeddings",
        &json!({"model": "cohere/embed-v4.0", "input": "first", "encoding_format": "base64"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        upstream.only_request().json(),
        json!({"model": "embed-v4.0", "texts": ["first"], "input_type": "search_document", "embedding_types": ["float"]})
    );
    let first = reply.json()["data"][0]["embedding"].clone();
    let expected: Vec<u8> = [0.1f32, 0.2, 0.3]
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    use base64::Engine;
    assert_eq!(
        first,
        json!(base64::engine::general_purpose::STANDARD.encode(expected))
    );
}

/// `tests/sdk/provider_cohere.py`: the real OpenAI Python SDK through the gateway to a mock
/// Cohere API. Skipped (with a note) without the project's virtualenv, never in CI.
#[test]
fn openai_python_sdk_through_cohere() {
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
    crate::sdk::pytest(python, gw.addr, &["tests/sdk/provider_cohere.py"]);
}
