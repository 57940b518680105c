//! The real OpenAI Python SDK through the OpenAI-dialect adapters (`tests/sdk/provider_openai_relay.py`):
//! the default upstream, an OpenAI-compatible vendor from the table, and Azure, each in front of
//! a mock provider playing OpenAI's documented answers. Same Python rules as `sdk.rs`.

use crate::sdk::{pytest_with, python_or_skip};
use crate::support::gateway::Gateway;
use crate::support::upstream::{MockUpstream, Recorded, Script};

/// OpenAI's documented answers: a stream when asked for one, else a completion.
fn openai_answers(request: &Recorded) -> Script {
    if request.json()["stream"] == true {
        Script::sse_fixture("openai/chat_completion_stream.sse")
    } else {
        Script::fixture(200, "openai/chat_completion.json")
    }
}

/// Runs the SDK tests against a gateway configured by `gateway_vars`; returns the provider's
/// requests (none when the tests were skipped for want of a Python).
fn run(
    gateway_vars: impl FnOnce(&MockUpstream) -> Vec<(String, String)>,
    model: &str,
) -> Vec<Recorded> {
    let upstream = MockUpstream::start(openai_answers);
    if let Some(python) = python_or_skip() {
        let vars = gateway_vars(&upstream);
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let gateway = Gateway::start(&vars);
        let files = ["tests/sdk/provider_openai_relay.py"];
        pytest_with(python, gateway.addr, &files, &[("GATEWAY_MODEL", model)]);
        assert_eq!(
            upstream.requests().len(),
            3,
            "a chat and two streams reached the provider"
        );
    }
    upstream.requests()
}

#[test]
fn openai_python_sdk_through_the_default_upstream() {
    let requests = run(
        |u| {
            vec![
                ("LITELLM_BASE_URL".into(), u.base_url()),
                ("LITELLM_API_KEY".into(), "sk-test-fake".into()),
            ]
        },
        "gpt-4o",
    );
    assert!(requests.iter().all(|r| r.path == "/v1/chat/completions"));
}

#[test]
fn openai_python_sdk_through_an_openai_compatible_vendor() {
    let requests = run(
        |u| {
            vec![
                ("GROQ_API_BASE".into(), u.base_url()),
                ("GROQ_API_KEY".into(), "gsk-test-fake".into()),
            ]
        },
        "groq/llama-3.3-70b-versatile",
    );
    for request in requests {
        assert_eq!(request.json()["model"], "llama-3.3-70b-versatile");
        assert_eq!(
            request.header("authorization"),
            Some("Bearer gsk-test-fake")
        );
    }
}

#[test]
fn openai_python_sdk_through_azure() {
    let requests = run(
        |u| {
            vec![
                (
                    "AZURE_API_BASE".into(),
                    u.base_url().trim_end_matches("/v1").to_string(),
                ),
                ("AZURE_API_KEY".into(), "azure-test-fake".into()),
            ]
        },
        "azure/my-gpt-4o",
    );
    for request in requests {
        assert!(request
            .path
            .starts_with("/openai/deployments/my-gpt-4o/chat/completions?api-version="));
        assert_eq!(request.header("api-key"), Some("azure-test-fake"));
    }
}
