//! The OpenAI Responses ingress (`POST /v1/responses`, the default of the AI SDK's OpenAI
//! provider, the Agents SDK and `responses.create`) for providers that do not serve it: the
//! request to the internal chat request ([`request`]), the `chat.completion` back to a
//! `response` object (reasoning, message and `function_call` output items; `incomplete` when
//! cut by `max_output_tokens`), chunks to the Responses event stream ([`stream`]), errors in
//! OpenAI's error shape. The response object echoes the request (instructions, tools, sampling,
//! `store`, `previous_response_id`, metadata) as OpenAI's does; its usage is
//! `input_tokens`/`output_tokens` with cached and reasoning tokens.
//!
//! The response a call ends with (answer or stream) is handed to the handler's [`Keeper`]
//! before the client gets it, so a client that has its answer finds it stored.

pub mod request;
mod stream;

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::{Egress, Ingress};
use crate::error::ApiError;
use crate::providers::{bad_response, shape};

/// A fresh item or response id (`msg_…`, `fc_…`, `resp_…`).
pub fn item_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// What keeps the response a call ended with (the handler's store).
pub type Keeper = Arc<dyn Fn(&Value) + Send + Sync>;

/// The Responses ingress for one request.
pub struct Responses {
    /// The response object as the request makes it, before any output (its id is known
    /// before any call: the stream's first event carries it).
    template: Value,
    /// Keeps the response the call ended with (none: `store: false`).
    keeper: Option<Keeper>,
}

impl Responses {
    /// The ingress of a validated request for `model`, with the id its response will have.
    pub fn new(
        id: String,
        model: &str,
        body: &Map<String, Value>,
        keeper: Option<Keeper>,
    ) -> Responses {
        let field = |k: &str, default: Value| {
            body.get(k)
                .filter(|v| !v.is_null())
                .cloned()
                .unwrap_or(default)
        };
        let effort = body
            .get("reasoning")
            .map(|r| r["effort"].clone())
            .unwrap_or(Value::Null);
        let mut template = json!({
            "id": id,
            "object": "response",
            "created_at": shape::unix_now(),
            "status": "in_progress",
            "error": null,
            "incomplete_details": null,
            "instructions": field("instructions", Value::Null),
            "max_output_tokens": field("max_output_tokens", Value::Null),
            "model": model,
            "output": [],
            "parallel_tool_calls": field("parallel_tool_calls", json!(true)),
            "previous_response_id": field("previous_response_id", Value::Null),
            "reasoning": {"effort": effort, "summary": null},
            "store": field("store", json!(true)),
            "temperature": field("temperature", json!(1.0)),
            "text": field("text", json!({"format": {"type": "text"}})),
            "tool_choice": field("tool_choice", json!("auto")),
            "tools": echoed_tools(body.get("tools")),
            "top_p": field("top_p", json!(1.0)),
            "truncation": field("truncation", json!("disabled")),
            "metadata": field("metadata", json!({})),
        });
        // `user` and `usage` are strings and objects in the schema, never null: absent until set.
        if let Some(user) = body.get("user").filter(|u| u.is_string()) {
            template["user"] = user.clone();
        }
        Responses { template, keeper }
    }

    /// An empty ingress, for a request refused before it was read.
    pub fn unread() -> Responses {
        Responses {
            template: Value::Null,
            keeper: None,
        }
    }
}

/// A `chat.completion` → the response object, on the request's `template`.
fn response(template: &Value, completion: &Value) -> Value {
    let choice = &completion["choices"][0];
    let output = output_items(&choice["message"]);
    let mut response = template.clone();
    finish(
        &mut response,
        output,
        choice["finish_reason"].as_str(),
        completion.get("usage"),
    );
    response
}

/// The request's tools as a response shows them: function tools with their `strict` and
/// `parameters` (null when not given), others as sent.
fn echoed_tools(tools: Option<&Value>) -> Value {
    let tools = tools.and_then(Value::as_array).into_iter().flatten();
    tools
        .map(|tool| {
            let mut tool = tool.clone();
            if tool["type"] == "function" {
                for key in ["strict", "parameters", "description"] {
                    if tool.get(key).is_none() {
                        tool[key] = Value::Null;
                    }
                }
            }
            tool
        })
        .collect()
}

/// The output items of an assistant message: its reasoning, its text (or refusal), then its
/// tool calls as `function_call` items.
fn output_items(message: &Value) -> Vec<Value> {
    let mut items = Vec::new();
    if let Some(text) = message["reasoning_content"]
        .as_str()
        .filter(|t| !t.is_empty())
    {
        items.push(json!({
            "type": "reasoning", "id": item_id("rs"),
            "summary": [{"type": "summary_text", "text": text}],
        }));
    }
    let text = message["content"].as_str().filter(|t| !t.is_empty());
    let refusal = message["refusal"].as_str().filter(|t| !t.is_empty());
    if text.is_some() || refusal.is_some() {
        let part = match (text, refusal) {
            (Some(text), _) => output_text(text),
            (None, refusal) => json!({"type": "refusal", "refusal": refusal}),
        };
        items.push(message_item(&item_id("msg"), "completed", vec![part]));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        items.push(json!({
            "type": "function_call",
            "id": item_id("fc"),
            "call_id": call["id"],
            "name": call["function"]["name"],
            "arguments": call["function"]["arguments"].as_str().unwrap_or("{}"),
            "status": "completed",
        }));
    }
    items
}

/// An `output_text` content part.
fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// An assistant `message` output item.
fn message_item(id: &str, status: &str, content: Vec<Value>) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content})
}

/// Completes a response object: its output, its status from the finish reason (`length` and
/// `content_filter` make it `incomplete`, with the reason), and its usage.
fn finish(
    response: &mut Value,
    output: Vec<Value>,
    finish_reason: Option<&str>,
    usage: Option<&Value>,
) {
    let incomplete = match finish_reason {
        Some("length") => Some("max_output_tokens"),
        Some("content_filter") => Some("content_filter"),
        _ => None,
    };
    response["output"] = Value::Array(output);
    match incomplete {
        Some(reason) => {
            response["status"] = json!("incomplete");
            response["incomplete_details"] = json!({"reason": reason});
        }
        None => {
            response["status"] = json!("completed");
            response["completed_at"] = json!(shape::unix_now());
        }
    }
    if let Some(usage) = usage.filter(|u| u.is_object()) {
        response["usage"] = responses_usage(usage);
    }
}

/// OpenAI chat usage → the Responses usage.
pub fn responses_usage(usage: &Value) -> Value {
    let n = |k: &str| usage[k].as_u64().unwrap_or(0);
    let (input, output) = (n("prompt_tokens"), n("completion_tokens"));
    let detail = |k: &str| usage["prompt_tokens_details"][k].as_u64().unwrap_or(0);
    json!({
        "input_tokens": input,
        "input_tokens_details": {
            "cached_tokens": detail("cached_tokens"),
            "cache_write_tokens": detail("cache_write_tokens"),
        },
        "output_tokens": output,
        "output_tokens_details": {
            "reasoning_tokens": usage["completion_tokens_details"]["reasoning_tokens"].as_u64().unwrap_or(0)
        },
        "total_tokens": usage["total_tokens"].as_u64().unwrap_or(input + output),
    })
}

/// A failed response's `error.code` for a gateway status (the codes the schema allows).
fn error_code(status: u16) -> &'static str {
    match status {
        429 => "rate_limit_exceeded",
        400 | 413 | 422 => "invalid_prompt",
        _ => "server_error",
    }
}

impl Ingress for Responses {
    fn reply(&self, completion: Vec<u8>) -> Result<Vec<u8>, ApiError> {
        let completion: Value = serde_json::from_slice(&completion)
            .map_err(|_| bad_response("the answer is not JSON"))?;
        let response = response(&self.template, &completion);
        if let Some(keep) = &self.keeper {
            keep(&response);
        }
        Ok(response.to_string().into_bytes())
    }

    /// OpenAI's error shape, a parameter named as the client sent it (`reasoning.effort`, not
    /// the internal request's `reasoning_effort`).
    fn error(&self, error: &ApiError) -> (u16, Vec<u8>) {
        let client_name = match error.param.as_deref() {
            Some("reasoning_effort") => Some("reasoning.effort"),
            Some("max_completion_tokens") => Some("max_output_tokens"),
            Some("response_format") => Some("text.format"),
            _ => None,
        };
        match client_name {
            Some(name) => {
                let mut renamed = error.clone();
                renamed.param = Some(name.to_string());
                (error.status, renamed.to_body())
            }
            None => (error.status, error.to_body()),
        }
    }

    fn stream(&self, _wants_usage: bool) -> Box<dyn Egress> {
        Box::new(stream::Events::new(
            self.template.clone(),
            self.keeper.clone(),
        ))
    }
}

#[cfg(test)]
mod tests;
