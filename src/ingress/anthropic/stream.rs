//! OpenAI `chat.completion.chunk`s → Anthropic's Messages event stream, one chunk at a time.
//!
//! The first chunk opens the message (`message_start`, then a `ping`); `reasoning_content`
//! becomes a `thinking` block (`thinking_delta`), `content` a `text` block (`text_delta`), each
//! tool call a `tool_use` block whose arguments stream as `input_json_delta`. A block is closed
//! (`content_block_stop`) when the next kind begins. The finish reason and the usage (OpenAI's
//! usage chunk comes after it) are held until the stream is complete, then sent as one
//! `message_delta`, followed by `message_stop`. Errors are `error` events. Memory per stream:
//! a few strings and the tool-index map.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{error_object, message_id, stop_reason, usage, Messages};
use crate::assembler::Seen;
use crate::error::ApiError;
use crate::ingress::Egress;

/// The kind of the content block in progress.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Thinking,
    Text,
    /// A tool call, by its OpenAI index.
    Tool(u64),
}

pub struct Events {
    /// The route's ingress (the model the client asked for), for the record.
    ingress: Messages,
    /// The model the client asked for, until the provider names its own.
    model: String,
    started: bool,
    /// The open block: its Anthropic index and kind.
    open: Option<(u64, Kind)>,
    next_index: u64,
    /// Anthropic block index of each OpenAI tool-call index.
    tools: HashMap<u64, u64>,
    stop_reason: Option<&'static str>,
    usage: Option<Value>,
}

impl Events {
    pub fn new(ingress: Messages) -> Events {
        Events {
            model: ingress.model.clone(),
            ingress,
            started: false,
            open: None,
            next_index: 0,
            tools: HashMap::new(),
            stop_reason: None,
            usage: None,
        }
    }

    fn start(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        if let Some(model) = chunk["model"].as_str().filter(|m| !m.is_empty()) {
            self.model = model.to_string();
        }
        let message = json!({
            "id": message_id(&chunk["id"]),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        });
        event(
            out,
            "message_start",
            json!({"type": "message_start", "message": message}),
        );
        event(out, "ping", json!({"type": "ping"}));
    }

    /// Makes `kind` the open block (closing the previous one); its index.
    fn open(&mut self, kind: Kind, out: &mut Vec<u8>, block: impl FnOnce() -> Value) -> u64 {
        if let Some((index, open)) = self.open {
            if open == kind {
                return index;
            }
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        event(
            out,
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block()}),
        );
        index
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open.take() {
            event(
                out,
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    fn delta(out: &mut Vec<u8>, index: u64, delta: Value) {
        event(
            out,
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": delta}),
        );
    }

    fn tool_call(&mut self, call: &Value, out: &mut Vec<u8>) {
        let n = call["index"].as_u64().unwrap_or(0);
        let arguments = call["function"]["arguments"].as_str().unwrap_or_default();
        let index = match self.tools.get(&n) {
            // A later fragment of a call whose block may already be closed: its index stands.
            Some(&index) => index,
            None => {
                let index = self.open(Kind::Tool(n), out, || {
                    json!({
                        "type": "tool_use",
                        "id": call["id"].as_str().map_or_else(|| format!("toolu_{n}"), str::to_string),
                        "name": call["function"]["name"].as_str().unwrap_or_default(),
                        "input": {},
                    })
                });
                self.tools.insert(n, index);
                index
            }
        };
        if !arguments.is_empty() {
            Self::delta(
                out,
                index,
                json!({"type": "input_json_delta", "partial_json": arguments}),
            );
        }
    }
}

impl Egress for Events {
    fn chunk(&mut self, data: &str, seen: &Seen, out: &mut Vec<u8>) {
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if seen.error {
            let e = &chunk["error"];
            let message = e["message"]
                .as_str()
                .unwrap_or("The provider failed mid-stream.");
            event(out, "error", error_object("api_error", message));
            return;
        }
        self.start(&chunk, out);
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return;
        };
        let delta = &choice["delta"];
        if let Some(text) = delta["reasoning_content"]
            .as_str()
            .filter(|t| !t.is_empty())
        {
            let index = self.open(
                Kind::Thinking,
                out,
                || json!({"type": "thinking", "thinking": "", "signature": ""}),
            );
            Self::delta(
                out,
                index,
                json!({"type": "thinking_delta", "thinking": text}),
            );
        }
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            let index = self.open(Kind::Text, out, || json!({"type": "text", "text": ""}));
            Self::delta(out, index, json!({"type": "text_delta", "text": text}));
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            self.tool_call(call, out);
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.stop_reason = Some(stop_reason(reason));
        }
    }

    fn done(&mut self, out: &mut Vec<u8>) {
        self.start(&Value::Null, out);
        self.close(out);
        let usage = usage(self.usage.as_ref());
        event(
            out,
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason.unwrap_or("end_turn"), "stop_sequence": null},
                "usage": usage,
            }),
        );
        event(out, "message_stop", json!({"type": "message_stop"}));
    }

    fn fail(&mut self, error: &ApiError, out: &mut Vec<u8>) {
        let (_, kind) = super::status_and_type(error.status);
        event(out, "error", error_object(kind, &error.message));
    }

    fn recorded(&self, completion: Value) -> Value {
        self.ingress.message(&completion)
    }
}

/// Writes one named SSE event.
fn event(out: &mut Vec<u8>, name: &str, data: Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}
