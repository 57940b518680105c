//! The OpenAI dialect, spoken by OpenAI, Azure (through `azure`) and every OpenAI-compatible
//! server (the vendors of the registry, vLLM, Ollama, LM Studio, another gateway). Requests
//! are forwarded with unknown fields untouched: only the model name is set, the vendor's quirks
//! applied, and for streams usage requested where the vendor accepts it. Answers and stream
//! events are relayed as received, byte for byte.

use serde_json::{json, Map, Value};

use super::{ChatStream, Dialect, Emit, Listed, Prepared, Reply, RequestContext, Settings, Target};
use crate::error::ApiError;
use crate::upstream::{Call, Received, SseEvent};

/// The OpenAI dialect as one provider speaks it.
pub struct OpenAi {
    /// Accepts `stream_options.include_usage`: requested on every stream, so usage is always
    /// known (the relay hides the usage-only chunk from clients that did not ask for it).
    stream_usage: bool,
    quirks: &'static [Quirk],
}

/// OpenAI's own dialect: usage on streams, no quirks.
pub const STANDARD: OpenAi = OpenAi::new(true, &[]);

/// A request parameter a vendor treats differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quirk {
    /// Takes `max_tokens`, not `max_completion_tokens`: renamed.
    MaxTokensOnly,
    /// Has no `n`: `n: 1` is dropped silently, more is refused (or dropped with
    /// `DROP_UNSUPPORTED_PARAMS`).
    NoN,
}

impl OpenAi {
    pub const fn new(stream_usage: bool, quirks: &'static [Quirk]) -> OpenAi {
        OpenAi {
            stream_usage,
            quirks,
        }
    }

    /// Applies the vendor's quirks to a chat body; returns the parameters dropped.
    fn adapt(
        &self,
        label: &str,
        body: &mut Map<String, Value>,
        drop_unsupported: bool,
    ) -> Result<Vec<String>, ApiError> {
        let mut dropped = Vec::new();
        if !self.stream_usage {
            // Not accepted; `include_usage` is its only member the relay relies on.
            body.remove("stream_options");
        }
        for quirk in self.quirks {
            match quirk {
                Quirk::MaxTokensOnly => {
                    if let Some(limit) = body.remove("max_completion_tokens") {
                        body.entry("max_tokens").or_insert(limit);
                    }
                }
                Quirk::NoN => match body.get("n") {
                    None | Some(Value::Null) => {}
                    Some(n) if n.as_u64() == Some(1) => {
                        body.remove("n");
                    }
                    Some(_) if drop_unsupported => {
                        body.remove("n");
                        dropped.push("n".to_string());
                    }
                    Some(_) => {
                        return Err(ApiError::invalid(
                            Some("n"),
                            format!(
                                "{label} returns one choice per request: `n` above 1 is not supported (DROP_UNSUPPORTED_PARAMS=true drops it)."
                            ),
                        ))
                    }
                },
            }
        }
        Ok(dropped)
    }

    /// The chat body for the provider: the client's, with the provider's model name, the quirks
    /// applied and usage asked for on streams.
    pub fn chat_body(
        &self,
        target: &Target,
        mut body: Map<String, Value>,
        stream: bool,
        drop_unsupported: bool,
    ) -> Result<(Map<String, Value>, Vec<String>), ApiError> {
        let dropped = self.adapt(target.provider.label, &mut body, drop_unsupported)?;
        body.insert("model".into(), Value::String(target.model.clone()));
        if stream && self.stream_usage {
            let options = body.entry("stream_options").or_insert_with(|| json!({}));
            if !options.is_object() {
                *options = json!({});
            }
            options["include_usage"] = Value::Bool(true);
        }
        Ok((body, dropped))
    }
}

impl Dialect for OpenAi {
    /// `POST {base}/chat/completions`.
    fn chat_request(
        &self,
        target: &Target,
        body: Map<String, Value>,
        stream: bool,
        context: &RequestContext<'_>,
    ) -> Result<Prepared, ApiError> {
        let (body, dropped) = self.chat_body(target, body, stream, context.drop_unsupported)?;
        Ok(Prepared {
            call: call(target, "/chat/completions", &body, stream),
            dropped,
        })
    }

    fn chat_response(&self, _target: &Target, answer: Received) -> Result<Reply, ApiError> {
        relayed(answer)
    }

    fn chat_stream(&self, _target: &Target) -> Box<dyn ChatStream> {
        Box::new(StreamState::default())
    }

    /// `POST {base}/embeddings`: the client's body with the provider's model name.
    fn embeddings_request(
        &self,
        target: &Target,
        mut body: Map<String, Value>,
    ) -> Result<Vec<Call>, ApiError> {
        body.insert("model".into(), Value::String(target.model.clone()));
        Ok(vec![call(target, "/embeddings", &body, false)])
    }

    fn embeddings_response(
        &self,
        _target: &Target,
        mut answers: Vec<Received>,
        _base64: bool,
    ) -> Result<Reply, ApiError> {
        relayed(answers.swap_remove(0))
    }

    fn parse_error(&self, status: u16, body: &[u8]) -> ApiError {
        parse_error(status, body)
    }

    /// `GET {base}/models`.
    fn models_request(&self, settings: &Settings) -> Option<Call> {
        let base = settings.base_url.as_deref()?;
        Some(Call::get(
            format!("{base}/models"),
            bearer(settings.api_key.as_deref(), false),
        ))
    }

    fn models_response(&self, body: &[u8]) -> Result<Vec<Listed>, String> {
        let list = list_items(body, "data")?;
        Ok(list
            .iter()
            .filter_map(|m| {
                Some(Listed {
                    id: m["id"].as_str()?.to_string(),
                    created: m["created"].as_u64().unwrap_or(0),
                    owned_by: m["owned_by"].as_str().map(str::to_string),
                })
            })
            .collect())
    }
}

/// The headers of an OpenAI-style call: what it accepts and the key as a bearer token.
pub fn bearer(key: Option<&str>, stream: bool) -> Vec<(&'static str, String)> {
    let accept = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let mut headers = vec![("accept", accept.to_string())];
    if let Some(key) = key {
        headers.push(("authorization", format!("Bearer {key}")));
    }
    if stream {
        // A compressed event stream would be held back by the decoder.
        headers.push(("accept-encoding", "identity".into()));
    }
    headers
}

/// A POST to `{base}{path}` with the key as a bearer token.
fn call(target: &Target, path: &str, body: &Map<String, Value>, stream: bool) -> Call {
    Call::post(
        format!("{}{path}", target.base_url()),
        bearer(target.api_key(), stream),
        serde_json::to_vec(body).unwrap_or_default(),
    )
}

/// The items of a provider's model list (`field` of the JSON object).
pub fn list_items(body: &[u8], field: &str) -> Result<Vec<Value>, String> {
    let mut list: Value = serde_json::from_slice(body).map_err(|_| "not JSON".to_string())?;
    match list.get_mut(field).map(Value::take) {
        Some(Value::Array(items)) => Ok(items),
        _ => Err(format!("no `{field}` list")),
    }
}

/// A 2xx answer (chat or embeddings): relayed as received; its usage read for the record.
pub fn relayed(answer: Received) -> Result<Reply, ApiError> {
    match serde_json::from_slice::<Value>(&answer.body) {
        Ok(Value::Object(mut parsed)) => Ok(Reply {
            usage: parsed.remove("usage").filter(|u| !u.is_null()),
            body: answer.body,
        }),
        _ => Err(super::bad_response("not a JSON object")),
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
        _ => text("message").unwrap_or_else(|| raw_message(status, body)),
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

/// The message for an error body the dialect could not read: its first 500 bytes.
pub fn raw_message(status: u16, body: &[u8]) -> String {
    let raw = String::from_utf8_lossy(&body[..body.len().min(500)]);
    format!("The provider answered HTTP {status}: {}", raw.trim())
}

/// Follows an OpenAI-dialect stream: every event is relayed as it came (the relay checks that
/// it is JSON while reading it for the log). It only watches for a finish reason, so that a
/// server that ends its body without `[DONE]` after a complete answer is not taken as cut.
#[derive(Default)]
pub struct StreamState {
    finished: bool,
}

impl ChatStream for StreamState {
    fn on_event(&mut self, event: &SseEvent) -> Result<Vec<Emit>, ApiError> {
        if event.data.trim() == "[DONE]" {
            return Ok(vec![Emit::Done]);
        }
        self.finished |= has_finish_reason(&event.data);
        Ok(vec![Emit::Raw(event.data.clone())])
    }

    fn finish(&mut self) -> Result<Vec<Emit>, ApiError> {
        if self.finished {
            Ok(vec![Emit::Done])
        } else {
            Err(super::truncated())
        }
    }
}

/// Whether a chunk's JSON text sets a `finish_reason` (a string, not null). Quotes inside JSON
/// strings are escaped, so an unescaped `"finish_reason"` followed by `:` is the key itself.
fn has_finish_reason(data: &str) -> bool {
    data.match_indices("\"finish_reason\"").any(|(i, key)| {
        let rest = data[i + key.len()..].trim_start();
        rest.strip_prefix(':')
            .is_some_and(|v| v.trim_start().starts_with('"'))
    })
}

#[cfg(test)]
mod tests;
