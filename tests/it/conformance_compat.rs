//! The OpenAI-compatible vendors (one table), Azure OpenAI, and the providers' models in
//! `/v1/models`: where each request goes, with which key header and model name, whether usage is
//! asked for on streams, the vendors' quirks, the 401 naming a missing key; Azure's deployment
//! URL, `api-key` header and content filter; model lists fetched, cached and survived.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::client::{self, assert_error, post_json};
use crate::support::gateway::Gateway;
use crate::support::logs::interaction_lines;
use crate::support::upstream::{fixture_events, MockUpstream, Recorded, Script, Step};

fn chat(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": stream,
    })
}

/// A vendor on the mock: chat answers (SSE for streams), and a model list on GET.
fn vendor_mock() -> MockUpstream {
    MockUpstream::start(|r: &Recorded| {
        if r.method == "GET" {
            return Script::json(
                200,
                r#"{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1700000000,"owned_by":"system"}]}"#,
            );
        }
        if r.json()["stream"] == true {
            Script::sse_fixture("openai/chat_completion_stream.sse")
        } else {
            Script::fixture(200, "openai/chat_completion.json")
        }
    })
}

#[test]
fn groq_models_go_to_groq_with_its_bearer_key_and_stream_usage_asked() {
    let groq = vendor_mock();
    let base = groq.base_url();
    let gw = Gateway::start(&[("GROQ_API_BASE", &base), ("GROQ_API_KEY", "gsk-test-fake")]);
    let reply = post_json(
        gw.addr,
        "/v1/chat/completions",
        &chat("groq/llama-3.3-70b-versatile", true),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let sent = groq.only_request();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(sent.header("authorization"), Some("Bearer gsk-test-fake"));
    let body = sent.json();
    assert_eq!(body["model"], "llama-3.3-70b-versatile");
    assert_eq!(body["stream_options"]["include_usage"], true);
}

#[test]
fn mistral_gets_max_tokens_and_no_stream_options_and_its_missing_usage_is_estimated() {
    // Mistral's stream without a usage-only chunk.
    let events: Vec<Step> = fixture_events("openai/chat_completion_stream.sse")
        .into_iter()
        .filter(|e| !e.contains(r#""choices":[]"#))
        .map(Step::Event)
        .collect();
    let mistral = MockUpstream::always(Script::sse(events));
    let base = mistral.base_url();
    let gw = Gateway::start(&[
        ("MISTRAL_API_BASE", &base),
        ("MISTRAL_API_KEY", "mistral-test-fake"),
    ]);
    let mut request = chat("mistral/mistral-small-latest", true);
    request["max_completion_tokens"] = json!(64);
    request["n"] = json!(1);
    request["stream_options"] = json!({"include_usage": true});
    let reply = post_json(gw.addr, "/v1/chat/completions", &request);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.events().last().is_some_and(|e| e == "[DONE]"));

    let sent = mistral.only_request();
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer mistral-test-fake")
    );
    let body = sent.json();
    assert_eq!(body["model"], "mistral-small-latest");
    assert_eq!(body["max_tokens"], 64);
    for absent in ["max_completion_tokens", "n", "stream_options"] {
        assert!(body.get(absent).is_none(), "{absent} sent: {body}");
    }

    let dir = gw.stop_keeping_logs();
    let lines = interaction_lines(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let line = lines
        .iter()
        .find(|l| l["provider"] == "mistral")
        .unwrap_or_else(|| panic!("no mistral line in {lines:?}"));
    // Mistral reported none: the record has the gateway's estimate, flagged as such.
    assert_eq!(line["usage_source"], "estimated", "{line}");
    assert!(line["usage"]["total_tokens"].as_u64() > Some(0), "{line}");
}

#[test]
fn mistral_refuses_more_than_one_choice_without_calling_it() {
    let mistral = vendor_mock();
    let base = mistral.base_url();
    let gw = Gateway::start(&[
        ("MISTRAL_API_BASE", &base),
        ("MISTRAL_API_KEY", "mistral-test-fake"),
    ]);
    let mut request = chat("mistral/mistral-small-latest", false);
    request["n"] = json!(2);
    let reply = post_json(gw.addr, "/v1/chat/completions", &request);
    let error = assert_error(&reply, 400);
    assert_eq!(error["param"], "n");
    assert!(mistral.requests().is_empty());
}

#[test]
fn ollama_needs_no_key_and_is_asked_for_stream_usage() {
    let ollama = vendor_mock();
    let base = ollama.base_url();
    let gw = Gateway::start(&[("OLLAMA_API_BASE", &base)]);
    let reply = post_json(
        gw.addr,
        "/v1/chat/completions",
        &chat("ollama/llama3", true),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let sent = ollama.only_request();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), None);
    let body = sent.json();
    assert_eq!(body["model"], "llama3");
    assert_eq!(body["stream_options"]["include_usage"], true);
}

#[test]
fn openai_compatible_sends_its_key_only_when_one_is_set() {
    let server = vendor_mock();
    let base = server.base_url();
    let keyless = Gateway::start(&[("OPENAI_COMPATIBLE_API_BASE", &base)]);
    let model = "openai_compatible/my-model";
    assert_eq!(
        post_json(keyless.addr, "/v1/chat/completions", &chat(model, false)).status,
        200
    );
    let keyed = Gateway::start(&[
        ("OPENAI_COMPATIBLE_API_BASE", &base),
        ("OPENAI_COMPATIBLE_API_KEY", "oc-test-fake"),
    ]);
    assert_eq!(
        post_json(keyed.addr, "/v1/chat/completions", &chat(model, false)).status,
        200
    );
    let sent = server.requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].header("authorization"), None);
    assert_eq!(sent[1].header("authorization"), Some("Bearer oc-test-fake"));
    for request in &sent {
        assert_eq!(request.path, "/v1/chat/completions");
        assert_eq!(request.json()["model"], "my-model");
    }
}

#[test]
fn a_vendor_without_its_key_or_base_is_an_error_naming_the_variable() {
    let gw = Gateway::start(&[]);
    let reply = post_json(
        gw.addr,
        "/v1/chat/completions",
        &chat("groq/llama3-8b", false),
    );
    let error = assert_error(&reply, 401);
    assert!(
        error["message"].as_str().unwrap().contains("GROQ_API_KEY"),
        "{error:?}"
    );
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat("vllm/qwen", false));
    let error = assert_error(&reply, 400);
    assert!(
        error["message"].as_str().unwrap().contains("VLLM_API_BASE"),
        "{error:?}"
    );
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat("azure/prod", false));
    let error = assert_error(&reply, 401);
    assert!(
        error["message"].as_str().unwrap().contains("AZURE_API_KEY"),
        "{error:?}"
    );
}

fn azure_gateway(azure: &MockUpstream) -> Gateway {
    let base = azure.base_url().trim_end_matches("/v1").to_string();
    Gateway::start(&[
        ("AZURE_API_BASE", &base),
        ("AZURE_API_KEY", "azure-secret-test-fake"),
    ])
}

/// A deployment name that is dots alone (or holds `/` or `%`) would move the call out of
/// `/openai/deployments/` on the Azure host: refused before any call.
#[test]
fn azure_deployment_names_that_would_leave_the_deployment_path_are_refused() {
    let azure = vendor_mock();
    let gw = azure_gateway(&azure);
    for name in ["azure/..", "azure/.", "azure/a/../b", "azure/%2e%2e"] {
        let reply = post_json(gw.addr, "/v1/chat/completions", &chat(name, false));
        let e = assert_error(&reply, 400);
        assert_eq!(e["param"], "model", "{name}");
    }
    assert!(azure.requests().is_empty(), "Azure was never called");
}

#[test]
fn azure_chat_goes_to_the_deployment_with_api_version_and_the_key_in_a_header() {
    let azure = vendor_mock();
    let gw = azure_gateway(&azure);
    let reply = post_json(
        gw.addr,
        "/v1/chat/completions",
        &chat("azure/prod-4o", false),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let sent = azure.only_request();
    assert_eq!(
        sent.path,
        "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"
    );
    assert!(!sent.path.contains("azure-secret-test-fake"));
    assert_eq!(sent.header("api-key"), Some("azure-secret-test-fake"));
    assert_eq!(sent.header("authorization"), None);
}

#[test]
fn azure_embeddings_go_to_the_deployment() {
    let azure = MockUpstream::always(Script::fixture(200, "openai/embeddings.json"));
    let gw = azure_gateway(&azure);
    let body = json!({"model": "azure/embed-small", "input": "hello"});
    let reply = post_json(gw.addr, "/v1/embeddings", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let sent = azure.only_request();
    assert_eq!(
        sent.path,
        "/openai/deployments/embed-small/embeddings?api-version=2024-10-21"
    );
    assert_eq!(sent.header("api-key"), Some("azure-secret-test-fake"));
}

#[test]
fn azure_content_filter_answers_keep_their_meaning() {
    let filtered = r#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"}}}}}"#;
    let azure = MockUpstream::always(Script::json(400, filtered));
    let gw = azure_gateway(&azure);
    let reply = post_json(
        gw.addr,
        "/v1/chat/completions",
        &chat("azure/prod-4o", false),
    );
    let error = assert_error(&reply, 400);
    assert_eq!(error["code"], "content_filter");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("content management policy"));

    let mut answer = client::fixture_json("openai/chat_completion.json");
    answer["choices"][0]["finish_reason"] = json!("content_filter");
    let azure = MockUpstream::always(Script::json(200, &answer.to_string()));
    let gw = azure_gateway(&azure);
    let reply = post_json(
        gw.addr,
        "/v1/chat/completions",
        &chat("azure/prod-4o", false),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json()["choices"][0]["finish_reason"],
        "content_filter"
    );
}

fn ids(listing: &Value) -> Vec<String> {
    listing["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn models_lists_mock_upstream_and_vendor_models_and_caches_them() {
    let upstream = vendor_mock();
    let base = upstream.base_url();
    let gw = Gateway::in_front_of(
        &upstream,
        &[("GROQ_API_BASE", &base), ("GROQ_API_KEY", "gsk-test-fake")],
    );
    let listing = client::get(gw.addr, "/v1/models").json();
    let listed = ids(&listing);
    for id in ["mock/echo", "gpt-4o-mini", "groq/gpt-4o-mini"] {
        assert!(listed.contains(&id.to_string()), "{id} in {listed:?}");
    }
    let groq = listing["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "groq/gpt-4o-mini")
        .unwrap();
    assert_eq!(groq["owned_by"], "groq");
    assert_eq!(groq["object"], "model");

    let gets = upstream.requests();
    assert_eq!(gets.len(), 2, "one list per provider: {gets:?}");
    assert!(gets
        .iter()
        .all(|r| r.method == "GET" && r.path == "/v1/models"));
    let keys: Vec<_> = gets
        .iter()
        .map(|r| r.header("authorization").unwrap())
        .collect();
    assert!(keys.contains(&"Bearer gsk-test-fake") && keys.contains(&"Bearer sk-test-fake-key"));

    let again = client::get(gw.addr, "/v1/models").json();
    assert_eq!(ids(&again), listed);
    let one = client::get(gw.addr, "/v1/models/groq%2Fgpt-4o-mini");
    assert_eq!(one.status, 200, "{}", one.text());
    assert_eq!(one.json()["owned_by"], "groq");
    assert_eq!(upstream.requests().len(), 2, "served from the cache");
    assert_eq!(client::get(gw.addr, "/v1/models/groq%2Fnope").status, 404);
}

#[test]
fn models_listing_survives_a_failing_and_a_silent_provider() {
    let failing = MockUpstream::always(Script::fixture(500, "openai/error_500_server.json"));
    let silent = MockUpstream::always(
        Script::json(200, r#"{"object":"list","data":[]}"#).hang(Duration::from_secs(4)),
    );
    let silent_base = silent.base_url();
    let gw = Gateway::in_front_of(
        &failing,
        &[
            ("DEEPSEEK_API_BASE", &silent_base),
            ("DEEPSEEK_API_KEY", "ds-test-fake"),
            ("UPSTREAM_TIMEOUT", "1"),
        ],
    );
    let started = Instant::now();
    let reply = client::get(gw.addr, "/v1/models");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by the list timeout"
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let listed = ids(&reply.json());
    assert!(listed.contains(&"mock/echo".to_string()));
    assert_eq!(failing.requests().len(), 1);
    assert_eq!(silent.requests().len(), 1);
}

/// A mock's root URL (a native provider's base has no `/v1`).
fn root(upstream: &MockUpstream) -> String {
    upstream.base_url().trim_end_matches("/v1").to_string()
}

/// A native provider's model list on GET, recorded; 404 for anything else.
fn list_mock(body: &'static str) -> MockUpstream {
    MockUpstream::start(move |r: &Recorded| {
        if r.method == "GET" {
            Script::json(200, body)
        } else {
            Script::json(404, r#"{"error":"not here"}"#)
        }
    })
}

#[test]
fn models_lists_the_native_providers_that_have_a_key_from_their_own_list_endpoints() {
    let anthropic = list_mock(
        r#"{"data":[{"type":"model","id":"claude-sonnet-4-5","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"}],"has_more":false,"first_id":"claude-sonnet-4-5","last_id":"claude-sonnet-4-5"}"#,
    );
    let gemini = list_mock(
        r#"{"models":[{"name":"models/gemini-2.5-flash","displayName":"Gemini 2.5 Flash","supportedGenerationMethods":["generateContent"]},{"name":"models/text-embedding-004"}],"nextPageToken":"abc"}"#,
    );
    let cohere = list_mock(
        r#"{"models":[{"name":"command-a-03-2025","endpoints":["chat"],"context_length":256000},{"name":"embed-v4.0","endpoints":["embed"]}]}"#,
    );
    let (a, g, c) = (root(&anthropic), root(&gemini), root(&cohere));
    let gw = Gateway::start(&[
        ("ANTHROPIC_API_BASE", a.as_str()),
        ("ANTHROPIC_API_KEY", "sk-ant-test-fake"),
        ("GEMINI_API_BASE", g.as_str()),
        ("GEMINI_API_KEY", "gm-test-fake"),
        ("COHERE_API_BASE", c.as_str()),
        ("COHERE_API_KEY", "co-test-fake"),
    ]);
    let listing = client::get(gw.addr, "/v1/models").json();
    let listed = ids(&listing);
    for id in [
        "mock/echo",
        "anthropic/claude-sonnet-4-5",
        "gemini/gemini-2.5-flash",
        "gemini/text-embedding-004",
        "cohere/command-a-03-2025",
        "cohere/embed-v4.0",
    ] {
        assert!(listed.contains(&id.to_string()), "{id} in {listed:?}");
    }
    let by_id = |id: &str| -> Value {
        listing["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap()
            .clone()
    };
    let claude = by_id("anthropic/claude-sonnet-4-5");
    assert_eq!(claude["owned_by"], "anthropic");
    assert_eq!(claude["object"], "model");
    assert_eq!(
        claude["created"], 1759104000,
        "created_at 2025-09-29T00:00:00Z"
    );
    assert_eq!(by_id("gemini/gemini-2.5-flash")["owned_by"], "gemini");
    assert_eq!(by_id("cohere/embed-v4.0")["owned_by"], "cohere");

    let sent = anthropic.only_request();
    assert_eq!(sent.method, "GET");
    assert_eq!(sent.path.split('?').next(), Some("/v1/models"));
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-test-fake"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    let sent = gemini.only_request();
    assert_eq!(sent.path.split('?').next(), Some("/v1beta/models"));
    assert_eq!(sent.header("x-goog-api-key"), Some("gm-test-fake"));
    assert!(!sent.path.contains("gm-test-fake"), "no key in the URL");
    let sent = cohere.only_request();
    assert_eq!(sent.path.split('?').next(), Some("/v1/models"));
    assert_eq!(sent.header("authorization"), Some("Bearer co-test-fake"));

    let one = client::get(gw.addr, "/v1/models/anthropic%2Fclaude-sonnet-4-5");
    assert_eq!(one.status, 200, "{}", one.text());
    assert_eq!(one.json()["owned_by"], "anthropic");
    assert_eq!(
        client::get(gw.addr, "/v1/models/gemini/gemini-2.5-flash").status,
        200
    );
    assert_eq!(anthropic.requests().len(), 1, "served from the cache");
}

#[test]
fn native_providers_without_a_key_are_not_listed_and_a_failing_one_is_skipped() {
    let anthropic = MockUpstream::always(Script::json(
        401,
        r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
    ));
    let cohere = list_mock(r#"{"models":[{"name":"command-r-08-2024"}]}"#);
    let (a, c) = (root(&anthropic), root(&cohere));
    let gw = Gateway::start(&[
        ("ANTHROPIC_API_BASE", a.as_str()),
        ("ANTHROPIC_API_KEY", "sk-ant-test-fake"),
        ("COHERE_API_BASE", c.as_str()),
    ]);
    let reply = client::get(gw.addr, "/v1/models");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let listed = ids(&reply.json());
    assert!(listed.contains(&"mock/echo".to_string()));
    assert!(listed.iter().all(|id| !id.starts_with("anthropic/")));
    assert_eq!(anthropic.requests().len(), 1);
    assert!(cohere.requests().is_empty(), "no key, no list");
}

/// The `required` keys and the `object` enum of `CreateChatCompletionStreamResponse`, read
/// from the official OpenAI description; where that file is not on this machine, the same
/// lists as copied into `gateway_schema.rs`.
fn chunk_schema() -> (Vec<String>, Vec<String>) {
    let Ok(spec) = std::fs::read_to_string("/tmp/shared/openai-openapi/openapi.yaml") else {
        let required = ["choices", "created", "id", "model", "object"];
        return (
            required.map(String::from).to_vec(),
            vec!["chat.completion.chunk".to_string()],
        );
    };
    let start = spec
        .find("\n    CreateChatCompletionStreamResponse:\n")
        .unwrap();
    let block = &spec[start + 1..];
    // The schema ends where the next one (indented as much) starts.
    let end = block
        .match_indices("\n    ")
        .find(|(i, _)| !block[i + 5..].starts_with(char::is_whitespace))
        .map_or(block.len(), |(i, _)| i);
    let block = &block[..end];
    let items = |after: &str, indent: &str| -> Vec<String> {
        let at = block.find(after).unwrap() + after.len();
        block[at..]
            .lines()
            .skip(1)
            .map_while(|l| l.strip_prefix(indent))
            .map(|l| l.trim().to_string())
            .collect()
    };
    let required = items("\n      required:", "        - ");
    let object = items("\n        object:", "");
    let enum_values = object
        .iter()
        .skip_while(|l| *l != "enum:")
        .skip(1)
        .map_while(|l| l.strip_prefix("- "))
        .map(str::to_string)
        .collect();
    (required, enum_values)
}

#[test]
fn azure_content_filter_chunk_is_spec_valid_and_its_results_are_recorded() {
    let (required, objects) = chunk_schema();
    assert!(required.contains(&"object".to_string()), "{required:?}");
    assert_eq!(objects, ["chat.completion.chunk"]);
    let azure = MockUpstream::always(Script::sse_fixture("azure/stream_content_filter.sse"));
    let gw = azure_gateway(&azure);
    let mut request = chat("azure/prod-4o", true);
    request["stream_options"] = json!({"include_usage": true});
    let reply = post_json(gw.addr, "/v1/chat/completions", &request);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let events = reply.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    for event in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(event).unwrap();
        for key in &required {
            assert!(chunk.get(key).is_some(), "{key} missing: {chunk}");
        }
        assert!(
            objects.iter().any(|o| chunk["object"] == o.as_str()),
            "{chunk}"
        );
    }
    let dir = gw.stop_keeping_logs();
    let line = interaction_lines(&dir)[0].clone();
    let _ = std::fs::remove_dir_all(&dir);
    let recorded = &line["downstream_response"]["prompt_filter_results"][0];
    assert_eq!(
        recorded["content_filter_results"]["hate"]["severity"], "safe",
        "{line}"
    );
}
