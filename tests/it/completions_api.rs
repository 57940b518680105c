//! `POST /v1/completions` over real sockets: translated to chat for the mock models and
//! Anthropic (back to `text_completion`s and chunks), relayed as it came to an
//! OpenAI-compatible upstream that serves it and to Azure (with `/v1/responses`, at Azure's own
//! paths), and refused where a chat model cannot honour a parameter.

use serde_json::{json, Value};

use crate::support::client::{assert_error, fixture, post_json};
use crate::support::gateway::Gateway;
use crate::support::upstream::{MockUpstream, Script};

#[test]
fn a_mock_model_answers_a_text_completion_and_streams_text_chunks() {
    let gw = Gateway::start(&[]);
    let body = post_json(
        gw.addr,
        "/v1/completions",
        &json!({"model": "mock/echo", "prompt": "say this"}),
    )
    .json();
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["choices"][0]["text"], "say this");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["completion_tokens"], 2);

    let request = json!({"model": "mock/lorem", "prompt": "3", "stream": true, "stream_options": {"include_usage": true}});
    let events = post_json(gw.addr, "/v1/completions", &request).events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .flat_map(|c| c["choices"].as_array().unwrap().iter())
        .map(|c| c["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(text.split_whitespace().count(), 3);
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 3);

    let plain = json!({"model": "mock/lorem", "prompt": "3", "stream": true});
    let events = post_json(gw.addr, "/v1/completions", &plain).events();
    assert!(
        events.iter().all(|e| !e.contains("\"usage\"")),
        "{events:?}"
    );
}

#[test]
fn an_upstream_that_serves_completions_gets_the_body_and_is_relayed_as_it_came() {
    let upstream = MockUpstream::start(|r| {
        if r.json()["stream"] == true {
            Script::sse_fixture("openai/completion_stream.sse")
        } else {
            Script::fixture(200, "openai/completion.json")
        }
    });
    let gw = Gateway::in_front_of(&upstream, &[]);
    let request = json!({"model": "openai/gpt-3.5-turbo-instruct", "prompt": ["a", "b"], "suffix": "z", "logprobs": 1});
    let reply = post_json(gw.addr, "/v1/completions", &request);
    assert_eq!(reply.text(), fixture("openai/completion.json"));
    let sent = &upstream.requests()[0];
    assert_eq!(sent.path, "/v1/completions");
    assert_eq!(sent.json()["prompt"], json!(["a", "b"]));
    assert_eq!(sent.json()["suffix"], "z");

    let stream = json!({"model": "openai/gpt-3.5-turbo-instruct", "prompt": "x", "stream": true});
    let events = post_json(gw.addr, "/v1/completions", &stream).events();
    assert_eq!(
        upstream.requests()[1].json()["stream_options"]["include_usage"],
        true
    );
    // The usage chunk the gateway asked for is not the client's.
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[2], "[DONE]");
}

#[test]
fn what_a_chat_model_cannot_do_is_a_400_naming_the_parameter() {
    let gw = Gateway::start(&[]);
    for (request, param) in [
        (
            json!({"model": "mock/echo", "prompt": "x", "suffix": "y"}),
            "suffix",
        ),
        (
            json!({"model": "mock/echo", "prompt": ["a", "b"]}),
            "prompt",
        ),
        (json!({"model": "mock/echo", "prompt": 5}), "prompt"),
        (json!({"model": "mock/echo"}), "prompt"),
        (
            json!({"model": "mock/echo", "prompt": "x", "temperature": 9}),
            "temperature",
        ),
    ] {
        let error = assert_error(&post_json(gw.addr, "/v1/completions", &request), 400);
        assert_eq!(error["param"], param, "{request}");
    }
}

#[test]
fn azure_serves_both_apis_at_its_own_paths_with_its_key_header() {
    let upstream = MockUpstream::start(|r| {
        if r.path.contains("/responses") {
            Script::fixture(200, "openai/responses_create.json")
        } else {
            Script::fixture(200, "openai/completion.json")
        }
    });
    let base = upstream.base_url();
    let gw = Gateway::start(&[
        ("AZURE_API_BASE", base.strip_suffix("/v1").unwrap()),
        ("AZURE_API_KEY", "azure-test-fake-key"),
    ]);
    let completion = json!({"model": "azure/my-instruct", "prompt": "x"});
    assert_eq!(
        post_json(gw.addr, "/v1/completions", &completion).status,
        200
    );
    let response = json!({"model": "azure/my-gpt-4o", "input": "x"});
    assert_eq!(post_json(gw.addr, "/v1/responses", &response).status, 200);
    let requests = upstream.requests();
    assert!(
        requests[0]
            .path
            .starts_with("/openai/deployments/my-instruct/completions?api-version="),
        "{}",
        requests[0].path
    );
    assert_eq!(requests[1].path, "/openai/v1/responses");
    assert_eq!(requests[1].json()["model"], "my-gpt-4o");
    for request in &requests {
        assert_eq!(request.header("api-key"), Some("azure-test-fake-key"));
        assert_eq!(request.header("authorization"), None);
    }
}
