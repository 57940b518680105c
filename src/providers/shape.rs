//! The OpenAI shapes every dialect answers with, built in one place: `chat.completion`
//! answers (and the assistant message read block by block from a provider's answer),
//! `chat.completion.chunk`s (content, finish and usage-only chunks), tool calls, usage with
//! cached tokens, and embeddings lists; and the one clock for their `created` fields.

use serde_json::{json, Value};

use super::{bad_response, Reply};
use crate::error::ApiError;

pub use crate::events::unix_now;

/// A fresh `chatcmpl-…` id, for providers whose answers carry none.
pub fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

/// An assistant message: its text (null when it has only tool calls), its reasoning
/// (`reasoning_content`, never mixed into the text) and its tool calls.
pub fn assistant_message(
    text: Option<String>,
    reasoning: Option<String>,
    tool_calls: Vec<Value>,
) -> Value {
    let mut message = json!({"role": "assistant", "content": text, "refusal": null});
    if let Some(reasoning) = reasoning {
        message["reasoning_content"] = json!(reasoning);
    }
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    message
}

/// An assistant message read block by block from a provider's answer (Anthropic's and
/// Converse's content blocks): texts and reasoning appended in order, tool calls collected.
#[derive(Default)]
pub struct MessageParts {
    text: Option<String>,
    reasoning: Option<String>,
    tool_calls: Vec<Value>,
}

impl MessageParts {
    /// Appends to the text (which is then a string, even when `text` is empty).
    pub fn text(&mut self, text: &str) {
        self.text.get_or_insert_with(String::new).push_str(text);
    }

    /// Appends to the reasoning (`reasoning_content`).
    pub fn reasoning(&mut self, text: &str) {
        self.reasoning
            .get_or_insert_with(String::new)
            .push_str(text);
    }

    /// Adds a tool call from a provider's tool-use block: its id and name as sent (`null`
    /// when absent), its input object (`{}` when absent) as the arguments' JSON text.
    pub fn tool_use(&mut self, id: Option<&Value>, name: Option<&Value>, input: Option<&Value>) {
        let input = input.cloned().unwrap_or_else(|| json!({}));
        self.tool_calls.push(tool_call(
            id.cloned().unwrap_or(Value::Null),
            name.cloned().unwrap_or(Value::Null),
            input.to_string(),
        ));
    }

    /// The [`assistant_message`].
    pub fn message(self) -> Value {
        assistant_message(self.text, self.reasoning, self.tool_calls)
    }
}

/// OpenAI usage for a provider that counts cache reads and writes apart from fresh input
/// (Anthropic, Converse): all three are prompt tokens, and cache reads are `cached_tokens`.
/// Writes, priced above fresh input, are `prompt_tokens_details.cache_write_tokens` (all of
/// them) and `cache_write_1h_tokens` (those with the 1-hour TTL), present only when there are
/// some: the cost is computed from them (`pricing::Tokens`).
pub fn cached_usage(input: u64, cache_read: u64, writes: CacheWrites, output: u64) -> Value {
    // Saturating: the counts are the provider's, and a bogus one must not panic.
    let written = writes.five_minutes.saturating_add(writes.one_hour);
    let prompt = input.saturating_add(cache_read).saturating_add(written);
    let mut usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt.saturating_add(output),
        "prompt_tokens_details": {"cached_tokens": cache_read},
    });
    if written > 0 {
        usage["prompt_tokens_details"]["cache_write_tokens"] = json!(written);
    }
    if writes.one_hour > 0 {
        usage["prompt_tokens_details"]["cache_write_1h_tokens"] = json!(writes.one_hour);
    }
    usage
}

/// Tokens written to a provider's cache, by TTL (they are priced differently).
#[derive(Clone, Copy, Default)]
pub struct CacheWrites {
    pub five_minutes: u64,
    pub one_hour: u64,
}

/// A tool call of an answer; `arguments` is the JSON text of the input.
pub fn tool_call(id: Value, name: Value, arguments: String) -> Value {
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
}

/// The delta that starts a streamed tool call: its OpenAI index, id, name and the first piece
/// of its arguments. The id and name must be strings (clients key on them); a provider event
/// without them is not relayed as a call named `null` but is a 502.
pub fn tool_call_start(
    index: u64,
    id: Option<&Value>,
    name: Option<&Value>,
    arguments: &str,
) -> Result<Value, ApiError> {
    let (Some(id @ Value::String(_)), Some(name @ Value::String(_))) = (id, name) else {
        return Err(bad_response(
            "a tool call started without a string id and name",
        ));
    };
    Ok(json!({"tool_calls": [{
        "index": index, "id": id, "type": "function",
        "function": {"name": name, "arguments": arguments},
    }]}))
}

/// One choice of a `chat.completion`.
pub fn choice(index: u64, message: Value, finish_reason: &str) -> Value {
    json!({"index": index, "message": message, "logprobs": null, "finish_reason": finish_reason})
}

/// A whole `chat.completion`, serialized, with its usage for the record.
pub fn completion(id: Value, model: Value, choices: Vec<Value>, usage: Option<Value>) -> Reply {
    let mut completion = json!({
        "id": id,
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "choices": choices,
    });
    if let Some(u) = &usage {
        completion["usage"] = u.clone();
    }
    Reply {
        body: serde_json::to_vec(&completion).unwrap_or_default(),
        usage,
    }
}

/// What every chunk of one stream shares: its id, creation time and model.
pub struct Chunks {
    pub id: String,
    pub created: u64,
    pub model: String,
}

impl Chunks {
    pub fn new(id: String, model: String) -> Chunks {
        Chunks {
            id,
            created: unix_now(),
            model,
        }
    }

    /// A chunk with one choice's `delta` and, on its last chunk, its `finish_reason`.
    pub fn delta(&self, index: u64, delta: Value, finish_reason: Option<&str>) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        })
    }

    /// The usage-only chunk that ends a stream (no choices).
    pub fn usage(&self, usage: &Value) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "choices": [], "usage": usage,
        })
    }
}

/// One item of an OpenAI embeddings list from a provider's vector: floats, or base64 of
/// little-endian f32 when the client asked for `encoding_format: base64`.
pub fn embedding_item(index: usize, values: &[Value], base64: bool) -> Value {
    let embedding = if base64 {
        use base64::Engine;
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|v| (v.as_f64().unwrap_or(0.0) as f32).to_le_bytes())
            .collect();
        json!(base64::engine::general_purpose::STANDARD.encode(bytes))
    } else {
        Value::Array(values.to_vec())
    };
    json!({"object": "embedding", "index": index, "embedding": embedding})
}

/// An OpenAI embeddings list of the vectors a provider returned, in order; `None` when one
/// is not a list of numbers. Its usage is the input tokens, when the provider counted them.
pub fn embeddings(
    model: &str,
    vectors: &[Value],
    base64: bool,
    input_tokens: Option<u64>,
) -> Option<Reply> {
    let mut data = Vec::with_capacity(vectors.len());
    for (index, values) in vectors.iter().enumerate() {
        data.push(embedding_item(index, values.as_array()?, base64));
    }
    let usage = input_tokens.map(|n| json!({"prompt_tokens": n, "total_tokens": n}));
    let list = json!({"object": "list", "data": data, "model": model, "usage": usage});
    Some(Reply {
        body: serde_json::to_vec(&list).unwrap_or_default(),
        usage,
    })
}
