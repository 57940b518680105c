//! OpenAI `chat.completion.chunk`s → the Responses event stream, one chunk at a time, every
//! event named (`event:`) and numbered (`sequence_number` from 0).
//!
//! The first chunk opens the response (`response.created`, `response.in_progress`).
//! `reasoning_content` streams as a `reasoning` item's summary
//! (`response.reasoning_summary_part.added`, `response.reasoning_summary_text.delta`), `content`
//! as a `message` item's `output_text` part (`response.output_item.added`,
//! `response.content_part.added`, `response.output_text.delta`), each tool call as a
//! `function_call` item (`response.function_call_arguments.delta`). A text or reasoning item is
//! closed (its `.done` events, then `response.output_item.done`) when the next kind begins;
//! function calls when the stream ends, in order. The end is `response.completed`, or
//! `response.incomplete` when the answer was cut, carrying the whole response with its usage;
//! a failure is `response.failed` with the error. Memory per stream: the output items and the
//! open item's text.

use serde_json::{json, Value};
use std::collections::BTreeMap;

use super::{error_code, finish, item_id, message_item, output_text, Keeper};
use crate::assembler::Seen;
use crate::error::ApiError;
use crate::ingress::Egress;

/// The text or reasoning item in progress.
struct Open {
    reasoning: bool,
    output_index: usize,
    id: String,
    text: String,
}

/// A function call in progress, by its chat tool-call index.
struct Call {
    output_index: usize,
    id: String,
    call_id: Value,
    name: Value,
    arguments: String,
}

pub struct Events {
    response: Value,
    keeper: Option<Keeper>,
    sequence: u64,
    started: bool,
    /// The output items, by output index (in-progress ones until they are done).
    output: Vec<Value>,
    open: Option<Open>,
    calls: BTreeMap<u64, Call>,
    finish_reason: Option<String>,
    usage: Option<Value>,
}

impl Events {
    pub fn new(response: Value, keeper: Option<Keeper>) -> Events {
        Events {
            response,
            keeper,
            sequence: 0,
            started: false,
            output: Vec::new(),
            open: None,
            calls: BTreeMap::new(),
            finish_reason: None,
            usage: None,
        }
    }

    /// Writes one event: its name as `type`, the next sequence number.
    fn event(&mut self, out: &mut Vec<u8>, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(data.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.response.clone();
        self.event(out, "response.created", json!({"response": response}));
        self.event(out, "response.in_progress", json!({"response": response}));
    }

    /// Makes a text (or reasoning) item the open one, closing the one before; returns its
    /// output index and id.
    fn open(&mut self, reasoning: bool, out: &mut Vec<u8>) -> (usize, String) {
        if let Some(open) = &self.open {
            if open.reasoning == reasoning {
                return (open.output_index, open.id.clone());
            }
        }
        self.close_open(out);
        let output_index = self.output.len();
        let (id, item) = if reasoning {
            let id = item_id("rs");
            (
                id.clone(),
                json!({"type": "reasoning", "id": id, "summary": []}),
            )
        } else {
            let id = item_id("msg");
            (id.clone(), message_item(&id, "in_progress", Vec::new()))
        };
        self.output.push(item.clone());
        self.event(
            out,
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        );
        if reasoning {
            self.event(
                out,
                "response.reasoning_summary_part.added",
                json!({"item_id": id, "output_index": output_index, "summary_index": 0,
                       "part": {"type": "summary_text", "text": ""}}),
            );
        } else {
            self.event(
                out,
                "response.content_part.added",
                json!({"item_id": id, "output_index": output_index, "content_index": 0,
                       "part": output_text("")}),
            );
        }
        self.open = Some(Open {
            reasoning,
            output_index,
            id: id.clone(),
            text: String::new(),
        });
        (output_index, id)
    }

    fn close_open(&mut self, out: &mut Vec<u8>) {
        let Some(Open {
            reasoning,
            output_index,
            id,
            text,
        }) = self.open.take()
        else {
            return;
        };
        let item = if reasoning {
            let part = json!({"type": "summary_text", "text": text});
            self.event(
                out,
                "response.reasoning_summary_text.done",
                json!({"item_id": id, "output_index": output_index, "summary_index": 0, "text": text}),
            );
            self.event(
                out,
                "response.reasoning_summary_part.done",
                json!({"item_id": id, "output_index": output_index, "summary_index": 0, "part": part}),
            );
            json!({"type": "reasoning", "id": id, "summary": [part]})
        } else {
            let part = output_text(&text);
            self.event(
                out,
                "response.output_text.done",
                json!({"item_id": id, "output_index": output_index, "content_index": 0,
                       "text": text, "logprobs": []}),
            );
            self.event(
                out,
                "response.content_part.done",
                json!({"item_id": id, "output_index": output_index, "content_index": 0, "part": part}),
            );
            message_item(&id, "completed", vec![part])
        };
        self.output[output_index] = item.clone();
        self.event(
            out,
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        );
    }

    fn close_calls(&mut self, out: &mut Vec<u8>) {
        for call in std::mem::take(&mut self.calls).into_values() {
            self.event(
                out,
                "response.function_call_arguments.done",
                json!({"item_id": call.id, "output_index": call.output_index,
                       "name": call.name, "arguments": call.arguments}),
            );
            let item = json!({
                "type": "function_call", "id": call.id, "call_id": call.call_id,
                "name": call.name, "arguments": call.arguments, "status": "completed",
            });
            self.output[call.output_index] = item.clone();
            self.event(
                out,
                "response.output_item.done",
                json!({"output_index": call.output_index, "item": item}),
            );
        }
    }

    fn tool_call(&mut self, call: &Value, out: &mut Vec<u8>) {
        let n = call["index"].as_u64().unwrap_or(0);
        if !self.calls.contains_key(&n) {
            self.close_open(out);
            let output_index = self.output.len();
            let id = item_id("fc");
            let call_id = call["id"]
                .as_str()
                .map_or_else(|| json!(format!("call_{}", item_id("gw"))), |c| json!(c));
            let name = json!(call["function"]["name"].as_str().unwrap_or_default());
            let item = json!({
                "type": "function_call", "id": id, "call_id": call_id, "name": name,
                "arguments": "", "status": "in_progress",
            });
            self.output.push(item.clone());
            self.event(
                out,
                "response.output_item.added",
                json!({"output_index": output_index, "item": item}),
            );
            self.calls.insert(
                n,
                Call {
                    output_index,
                    id,
                    call_id,
                    name,
                    arguments: String::new(),
                },
            );
        }
        let fragment = call["function"]["arguments"].as_str().unwrap_or_default();
        if fragment.is_empty() {
            return;
        }
        let Some(state) = self.calls.get_mut(&n) else {
            return;
        };
        state.arguments.push_str(fragment);
        let (id, output_index) = (state.id.clone(), state.output_index);
        self.event(
            out,
            "response.function_call_arguments.delta",
            json!({"item_id": id, "output_index": output_index, "delta": fragment}),
        );
    }

    /// Hands the final response to the keeper, before its event reaches the client.
    fn keep(&self, response: &Value) {
        if let Some(keep) = &self.keeper {
            keep(response);
        }
    }

    /// Ends the stream with `response.failed`.
    fn failed(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        self.start(out);
        let mut response = self.response.clone();
        response["status"] = json!("failed");
        response["output"] = Value::Array(std::mem::take(&mut self.output));
        response["error"] = json!({"code": code, "message": message});
        self.keep(&response);
        self.event(out, "response.failed", json!({"response": response}));
    }
}

impl Egress for Events {
    fn chunk(&mut self, data: &str, seen: &Seen, out: &mut Vec<u8>) {
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if seen.error {
            let message = chunk["error"]["message"]
                .as_str()
                .unwrap_or("The provider failed mid-stream.");
            self.failed("server_error", message, out);
            return;
        }
        self.start(out);
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return;
        };
        let delta = &choice["delta"];
        for (reasoning, key) in [(true, "reasoning_content"), (false, "content")] {
            let Some(text) = delta[key].as_str().filter(|t| !t.is_empty()) else {
                continue;
            };
            let (output_index, id) = self.open(reasoning, out);
            if let Some(open) = self.open.as_mut() {
                open.text.push_str(text);
            }
            if reasoning {
                self.event(
                    out,
                    "response.reasoning_summary_text.delta",
                    json!({"item_id": id, "output_index": output_index, "summary_index": 0, "delta": text}),
                );
            } else {
                self.event(
                    out,
                    "response.output_text.delta",
                    json!({"item_id": id, "output_index": output_index, "content_index": 0,
                           "delta": text, "logprobs": []}),
                );
            }
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            self.tool_call(call, out);
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(reason.to_string());
        }
    }

    fn done(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        self.close_open(out);
        self.close_calls(out);
        let mut response = self.response.clone();
        let output = std::mem::take(&mut self.output);
        finish(
            &mut response,
            output,
            self.finish_reason.as_deref(),
            self.usage.as_ref(),
        );
        let kind = if response["status"] == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.keep(&response);
        self.event(out, kind, json!({"response": response}));
    }

    fn fail(&mut self, error: &ApiError, out: &mut Vec<u8>) {
        self.failed(error_code(error.status), &error.message, out);
    }

    fn recorded(&self, completion: Value) -> Value {
        super::response(&self.response, &completion)
    }
}
