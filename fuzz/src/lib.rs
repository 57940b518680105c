//! What the fuzz targets share: targets of the registry's rows (fake base and key, never
//! called) and the check that a translator's chunk is a valid OpenAI `chat.completion.chunk`.

use std::sync::Arc;

use llmcallgateway::providers::{registry, Settings, Target};
use serde_json::Value;

/// One row of each dialect, chosen by a byte of the input.
pub const DIALECTS: &[&str] = &[
    "openai", "anthropic", "gemini", "cohere", "bedrock", "azure", "mock", "mistral",
];

pub fn target(provider: &str, model: &str) -> Target {
    Target {
        provider: registry::find(provider).expect("a registry row"),
        model: model.to_string(),
        settings: Arc::new(Settings {
            base_url: Some("http://127.0.0.1:9".into()),
            api_key: Some("fake-key-for-fuzzing".into()),
            ..Default::default()
        }),
    }
}

/// Panics (a finding) unless `chunk` has the keys `CreateChatCompletionStreamResponse`
/// requires, with their types.
pub fn assert_valid_chunk(chunk: &Value) {
    let bad = |why: &str| -> ! { panic!("invalid chunk ({why}): {chunk}") };
    if !chunk["id"].is_string() || !chunk["model"].is_string() {
        bad("id/model");
    }
    if chunk["object"] != "chat.completion.chunk" {
        bad("object");
    }
    if !(chunk["created"].is_u64() || chunk["created"].is_i64()) {
        bad("created");
    }
    let Some(choices) = chunk["choices"].as_array() else {
        bad("choices")
    };
    for c in choices {
        if !c["index"].is_u64() || !c["delta"].is_object() {
            bad("choice index/delta");
        }
        match &c["finish_reason"] {
            Value::Null => {}
            Value::String(r)
                if ["stop", "length", "tool_calls", "content_filter", "function_call"]
                    .contains(&r.as_str()) => {}
            _ => bad("finish_reason"),
        }
        if let Some(calls) = c["delta"].get("tool_calls") {
            match calls.as_array() {
                Some(calls) if calls.iter().all(|t| t["index"].is_u64()) => {}
                _ => bad("tool_calls"),
            }
        }
    }
    if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
        for key in ["prompt_tokens", "completion_tokens", "total_tokens"] {
            if !usage[key].is_u64() {
                bad("usage");
            }
        }
    }
}
