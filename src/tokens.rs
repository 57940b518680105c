//! Estimated tokens, for where a provider counts none: the input of a chat request (for
//! `count_tokens` when the target has no counting endpoint of its own, and for the usage of an
//! answer without one), the completion of an answer, and the input of an embeddings request.
//! Text is counted with OpenAI's `o200k_base` encoding (the encoding of current OpenAI models;
//! `o200k.rs`, built once, at first use), plus OpenAI's documented overheads (3 tokens per
//! message, 3 to prime the reply) and 85 per image (a low-detail tile). Other providers' tokenizers differ, so such usage is flagged as
//! an estimate (`usage_source: "estimated"`, `x-gateway-usage: estimated`).

use serde_json::{Map, Value};

mod o200k;

/// Tokens every message costs besides its content.
const PER_MESSAGE: usize = 3;
/// Tokens that prime the assistant's reply.
const PER_REPLY: usize = 3;
/// Tokens counted for an image or a file part (their real cost depends on the provider).
const PER_IMAGE: usize = 85;

/// The estimated input tokens of an internal chat request.
pub fn estimate(body: &Map<String, Value>) -> u64 {
    let count = |s: &str| count(s) as usize;
    let mut total = PER_REPLY;
    // Messages API bodies (the `/v1/messages` route) keep the system prompt apart.
    total += text_of(body.get("system").unwrap_or(&Value::Null)) as usize;
    for message in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        total += PER_MESSAGE + count(message["role"].as_str().unwrap_or_default());
        match &message["content"] {
            Value::String(s) => total += count(s),
            Value::Array(parts) => {
                for part in parts {
                    total += match (part["text"].as_str(), part["type"].as_str()) {
                        (Some(text), _) => count(text),
                        (
                            None,
                            Some("image_url" | "image" | "file" | "document" | "input_audio"),
                        ) => PER_IMAGE,
                        // A Messages API block (tool use, tool result): its JSON text.
                        _ => count(&part.to_string()),
                    };
                }
            }
            _ => {}
        }
        for call in message["tool_calls"].as_array().into_iter().flatten() {
            let function = &call["function"];
            total += count(function["name"].as_str().unwrap_or_default());
            total += count(function["arguments"].as_str().unwrap_or_default());
        }
    }
    if let Some(tools) = body.get("tools").filter(|t| !t.is_null()) {
        total += count(&tools.to_string());
    }
    total as u64
}

/// The tokens of a text.
pub fn count(text: &str) -> u64 {
    o200k::encoding().count(text)
}

/// The tokens of a string, or of the `text` of each block of a list (a system prompt).
fn text_of(value: &Value) -> u64 {
    match value {
        Value::String(s) => count(s),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .map(count)
            .sum(),
        _ => 0,
    }
}

/// The estimated input tokens of a request as the client sent it (its bytes; not parsed
/// before, as only an answer without usage needs it).
pub fn prompt(request: &[u8]) -> u64 {
    match serde_json::from_slice::<Value>(request) {
        Ok(Value::Object(body)) => estimate(&body),
        _ => 0,
    }
}

/// The estimated tokens of a `chat.completion`'s choices: text, refusal, reasoning and tool
/// calls' names and arguments.
pub fn completion(completion: &Value) -> u64 {
    let mut total = 0;
    for choice in completion["choices"].as_array().into_iter().flatten() {
        let message = &choice["message"];
        for key in ["content", "refusal", "reasoning_content"] {
            total += message[key].as_str().map_or(0, count);
        }
        for call in message["tool_calls"].as_array().into_iter().flatten() {
            let function = &call["function"];
            total += function["name"].as_str().map_or(0, count);
            total += function["arguments"].as_str().map_or(0, count);
        }
    }
    total
}

/// An OpenAI usage object of estimated counts.
pub fn usage(prompt: u64, completion: u64) -> Value {
    serde_json::json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

/// The estimated usage of a `chat.completion` answering `request`, put in its body; the body
/// unchanged (and `None`) when it is not a completion.
pub fn fill_in_completion(request: &[u8], body: &mut Vec<u8>) -> Option<Value> {
    let mut answer: Value = serde_json::from_slice(body).ok()?;
    let usage = usage(prompt(request), completion(&answer));
    answer
        .as_object_mut()?
        .insert("usage".into(), usage.clone());
    *body = serde_json::to_vec(&answer).ok()?;
    Some(usage)
}

/// The estimated input tokens of an embeddings request: each string input's tokens, each
/// token-array input's length.
pub fn embeddings_input(request: &[u8]) -> u64 {
    let Ok(body) = serde_json::from_slice::<Value>(request) else {
        return 0;
    };
    let one = |v: &Value| match v {
        Value::String(s) => count(s),
        Value::Array(ids) if ids.iter().all(Value::is_number) => ids.len() as u64,
        _ => 0,
    };
    match &body["input"] {
        Value::Array(items) if !items.iter().all(Value::is_number) => items.iter().map(one).sum(),
        input => one(input),
    }
}

/// The estimated usage of an embeddings list answering `request`, put in its body.
pub fn fill_in_embeddings(request: &[u8], body: &mut Vec<u8>) -> Option<Value> {
    let mut list: Value = serde_json::from_slice(body).ok()?;
    let n = embeddings_input(request);
    let usage = serde_json::json!({"prompt_tokens": n, "total_tokens": n});
    list.as_object_mut()?.insert("usage".into(), usage.clone());
    *body = serde_json::to_vec(&list).ok()?;
    Some(usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_is_counted_with_openais_encoding_plus_message_overheads() {
        let body = json!({"messages": [{"role": "user", "content": "Hello, world!"}]});
        // "Hello, world!" is 4 tokens in o200k_base, "user" 1; 3 per message, 3 for the reply.
        assert_eq!(estimate(body.as_object().unwrap()), 4 + 1 + 3 + 3);
    }

    #[test]
    fn tools_tool_calls_and_images_add_to_the_estimate() {
        let plain = json!({"messages": [{"role": "user", "content": "hi"}]});
        let rich = json!({
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
        });
        let plain = estimate(plain.as_object().unwrap());
        let rich = estimate(rich.as_object().unwrap());
        assert!(rich > plain + PER_IMAGE as u64 + 10, "{rich} vs {plain}");
    }
}
