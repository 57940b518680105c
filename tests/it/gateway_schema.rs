//! The JSON the gateway produces itself carries every `required` key of its schema in the
//! official OpenAI description (`shared/openai-openapi/openapi.yaml`). The key lists below are
//! copied from that file, schema by schema; a cheap check, not a full validator.

use std::net::TcpListener;

use serde_json::{json, Value};

use crate::support::client::{get, post_json, send};
use crate::support::gateway::Gateway;

/// `CreateChatCompletionResponse.required`
const CHAT_COMPLETION: &[&str] = &["choices", "created", "id", "model", "object"];
/// `CreateChatCompletionResponse.properties.choices.items.required`
const CHAT_COMPLETION_CHOICE: &[&str] = &["finish_reason", "index", "message", "logprobs"];
/// `ChatCompletionResponseMessage.required`
const CHAT_COMPLETION_MESSAGE: &[&str] = &["role", "content", "refusal"];
/// `CompletionUsage.required`
const COMPLETION_USAGE: &[&str] = &["prompt_tokens", "completion_tokens", "total_tokens"];
/// `CreateChatCompletionStreamResponse.required`
const CHAT_CHUNK: &[&str] = &["choices", "created", "id", "model", "object"];
/// `CreateChatCompletionStreamResponse.properties.choices.items.required`
const CHAT_CHUNK_CHOICE: &[&str] = &["delta", "finish_reason", "index"];
/// `CreateEmbeddingResponse.required`
const EMBEDDING_LIST: &[&str] = &["object", "model", "data", "usage"];
/// `CreateEmbeddingResponse.properties.usage.required`
const EMBEDDING_USAGE: &[&str] = &["prompt_tokens", "total_tokens"];
/// `Embedding.required`
const EMBEDDING: &[&str] = &["index", "object", "embedding"];
/// `ListModelsResponse.required`
const MODEL_LIST: &[&str] = &["object", "data"];
/// `Model.required`
const MODEL: &[&str] = &["id", "object", "created", "owned_by"];
/// `ErrorResponse.required`
const ERROR_RESPONSE: &[&str] = &["error"];
/// `Error.required`
const ERROR: &[&str] = &["type", "message", "param", "code"];

fn assert_keys(schema: &str, value: &Value, required: &[&str]) {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("{schema}: not an object: {value}"));
    for key in required {
        assert!(
            object.contains_key(*key),
            "{schema} lacks required {key:?}: {value}"
        );
    }
}

fn assert_error_schema(what: &str, value: &Value) {
    assert_keys(&format!("ErrorResponse ({what})"), value, ERROR_RESPONSE);
    assert_keys(&format!("Error ({what})"), &value["error"], ERROR);
}

#[test]
fn chat_completion_has_every_required_key() {
    let gw = Gateway::start(&[]);
    let request = json!({"model": "mock/lorem", "messages": [{"role": "user", "content": "3"}]});
    let body = post_json(gw.addr, "/v1/chat/completions", &request).json();
    assert_keys("CreateChatCompletionResponse", &body, CHAT_COMPLETION);
    assert_eq!(body["object"], "chat.completion");
    for choice in body["choices"].as_array().unwrap() {
        assert_keys("choices[]", choice, CHAT_COMPLETION_CHOICE);
        assert_keys(
            "ChatCompletionResponseMessage",
            &choice["message"],
            CHAT_COMPLETION_MESSAGE,
        );
    }
    assert_keys("CompletionUsage", &body["usage"], COMPLETION_USAGE);
}

#[test]
fn chat_completion_chunks_have_every_required_key() {
    let gw = Gateway::start(&[]);
    let request = json!({
        "model": "mock/echo", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "a b c"}]
    });
    let events = post_json(gw.addr, "/v1/chat/completions", &request).events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    for event in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(event).unwrap();
        assert_keys("CreateChatCompletionStreamResponse", &chunk, CHAT_CHUNK);
        assert_eq!(chunk["object"], "chat.completion.chunk");
        for choice in chunk["choices"].as_array().unwrap() {
            assert_keys("chunk choices[]", choice, CHAT_CHUNK_CHOICE);
        }
        if !chunk["usage"].is_null() {
            assert_keys("CompletionUsage (chunk)", &chunk["usage"], COMPLETION_USAGE);
        }
    }
}

#[test]
fn embedding_list_has_every_required_key() {
    let gw = Gateway::start(&[]);
    for format in ["float", "base64"] {
        let request =
            json!({"model": "mock/embed", "input": ["a", "b"], "encoding_format": format});
        let body = post_json(gw.addr, "/v1/embeddings", &request).json();
        assert_keys("CreateEmbeddingResponse", &body, EMBEDDING_LIST);
        assert_keys(
            "CreateEmbeddingResponse.usage",
            &body["usage"],
            EMBEDDING_USAGE,
        );
        for item in body["data"].as_array().unwrap() {
            assert_keys("Embedding", item, EMBEDDING);
        }
    }
}

#[test]
fn model_list_and_model_have_every_required_key() {
    let gw = Gateway::start(&[]);
    let list = get(gw.addr, "/v1/models").json();
    assert_keys("ListModelsResponse", &list, MODEL_LIST);
    for model in list["data"].as_array().unwrap() {
        assert_keys("Model", model, MODEL);
    }
    assert_keys(
        "Model",
        &get(gw.addr, "/v1/models/mock%2Florem").json(),
        MODEL,
    );
}

#[test]
fn gateway_errors_have_every_required_key() {
    let closed_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{closed_port}/v1");
    let gw = Gateway::start(&[("MAX_REQUEST_BYTES", "256"), ("LITELLM_BASE_URL", &base)]);
    let cases = [
        (
            "400",
            send(gw.addr, "POST", "/v1/chat/completions", &[], b"{"),
        ),
        ("404 route", get(gw.addr, "/v1/nope")),
        ("404 model", get(gw.addr, "/v1/models/nope")),
        ("405", get(gw.addr, "/v1/chat/completions")),
        (
            "413",
            send(gw.addr, "POST", "/v1/embeddings", &[], &[b' '; 1000]),
        ),
        (
            "502",
            post_json(
                gw.addr,
                "/v1/chat/completions",
                &json!({"model": "x", "messages": [{"role": "user", "content": "x"}]}),
            ),
        ),
    ];
    for (what, reply) in &cases {
        assert!(reply.status >= 400, "{what}");
        assert_error_schema(what, &reply.json());
    }
}
