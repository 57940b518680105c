//! AWS Bedrock conformance: the gateway in front of a mock Bedrock Runtime
//! (`BEDROCK_API_BASE` = the mock's root). For each case the Converse request the gateway
//! sends is compared with a fixture under `tests/fixtures/bedrock/`, its SigV4 signature is
//! recomputed, and the mock plays back a recorded answer, a binary event stream (built from a
//! JSON list of `[event-type, payload]` with correct CRCs) or an error. Case names are shared
//! with the other native providers' conformance modules.

use llmcallgateway::providers::bedrock::sigv4;
use serde_json::{json, Value};

use crate::support::client::{assert_error, fixture_json, post_json, Reply};
use crate::support::gateway::Gateway;
use crate::support::upstream::{MockUpstream, Recorded, Script};

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
