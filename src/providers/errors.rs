//! Provider error answers turned into the OpenAI error shape: the parts every dialect's
//! `parse_error` shares (the message when the body is unreadable, the error type a status stands
//! for, the `upstream_http_<status>` code of a provider's 5xx) and the whole reading of an
//! OpenAI-shaped error, which the OpenAI dialect, Azure and the built-in models answer with.
//! Which statuses a dialect keeps, and what else it reads of its provider's body, stay in its
//! own module.

use serde_json::Value;

use crate::error::ApiError;

/// The message for an error body the dialect could not read: its first 500 bytes.
pub fn raw_message(status: u16, body: &[u8]) -> String {
    let raw = String::from_utf8_lossy(&body[..body.len().min(500)]);
    format!("The provider answered HTTP {status}: {}", raw.trim())
}

/// The status the client gets for a provider's error status, as OpenAI-shaped providers (and
/// Gemini) are relayed: 4xx (429 included) pass through; a 5xx becomes 502, except 503
/// (overloaded, retry later) and 504 (timeout), which keep their meaning.
pub fn relayed_status(status: u16) -> u16 {
    match status {
        400..=499 | 503 | 504 => status,
        _ => 502,
    }
}

/// The OpenAI error type for the status the client gets, for a provider whose errors name no
/// type of their own (Cohere, Gemini, Bedrock).
pub fn kind_of_status(client_status: u16) -> &'static str {
    match client_status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        500..=599 => "upstream_error",
        _ => "invalid_request_error",
    }
}

/// The error type when a provider that names types left it out: the provider's fault
/// (`upstream_error`) from 500 on, else the request's (`invalid_request_error`).
pub fn fault_kind(client_status: u16) -> &'static str {
    if client_status >= 500 {
        "upstream_error"
    } else {
        "invalid_request_error"
    }
}

/// The code that tells a provider's 5xx apart once it is reported as 502 (`upstream_http_500`);
/// `None` below 500.
pub fn upstream_code(status: u16) -> Option<String> {
    (status >= 500).then(|| format!("upstream_http_{status}"))
}

/// Turns an OpenAI-shaped error answer into the gateway's error, keeping its message, type,
/// param and code; the status as [`relayed_status`] has it.
pub fn openai_error(status: u16, body: &[u8]) -> ApiError {
    let client_status = relayed_status(status);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().map(|v| v.get("error").unwrap_or(v));
    let text = |key: &str| {
        error.and_then(|e| e.get(key)).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let message = match error {
        Some(Value::String(s)) => s.clone(),
        _ => text("message").unwrap_or_else(|| raw_message(status, body)),
    };
    let kind = text("type").unwrap_or_else(|| fault_kind(client_status).into());
    let mut e = ApiError::new(client_status, &kind, None, message);
    e.param = text("param");
    e.code = text("code").or_else(|| upstream_code(status));
    e
}
