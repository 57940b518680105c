//! The OpenAI dialect, spoken by OpenAI, Azure (through `azure`) and every OpenAI-compatible
//! server (the vendors of the registry, vLLM, Ollama, LM Studio, another gateway). Requests
//! are forwarded with unknown fields untouched: only the model name is set, the vendor's quirks
//! applied, and for streams usage requested where the vendor accepts it. Answers and stream
//! events are relayed as received, byte for byte.

use std::sync::OnceLock;

use memchr::memmem::Finder;
use serde_json::{json, Map, Value};

use super::calls::{self, bearer, relayed};
use super::errors::openai_error;
use super::{
    Api, ChatStream, Dialect, Emit, Listed, Prepared, Reply, RequestContext, Settings, Target,
};
use crate::error::ApiError;
use crate::upstream::{Call, Received, SseEvent};

/// The OpenAI dialect as one provider speaks it.
pub struct OpenAi {
    /// Accepts `stream_options.include_usage`: requested on every stream, so usage is always
    /// known (the relay hides the usage-only chunk from clients that did not ask for it).
    stream_usage: bool,
    quirks: &'static [Quirk],
    /// Serves the legacy `POST /completions` (most OpenAI-compatible servers do).
    completions: bool,
}

/// OpenAI's own dialect: usage on streams, no quirks.
pub const STANDARD: OpenAi = OpenAi::new(true, &[]);

/// The variable that says whether the `openai` upstream serves the Responses API itself
/// (`true`/`false`; unset or `auto`: when its base is `api.openai.com`).
pub const RESPONSES_API_VAR: &str = "OPENAI_RESPONSES_API";

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
            completions: true,
        }
    }

    /// The dialect of a vendor that serves chat only, no `/completions`: completions requests
    /// are translated to chat for it.
    pub const fn chat_only(self) -> OpenAi {
        OpenAi {
            completions: false,
            ..self
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
    fn serves(&self, api: Api) -> bool {
        api == Api::Completions && self.completions
    }

    /// The Responses API: as [`RESPONSES_API_VAR`] says, else only at `api.openai.com`.
    fn serves_with(&self, settings: &Settings, api: Api) -> bool {
        if api != Api::Responses {
            return self.serves(api);
        }
        match settings.extra(RESPONSES_API_VAR) {
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            _ => settings
                .base_url
                .as_deref()
                .is_some_and(|b| b.starts_with("https://api.openai.com/")),
        }
    }

    /// `POST {base}/completions` or `{base}/responses`: the client's body with the provider's
    /// model name (a completions stream asks for usage where the vendor accepts it).
    fn native_call(
        &self,
        target: &Target,
        api: Api,
        mut body: Map<String, Value>,
        stream: bool,
    ) -> Result<Call, ApiError> {
        body.insert("model".into(), Value::String(target.model.clone()));
        let path = match api {
            Api::Completions => {
                if stream && self.stream_usage {
                    let options = body.entry("stream_options").or_insert_with(|| json!({}));
                    if !options.is_object() {
                        *options = json!({});
                    }
                    options["include_usage"] = Value::Bool(true);
                }
                "/completions"
            }
            Api::Responses => "/responses",
            Api::AnthropicMessages => return Err(super::not_served(target)),
        };
        Ok(calls::post(
            target,
            path,
            bearer(target.api_key(), stream),
            &body,
        ))
    }

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
            call: calls::post(
                target,
                "/chat/completions",
                bearer(target.api_key(), stream),
                &body,
            ),
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
        Ok(vec![calls::post(
            target,
            "/embeddings",
            bearer(target.api_key(), false),
            &body,
        )])
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
        openai_error(status, body)
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
        calls::listed(body, "data", |m| {
            Some(Listed {
                id: m["id"].as_str()?.to_string(),
                created: m["created"].as_u64().unwrap_or(0),
                owned_by: m["owned_by"].as_str().map(str::to_string),
            })
        })
    }
}

/// Follows an OpenAI-dialect stream: every event is relayed as it came (the relay checks that
/// it is JSON while reading it for the log). It only watches for a finish reason, so that a
/// server that ends its body without `[DONE]` after a complete answer is not taken as cut.
#[derive(Default)]
struct StreamState {
    finished: bool,
}

impl ChatStream for StreamState {
    fn on_event(&mut self, event: SseEvent) -> Result<Vec<Emit>, ApiError> {
        if event.data.trim() == "[DONE]" {
            return Ok(vec![Emit::Done]);
        }
        self.finished |= has_finish_reason(&event.data);
        // DeepSeek's usage chunk, found by a scan like the finish reason; parsed only then.
        static CACHE_HITS: OnceLock<Finder<'static>> = OnceLock::new();
        let cache_hits = CACHE_HITS.get_or_init(|| Finder::new("\"prompt_cache_hit_tokens\""));
        if cache_hits.find(event.data.as_bytes()).is_some() {
            if let Ok(mut chunk) = serde_json::from_str::<Value>(&event.data) {
                // `get_mut`: indexing to write panics when the event is not an object.
                let usage = chunk.get_mut("usage");
                if usage.is_some_and(calls::cache_hits_as_cached_tokens) {
                    return Ok(vec![Emit::Raw(chunk.to_string())]);
                }
            }
        }
        // The event's text is relayed as it came: moved, not copied.
        Ok(vec![Emit::Raw(event.data)])
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
    // Runs on every streamed event: the searcher is built once.
    static KEY: OnceLock<Finder<'static>> = OnceLock::new();
    let key = KEY.get_or_init(|| Finder::new("\"finish_reason\""));
    key.find_iter(data.as_bytes()).any(|i| {
        let rest = data[i + key.needle().len()..].trim_start();
        rest.strip_prefix(':')
            .is_some_and(|v| v.trim_start().starts_with('"'))
    })
}

#[cfg(test)]
mod tests;
