//! The Anthropic dialect (Messages API, `POST {base}/v1/messages`): an OpenAI chat body becomes
//! a Messages request, the Messages answer becomes a `chat.completion`, Anthropic's errors
//! become the OpenAI error shape, and its event stream is translated by [`stream::StreamState`].
//!
//! Requests: system (and developer) messages are lifted into `system`; turns of the same role
//! are merged so user and assistant alternate; `tool` messages become `tool_result` blocks of a
//! user turn; assistant `tool_calls` become `tool_use` blocks; images become `base64` or `url`
//! sources. `max_tokens` is required by Anthropic: [`DEFAULT_MAX_TOKENS`] when the client gives
//! none. `response_format` (JSON) is served by a forced tool named [`JSON_TOOL`] whose input is
//! unwrapped back into `message.content`. OpenAI parameters with no Anthropic equivalent are a
//! 400 naming them (or dropped with `DROP_UNSUPPORTED_PARAMS`); fields the gateway does not
//! know pass through, so Anthropic-only parameters (`top_k`, `thinking`) work.

mod stream;

use serde_json::{json, Map, Value};

use super::calls;
use super::errors::{fault_kind, raw_message, upstream_code};
use super::request::{self, Image, JsonFormat, ToolChoice, TurnBlocks};
use super::{
    bad_response, shape, Api, ChatStream, Dialect, Listed, Prepared, Reply, RequestContext,
    Settings, Target,
};
use crate::error::ApiError;
use crate::upstream::{Call, Received};

/// The API version sent in `anthropic-version`.
const API_VERSION: &str = "2023-06-01";
/// `max_tokens` when the client sets neither `max_tokens` nor `max_completion_tokens`.
const DEFAULT_MAX_TOKENS: u64 = 4096;
/// The forced tool that carries a JSON answer (`response_format`).
const JSON_TOOL: &str = "json_response";

/// OpenAI parameters Anthropic cannot honour. A value that asks for nothing (`null`, `false`,
/// `0`, `n: 1`) is accepted silently, as clients such as LibreChat send those by default.
const UNSUPPORTED: &[&[&str]] = &[
    request::TOKEN_PARAMS,
    request::PENALTY_PARAMS,
    request::OPENAI_ONLY_PARAMS,
];

/// The Messages request (`POST {base}/v1/messages`) for an internal chat request.
fn chat_request(
    target: &Target,
    body: Map<String, Value>,
    stream: bool,
    context: &RequestContext<'_>,
) -> Result<Prepared, ApiError> {
    let dropped =
        request::unsupported_params(&body, UNSUPPORTED, "Anthropic", context.drop_unsupported)?;
    let messages = request::messages(&body)?;
    let (system, turns) = translate_messages(messages)?;

    let mut out = Map::new();
    out.insert("model".into(), json!(target.model));
    if let Some(system) = system {
        out.insert("system".into(), system);
    }
    out.insert("messages".into(), Value::Array(turns));
    let max_tokens = request::max_tokens(&body)?.unwrap_or(DEFAULT_MAX_TOKENS);
    out.insert("max_tokens".into(), json!(max_tokens));
    if let Some(stops) = request::stop_sequences(&body)? {
        out.insert("stop_sequences".into(), stops);
    }
    let mut tools = translate_tools(body.get("tools"))?;
    let mut tool_choice = translate_tool_choice(body.get("tool_choice"))?;
    if let Some(json_tool) = json_output_tool(body.get("response_format"))? {
        tools.push(json_tool);
        tool_choice = Some(json!({"type": "tool", "name": JSON_TOOL}));
    }
    if body.get("parallel_tool_calls") == Some(&Value::Bool(false)) && !tools.is_empty() {
        let choice = tool_choice.get_or_insert_with(|| json!({"type": "auto"}));
        if choice["type"] != "none" {
            choice["disable_parallel_tool_use"] = json!(true);
        }
    }
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = tool_choice {
            out.insert("tool_choice".into(), choice);
        }
    }
    match body.get("user") {
        None | Some(Value::Null) => {}
        Some(Value::String(user)) => {
            out.insert("metadata".into(), json!({"user_id": user}));
        }
        Some(_) => return Err(ApiError::invalid(Some("user"), "`user` must be a string.")),
    }
    // Everything else passes through, so Anthropic-only parameters work.
    request::pass_through(&body, &mut out, &[request::TRANSLATED_PARAMS], UNSUPPORTED);
    if stream {
        out.insert("stream".into(), json!(true));
    }

    let mut headers = vec![
        (
            "accept",
            if stream {
                "text/event-stream"
            } else {
                "application/json"
            }
            .to_string(),
        ),
        ("anthropic-version", API_VERSION.to_string()),
    ];
    if let Some(key) = target.api_key() {
        headers.push(("x-api-key", key.to_string()));
    }
    if let Some((_, beta)) = context
        .client_headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("anthropic-beta"))
    {
        headers.push(("anthropic-beta", beta.clone()));
    }
    if stream {
        // A compressed event stream would be held back by the decoder.
        headers.push(("accept-encoding", "identity".into()));
    }
    Ok(Prepared {
        call: Call::post(
            format!("{}/v1/messages", target.base_url()),
            headers,
            serde_json::to_vec(&out).unwrap_or_default(),
        ),
        dropped,
    })
}

/// OpenAI messages → (`system`, alternating `messages`).
fn translate_messages(messages: &[Value]) -> Result<(Option<Value>, Vec<Value>), ApiError> {
    let (system, turns) = request::alternating_turns(messages, &Blocks)?;
    let system = if system.is_empty() {
        None
    } else if system.iter().all(is_plain_text) {
        let texts: Vec<&str> = system.iter().filter_map(|b| b["text"].as_str()).collect();
        Some(json!(texts.join("\n\n")))
    } else {
        Some(Value::Array(system))
    };
    let turns = turns
        .into_iter()
        .map(|(role, blocks)| {
            let content = match blocks.as_slice() {
                [only] if is_plain_text(only) => only["text"].clone(),
                _ => Value::Array(blocks),
            };
            json!({"role": role, "content": content})
        })
        .collect();
    Ok((system, turns))
}

/// Messages' content blocks for each kind of OpenAI message.
struct Blocks;

impl TurnBlocks for Blocks {
    fn label(&self) -> &str {
        "Anthropic"
    }

    /// A `{"type":"text","text":…}` block, with its part's `cache_control`; empty text is
    /// never asked for (Anthropic rejects empty text blocks).
    fn text(&self, text: &str, part: Option<&Value>) -> Value {
        let block = json!({"type": "text", "text": text});
        match part {
            Some(part) => with_cache_control(block, part),
            None => block,
        }
    }

    /// A data URL becomes a base64 source, an http(s) URL a url source; the part's
    /// `cache_control` is kept.
    fn image(&self, part: &Value, i: usize) -> Result<Value, ApiError> {
        let block = match request::image(part, i)? {
            Image::Base64 { media_type, data } => json!({
                "type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data},
            }),
            Image::Url(url) if url.starts_with("https://") || url.starts_with("http://") => {
                json!({"type": "image", "source": {"type": "url", "url": url}})
            }
            Image::Url(_) => {
                return Err(ApiError::invalid(
                    Some(&format!("messages[{i}].content")),
                    "`image_url.url` must be an http(s) URL or a base64 data URL.",
                ))
            }
        };
        Ok(with_cache_control(block, part))
    }

    /// An assistant `tool_calls[j]` → a `tool_use` block.
    fn tool_use(&self, call: &Value, i: usize, j: usize) -> Result<Value, ApiError> {
        let (id, name, input) = request::tool_call_parts(call, i, j)?;
        Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
    }

    fn tool_result(&self, id: &str, content: &Value, i: usize) -> Result<Value, ApiError> {
        let mut result = json!({"type": "tool_result", "tool_use_id": id});
        match content {
            Value::String(s) => result["content"] = json!(s),
            Value::Null => {}
            _ => result["content"] = Value::Array(self.texts(content, i)?),
        }
        Ok(result)
    }
}

/// A `{"type":"text","text":…}` block with nothing else (no `cache_control`).
fn is_plain_text(block: &Value) -> bool {
    block
        .as_object()
        .is_some_and(|b| b.len() == 2 && b["type"] == "text")
}

/// Carries a part's `cache_control` (Anthropic prompt caching) onto its block.
fn with_cache_control(mut block: Value, part: &Value) -> Value {
    if let Some(cc) = part.get("cache_control").filter(|c| !c.is_null()) {
        block["cache_control"] = cc.clone();
    }
    block
}

/// OpenAI `tools` (functions) → Anthropic tools with `input_schema`.
fn translate_tools(tools: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    Ok(request::function_tools(tools)?
        .into_iter()
        .map(|t| {
            let mut out = t.declaration();
            out["input_schema"] = t.parameters;
            with_cache_control(out, t.raw)
        })
        .collect())
}

/// OpenAI `tool_choice` → Anthropic's (`required` is `any`, a named function is `tool`).
fn translate_tool_choice(choice: Option<&Value>) -> Result<Option<Value>, ApiError> {
    Ok(request::tool_choice(choice)?.map(|choice| match choice {
        ToolChoice::Auto => json!({"type": "auto"}),
        ToolChoice::None => json!({"type": "none"}),
        ToolChoice::Required => json!({"type": "any"}),
        ToolChoice::Function(name) => json!({"type": "tool", "name": name}),
    }))
}

/// `response_format` json_object / json_schema → the forced tool that carries the answer.
fn json_output_tool(format: Option<&Value>) -> Result<Option<Value>, ApiError> {
    Ok(request::json_format(format)?.map(|format| match format {
        JsonFormat::Object => json!({
            "name": JSON_TOOL,
            "description": "Respond with a JSON object.",
            "input_schema": {"type": "object"},
        }),
        JsonFormat::Schema {
            schema,
            description,
        } => json!({
            "name": JSON_TOOL,
            "description": description
                .unwrap_or("Respond with a JSON object that matches this schema."),
            "input_schema": schema.cloned().unwrap_or_else(|| json!({"type": "object"})),
        }),
    }))
}

/// Anthropic's `stop_reason` → OpenAI's `finish_reason`.
fn finish_reason(stop_reason: Option<&str>, json_mode: bool) -> &'static str {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") if !json_mode => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// Anthropic usage → OpenAI usage: every input token (fresh, cache reads, cache writes) is a
/// prompt token; cache reads are `cached_tokens`; writes are split by TTL from
/// `cache_creation` (all 5-minute when it is absent, as in older answers).
fn usage(u: &Value) -> Value {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let written = n(&u["cache_creation_input_tokens"]);
    let one_hour = n(&u["cache_creation"]["ephemeral_1h_input_tokens"]).min(written);
    shape::cached_usage(
        n(&u["input_tokens"]),
        n(&u["cache_read_input_tokens"]),
        shape::CacheWrites {
            five_minutes: written - one_hour,
            one_hour,
        },
        n(&u["output_tokens"]),
    )
}

/// A 2xx Messages answer → an OpenAI `chat.completion`.
fn response(bytes: &[u8]) -> Result<Reply, ApiError> {
    let bad = |why: &str| bad_response(format_args!("not a Messages answer: {why}"));
    let answer: Value = serde_json::from_slice(bytes).map_err(|_| bad("not JSON"))?;
    let blocks = answer
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no `content` array"))?;
    let mut parts = shape::MessageParts::default();
    let mut json_mode = false;
    for block in blocks {
        let text = |k: &str| block.get(k).and_then(Value::as_str).unwrap_or_default();
        match block.get("type").and_then(Value::as_str) {
            Some("text") => parts.text(text("text")),
            Some("thinking") => parts.reasoning(text("thinking")),
            Some("tool_use") if block["name"] == JSON_TOOL => {
                json_mode = true;
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                parts.text(&input.to_string());
            }
            Some("tool_use") => {
                parts.tool_use(block.get("id"), block.get("name"), block.get("input"));
            }
            _ => {} // redacted thinking, server tools: nothing an OpenAI client can show
        }
    }
    let message = parts.message();
    let finish = finish_reason(answer.get("stop_reason").and_then(Value::as_str), json_mode);
    Ok(shape::completion(
        answer.get("id").cloned().unwrap_or(Value::Null),
        answer.get("model").cloned().unwrap_or(Value::Null),
        vec![shape::choice(0, message, finish)],
        answer.get("usage").map(usage),
    ))
}

/// The HTTP status an Anthropic error type stands for (for errors inside a stream).
fn status_of(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        _ => 500,
    }
}

/// Anthropic's `{"type":"error","error":{"type","message"}}` → the OpenAI error shape, message
/// verbatim. 4xx statuses pass through; 529 (overloaded) becomes 503 with `retry-after`; any
/// other 5xx becomes 502.
fn parse_error(status: u16, body: &[u8]) -> ApiError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .filter(|e| e.is_object());
    let field = |k: &str| {
        error
            .and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let message = field("message").unwrap_or_else(|| raw_message(status, body));
    error_for(status, field("type"), message)
}

/// The error for an upstream status, Anthropic error type and message.
fn error_for(status: u16, kind: Option<String>, message: String) -> ApiError {
    let client_status = match status {
        529 => 503,
        400..=499 => status,
        _ => 502,
    };
    let kind = kind.unwrap_or_else(|| fault_kind(client_status).into());
    let mut e = ApiError::new(client_status, &kind, None, message);
    e.code = upstream_code(status);
    if status == 529 {
        e.headers.push(("retry-after".into(), "2".into()));
    }
    e
}

pub struct Anthropic;

impl Dialect for Anthropic {
    /// The Messages ingress passes its clients' bodies through to Anthropic.
    fn serves(&self, api: Api) -> bool {
        api == Api::AnthropicMessages
    }

    fn chat_request(
        &self,
        target: &Target,
        body: Map<String, Value>,
        stream: bool,
        context: &RequestContext<'_>,
    ) -> Result<Prepared, ApiError> {
        chat_request(target, body, stream, context)
    }

    fn chat_response(&self, _target: &Target, answer: Received) -> Result<Reply, ApiError> {
        response(&answer.body)
    }

    fn chat_stream(&self, _target: &Target) -> Box<dyn ChatStream> {
        Box::new(stream::StreamState::default())
    }

    fn parse_error(&self, status: u16, body: &[u8]) -> ApiError {
        parse_error(status, body)
    }

    /// `GET {base}/v1/models?limit=1000` (`x-api-key`).
    fn models_request(&self, settings: &Settings) -> Option<Call> {
        calls::models_call(settings, "/v1/models?limit=1000", |key| {
            vec![
                ("accept", "application/json".to_string()),
                ("anthropic-version", API_VERSION.to_string()),
                ("x-api-key", key.to_string()),
            ]
        })
    }

    /// `data[].id`, `created_at` in RFC 3339.
    fn models_response(&self, body: &[u8]) -> Result<Vec<Listed>, String> {
        calls::listed(body, "data", |m| {
            Some(Listed {
                created: rfc3339_secs(&m["created_at"]),
                ..calls::named(m["id"].as_str()?)
            })
        })
    }
}

/// Seconds since the epoch of an RFC 3339 timestamp; 0 if it is not one.
fn rfc3339_secs(value: &Value) -> u64 {
    value
        .as_str()
        .and_then(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        })
        .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
