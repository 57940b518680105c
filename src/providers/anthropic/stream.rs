//! Anthropic's Messages event stream → OpenAI `chat.completion.chunk`s, one event at a time.
//!
//! `message_start` gives the id, model and input usage, and the first chunk (the role);
//! `content_block_start`/`content_block_delta` give text (`text_delta`), tool calls
//! (`tool_use` then `input_json_delta` fragments, numbered 0, 1, … among tool calls) and
//! reasoning (`thinking_delta`, sent as `reasoning_content`, never as content);
//! `message_delta` gives the stop reason (the chunk with `finish_reason`) and the output usage;
//! `message_stop` gives the usage-only chunk and the end. `ping` and unknown events are
//! ignored; an `error` event is an error. Memory per stream is a few strings, whatever its
//! length.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{error_for, finish_reason, status_of, usage, JSON_TOOL};
use crate::error::ApiError;
use crate::providers::calls::typed_event;
use crate::providers::shape::{self, Chunks};
use crate::providers::{truncated, ChatStream, Emit};
use crate::upstream::SseEvent;

/// What a content block of the message is, by its Anthropic index.
enum Block {
    Text,
    /// A tool call, with its OpenAI index.
    Tool(u64),
    /// The forced `response_format` tool: its input is the answer's content.
    Json,
    Thinking,
    Other,
}

/// The state of one translated stream.
pub struct StreamState {
    chunks: Chunks,
    blocks: HashMap<u64, Block>,
    tools: u64,
    json_mode: bool,
    usage: Value,
    finished: bool,
}

impl Default for StreamState {
    fn default() -> Self {
        StreamState {
            chunks: Chunks::new(String::new(), String::new()),
            blocks: HashMap::new(),
            tools: 0,
            json_mode: false,
            usage: json!({}),
            finished: false,
        }
    }
}

impl ChatStream for StreamState {
    fn on_event(&mut self, event: SseEvent) -> Result<Vec<Emit>, ApiError> {
        let (data, kind) = typed_event(&event)?;
        let kind = kind.as_str();
        let mut out = Vec::new();
        match kind {
            "message_start" => {
                let message = data.get("message").unwrap_or(&Value::Null);
                let text = |k: &str| message.get(k).and_then(Value::as_str).unwrap_or_default();
                self.chunks.id = text("id").to_string();
                self.chunks.model = text("model").to_string();
                if let Some(u) = message.get("usage") {
                    self.merge_usage(u);
                }
                out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
            }
            "content_block_start" => {
                let index = index_of(&data)?;
                let block = data.get("content_block").unwrap_or(&Value::Null);
                let (kind, delta) = match block.get("type").and_then(Value::as_str) {
                    Some("text") => (Block::Text, text_delta("content", &block["text"])),
                    Some("thinking") => (
                        Block::Thinking,
                        text_delta("reasoning_content", &block["thinking"]),
                    ),
                    Some("tool_use") if block["name"] == JSON_TOOL => {
                        self.json_mode = true;
                        (
                            Block::Json,
                            initial_input(block).map(|a| json!({"content": a})),
                        )
                    }
                    Some("tool_use") => {
                        let n = self.tools;
                        let arguments = initial_input(block).unwrap_or_default();
                        let call = shape::tool_call_start(
                            n,
                            block.get("id"),
                            block.get("name"),
                            &arguments,
                        )?;
                        self.tools += 1;
                        (Block::Tool(n), Some(call))
                    }
                    _ => (Block::Other, None),
                };
                self.blocks.insert(index, kind);
                if let Some(delta) = delta {
                    out.push(self.chunk(delta, None));
                }
            }
            "content_block_delta" => {
                let index = index_of(&data)?;
                let delta = data.get("delta").unwrap_or(&Value::Null);
                let fragment = match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => &delta["text"],
                    Some("thinking_delta") => &delta["thinking"],
                    Some("input_json_delta") => &delta["partial_json"],
                    _ => &Value::Null, // signature_delta, citations_delta, …
                };
                let chunk = match self.blocks.get(&index) {
                    Some(Block::Text) => text_delta("content", fragment),
                    Some(Block::Json) => text_delta("content", fragment),
                    Some(Block::Thinking) => text_delta("reasoning_content", fragment),
                    Some(Block::Tool(n)) => fragment
                        .as_str()
                        .filter(|s| !s.is_empty())
                        .map(|s| json!({"tool_calls": [{"index": n, "function": {"arguments": s}}]})),
                    Some(Block::Other) => None,
                    None => {
                        return Err(ApiError::bad_gateway(
                            "upstream_bad_response",
                            format!("The provider sent a delta for content block {index}, which it never started."),
                        ))
                    }
                };
                if let Some(delta) = chunk {
                    out.push(self.chunk(delta, None));
                }
            }
            "message_delta" => {
                if let Some(u) = data.get("usage") {
                    self.merge_usage(u);
                }
                let stop = data
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str);
                if !self.finished {
                    self.finished = true;
                    let reason = finish_reason(stop, self.json_mode);
                    out.push(self.chunk(json!({}), Some(reason)));
                }
            }
            "message_stop" => {
                if !self.finished {
                    self.finished = true;
                    out.push(self.chunk(json!({}), Some("stop")));
                }
                out.extend(self.end());
            }
            "error" => {
                let error = data.get("error").unwrap_or(&Value::Null);
                let field = |k: &str| error.get(k).and_then(Value::as_str).map(str::to_string);
                let kind = field("type");
                let status = status_of(kind.as_deref().unwrap_or_default());
                let message = field("message")
                    .unwrap_or_else(|| "The provider reported an error in the stream.".into());
                return Err(error_for(status, kind, message));
            }
            _ => {} // ping, content_block_stop, and events added after this was written
        }
        Ok(out)
    }

    /// The body ended without `message_stop`: complete only when the stop reason came.
    fn finish(&mut self) -> Result<Vec<Emit>, ApiError> {
        if self.finished {
            Ok(self.end().collect())
        } else {
            Err(truncated())
        }
    }
}

impl StreamState {
    /// The usage-only chunk and the end of the stream.
    fn end(&self) -> impl Iterator<Item = Emit> {
        [
            Emit::Chunk(self.chunks.usage(&usage(&self.usage))),
            Emit::Done,
        ]
        .into_iter()
    }

    /// Usage fields given later replace earlier ones (`message_delta` repeats them in full).
    fn merge_usage(&mut self, u: &Value) {
        if let (Some(acc), Some(new)) = (self.usage.as_object_mut(), u.as_object()) {
            for (k, v) in new {
                if v.is_u64() {
                    acc.insert(k.clone(), v.clone());
                }
            }
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Emit {
        Emit::Chunk(self.chunks.delta(0, delta, finish))
    }
}

fn index_of(data: &Value) -> Result<u64, ApiError> {
    data.get("index").and_then(Value::as_u64).ok_or_else(|| {
        ApiError::bad_gateway(
            "upstream_bad_response",
            "The provider sent a content block event without an index.",
        )
    })
}

/// `{field: text}` when the text is a non-empty string.
fn text_delta(field: &str, text: &Value) -> Option<Value> {
    text.as_str()
        .filter(|s| !s.is_empty())
        .map(|s| json!({ field: s }))
}

/// A `tool_use` block's input given at its start (normally `{}`, then streamed as deltas).
fn initial_input(block: &Value) -> Option<String> {
    block
        .get("input")
        .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
        .map(Value::to_string)
}
