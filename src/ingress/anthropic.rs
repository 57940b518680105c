//! The Anthropic Messages ingress (`POST /v1/messages`, for Claude Code and the Anthropic
//! SDKs): the request to the internal one ([`request`]), the `chat.completion` back to a
//! Messages answer, chunks to Messages events ([`stream`]), errors to Anthropic's
//! `{"type":"error","error":{"type","message"}}` with its types and statuses; and, for a target
//! that is Anthropic itself, the provider call that carries the client's body untouched.
//!
//! This is the opposite direction of the Anthropic *dialect* (`providers::anthropic`, OpenAI →
//! Anthropic): the two share no code path, only knowledge of the wire.

pub mod request;
mod stream;

use serde_json::{json, Map, Value};

use super::{Egress, Ingress};
use crate::error::ApiError;
use crate::providers::{bad_response, calls, Api, Target};
use crate::upstream::Call;

/// `anthropic-version` when the client sent none.
const DEFAULT_VERSION: &str = "2023-06-01";

/// The Messages ingress; `model` is the name the client asked for (answers carry the
/// provider's own name when it gives one).
#[derive(Clone)]
pub struct Messages {
    pub model: String,
}

impl Ingress for Messages {
    fn reply(&self, completion: Vec<u8>) -> Result<Vec<u8>, ApiError> {
        let completion: Value = serde_json::from_slice(&completion)
            .map_err(|_| bad_response("the answer is not JSON"))?;
        Ok(self.message(&completion).to_string().into_bytes())
    }

    fn error(&self, error: &ApiError) -> (u16, Vec<u8>) {
        let (status, kind) = status_and_type(error.status);
        (
            status,
            error_object(kind, &error.message).to_string().into_bytes(),
        )
    }

    fn stream(&self, _wants_usage: bool) -> Box<dyn Egress> {
        Box::new(stream::Events::new(self.clone()))
    }
}

impl Messages {
    /// A `chat.completion` → a Messages answer: thinking, text, then tool_use blocks.
    fn message(&self, completion: &Value) -> Value {
        let choice = &completion["choices"][0];
        let message = &choice["message"];
        let mut content = Vec::new();
        if let Some(thinking) = message["reasoning_content"]
            .as_str()
            .filter(|t| !t.is_empty())
        {
            content.push(json!({"type": "thinking", "thinking": thinking, "signature": ""}));
        }
        if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
            content.push(json!({"type": "text", "text": text}));
        }
        for call in message["tool_calls"].as_array().into_iter().flatten() {
            let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
            // Anthropic's input is an object; arguments that are not one cannot be shown as one.
            let input = serde_json::from_str::<Value>(arguments)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({}));
            content.push(json!({
                "type": "tool_use",
                "id": call["id"],
                "name": call["function"]["name"],
                "input": input,
            }));
        }
        let model = completion["model"]
            .as_str()
            .filter(|m| !m.is_empty())
            .unwrap_or(&self.model);
        json!({
            "id": message_id(&completion["id"]),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason(choice["finish_reason"].as_str().unwrap_or("stop")),
            "stop_sequence": null,
            "usage": usage(completion.get("usage")),
        })
    }
}

/// A Messages id for a completion's id (`msg_` as Anthropic's are).
fn message_id(id: &Value) -> String {
    match id.as_str() {
        Some(id) if id.starts_with("msg_") => id.to_string(),
        Some(id) if !id.is_empty() => format!("msg_{id}"),
        _ => format!("msg_{}", uuid::Uuid::new_v4().simple()),
    }
}

/// OpenAI's `finish_reason` → Anthropic's `stop_reason`.
fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// OpenAI usage → Anthropic's: fresh input, cache reads, cache writes and output (zeros when
/// unknown).
fn usage(usage: Option<&Value>) -> Value {
    let n = |k: &str| usage.and_then(|u| u[k].as_u64()).unwrap_or(0);
    let detail = |k: &str| {
        usage
            .and_then(|u| u["prompt_tokens_details"][k].as_u64())
            .unwrap_or(0)
    };
    let (cached, written) = (detail("cached_tokens"), detail("cache_write_tokens"));
    json!({
        "input_tokens": n("prompt_tokens").saturating_sub(cached + written),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
        "output_tokens": n("completion_tokens"),
    })
}

/// The status and Anthropic error type a client gets for one of the gateway's statuses: 503
/// (overloaded) is Anthropic's 529 `overloaded_error`, other 5xx are `api_error`.
fn status_and_type(status: u16) -> (u16, &'static str) {
    match status {
        401 => (401, "authentication_error"),
        403 => (403, "permission_error"),
        404 => (404, "not_found_error"),
        413 => (413, "request_too_large"),
        429 => (429, "rate_limit_error"),
        503 | 529 => (529, "overloaded_error"),
        500..=599 => (status, "api_error"),
        _ => (status, "invalid_request_error"),
    }
}

/// Anthropic's error object (a body, or the data of an `error` event).
fn error_object(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// Whether a target serves Anthropic's Messages API itself, and so gets the client's Messages
/// body untouched.
pub fn is_native(target: &Target) -> bool {
    target.dialect().serves(Api::AnthropicMessages)
}

/// The call to Anthropic for a client's Messages request (`path`: `/v1/messages` or its
/// `count_tokens`): the client's body as it came (reserialized only when the model name
/// changes), its `anthropic-version` and `anthropic-beta`, and the gateway's key, never the
/// client's.
pub fn native_call(
    target: &Target,
    raw: &[u8],
    body: &Map<String, Value>,
    client_headers: &[(String, String)],
    path: &str,
    stream: bool,
) -> Call {
    let key = target.api_key().map(|k| ("x-api-key", k.to_string()));
    let mut headers = calls::headers(key, stream);
    let client = |name: &str| {
        client_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let version = client("anthropic-version").unwrap_or_else(|| DEFAULT_VERSION.into());
    headers.push(("anthropic-version", version));
    if let Some(beta) = client("anthropic-beta") {
        headers.push(("anthropic-beta", beta));
    }
    let body = if body.get("model").and_then(Value::as_str) == Some(&target.model) {
        raw.to_vec()
    } else {
        let mut renamed = body.clone();
        renamed.insert("model".into(), json!(target.model));
        serde_json::to_vec(&renamed).unwrap_or_default()
    };
    Call::post(format!("{}{path}", target.base_url()), headers, body)
}

#[cfg(test)]
mod tests;
