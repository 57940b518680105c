//! AWS Bedrock conformance: the gateway in front of a mock Bedrock Runtime
//! (`BEDROCK_API_BASE` = the mock's root). For each case the Converse request the gateway
//! sends is compared with a fixture under `tests/fixtures/bedrock/`, its SigV4 signature is
//! recomputed, and the mock plays back a recorded answer, a binary event stream (built from a
//! JSON list of `[event-type, payload]` with correct CRCs) or an error. Case names are shared
//! with the other native providers' conformance modules.

use llmcallgateway::providers::bedrock::sigv4;
use llmcallgateway::upstream::eventstream;
use serde_json::{json, Value};

use crate::support::client::{assert_error, fixture_json, post_json, split_events, Reply};
use crate::support::gateway::Gateway;
use crate::support::upstream::{MockUpstream, Recorded, Script, Step};

const KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const REGION: &str = "eu-west-3";
const MODEL_ID: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";
const MODEL: &str = "bedrock/anthropic.claude-3-5-haiku-20241022-v1:0";

fn root(upstream: &MockUpstream) -> String {
    let base = upstream.base_url();
    base.strip_suffix("/v1").unwrap_or(&base).to_string()
}

fn gateway(upstream: &MockUpstream, vars: &[(&str, &str)]) -> Gateway {
    let base = root(upstream);
    let mut all = vec![
        ("BEDROCK_API_BASE", base.as_str()),
        ("AWS_ACCESS_KEY_ID", KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_REGION", REGION),
    ];
    all.extend_from_slice(vars);
    Gateway::start(&all)
}

fn answer(status: u16, name: &str) -> Script {
    Script::fixture(status, &format!("bedrock/{name}"))
}

/// A ConverseStream answer: each message of the fixture's list as one chunk.
fn stream(name: &str) -> Script {
    let list = fixture_json(&format!("bedrock/{name}"));
    let steps = list
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| Step::Bytes(eventstream::encode_stream(&json!([pair]))))
        .collect();
    event_stream(steps)
}

fn event_stream(steps: Vec<Step>) -> Script {
    let mut script = Script::sse(steps);
    script.headers = vec![(
        "content-type".into(),
        "application/vnd.amazon.eventstream".into(),
    )];
    script
}

fn chat(gw: &Gateway, body: Value) -> Reply {
    post_json(gw.addr, "/v1/chat/completions", &body)
}

/// The request was signed with SigV4 for Bedrock in the region, over `host` and
/// `x-amz-date`, and the signature is the one the signer computes for what was received.
fn assert_signed(request: &Recorded) {
    let date = request.header("x-amz-date").expect("x-amz-date");
    let host = request.header("host").expect("host");
    let expected = sigv4::signed_headers(
        &sigv4::Credentials {
            access_key_id: KEY_ID.into(),
            secret_access_key: SECRET.into(),
            session_token: None,
        },
        REGION,
        "bedrock",
        date,
        &format!("http://{host}{}", request.path),
        &request.body,
    );
    let auth = request.header("authorization").unwrap();
    assert!(auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={KEY_ID}/{}/{REGION}/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=", &date[..8])), "{auth}");
    assert_eq!(Some(auth), expected.last().map(|(_, v)| v.as_str()));
}

/// The one request the mock got: a signed POST to the model's encoded Converse path, its
/// body equal to the fixture.
fn assert_sent(upstream: &MockUpstream, action: &str, expected: &str) -> Value {
    let request = upstream.only_request();
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        (
            "POST",
            format!("/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/{action}").as_str()
        )
    );
    assert_signed(&request);
    let body = request.json();
    assert_eq!(body, fixture_json(&format!("bedrock/{expected}")));
    body
}

fn completion(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text());
    let v = reply.json();
    assert!(v["id"].is_string() && v["created"].is_u64(), "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], MODEL_ID);
    let choice = v["choices"][0].clone();
    assert_eq!(choice["message"]["role"], "assistant");
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
    assert_sent(&upstream, "converse", "request_plain_chat.json");
}

#[test]
fn session_token_is_sent_and_signed() {
    let upstream = MockUpstream::always(answer(200, "response_plain_chat.json"));
    let gw = gateway(&upstream, &[("AWS_SESSION_TOKEN", "session-token-xyz")]);
    completion(&chat(
        &gw,
        json!({"model": MODEL, "messages": user("Hello")}),
    ));
    let request = upstream.only_request();
    assert_eq!(
        request.header("x-amz-security-token"),
        Some("session-token-xyz")
    );
    assert!(request
        .header("authorization")
        .unwrap()
        .contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"));
}

#[test]
fn bedrock_api_key_is_a_bearer_token_without_signing() {
    let upstream = MockUpstream::always(answer(200, "response_plain_chat.json"));
    let gw = gateway(
        &upstream,
        &[("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-fake-123")],
    );
    completion(&chat(
        &gw,
        json!({"model": MODEL, "messages": user("Hello")}),
    ));
    let request = upstream.only_request();
    assert_eq!(
        request.header("authorization"),
        Some("Bearer bedrock-api-key-fake-123")
    );
    assert_eq!(request.header("x-amz-date"), None);
    assert_eq!(
        request.json(),
        fixture_json("bedrock/request_plain_chat.json")
    );
}

#[test]
fn system_prompt() {
    let upstream = MockUpstream::always(answer(200, "response_plain_chat.json"));
    let gw = gateway(&upstream, &[]);
    completion(&chat(
        &gw,
        json!({"model": MODEL, "max_tokens": 100, "temperature": 0.2, "top_p": 0.9, "stop": ["END"],
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "system", "content": "Answer in English."},
            {"role": "user", "content": "Hello"},
        ]}),
    ));
    assert_sent(&upstream, "converse", "request_system_prompt.json");
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]},
    }})
}

fn tool_call_request(stream: bool) -> Value {
    json!({"model": MODEL, "stream": stream, "tool_choice": "auto",
        "messages": user("What is the weather in Paris?"), "tools": [weather_tool()]})
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
    assert_eq!(call["id"], "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris", "unit": "celsius"}));

    let mut second = tool_call_request(false);
    second["messages"] = json!([
        {"role": "user", "content": "What is the weather in Paris?"},
        choice["message"].clone(),
        {"role": "tool", "tool_call_id": call["id"], "content": "{\"temperature\": 18, \"sky\": \"cloudy\"}"},
    ]);
    let choice = completion(&chat(&gw, second));
    assert_eq!(
        choice["message"]["content"],
        "It is 18 °C and cloudy in Paris."
    );
    let requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].json(),
        fixture_json("bedrock/request_tool_call.json")
    );
    assert_eq!(
        requests[1].json(),
        fixture_json("bedrock/request_tool_result.json")
    );
}

#[test]
fn usage_with_cached_tokens() {
    let upstream = MockUpstream::always(answer(200, "response_tool_result.json"));
    let gw = gateway(&upstream, &[]);
    let reply = chat(&gw, json!({"model": MODEL, "messages": user("Hello")}));
    completion(&reply);
    let usage = &reply.json()["usage"];
    assert_eq!(usage["prompt_tokens"], 770);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 300);
}

#[test]
fn upstream_errors_keep_status_and_message() {
    for (status, file, expected, error_type) in [
        (400, "error_400.json", 400, "ValidationException"),
        (403, "error_403.json", 403, "UnrecognizedClientException"),
        (429, "error_429.json", 429, "ThrottlingException"),
        (500, "error_500.json", 502, "InternalServerException"),
    ] {
        let upstream = MockUpstream::always(answer(status, file).with_header(
            "x-amzn-ErrorType",
            &format!("{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        ));
        let gw = gateway(&upstream, &[]);
        let reply = chat(&gw, json!({"model": MODEL, "messages": user("Hello")}));
        let error = assert_error(&reply, expected);
        let upstream_body = fixture_json(&format!("bedrock/{file}"));
        assert_eq!(error["message"], upstream_body["message"], "{file}");
    }
}

#[test]
fn service_unavailable_stays_503_with_the_providers_retry_after() {
    let upstream = MockUpstream::always(
        answer(503, "error_503.json")
            .with_header(
                "x-amzn-ErrorType",
                "ServiceUnavailableException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            )
            .with_header("retry-after", "3"),
    );
    let gw = gateway(&upstream, &[]);
    let reply = chat(&gw, json!({"model": MODEL, "messages": user("Hello")}));
    let error = assert_error(&reply, 503);
    assert_eq!(
        error["message"],
        fixture_json("bedrock/error_503.json")["message"]
    );
    assert_eq!(reply.header("retry-after"), Some("3"));
}

#[test]
fn malformed_upstream_is_502() {
    let upstream = MockUpstream::always(Script::json(200, "{\"output\": oops"));
    let gw = gateway(&upstream, &[]);
    assert_error(
        &chat(&gw, json!({"model": MODEL, "messages": user("Hello")})),
        502,
    );
}

#[test]
fn no_credentials_is_401_naming_the_variables() {
    let gw = Gateway::start(&[]);
    let reply = chat(&gw, json!({"model": MODEL, "messages": user("Hello")}));
    let error = assert_error(&reply, 401);
    let message = error["message"].as_str().unwrap();
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_BEARER_TOKEN_BEDROCK",
    ] {
        assert!(message.contains(var), "{message}");
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
    assert_sent(&upstream, "converse", "request_plain_chat.json");
}

/// The JSON chunks of a complete stream, which must end with `[DONE]`.
pub fn stream_chunks(reply: &Reply) -> Vec<Value> {
    assert_eq!(reply.status, 200, "{}", reply.text());
    let events = split_events(&reply.text());
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
    let upstream = MockUpstream::always(stream("stream_text.json"));
    let gw = gateway(&upstream, &[]);
    let body = json!({"model": MODEL, "messages": user("Hello"), "stream": true,
        "stream_options": {"include_usage": true}});
    let chunks = stream_chunks(&chat(&gw, body));
    let id = &chunks[0]["id"];
    assert!(chunks
        .iter()
        .all(|c| &c["id"] == id && c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello! How can I help you today?");
    let n = chunks.len();
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[n - 1]["choices"], json!([]));
    assert_eq!(chunks[n - 1]["usage"]["total_tokens"], 19);
    let request = upstream.only_request();
    assert_eq!(
        request.header("accept"),
        Some("application/vnd.amazon.eventstream")
    );
    assert_sent(&upstream, "converse-stream", "request_plain_chat.json");

    // Without include_usage the usage-only chunk is not shown.
    let upstream = MockUpstream::always(stream("stream_text.json"));
    let gw = gateway(&upstream, &[]);
    let chunks = stream_chunks(&chat(
        &gw,
        json!({"model": MODEL, "messages": user("Hello"), "stream": true}),
    ));
    assert!(chunks
        .iter()
        .all(|c| !c["choices"].as_array().unwrap().is_empty()));
}

#[test]
fn streamed_tool_call_matches_non_stream() {
    let upstream = MockUpstream::start(|request| {
        if request.path.ends_with("/converse-stream") {
            stream("stream_tool_call.json")
        } else {
            answer(200, "response_tool_call.json")
        }
    });
    let gw = gateway(&upstream, &[]);
    let whole = completion(&chat(&gw, tool_call_request(false)));
    let chunks = stream_chunks(&chat(&gw, tool_call_request(true)));
    let mut id = None;
    let mut name = None;
    let mut arguments = String::new();
    let mut content = String::new();
    for c in &chunks {
        let delta = &c["choices"][0]["delta"];
        content.push_str(delta["content"].as_str().unwrap_or_default());
        if let Some(call) = delta["tool_calls"].get(0) {
            assert_eq!(call["index"], 0);
            id = id.or(call["id"].as_str().map(str::to_string));
            name = name.or(call["function"]["name"].as_str().map(str::to_string));
            arguments.push_str(call["function"]["arguments"].as_str().unwrap_or_default());
        }
    }
    let call = &whole["message"]["tool_calls"][0];
    assert_eq!(id.as_deref(), call["id"].as_str());
    assert_eq!(name.as_deref(), call["function"]["name"].as_str());
    let streamed: Value = serde_json::from_str(&arguments).unwrap();
    let answered: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(streamed, answered);
    assert_eq!(Some(content.as_str()), whole["message"]["content"].as_str());
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == whole["finish_reason"]));
}

/// The last SSE event of a stream that failed: one OpenAI error object.
fn stream_error(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200);
    let events = split_events(&reply.text());
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(last["error"]["message"].is_string(), "{events:?}");
    last
}

#[test]
fn upstream_exception_mid_stream_ends_with_one_error_event() {
    let upstream = MockUpstream::always(stream("stream_exception.json"));
    let gw = gateway(&upstream, &[]);
    let reply = chat(
        &gw,
        json!({"model": MODEL, "messages": user("Hello"), "stream": true}),
    );
    let last = stream_error(&reply);
    assert_eq!(
        last["error"]["message"],
        "Too many tokens, please wait before trying again."
    );
    assert_eq!(last["error"]["type"], "rate_limit_error");
    crate::record_truth::assert_recorded_stream_error(gw, &last["error"]);
}

#[test]
fn corrupted_stream_is_an_sse_error() {
    let good = eventstream::encode_event("messageStart", r#"{"role":"assistant"}"#);
    let mut bad_crc = eventstream::encode_event(
        "contentBlockDelta",
        r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
    );
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x5a;
    let mut bad_prelude = eventstream::encode_event("messageStop", "{}");
    bad_prelude[3] ^= 0x01;
    for steps in [
        vec![Step::Bytes(good.clone()), Step::Bytes(bad_crc)],
        vec![Step::Bytes(good.clone()), Step::Bytes(bad_prelude)],
        // Cut inside a message, and cut before messageStop.
        vec![Step::Bytes(good[..good.len() - 2].to_vec())],
        vec![Step::Bytes(good.clone()), Step::Cut],
    ] {
        let upstream = MockUpstream::always(event_stream(steps));
        let gw = gateway(&upstream, &[]);
        let reply = chat(
            &gw,
            json!({"model": MODEL, "messages": user("Hello"), "stream": true}),
        );
        let last = stream_error(&reply);
        assert_eq!(last["error"]["type"], "upstream_error");
    }
}

#[test]
fn titan_embeddings_are_one_signed_invoke_per_input() {
    let upstream = MockUpstream::always(answer(200, "embed_titan_response.json"));
    let gw = gateway(&upstream, &[]);
    let reply = post_json(
        gw.addr,
        "/v1/embeddings",
        &json!({"model": "bedrock/amazon.titan-embed-text-v2:0", "input": ["hello", "world"], "dimensions": 256}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let v = reply.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["usage"]["prompt_tokens"], 6);
    let mut requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    // The calls run side by side, so they may arrive in either order.
    requests.sort_by_key(|r| {
        r.json()["inputText"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    for (request, text) in requests.iter().zip(["hello", "world"]) {
        assert_eq!(request.path, "/model/amazon.titan-embed-text-v2%3A0/invoke");
        assert_signed(request);
        assert_eq!(
            request.json(),
            json!({"inputText": text, "dimensions": 256})
        );
    }
}

/// Titan embeds one text per call: a batch's calls run a few at a time (not one after the
/// other, which made a 2,048-input batch 2,048 round trips), and the answer keeps input order.
#[test]
fn a_titan_batch_is_embedded_a_few_calls_at_a_time_in_input_order() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (now, peak) = (in_flight.clone(), most.clone());
    let upstream = MockUpstream::start(move |request| {
        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(n, Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(50));
        now.fetch_sub(1, Ordering::SeqCst);
        // The vector says which input it embeds.
        let i: f64 = request.json()["inputText"]
            .as_str()
            .and_then(|t| t.strip_prefix("text "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(-1.0);
        Script::json(
            200,
            &json!({"embedding": [i, 0.0], "inputTextTokenCount": 2}).to_string(),
        )
    });
    let gw = gateway(&upstream, &[]);
    let inputs: Vec<String> = (0..20).map(|i| format!("text {i}")).collect();
    let reply = post_json(
        gw.addr,
        "/v1/embeddings",
        &json!({"model": "bedrock/amazon.titan-embed-text-v2:0", "input": inputs}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let v = reply.json();
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 20);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["index"], i);
        assert_eq!(item["embedding"][0], i as f64, "input order kept");
    }
    assert_eq!(v["usage"]["prompt_tokens"], 40);
    let peak = most.load(Ordering::SeqCst);
    assert!((2..=8).contains(&peak), "calls in flight at once: {peak}");
}

#[test]
fn cohere_embeddings_on_bedrock_are_one_invoke() {
    let upstream = MockUpstream::always(
        answer(200, "embed_cohere_response.json")
            .with_header("x-amzn-bedrock-input-token-count", "2"),
    );
    let gw = gateway(
        &upstream,
        &[("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-fake-123")],
    );
    let reply = post_json(
        gw.addr,
        "/v1/embeddings",
        &json!({"model": "bedrock/cohere.embed-english-v3", "input": ["hello", "world"]}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let v = reply.json();
    assert_eq!(v["data"][1]["embedding"], json!([-0.125, 1.0]));
    assert_eq!(v["usage"]["total_tokens"], 2);
    let request = upstream.only_request();
    assert_eq!(
        request.json(),
        json!({"texts": ["hello", "world"], "input_type": "search_document"})
    );
    assert_eq!(
        request.header("authorization"),
        Some("Bearer bedrock-api-key-fake-123")
    );
}

#[test]
fn an_embedding_error_answers_for_the_whole_request() {
    let upstream = MockUpstream::start(|request| {
        if request.json()["inputText"] == "world" {
            answer(429, "error_429.json")
        } else {
            answer(200, "embed_titan_response.json")
        }
    });
    let gw = gateway(&upstream, &[]);
    let reply = post_json(
        gw.addr,
        "/v1/embeddings",
        &json!({"model": "bedrock/amazon.titan-embed-text-v2:0", "input": ["hello", "world"]}),
    );
    let error = assert_error(&reply, 429);
    assert_eq!(
        error["message"],
        fixture_json("bedrock/error_429.json")["message"]
    );
}

#[test]
fn chat_models_are_not_embedding_models() {
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

#[test]
fn a_bedrock_api_key_alone_is_enough() {
    let upstream = MockUpstream::always(answer(200, "response_plain_chat.json"));
    let base = root(&upstream);
    let gw = Gateway::start(&[
        ("BEDROCK_API_BASE", base.as_str()),
        ("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-fake-123"),
    ]);
    completion(&chat(
        &gw,
        json!({"model": MODEL, "messages": user("Hello")}),
    ));
    assert_eq!(
        upstream.only_request().header("authorization"),
        Some("Bearer bedrock-api-key-fake-123")
    );
}

/// `tests/sdk/provider_bedrock.py`: the real OpenAI Python SDK through the gateway to a mock
/// Bedrock Runtime (streams as binary event-stream messages). Skipped (with a note) without
/// the project's virtualenv.
#[test]
fn openai_python_sdk_through_bedrock() {
    let Some(python) = crate::sdk::python_or_skip() else {
        return;
    };
    let upstream = MockUpstream::start(|request| {
        let body = request.json();
        let streamed = request.path.ends_with("/converse-stream");
        match (streamed, body.get("toolConfig").is_some()) {
            _ if request.path.ends_with("/invoke") => answer(200, "embed_titan_response.json"),
            (true, true) => stream("stream_tool_call.json"),
            (true, false) => stream("stream_text.json"),
            (false, true) => answer(200, "response_tool_call.json"),
            (false, false) => answer(200, "response_plain_chat.json"),
        }
    });
    let gw = gateway(&upstream, &[]);
    crate::sdk::pytest(python, gw.addr, &["tests/sdk/provider_bedrock.py"]);
}
