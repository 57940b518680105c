//! The official Anthropic Python SDK (`tests/sdk/test_anthropic_sdk.py`) against the gateway's
//! Messages API: the built-in models, a mock Anthropic (passthrough) and a mock
//! OpenAI-compatible provider (translation), both playing the providers' documented answers.
//! Same Python rules as `sdk.rs`.

use crate::sdk::{pytest_with, python_or_skip};
use crate::support::client::fixture;
use crate::support::gateway::Gateway;
use crate::support::upstream::{MockUpstream, Recorded, Script, Step};

/// An Anthropic SSE fixture written as it is, event by event.
fn anthropic_stream(path: &str) -> Script {
    let steps = fixture(path)
        .split_inclusive("\n\n")
        .map(|e| Step::Raw(e.to_string()))
        .collect();
    Script::sse(steps)
}

/// Anthropic's and OpenAI's documented answers, by path; a message saying "rate-limit" or
/// "bad-key" gets the provider's 429 or 401.
fn answers(r: &Recorded) -> Script {
    if r.method == "GET" {
        // The gateway's model lists: nothing beyond the built-in models.
        return Script::json(200, r#"{"object":"list","data":[],"has_more":false}"#);
    }
    let body = r.json();
    let text = body["messages"].to_string();
    let tools = body.get("tools").is_some();
    let stream = body["stream"] == true;
    if r.path.starts_with("/v1/messages") {
        return match () {
            _ if r.path.ends_with("/count_tokens") => {
                Script::fixture(200, "anthropic_ingress/count_tokens_response.json")
            }
            _ if text.contains("rate-limit") => Script::fixture(429, "anthropic/error_429.json"),
            _ if text.contains("bad-key") => Script::fixture(401, "anthropic/error_401.json"),
            _ if stream && tools => anthropic_stream("anthropic/stream_tool_call.sse"),
            _ if stream => anthropic_stream("anthropic/stream_text.sse"),
            _ if tools => Script::fixture(200, "anthropic/response_tool_call.json"),
            _ => Script::fixture(200, "anthropic/response_plain_chat.json"),
        };
    }
    match () {
        _ if text.contains("rate-limit") => {
            Script::fixture(429, "openai/error_429_rate_limit.json")
        }
        _ if text.contains("bad-key") => {
            Script::fixture(401, "openai/error_401_invalid_api_key.json")
        }
        _ if stream && tools => Script::sse_fixture("openai/chat_completion_tool_call_stream.sse"),
        _ if stream => Script::sse_fixture("openai/chat_completion_stream.sse"),
        _ if tools => Script::fixture(200, "openai/chat_completion_tool_call.json"),
        _ => Script::fixture(200, "openai/chat_completion.json"),
    }
}

#[test]
fn anthropic_python_sdk_drives_the_messages_api() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let provider = MockUpstream::start(answers);
    let base = provider.base_url();
    let anthropic_base = base.trim_end_matches("/v1");
    let gateway = Gateway::start(&[
        ("LITELLM_BASE_URL", &base),
        ("LITELLM_API_KEY", "sk-openai-gateway-fake"),
        ("ANTHROPIC_API_BASE", anthropic_base),
        ("ANTHROPIC_API_KEY", "sk-ant-gateway-fake"),
    ]);
    pytest_with(
        python,
        gateway.addr,
        &["tests/sdk/test_anthropic_sdk.py"],
        &[],
    );
    let requests = provider.requests();
    assert!(requests.iter().any(|r| r.path == "/v1/chat/completions"));
    assert!(requests.iter().any(|r| r.path == "/v1/messages"));
    for r in &requests {
        assert!(
            r.headers
                .iter()
                .all(|(_, v)| !v.contains("client-fake") && !v.contains("fake-bearer")),
            "the client's key is never forwarded: {r:?}"
        );
    }
    let is_error_result = requests.iter().any(|r| {
        r.path == "/v1/chat/completions"
            && r.json()["messages"].to_string().contains("Error: timeout")
    });
    assert!(
        is_error_result,
        "an is_error tool result reached the OpenAI provider as such"
    );
}
