//! The OpenAI dialect, spoken by OpenAI and every OpenAI-compatible server (vLLM, Ollama,
//! LM Studio, another gateway): requests are forwarded with unknown fields untouched, only the
//! model name set and usage requested for streams; responses and stream chunks are relayed as
//! received. The stream state learns the usage and finish reason from each chunk and drops the
//! usage-only chunk the client did not ask for.

use serde_json::{json, Map, Value};

use crate::assembler::Assembler;
use crate::config::Upstream;
use crate::error::ApiError;
use crate::upstream::{Answer, Call};

/// Response headers of the provider that are passed on to the client.
pub const FORWARDED_HEADERS: &[&str] = &[
    "retry-after",
    "retry-after-ms",
    "x-should-retry",
    "openai-processing-ms",
    "openai-version",
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
];

/// The provider's response headers that are passed on to the client.
pub fn forwarded_headers(answer: &Answer) -> Vec<(String, String)> {
    FORWARDED_HEADERS
        .iter()
        .filter_map(|name| answer.header(name).map(|v| (name.to_string(), v)))
        .collect()
}

/// The request body as sent upstream: the client's, with the provider's model name, and for
/// streams `stream_options.include_usage` forced on so usage is always known.
pub fn chat_body(mut body: Map<String, Value>, model: &str, stream: bool) -> Vec<u8> {
    body.insert("model".into(), Value::String(model.into()));
    if stream {
        let options = body.entry("stream_options").or_insert_with(|| json!({}));
        if !options.is_object() {
            *options = json!({});
        }
        options["include_usage"] = Value::Bool(true);
    }
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The embeddings body as sent upstream: the client's with the provider's model name.
pub fn embeddings_body(mut body: Map<String, Value>, model: &str) -> Vec<u8> {
    body.insert("model".into(), Value::String(model.into()));
    serde_json::to_vec(&body).unwrap_or_default()
}

/// A POST to `{base}{path}` with the key as a bearer token.
pub fn call<'a>(upstream: &Upstream, path: &str, body: &'a [u8], stream: bool) -> Call<'a> {
    let mut headers = vec![(
        "accept",
        if stream {
            "text/event-stream"
        } else {
            "application/json"
        }
        .to_string(),
    )];
    if let Some(key) = &upstream.api_key {
        headers.push(("authorization", format!("Bearer {key}")));
    }
    if stream {
        // A compressed event stream would be held back by the decoder.
        headers.push(("accept-encoding", "identity".into()));
    }
    Call {
        url: format!("{}{path}", upstream.base_url),
        headers,
        body,
        idle_timeout: None,
    }
}

/// Turns a provider's error answer into the OpenAI error shape, keeping its message, type,
/// param and code. 4xx statuses (429 included) pass through; a provider's 5xx becomes 502,
/// except 503 (overloaded, retry later) and 504 (timeout), which keep their meaning.
pub fn parse_error(status: u16, body: &[u8]) -> ApiError {
    let client_status = match status {
        400..=499 | 503 | 504 => status,
        _ => 502,
    };
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
        _ => text("message").unwrap_or_else(|| {
            let raw = String::from_utf8_lossy(&body[..body.len().min(500)]);
            format!("The provider answered HTTP {status}: {}", raw.trim())
        }),
    };
    let kind = text("type").unwrap_or_else(|| {
        if client_status >= 500 {
            "upstream_error"
        } else {
            "invalid_request_error"
        }
        .into()
    });
    let mut e = ApiError::new(client_status, &kind, None, message);
    e.param = text("param");
    e.code = text("code").or_else(|| (status >= 500).then(|| format!("upstream_http_{status}")));
    e
}

/// What to do with one upstream stream event.
#[derive(Debug, PartialEq)]
pub enum Relay {
    /// Send this `data:` payload to the client.
    Forward,
    /// Keep it from the client (the usage-only chunk it did not ask for).
    Drop,
    /// The provider reported an error inside the stream: forward it, then end.
    Error,
    /// `[DONE]`: the stream is complete.
    Done,
}

/// Follows an OpenAI-dialect stream chunk by chunk, reassembling it for the log.
pub struct StreamState {
    client_wants_usage: bool,
    pub assembled: Assembler,
}

impl StreamState {
    /// `log_limit`: the most bytes of streamed text kept for the interactions log.
    pub fn new(client_wants_usage: bool, log_limit: usize) -> Self {
        StreamState {
            client_wants_usage,
            assembled: Assembler::new(log_limit),
        }
    }

    /// Reads one event's data and decides what to relay. Malformed JSON is a broken stream.
    pub fn on_event(&mut self, data: &str) -> Result<Relay, ApiError> {
        if data.trim() == "[DONE]" {
            return Ok(Relay::Done);
        }
        let chunk: Value = serde_json::from_str(data).map_err(|e| {
            ApiError::bad_gateway(
                "upstream_bad_response",
                format!("The provider sent a stream event that is not valid JSON: {e}"),
            )
        })?;
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            return Ok(Relay::Error);
        }
        self.assembled.add(&chunk);
        let usage_only = chunk
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
            && chunk.get("usage").is_some_and(|u| !u.is_null());
        if usage_only && !self.client_wants_usage {
            return Ok(Relay::Drop);
        }
        Ok(Relay::Forward)
    }

    /// Whether the stream reached its end normally (a finish reason was seen).
    pub fn finished(&self) -> bool {
        self.assembled.finished()
    }
}

/// Whether the client asked for the usage chunk itself.
pub fn client_wants_usage(body: &Map<String, Value>) -> bool {
    body.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_body_forces_usage_and_keeps_unknown_fields() {
        let body = json!({"model": "openai/gpt-x", "stream": true, "future_param": {"a": 1}});
        let sent: Value =
            serde_json::from_slice(&chat_body(body.as_object().unwrap().clone(), "gpt-x", true))
                .unwrap();
        assert_eq!(sent["model"], "gpt-x");
        assert_eq!(sent["stream_options"]["include_usage"], true);
        assert_eq!(sent["future_param"]["a"], 1);
    }

    #[test]
    fn usage_only_chunk_is_dropped_unless_asked_for() {
        let usage = r#"{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
        let content = r#"{"id":"c","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}],"usage":null}"#;
        let mut s = StreamState::new(false, 1024);
        assert_eq!(s.on_event(content).unwrap(), Relay::Forward);
        assert_eq!(s.on_event(usage).unwrap(), Relay::Drop);
        assert_eq!(s.on_event("[DONE]").unwrap(), Relay::Done);
        assert_eq!(s.assembled.usage().unwrap()["total_tokens"], 5);
        assert!(s.finished());
        let mut s = StreamState::new(true, 1024);
        assert_eq!(s.on_event(usage).unwrap(), Relay::Forward);
        assert!(s.on_event("{not json").is_err());
    }

    #[test]
    fn provider_errors_keep_message_and_status_rules() {
        let e = parse_error(429, br#"{"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}"#);
        assert_eq!(
            (e.status, e.message.as_str(), e.code.as_deref()),
            (429, "slow down", Some("rate_limit_exceeded"))
        );
        let e = parse_error(500, b"<html>oops</html>");
        assert_eq!(e.status, 502);
        assert!(e.message.contains("oops"));
        assert_eq!(parse_error(503, b"{}").status, 503);
    }
}
