//! The real OpenAI Python SDK on the Responses API and legacy completions through a provider:
//! relayed to a mock OpenAI upstream that serves both (`tests/sdk/provider_responses_openai.py`),
//! and translated for a mock Anthropic (`tests/sdk/provider_responses_anthropic.py`), whose
//! requests show the tool round trip continued from the store. Same Python rules as `sdk.rs`.

use serde_json::Value;

use crate::sdk::{pytest, python_or_skip};
use crate::support::client::fixture;
use crate::support::gateway::Gateway;
use crate::support::upstream::{MockUpstream, Script, Step};

/// An SSE fixture played event by event, `event:` lines included.
fn played(path: &str) -> Script {
    Script::sse(
        fixture(path)
            .split("\n\n")
            .filter(|b| !b.trim().is_empty())
            .map(|b| Step::Raw(format!("{b}\n\n")))
            .collect(),
    )
}

#[test]
fn openai_python_sdk_responses_and_completions_relayed_to_openai() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let upstream = MockUpstream::start(|r| {
        let stream = r.json()["stream"] == true;
        match (r.path.as_str(), stream) {
            ("/v1/responses", true) => played("openai/responses_stream.sse"),
            ("/v1/responses", false) => Script::fixture(200, "openai/responses_create.json"),
            (_, true) => Script::sse_fixture("openai/completion_stream.sse"),
            (_, false) => Script::fixture(200, "openai/completion.json"),
        }
    });
    let gateway = Gateway::in_front_of(&upstream, &[("OPENAI_RESPONSES_API", "true")]);
    pytest(
        python,
        gateway.addr,
        &["tests/sdk/provider_responses_openai.py"],
    );
    let paths: Vec<String> = upstream.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/v1/responses",
            "/v1/responses",
            "/v1/completions",
            "/v1/completions"
        ]
    );
}

#[test]
fn openai_python_sdk_responses_and_completions_translated_for_anthropic() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let upstream = MockUpstream::start(|r| {
        let body = r.json();
        let text = body["messages"].to_string();
        if body["stream"] == true {
            played("anthropic/stream_text.sse")
        } else if text.contains("tool_result") || !text.contains("weather") {
            Script::fixture(200, "anthropic/response_plain_chat.json")
        } else {
            Script::fixture(200, "anthropic/response_tool_call.json")
        }
    });
    let base = upstream.base_url();
    let gateway = Gateway::start(&[
        ("ANTHROPIC_API_BASE", base.strip_suffix("/v1").unwrap()),
        ("ANTHROPIC_API_KEY", "sk-ant-test-fake-key"),
    ]);
    pytest(
        python,
        gateway.addr,
        &["tests/sdk/provider_responses_anthropic.py"],
    );
    // The tool's output went to Anthropic after the stored question and tool call.
    let requests = upstream.requests();
    let second: Value = requests[1].json();
    let messages = second["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{second}");
    assert_eq!(messages[1]["content"][0]["type"], "tool_use");
    assert_eq!(messages[2]["content"][0]["type"], "tool_result");
    assert_eq!(
        messages[2]["content"][0]["tool_use_id"],
        "toolu_01A09q90qw90lq917835lq9"
    );
}
