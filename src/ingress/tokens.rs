//! Estimated input tokens of an internal chat request, for `count_tokens` when the target has
//! no counting endpoint of its own: the text of every message, tool call and tool definition
//! counted with OpenAI's `o200k_base` encoding (the encoding of current OpenAI models, from
//! `tiktoken-rs`, the maintained port of OpenAI's tiktoken; parsed once, at first use), plus
//! OpenAI's documented overheads (3 tokens per message, 3 to prime the reply) and 85 per image
//! (a low-detail tile). Other providers' tokenizers differ, so the answer is flagged as an
//! estimate.

use serde_json::{Map, Value};

/// Tokens every message costs besides its content.
const PER_MESSAGE: usize = 3;
/// Tokens that prime the assistant's reply.
const PER_REPLY: usize = 3;
/// Tokens counted for an image or a file part (their real cost depends on the provider).
const PER_IMAGE: usize = 85;

/// The estimated input tokens of an internal chat request.
pub fn estimate(body: &Map<String, Value>) -> u64 {
    let bpe = tiktoken_rs::o200k_base_singleton();
    let count = |s: &str| bpe.encode_ordinary(s).len();
    let mut total = PER_REPLY;
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
                    total += match part["text"].as_str() {
                        Some(text) => count(text),
                        None => PER_IMAGE,
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
