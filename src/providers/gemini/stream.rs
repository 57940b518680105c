//! `streamGenerateContent?alt=sse` → OpenAI chunks. Each event is a whole
//! `GenerateContentResponse` holding the next piece of each candidate. Out come chunks with
//! one id: the role first, then content, reasoning and tool-call deltas (each call whole, with
//! its index), the finish reason; and once every choice has finished, the usage-only chunk
//! (from the last `usageMetadata`) and the end of the stream, since Gemini sends no
//! terminal event of its own.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{candidate_index, candidates, completion_id, error_of, finish_reason, usage, Turn};
use crate::error::ApiError;
use crate::providers::calls::event_json;
use crate::providers::errors::relayed_status;
use crate::providers::shape::Chunks;
use crate::providers::{bad_response, truncated, ChatStream, Emit};
use crate::upstream::SseEvent;

#[derive(Default)]
struct Choice {
    role_sent: bool,
    calls: usize,
    finished: bool,
}

pub struct StreamState {
    /// The id is set by the first event.
    chunks: Chunks,
    started: bool,
    choices: BTreeMap<u64, Choice>,
    usage: Option<Value>,
    done: bool,
}

impl StreamState {
    /// `model`: the name reported when the provider names no `modelVersion`.
    pub(super) fn new(model: &str) -> StreamState {
        StreamState {
            chunks: Chunks::new(String::new(), model.to_string()),
            started: false,
            choices: BTreeMap::new(),
            usage: None,
            done: false,
        }
    }

    fn chunk(&self, index: u64, delta: Value, finish: Option<&str>) -> Value {
        self.chunks.delta(index, delta, finish)
    }
}

impl ChatStream for StreamState {
    fn on_event(&mut self, event: SseEvent) -> Result<Vec<Emit>, ApiError> {
        if self.done || event.data.trim().is_empty() {
            return Ok(Vec::new());
        }
        let answer = event_json(&event)?;
        if let Some(error) = answer.get("error").filter(|e| e.is_object()) {
            let status = error
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(500);
            return Err(error_of(relayed_status(status), status, Some(error), b""));
        }
        if !answer.is_object() {
            return Err(bad_response("a stream event is not a JSON object"));
        }
        if !self.started {
            self.started = true;
            self.chunks.id = completion_id(&answer);
        }
        if let Some(v) = answer.get("modelVersion").and_then(Value::as_str) {
            self.chunks.model = v.to_string();
        }
        if let Some(meta) = answer.get("usageMetadata") {
            self.usage = Some(usage(meta));
        }
        let mut out = Vec::new();
        for (position, candidate) in candidates(&answer).iter().enumerate() {
            let index = candidate_index(candidate, position);
            let choice = self.choices.entry(index).or_default();
            if choice.finished {
                continue;
            }
            let turn = Turn::read(candidate, index, choice.calls);
            let mut delta = json!({});
            if !choice.role_sent {
                delta["role"] = json!("assistant");
                delta["content"] = json!("");
                choice.role_sent = true;
            }
            if !turn.text.is_empty() {
                delta["content"] = json!(turn.text);
            }
            if !turn.reasoning.is_empty() {
                delta["reasoning_content"] = json!(turn.reasoning);
            }
            if !turn.calls.is_empty() {
                if turn.text.is_empty() && delta.get("content").is_some() {
                    delta["content"] = Value::Null;
                }
                let calls: Vec<Value> = turn
                    .calls
                    .into_iter()
                    .enumerate()
                    .map(|(k, mut call)| {
                        call["index"] = json!(choice.calls + k);
                        call
                    })
                    .collect();
                choice.calls += calls.len();
                delta["tool_calls"] = Value::Array(calls);
            }
            let delta_has_something = delta.as_object().is_some_and(|d| !d.is_empty());
            let reason = candidate.get("finishReason").and_then(Value::as_str);
            let choice_calls = choice.calls;
            if reason.is_some() {
                choice.finished = true;
            }
            if delta_has_something {
                out.push(Emit::Chunk(self.chunk(index, delta, None)));
            }
            if let Some(reason) = reason {
                let finish = finish_reason(reason, choice_calls > 0);
                out.push(Emit::Chunk(self.chunk(index, json!({}), Some(finish))));
            }
        }
        if self.choices.is_empty() && answer.pointer("/promptFeedback/blockReason").is_some() {
            // The prompt itself was blocked: one empty choice, filtered.
            self.choices.insert(
                0,
                Choice {
                    role_sent: true,
                    calls: 0,
                    finished: true,
                },
            );
            out.push(Emit::Chunk(self.chunk(
                0,
                json!({"role": "assistant", "content": ""}),
                None,
            )));
            out.push(Emit::Chunk(self.chunk(
                0,
                json!({}),
                Some("content_filter"),
            )));
        }
        if !self.choices.is_empty() && self.choices.values().all(|c| c.finished) {
            self.done = true;
            if let Some(u) = &self.usage {
                out.push(Emit::Chunk(self.chunks.usage(u)));
            }
            out.push(Emit::Done);
        }
        Ok(out)
    }

    /// Gemini has no terminal event: the stream ends itself once every choice finished, so a
    /// body that ends before that was cut.
    fn finish(&mut self) -> Result<Vec<Emit>, ApiError> {
        Err(truncated())
    }
}
