//! ConverseStream events (decoded from the binary event stream into [`SseEvent`]s named by
//! their `:event-type`) → OpenAI `chat.completion.chunk`s, one event at a time.
//!
//! `messageStart` gives the first chunk (the role); `contentBlockStart` with a `toolUse`
//! starts a tool call (id and name; numbered 0, 1, … among tool calls); `contentBlockDelta`
//! gives text, tool-input JSON fragments, or reasoning text (`reasoning_content`);
//! `messageStop` gives the chunk with `finish_reason`; `metadata` gives the usage-only chunk
//! and the end. An exception (`throttlingException`, …) is an error.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{error_for, finish_reason, status_of, usage};
use crate::error::ApiError;
use crate::providers::shape::{self, Chunks};
use crate::providers::{bad_response, truncated, ChatStream, Emit};
use crate::upstream::SseEvent;

/// Whether an event is an exception or error message (`throttlingException`, an
/// `:error-code`), not one of ConverseStream's events.
fn is_error(kind: &str, data: &Value) -> bool {
    kind.to_ascii_lowercase().ends_with("exception")
        || (kind != "contentBlockStop" && !kind.is_empty() && data.get("message").is_some())
}

/// The state of one translated stream.
pub struct StreamState {
    chunks: Chunks,
    /// Converse content-block index → OpenAI tool-call index.
    tools: HashMap<u64, u64>,
    started: bool,
    /// `messageStop` came: the answer is complete.
    stopped: bool,
}

impl StreamState {
    pub(super) fn new(model: &str) -> Self {
        StreamState {
            chunks: Chunks::new(shape::completion_id(), model.to_string()),
            tools: HashMap::new(),
            started: false,
            stopped: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Emit {
        Emit::Chunk(self.chunks.delta(0, delta, finish))
    }

    /// The role chunk, once, before anything else.
    fn start(&mut self, out: &mut Vec<Emit>) {
        if !self.started {
            self.started = true;
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
    }
}

impl ChatStream for StreamState {
    fn on_event(&mut self, event: SseEvent) -> Result<Vec<Emit>, ApiError> {
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| bad_response(format_args!("a stream event is not JSON: {e}")))?;
        let kind = event.event.as_deref().unwrap_or_default();
        let index = data
            .get("contentBlockIndex")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let mut out = Vec::new();
        match kind {
            "messageStart" => self.start(&mut out),
            "contentBlockStart" => {
                self.start(&mut out);
                if let Some(tool) = data.pointer("/start/toolUse") {
                    let n = self.tools.len() as u64;
                    let delta =
                        shape::tool_call_start(n, tool.get("toolUseId"), tool.get("name"), "")?;
                    self.tools.insert(index, n);
                    out.push(self.chunk(delta, None));
                }
            }
            "contentBlockDelta" => {
                self.start(&mut out);
                let delta = data.get("delta").unwrap_or(&Value::Null);
                if let Some(text) = delta.get("text").and_then(Value::as_str) {
                    out.push(self.chunk(json!({"content": text}), None));
                } else if let Some(input) = delta.pointer("/toolUse/input").and_then(Value::as_str)
                {
                    let n = self.tools.get(&index).copied().unwrap_or(0);
                    out.push(self.chunk(
                        json!({"tool_calls": [{"index": n, "function": {"arguments": input}}]}),
                        None,
                    ));
                } else if let Some(text) = delta
                    .pointer("/reasoningContent/text")
                    .and_then(Value::as_str)
                {
                    out.push(self.chunk(json!({"reasoning_content": text}), None));
                }
            }
            "messageStop" => {
                self.start(&mut out);
                self.stopped = true;
                let reason = finish_reason(data.get("stopReason").and_then(Value::as_str));
                out.push(self.chunk(json!({}), Some(reason)));
            }
            "metadata" => {
                if let Some(u) = data.get("usage") {
                    out.push(Emit::Chunk(self.chunks.usage(&usage(u))));
                }
                out.push(Emit::Done);
            }
            k if is_error(k, &data) => {
                let message = data
                    .get("message")
                    .or_else(|| data.get("Message"))
                    .and_then(Value::as_str)
                    .unwrap_or("The provider reported an error in the stream.")
                    .to_string();
                return Err(error_for(status_of(k), Some(k), message));
            }
            _ => {} // contentBlockStop, and events added after this was written
        }
        Ok(out)
    }

    /// `metadata` (the usage) ends the stream; a body that ends after `messageStop` but before
    /// it still holds the whole answer.
    fn finish(&mut self) -> Result<Vec<Emit>, ApiError> {
        if self.stopped {
            Ok(vec![Emit::Done])
        } else {
            Err(truncated())
        }
    }
}
