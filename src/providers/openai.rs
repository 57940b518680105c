//! The OpenAI dialect, spoken by OpenAI and every OpenAI-compatible server (vLLM, Ollama,
//! LM Studio, another gateway). Requests are forwarded with unknown fields untouched: only the
//! model name is set, and for streams usage is requested. Answers and stream events are
//! relayed as received, byte for byte.

use serde_json::{json, Map, Value};

use crate::config::Endpoint;
use crate::error::ApiError;
use crate::providers::{Emit, Reply};
use crate::upstream::{Call, SseEvent};

/// The request for `POST {base}/chat/completions`: the client's body with the provider's
/// model name, and for streams `stream_options.include_usage` forced on so usage is always
/// known (the handler hides the usage-only chunk from clients that did not ask for it) —
/// unless the provider does not accept it (`include_usage` false).
pub fn chat_request(
    endpoint: &Endpoint,
    model: &str,
    mut body: Map<String, Value>,
    stream: bool,
    include_usage: bool,
) -> Call {
    body.insert("model".into(), Value::String(model.into()));
    if stream && include_usage {
        let options = body.entry("stream_options").or_insert_with(|| json!({}));
        if !options.is_object() {
            *options = json!({});
        }
        options["include_usage"] = Value::Bool(true);
    }
    call(endpoint, "/chat/completions", body, stream)
}

/// The request for `POST {base}/embeddings`: the client's body with the provider's model name.
pub fn embeddings_request(endpoint: &Endpoint, model: &str, mut body: Map<String, Value>) -> Call {
    body.insert("model".into(), Value::String(model.into()));
    call(endpoint, "/embeddings", body, false)
}

/// A POST to `{base}{path}` with the key as a bearer token.
fn call(endpoint: &Endpoint, path: &str, body: Map<String, Value>, stream: bool) -> Call {
    let accept = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let mut headers = vec![("accept", accept.to_string())];
    if let Some(key) = &endpoint.api_key {
        headers.push(("authorization", format!("Bearer {key}")));
    }
    if stream {
        // A compressed event stream would be held back by the decoder.
        headers.push(("accept-encoding", "identity".into()));
    }
    Call {
        url: format!("{}{path}", endpoint.base_url),
        headers,
        body: serde_json::to_vec(&body).unwrap_or_default(),
        idle_timeout: None,
    }
}

/// A 2xx answer (chat or embeddings): relayed as received; its usage read for the record.
pub fn response(bytes: Vec<u8>) -> Result<Reply, ApiError> {
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(mut answer)) => Ok(Reply {
            usage: answer.remove("usage").filter(|u| !u.is_null()),
            body: bytes,
        }),
        _ => Err(ApiError::bad_gateway(
            "upstream_bad_response",
            "The provider's response is not a JSON object.",
        )),
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

/// Follows an OpenAI-dialect stream: every event is relayed as it came (the relay checks that
/// it is JSON while reading it for the log).
#[derive(Default)]
pub struct StreamState;

impl StreamState {
    pub fn on_event(&mut self, event: &SseEvent) -> Result<Vec<Emit>, ApiError> {
        if event.data.trim() == "[DONE]" {
            return Ok(vec![Emit::Done]);
        }
        Ok(vec![Emit::Raw(event.data.clone())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_request_forces_usage_and_keeps_unknown_fields() {
        let endpoint = Endpoint {
            base_url: "http://127.0.0.1:9/v1".into(),
            api_key: Some("sk-test-fake".into()),
        };
        let body = json!({"model": "openai/gpt-x", "stream": true, "future_param": {"a": 1}});
        let call = chat_request(
            &endpoint,
            "gpt-x",
            body.as_object().unwrap().clone(),
            true,
            true,
        );
        assert_eq!(call.url, "http://127.0.0.1:9/v1/chat/completions");
        assert!(call
            .headers
            .contains(&("authorization", "Bearer sk-test-fake".to_string())));
        let sent: Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(sent["model"], "gpt-x");
        assert_eq!(sent["stream_options"]["include_usage"], true);
        assert_eq!(sent["future_param"]["a"], 1);
    }

    #[test]
    fn stream_events_are_relayed_as_received() {
        let mut s = StreamState;
        let event = |data: &str| SseEvent {
            event: None,
            data: data.into(),
        };
        let data = r#"{"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}]}"#;
        match s.on_event(&event(data)).unwrap().as_slice() {
            [Emit::Raw(raw)] => assert_eq!(raw, data),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            s.on_event(&event("[DONE]")).unwrap().as_slice(),
            [Emit::Done]
        ));
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
