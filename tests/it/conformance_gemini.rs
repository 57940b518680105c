//! Google Gemini behind the OpenAI API: the gateway in front of a mock Gemini
//! (`GEMINI_API_BASE` = the mock's root) that plays fixtures written from Google's API
//! reference (`tests/fixtures/gemini/`). Each case checks the exact request Gemini gets (path,
//! key header, body compared as JSON) and the OpenAI-shaped answer the client gets. The case
//! names are shared with the other native providers' conformance modules.

use serde_json::{json, Value};

use crate::support::client::{self, assert_error, fixture_json, post_json};
use crate::support::gateway::Gateway;
use crate::support::upstream::{MockUpstream, Recorded, Script, Step};

const KEY: &str = "fake-gemini-key-for-tests";
const MODEL: &str = "gemini/gemini-2.5-flash";

/// The mock's root, as `GEMINI_API_BASE` takes it (without the `/v1` the mock adds for the
/// OpenAI dialect).
fn root(upstream: &MockUpstream) -> String {
    let base = upstream.base_url();
    base.strip_suffix("/v1").unwrap_or(&base).to_string()
}

fn gateway(upstream: &MockUpstream, vars: &[(&str, &str)]) -> Gateway {
    let root = root(upstream);
    let mut all = vec![("GEMINI_API_BASE", root.as_str()), ("GEMINI_API_KEY", KEY)];
    all.extend_from_slice(vars);
    Gateway::start(&all)
}

/// Asserts the documented path and header, and the body against a request fixture.
fn assert_sent(sent: &Recorded, method: &str, request_fixture: &str) {
    assert_eq!(sent.method, "POST");
    let model = "gemini-2.5-flash";
    let path = match method {
        "stream" => format!("/v1beta/models/{model}:streamGenerateContent?alt=sse"),
        _ => format!("/v1beta/models/{model}:generateContent"),
    };
    assert_eq!(sent.path, path);
    assert!(!sent.path.contains("key="), "the key never goes in the URL");
    assert_eq!(sent.header("x-goog-api-key"), Some(KEY));
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(
        sent.json(),
        fixture_json(&format!("gemini/{request_fixture}")),
        "the request Gemini gets"
    );
}

fn chat(gw: &Gateway, body: Value) -> client::Reply {
    post_json(gw.addr, "/v1/chat/completions", &body)
}

fn ok_json(reply: &client::Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text());
    let v = reply.json();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("chatcmpl-")));
    v
}

fn say_hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}]})
}

#[test]
fn plain_chat() {
    let upstream = MockUpstream::always(Script::fixture(200, "gemini/plain_chat.response.json"));
    let gw = gateway(&upstream, &[]);
    let v = ok_json(&chat(&gw, say_hello(MODEL)));
    assert_sent(
        &upstream.only_request(),
        "generate",
        "plain_chat.request.json",
    );
    assert_eq!(v["model"], "gemini-2.5-flash");
    assert_eq!(
        v["choices"],
        json!([{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?", "refusal": null},
                "logprobs": null, "finish_reason": "stop"}])
    );
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    assert_eq!(v["usage"]["completion_tokens"], 9);
    assert_eq!(v["usage"]["total_tokens"], 13);
}

#[test]
fn system_prompt() {
    let upstream = MockUpstream::always(Script::fixture(200, "gemini/plain_chat.response.json"));
    let gw = gateway(&upstream, &[]);
    // A bare gemini- name is Gemini's too.
    let body = json!({"model": "gemini-2.5-flash", "messages": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Say hello"}]});
    ok_json(&chat(&gw, body));
    assert_sent(
        &upstream.only_request(),
        "generate",
        "system_prompt.request.json",
    );
}

#[test]
fn multi_turn() {
    let upstream = MockUpstream::always(Script::fixture(200, "gemini/plain_chat.response.json"));
    let gw = gateway(&upstream, &[]);
    let body = json!({"model": MODEL, "temperature": 0.2, "top_p": 0.9, "n": 1, "seed": 7,
        "presence_penalty": 0.1, "frequency_penalty": 0.2, "user": "user-1",
        "messages": [
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Nice to meet you, Ada."},
            {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]}]});
    ok_json(&chat(&gw, body));
    assert_sent(
        &upstream.only_request(),
        "generate",
        "multi_turn.request.json",
    );
}

#[test]
fn image_input() {
    let upstream = MockUpstream::always(Script::fixture(200, "gemini/plain_chat.response.json"));
    let gw = gateway(&upstream, &[]);
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in these images?"},
        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}")}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}}]}]});
    ok_json(&chat(&gw, body));
    assert_sent(
        &upstream.only_request(),
        "generate",
        "image_input.request.json",
    );
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
          "strict": true,
          "parameters": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
            "additionalProperties": false,
            "properties": {"city": {"type": "string", "description": "City name"},
                           "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"}},
            "required": ["city"]}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
    ])
}

/// A mock that answers with a function call when the request offers tools and has not yet
/// got a function response, and with text otherwise.
fn tool_playing_mock() -> MockUpstream {
    MockUpstream::start(|r| {
        let body = String::from_utf8_lossy(&r.body).into_owned();
        if body.contains("functionResponse") || !body.contains("functionDeclarations") {
            Script::fixture(200, "gemini/plain_chat.response.json")
        } else if r.path.contains("streamGenerateContent") {
            Script::sse_fixture("gemini/stream_tool_call.sse")
        } else {
            Script::fixture(200, "gemini/tool_call.response.json")
        }
    })
}

#[test]
fn tool_round_trip() {
    let upstream = tool_playing_mock();
    let gw = gateway(&upstream, &[]);
    let question = json!({"role": "user", "content": "Weather in Paris?"});
    let first = json!({"model": MODEL, "messages": [question], "tools": weather_tools(), "tool_choice": "auto"});
    let v = ok_json(&chat(&gw, first));
    assert_sent(
        &upstream.requests()[0],
        "generate",
        "tool_call.request.json",
    );
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "call_0");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris", "unit": "celsius"}));

    let second = json!({"model": MODEL, "tools": weather_tools(),
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "messages": [question, choice["message"],
            {"role": "tool", "tool_call_id": call["id"], "content": "{\"temperature\": 21, \"sky\": \"clear\"}"}]});
    let v = ok_json(&chat(&gw, second));
    assert_sent(
        &upstream.requests()[1],
        "generate",
        "tool_result.request.json",
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

#[test]
fn json_output() {
    let upstream = MockUpstream::always(Script::fixture(200, "gemini/json_output.response.json"));
    let gw = gateway(&upstream, &[]);
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "Give me a recipe as JSON."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "recipe", "strict": true, "schema": {
            "type": "object", "additionalProperties": false,
            "properties": {"name": {"type": "string"}, "minutes": {"type": "integer"}},
            "required": ["name", "minutes"]}}}});
    let v = ok_json(&chat(&gw, body));
    assert_sent(
        &upstream.only_request(),
        "generate",
        "json_output.request.json",
    );
    let content: Value =
        serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"name": "Pancakes", "minutes": 20}));
}

#[test]
fn stop_sequence() {
    let upstream = MockUpstream::always(Script::fixture(200, "gemini/stop_sequence.response.json"));
    let gw = gateway(&upstream, &[]);
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "Count to ten"}],
        "stop": ["5", "five"], "max_completion_tokens": 100});
    let v = ok_json(&chat(&gw, body));
    assert_sent(
        &upstream.only_request(),
        "generate",
        "stop_sequence.request.json",
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["choices"][0]["message"]["content"], "1, 2, 3, 4, ");
}

#[test]
fn max_tokens_is_length() {
    let upstream = MockUpstream::always(Script::fixture(200, "gemini/max_tokens.response.json"));
    let gw = gateway(&upstream, &[]);
    let mut body = say_hello(MODEL);
    body["max_tokens"] = json!(10);
    let v = ok_json(&chat(&gw, body));
    assert_eq!(
        upstream.only_request().json()["generationConfig"]["maxOutputTokens"],
        10
    );
    assert_eq!(v["choices"][0]["finish_reason"], "length");
}

/// The chunks of a streamed reply (before `[DONE]`, which must end it).
fn stream_chunks(reply: &client::Reply) -> Vec<Value> {
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/event-stream")));
    let events = reply.events();
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

#[test]
fn streamed_text() {
    let upstream = MockUpstream::always(Script::sse_fixture("gemini/stream_text.sse"));
    let gw = gateway(&upstream, &[]);
    let mut body = say_hello(MODEL);
    body["stream"] = json!(true);
    let chunks = stream_chunks(&chat(&gw, body.clone()));
    assert_sent(
        &upstream.only_request(),
        "stream",
        "plain_chat.request.json",
    );
    assert!(chunks
        .iter()
        .all(|c| c["id"] == chunks[0]["id"] && c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "The sky is blue because of Rayleigh scattering.");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "usage only when asked"
    );

    body["stream_options"] = json!({"include_usage": true});
    let chunks = stream_chunks(&chat(&gw, body));
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 8);
    assert_eq!(last["usage"]["completion_tokens"], 41);
    assert_eq!(
        last["usage"]["completion_tokens_details"]["reasoning_tokens"],
        30
    );
}

#[test]
fn streamed_tool_call_matches_non_stream() {
    let upstream = tool_playing_mock();
    let gw = gateway(&upstream, &[]);
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": weather_tools(), "tool_choice": "auto"});
    let whole = ok_json(&chat(&gw, body.clone()));
    let mut streamed = body;
    streamed["stream"] = json!(true);
    let chunks = stream_chunks(&chat(&gw, streamed));
    assert_sent(&upstream.requests()[1], "stream", "tool_call.request.json");
    let deltas: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("tool_calls"))
        .collect();
    assert_eq!(deltas.len(), 1, "each call whole in one delta");
    let mut expected = whole["choices"][0]["message"]["tool_calls"][0].clone();
    expected["index"] = json!(0);
    assert_eq!(deltas[0], &json!([expected]));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[test]
fn usage_with_cached_tokens() {
    let upstream = MockUpstream::always(Script::fixture(200, "gemini/usage_cached.response.json"));
    let gw = gateway(&upstream, &[]);
    let v = ok_json(&chat(&gw, say_hello(MODEL)));
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 2100, "completion_tokens": 127, "total_tokens": 2227,
               "prompt_tokens_details": {"cached_tokens": 2048},
               "completion_tokens_details": {"reasoning_tokens": 120}})
    );
    let message = &v["choices"][0]["message"];
    assert_eq!(
        message["content"], "The answer is 42.",
        "thoughts stay out of content"
    );
    assert_eq!(message["reasoning_content"], "Thinking about it…");
}

#[test]
fn upstream_errors_keep_status_and_message() {
    for (status, expected) in [(400, 400), (403, 403), (429, 429), (500, 502), (503, 503)] {
        let name = format!("gemini/error_{status}.json");
        let upstream = MockUpstream::always(Script::fixture(status, &name));
        let gw = gateway(&upstream, &[]);
        let reply = chat(&gw, say_hello(MODEL));
        let error = assert_error(&reply, expected);
        let google = fixture_json(&name);
        assert_eq!(
            error["message"], google["error"]["message"],
            "{status}: message verbatim"
        );
        assert_eq!(
            error["code"], google["error"]["status"],
            "{status}: code from status"
        );
        if status == 429 {
            assert_eq!(
                reply.header("retry-after"),
                Some("37"),
                "RetryInfo passed on"
            );
        }
    }
    // The provider's own retry-after header wins over the body's RetryInfo.
    let upstream = MockUpstream::always(
        Script::fixture(429, "gemini/error_429.json").with_header("retry-after", "12"),
    );
    let gw = gateway(&upstream, &[]);
    let reply = chat(&gw, say_hello(MODEL));
    assert_error(&reply, 429);
    assert_eq!(reply.header("retry-after"), Some("12"));
}

#[test]
fn malformed_upstream_is_502() {
    let upstream = MockUpstream::always(Script::json(200, "<html>not json</html>"));
    let gw = gateway(&upstream, &[]);
    assert_error(&chat(&gw, say_hello(MODEL)), 502);

    let mut body = say_hello(MODEL);
    body["stream"] = json!(true);
    for steps in [
        vec![Step::Event("{broken".into())],
        // Ends before any finish reason.
        vec![Step::Event(
            r#"{"candidates":[{"content":{"parts":[{"text":"Hel"}],"role":"model"},"index":0}]}"#
                .into(),
        )],
    ] {
        let upstream = MockUpstream::always(Script::sse(steps));
        let gw = gateway(&upstream, &[]);
        let reply = chat(&gw, body.clone());
        assert_eq!(reply.status, 200, "the stream had started");
        let last: Value = serde_json::from_str(reply.events().last().unwrap()).unwrap();
        let error = client::assert_error_shape(&last);
        assert_eq!(error["type"], "upstream_error");
        assert!(!reply.text().contains("[DONE]"));
    }
}

#[test]
fn missing_key_is_401_naming_gemini_api_key() {
    let gw = Gateway::start(&[]);
    let error = assert_error(&chat(&gw, say_hello(MODEL)), 401);
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("GEMINI_API_KEY"));
    let error = assert_error(&chat(&gw, say_hello("gemini-2.0-flash")), 401);
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("GEMINI_API_KEY"));
}

#[test]
fn google_api_key_is_accepted_too() {
    let upstream = MockUpstream::always(Script::fixture(200, "gemini/plain_chat.response.json"));
    let root = root(&upstream);
    let gw = Gateway::start(&[("GEMINI_API_BASE", &root), ("GOOGLE_API_KEY", KEY)]);
    ok_json(&chat(&gw, say_hello(MODEL)));
    assert_eq!(upstream.only_request().header("x-goog-api-key"), Some(KEY));
}

#[test]
fn unsupported_param_is_400_or_dropped() {
    let upstream = MockUpstream::always(Script::fixture(200, "gemini/plain_chat.response.json"));
    let gw = gateway(&upstream, &[]);
    let mut body = say_hello(MODEL);
    body["logit_bias"] = json!({"50256": -100});
    let error = assert_error(&chat(&gw, body.clone()), 400);
    assert_eq!(error["param"], "logit_bias");
    assert!(upstream.requests().is_empty(), "nothing was sent");

    let gw = gateway(&upstream, &[("DROP_UNSUPPORTED_PARAMS", "true")]);
    ok_json(&chat(&gw, body));
    assert_sent(
        &upstream.only_request(),
        "generate",
        "plain_chat.request.json",
    );
}

#[test]
fn embeddings_batch_keeps_order_and_dimensions() {
    let upstream = MockUpstream::always(Script::fixture(200, "gemini/embeddings.response.json"));
    let gw = gateway(&upstream, &[]);
    let body = json!({"model": "gemini/gemini-embedding-001", "input": ["first", "second", "third"],
                      "dimensions": 3, "encoding_format": "float"});
    let reply = post_json(gw.addr, "/v1/embeddings", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let sent = upstream.only_request();
    assert_eq!(
        sent.path,
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(sent.header("x-goog-api-key"), Some(KEY));
    assert_eq!(sent.json(), fixture_json("gemini/embeddings.request.json"));
    let v = reply.json();
    assert_eq!(v["object"], "list");
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
    // Gemini reports no token count: the usage is the gateway's estimate, flagged.
    assert_eq!(v["usage"], json!({"prompt_tokens": 3, "total_tokens": 3}));
    assert_eq!(reply.header("x-gateway-usage"), Some("estimated"));
}

/// The real OpenAI Python SDK (`tests/sdk/provider_gemini.py`) through the gateway to a mock
/// Gemini: a chat, a stream, a tool call and embeddings. Same Python rules as `sdk.rs`:
/// skipped without the virtualenv locally, required under `CI=true`.
#[test]
fn openai_python_sdk_drives_gemini_through_the_gateway() {
    let Some(python) = crate::sdk::python_or_skip() else {
        return;
    };
    let upstream = MockUpstream::start(|r| {
        let body = String::from_utf8_lossy(&r.body).into_owned();
        if r.path.ends_with(":batchEmbedContents") {
            Script::fixture(200, "gemini/embeddings.response.json")
        } else if r.path.contains(":streamGenerateContent") {
            Script::sse_fixture("gemini/stream_text.sse")
        } else if body.contains("functionDeclarations") {
            Script::fixture(200, "gemini/tool_call.response.json")
        } else {
            Script::fixture(200, "gemini/plain_chat.response.json")
        }
    });
    let gw = gateway(&upstream, &[]);
    crate::sdk::pytest(python, gw.addr, &["tests/sdk/provider_gemini.py"]);
    assert!(
        upstream.requests().iter().all(|r| !r.path.contains("key=")),
        "the key never goes in the URL"
    );
}

/// A tool schema whose `$defs` point at each other expands exponentially when inlined (Gemini
/// needs them inline): the gateway answers 400 naming the tool's parameters, quickly, and
/// never calls Gemini.
#[test]
fn a_tool_schema_that_expands_past_the_budget_is_refused_before_any_call() {
    let upstream = MockUpstream::start(|_| Script::fixture(200, "gemini/plain_chat.response.json"));
    let gw = gateway(&upstream, &[]);
    let mut defs = serde_json::Map::new();
    for d in 0..8 {
        let next = json!({"$ref": format!("#/$defs/D{}", d + 1)});
        let props: serde_json::Map<String, Value> =
            (0..30).map(|p| (format!("p{p}"), next.clone())).collect();
        defs.insert(
            format!("D{d}"),
            json!({"type": "object", "properties": props}),
        );
    }
    defs.insert("D8".into(), json!({"type": "string"}));
    let mut body = say_hello(MODEL);
    body["tools"] = json!([{"type": "function", "function": {"name": "deep",
        "parameters": {"$defs": defs, "type": "object", "properties": {"x": {"$ref": "#/$defs/D0"}}}}}]);
    let reply = chat(&gw, body);
    let e = assert_error(&reply, 400);
    assert_eq!(e["param"], "tools[0].function.parameters");
    assert!(upstream.requests().is_empty(), "Gemini was not called");
}

#[test]
fn an_error_object_mid_stream_is_relayed_recorded_and_counted_as_an_error() {
    let upstream = MockUpstream::always(Script::sse_fixture("gemini/stream_error.sse"));
    let gw = gateway(&upstream, &[]);
    let mut body = say_hello(MODEL);
    body["stream"] = json!(true);
    let reply = chat(&gw, body);
    assert_eq!(reply.status, 200);
    let events = reply.events();
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(
        last["error"]["message"],
        "The model is overloaded. Please try again later."
    );
    crate::record_truth::assert_recorded_stream_error(gw, &last["error"]);
}
