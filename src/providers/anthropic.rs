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

pub mod stream;

use serde_json::{json, Map, Value};

use super::request::{self, TurnBlocks};
use super::{
    bad_response, shape, ChatStream, Dialect, Listed, Prepared, Reply, RequestContext, Settings,
    Target,
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
const UNSUPPORTED: &[&str] = &[
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "functions",
    "function_call",
    "audio",
    "modalities",
    "prediction",
    "web_search_options",
    "reasoning_effort",
    "verbosity",
    "service_tier",
    "store",
    "metadata",
];

/// Request fields translated here (everything else not in [`UNSUPPORTED`] passes through).
const TRANSLATED: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "user",
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
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid(Some("messages"), "`messages` must be an array."))?;
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
    for (key, value) in &body {
        if TRANSLATED.contains(&key.as_str()) || UNSUPPORTED.contains(&key.as_str()) {
            continue;
        }
        out.entry(key.clone()).or_insert_with(|| value.clone());
    }
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

    fn system(&self, content: &Value, i: usize) -> Result<Vec<Value>, ApiError> {
        text_blocks(content, i)
    }

    fn user(&self, content: &Value, i: usize) -> Result<Vec<Value>, ApiError> {
        user_blocks(content, i)
    }

    fn assistant(&self, content: &Value, i: usize) -> Result<Vec<Value>, ApiError> {
        text_blocks(content, i)
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
            _ => result["content"] = Value::Array(text_blocks(content, i)?),
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

/// Text content (a string, or `text`/`refusal` parts) as text blocks; empty text is left out
/// (Anthropic rejects empty text blocks).
fn text_blocks(content: &Value, i: usize) -> Result<Vec<Value>, ApiError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => {
            let mut blocks = Vec::new();
            for part in parts {
                let kind = part.get("type").and_then(Value::as_str).unwrap_or("text");
                let text = match kind {
                    "text" => part.get("text"),
                    "refusal" => part.get("refusal"),
                    _ => {
                        return Err(ApiError::invalid(
                            Some(&format!("messages[{i}].content")),
                            format!(
                            "Content parts of type `{kind}` are only accepted in user messages."
                        ),
                        ))
                    }
                };
                let text = text.and_then(Value::as_str).ok_or_else(|| {
                    ApiError::invalid(
                        Some(&format!("messages[{i}].content")),
                        "A text content part needs a string `text`.",
                    )
                })?;
                if !text.is_empty() {
                    blocks.push(with_cache_control(
                        json!({"type": "text", "text": text}),
                        part,
                    ));
                }
            }
            Ok(blocks)
        }
        _ => Err(ApiError::invalid(
            Some(&format!("messages[{i}].content")),
            format!("`messages[{i}].content` must be a string or an array of content parts."),
        )),
    }
}

/// A user message's content: text and images.
fn user_blocks(content: &Value, i: usize) -> Result<Vec<Value>, ApiError> {
    let Value::Array(parts) = content else {
        return text_blocks(content, i);
    };
    let mut blocks = Vec::new();
    for part in parts {
        match part.get("type").and_then(Value::as_str) {
            Some("image_url") => blocks.push(with_cache_control(image_block(part, i)?, part)),
            _ => blocks.extend(text_blocks(&Value::Array(vec![part.clone()]), i)?),
        }
    }
    Ok(blocks)
}

/// An `image_url` part: a data URL becomes a base64 source, an http(s) URL a url source.
fn image_block(part: &Value, i: usize) -> Result<Value, ApiError> {
    let url = part
        .get("image_url")
        .and_then(|u| u.get("url").or(Some(u)))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let param = format!("messages[{i}].content");
    if let Some(rest) = url.strip_prefix("data:") {
        let (media_type, data) = rest.split_once(";base64,").ok_or_else(|| {
            ApiError::invalid(
                Some(&param),
                "An image data URL must be `data:<media type>;base64,<data>`.",
            )
        })?;
        return Ok(json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(ApiError::invalid(
        Some(&param),
        "`image_url.url` must be an http(s) URL or a base64 data URL.",
    ))
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
            let mut out = json!({"name": t.name});
            if let Some(d) = t.description {
                out["description"] = json!(d);
            }
            out["input_schema"] = t.parameters;
            with_cache_control(out, t.raw)
        })
        .collect())
}

/// OpenAI `tool_choice` → Anthropic's (`required` is `any`, a named function is `tool`).
fn translate_tool_choice(choice: Option<&Value>) -> Result<Option<Value>, ApiError> {
    Ok(match choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "none" => Some(json!({"type": "none"})),
            "required" => Some(json!({"type": "any"})),
            other => {
                return Err(ApiError::invalid(
                    Some("tool_choice"),
                    format!("`tool_choice` {other:?} is not one of auto, none, required."),
                ))
            }
        },
        Some(v) => match v.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
            Some(name) => Some(json!({"type": "tool", "name": name})),
            None => {
                return Err(ApiError::invalid(
                    Some("tool_choice"),
                    "`tool_choice` must be auto, none, required or {\"type\":\"function\",\"function\":{\"name\":…}}.",
                ))
            }
        },
    })
}

/// `response_format` json_object / json_schema → the forced tool that carries the answer.
fn json_output_tool(format: Option<&Value>) -> Result<Option<Value>, ApiError> {
    let Some(format) = format.filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({
            "name": JSON_TOOL,
            "description": "Respond with a JSON object.",
            "input_schema": {"type": "object"},
        }))),
        Some("json_schema") => {
            let spec = format.get("json_schema").unwrap_or(&Value::Null);
            let schema = spec
                .get("schema")
                .filter(|s| s.is_object())
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"}));
            let description = spec
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("Respond with a JSON object that matches this schema.");
            Ok(Some(json!({
                "name": JSON_TOOL,
                "description": description,
                "input_schema": schema,
            })))
        }
        _ => Err(ApiError::invalid(
            Some("response_format"),
            "`response_format.type` must be text, json_object or json_schema.",
        )),
    }
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
/// prompt token; cache reads are `cached_tokens`.
fn usage(u: &Value) -> Value {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("cache_read_input_tokens");
    let prompt = n("input_tokens") + cached + n("cache_creation_input_tokens");
    let completion = n("output_tokens");
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    })
}

/// A 2xx Messages answer → an OpenAI `chat.completion`.
fn response(bytes: &[u8]) -> Result<Reply, ApiError> {
    let bad = |why: &str| bad_response(format_args!("not a Messages answer: {why}"));
    let answer: Value = serde_json::from_slice(bytes).map_err(|_| bad("not JSON"))?;
    let blocks = answer
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no `content` array"))?;
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut tool_calls = Vec::new();
    let mut json_mode = false;
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                let t = block
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                text.get_or_insert_with(String::new).push_str(t);
            }
            Some("thinking") => {
                let t = block
                    .get("thinking")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                reasoning.get_or_insert_with(String::new).push_str(t);
            }
            Some("tool_use") if block["name"] == JSON_TOOL => {
                json_mode = true;
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                text.get_or_insert_with(String::new)
                    .push_str(&input.to_string());
            }
            Some("tool_use") => {
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                tool_calls.push(shape::tool_call(
                    block.get("id").cloned().unwrap_or(Value::Null),
                    block.get("name").cloned().unwrap_or(Value::Null),
                    input.to_string(),
                ));
            }
            _ => {} // redacted thinking, server tools: nothing an OpenAI client can show
        }
    }
    let message = shape::assistant_message(text, reasoning, tool_calls);
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
    let message = field("message").unwrap_or_else(|| super::openai::raw_message(status, body));
    error_for(status, field("type"), message)
}

/// The error for an upstream status, Anthropic error type and message.
fn error_for(status: u16, kind: Option<String>, message: String) -> ApiError {
    let client_status = match status {
        529 => 503,
        400..=499 => status,
        _ => 502,
    };
    let kind = kind.unwrap_or_else(|| {
        if client_status >= 500 {
            "upstream_error"
        } else {
            "invalid_request_error"
        }
        .into()
    });
    let mut e = ApiError::new(client_status, &kind, None, message);
    if status >= 500 {
        e.code = Some(format!("upstream_http_{status}"));
    }
    if status == 529 {
        e.headers.push(("retry-after".into(), "2".into()));
    }
    e
}

pub struct Anthropic;

impl Dialect for Anthropic {
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
        let base = settings.base_url.as_deref()?;
        let mut headers = vec![
            ("accept", "application/json".to_string()),
            ("anthropic-version", API_VERSION.to_string()),
        ];
        headers.push(("x-api-key", settings.api_key.clone()?));
        Some(Call::get(format!("{base}/v1/models?limit=1000"), headers))
    }

    /// `data[].id`, `created_at` in RFC 3339.
    fn models_response(&self, body: &[u8]) -> Result<Vec<Listed>, String> {
        let items = super::openai::list_items(body, "data")?;
        Ok(items
            .iter()
            .filter_map(|m| {
                Some(Listed {
                    id: m["id"].as_str()?.to_string(),
                    created: rfc3339_secs(&m["created_at"]),
                    owned_by: None,
                })
            })
            .collect())
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
