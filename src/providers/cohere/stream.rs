//! Cohere's v2 chat event stream → OpenAI `chat.completion.chunk`s, one event at a time.
//!
//! `message-start` gives the id and the first chunk (the role); `content-delta` gives text;
//! `tool-plan-delta` gives the plan a model writes before calling tools, sent as content (as
//! the non-streamed answer has it); `tool-call-start` gives a tool call's id and name (OpenAI
//! index 0, 1, … in order) and `tool-call-delta` its argument fragments; `message-end` gives
//! the finish reason and the usage, hence the chunk with `finish_reason`, the usage-only chunk
//! and the end. `content-start`, `content-end`, `tool-call-end`, `citation-*` and unknown
//! events add nothing. Memory per stream is a few strings, whatever its length.

use serde_json::{json, Value};

use super::{finish_reason, usage};
use crate::error::ApiError;
use crate::providers::calls::typed_event;
use crate::providers::shape::{self, Chunks};
use crate::providers::{truncated, ChatStream, Emit};
use crate::upstream::SseEvent;

/// The state of one translated stream.
pub struct StreamState {
    chunks: Chunks,
    /// Tool calls started so far (the next one's OpenAI index).
    tools: u64,
    started: bool,
}

impl StreamState {
    /// v2 events do not name the model: the chunks carry the one asked for.
    pub(super) fn new(model: &str) -> Self {
        StreamState {
            chunks: Chunks::new(String::new(), model.to_string()),
            tools: 0,
            started: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Emit {
        Emit::Chunk(self.chunks.delta(0, delta, finish))
    }
}

impl ChatStream for StreamState {
    fn on_event(&mut self, event: SseEvent) -> Result<Vec<Emit>, ApiError> {
        let (data, kind) = typed_event(&event)?;
        let kind = kind.as_str();
        let message = data
            .get("delta")
            .and_then(|d| d.get("message"))
            .unwrap_or(&Value::Null);
        let mut out = Vec::new();
        if kind == "message-start" {
            self.chunks.id = data
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
        }
        if kind.is_empty() {
            return Ok(out);
        }
        if !self.started {
            self.started = true;
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
        match kind {
            "content-delta" => {
                if let Some(t) = text(&message["content"]["text"]) {
                    out.push(self.chunk(json!({"content": t}), None));
                }
            }
            "tool-plan-delta" => {
                if let Some(t) = text(&message["tool_plan"]) {
                    out.push(self.chunk(json!({"content": t}), None));
                }
            }
            "tool-call-start" => {
                let call = &message["tool_calls"];
                let delta = shape::tool_call_start(
                    self.tools,
                    call.get("id"),
                    call["function"].get("name"),
                    call["function"]["arguments"].as_str().unwrap_or_default(),
                )?;
                self.tools += 1;
                out.push(self.chunk(delta, None));
            }
            "tool-call-delta" => {
                if self.tools == 0 {
                    return Err(ApiError::bad_gateway(
                        "upstream_bad_response",
                        "The provider sent tool-call arguments for a tool call it never started.",
                    ));
                }
                if let Some(args) = text(&message["tool_calls"]["function"]["arguments"]) {
                    let n = self.tools - 1;
                    out.push(self.chunk(
                        json!({"tool_calls": [{"index": n, "function": {"arguments": args}}]}),
                        None,
                    ));
                }
            }
            "message-end" => {
                let delta = data.get("delta").unwrap_or(&Value::Null);
                let reason = finish_reason(delta.get("finish_reason").and_then(Value::as_str))?;
                out.push(self.chunk(json!({}), Some(reason)));
                let usage = delta.get("usage").map(usage);
                out.push(Emit::Chunk(self.chunks.usage(&json!(usage))));
                out.push(Emit::Done);
            }
            _ => {} // message-start, content-start/-end, tool-call-end, citations, newer events
        }
        Ok(out)
    }

    /// `message-end` carries the finish reason and ends the stream: without it the answer was
    /// cut.
    fn finish(&mut self) -> Result<Vec<Emit>, ApiError> {
        Err(truncated())
    }
}

/// A non-empty string fragment.
fn text(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}
