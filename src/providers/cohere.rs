//! The Cohere dialect (Chat and Embed API v2, `POST {base}/v2/chat` and `{base}/v2/embed`): an
//! OpenAI chat body becomes a v2 Chat request, the v2 answer becomes a `chat.completion`,
//! Cohere's errors become the OpenAI error shape, and its event stream is translated by
//! [`stream::StreamState`].
//!
//! Requests: v2 messages are close to OpenAI's (`system`, `user`, `assistant`, `tool` with
//! `tool_call_id`; text and `image_url` parts; function `tools`), so they are mostly copied. An
//! assistant message that carries `tool_calls` sends its text as `tool_plan`, and an answer's
//! `tool_plan` comes back as `content`, so a tool round trip keeps it. `top_p` is `p`, `stop` is
//! `stop_sequences`, `response_format` JSON is `{"type":"json_object","json_schema":…}`,
//! `tool_choice` `required`/`none` are `REQUIRED`/`NONE` and a named function keeps only that
//! tool, with `REQUIRED`. OpenAI parameters with no v2 equivalent are a 400 naming them (or
//! dropped with `DROP_UNSUPPORTED_PARAMS`); fields the gateway does not know pass through, so
//! Cohere-only parameters (`documents`, `k`, `safety_mode`, `citation_options`) work.

pub mod stream;

use serde_json::{json, Map, Value};

use crate::config::Endpoint;
use crate::error::ApiError;
use crate::providers::{Prepared, Reply, RequestContext};
use crate::upstream::Call;

pub use stream::StreamState;

/// `input_type` of an embeddings request when the client gives none.
pub const DEFAULT_INPUT_TYPE: &str = "search_document";

/// OpenAI parameters Cohere cannot honour. A value that asks for nothing (`null`, `false`,
/// `0`, `n: 1`) is accepted silently.
const UNSUPPORTED: &[&str] = &[
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "n",
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
    "top_p",
    "stop",
    "tools",
    "tool_choice",
    // Cohere decides on parallel calls itself; `false` cannot be honoured but asks for no
    // different answer shape, so it is accepted like LiteLLM does.
    "parallel_tool_calls",
    "response_format",
    "user",
];

/// The request for `POST {base}/v2/chat`.
pub fn chat_request(
    endpoint: &Endpoint,
    model: &str,
    body: Map<String, Value>,
    stream: bool,
    context: &RequestContext<'_>,
) -> Result<Prepared, ApiError> {
    let dropped =
        super::unsupported_params(&body, UNSUPPORTED, "Cohere", context.drop_unsupported)?;
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid(Some("messages"), "`messages` must be an array."))?;

    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert(
        "messages".into(),
        Value::Array(translate_messages(messages)?),
    );
    let max_tokens = match (body.get("max_completion_tokens"), body.get("max_tokens")) {
        (Some(v), _) if !v.is_null() => Some(v),
        (_, Some(v)) if !v.is_null() => Some(v),
        _ => None,
    };
    if let Some(v) = max_tokens {
        let n = v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::invalid(
                Some("max_tokens"),
                "`max_tokens` must be a positive integer.",
            )
        })?;
        out.insert("max_tokens".into(), json!(n));
    }
    if let Some(p) = body.get("top_p").filter(|v| !v.is_null()) {
        out.insert("p".into(), p.clone());
    }
    if let Some(stops) = super::stop_sequences(&body)? {
        out.insert("stop_sequences".into(), stops);
    }
    let mut tools = translate_tools(body.get("tools"))?;
    match body.get("tool_choice") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => match s.as_str() {
            "auto" => {}
            "none" => {
                out.insert("tool_choice".into(), json!("NONE"));
            }
            "required" => {
                out.insert("tool_choice".into(), json!("REQUIRED"));
            }
            other => {
                return Err(ApiError::invalid(
                    Some("tool_choice"),
                    format!("`tool_choice` {other:?} is not one of auto, none, required."),
                ))
            }
        },
        Some(v) => {
            let Some(name) = v
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
            else {
                return Err(ApiError::invalid(
                    Some("tool_choice"),
                    "`tool_choice` must be auto, none, required or {\"type\":\"function\",\"function\":{\"name\":…}}.",
                ));
            };
            // v2 cannot name a tool: the named one is the only one offered, and required.
            tools.retain(|t| t["function"]["name"] == name);
            if tools.is_empty() {
                return Err(ApiError::invalid(
                    Some("tool_choice"),
                    format!("`tool_choice` names `{name}`, which is not in `tools`."),
                ));
            }
            out.insert("tool_choice".into(), json!("REQUIRED"));
        }
    }
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    } else {
        out.remove("tool_choice");
    }
    if let Some(format) = response_format(body.get("response_format"))? {
        out.insert("response_format".into(), format);
    }
    match body.get("user") {
        None | Some(Value::Null) | Some(Value::String(_)) => {} // Cohere has no end-user field
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
    Ok(Prepared {
        call: call(endpoint, "/v2/chat", &Value::Object(out), stream),
        dropped,
    })
}

fn call(endpoint: &Endpoint, path: &str, body: &Value, stream: bool) -> Call {
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
        body: serde_json::to_vec(body).unwrap_or_default(),
        idle_timeout: None,
    }
}

/// OpenAI messages → v2 messages (`developer` is `system`).
fn translate_messages(messages: &[Value]) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        let content = m.get("content").unwrap_or(&Value::Null);
        let message = match role {
            "system" | "developer" => {
                json!({"role": "system", "content": text_of(content, i)?})
            }
            "user" => json!({"role": "user", "content": user_content(content, i)?}),
            "assistant" => {
                let text = text_of(content, i)?;
                let mut message = json!({"role": "assistant"});
                let calls = m.get("tool_calls").and_then(Value::as_array);
                match calls.filter(|c| !c.is_empty()) {
                    Some(calls) => {
                        let calls = calls
                            .iter()
                            .enumerate()
                            .map(|(j, c)| tool_call(c, i, j))
                            .collect::<Result<Vec<_>, _>>()?;
                        if !text.is_empty() {
                            message["tool_plan"] = json!(text);
                        }
                        message["tool_calls"] = Value::Array(calls);
                    }
                    None => message["content"] = json!(text),
                }
                message
            }
            "tool" => {
                let id = m.get("tool_call_id").and_then(Value::as_str).ok_or_else(|| {
                    ApiError::invalid(
                        Some(&format!("messages[{i}].tool_call_id")),
                        format!("`messages[{i}]` (role `tool`) needs a string `tool_call_id`."),
                    )
                })?;
                json!({"role": "tool", "tool_call_id": id, "content": text_of(content, i)?})
            }
            other => {
                return Err(ApiError::invalid(
                    Some(&format!("messages[{i}].role")),
                    format!("The role `{other}` is not supported for Cohere models (use system, user, assistant or tool)."),
                ))
            }
        };
        out.push(message);
    }
    Ok(out)
}

/// Text content (a string, or `text`/`refusal` parts) as one string.
fn text_of(content: &Value, i: usize) -> Result<String, ApiError> {
    match content {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for part in parts {
                let kind = part.get("type").and_then(Value::as_str).unwrap_or("text");
                let t = match kind {
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
                text.push_str(t.and_then(Value::as_str).ok_or_else(|| {
                    ApiError::invalid(
                        Some(&format!("messages[{i}].content")),
                        "A text content part needs a string `text`.",
                    )
                })?);
            }
            Ok(text)
        }
        _ => Err(ApiError::invalid(
            Some(&format!("messages[{i}].content")),
            format!("`messages[{i}].content` must be a string or an array of content parts."),
        )),
    }
}

/// A user message's content: a string, or text and `image_url` parts (vision models).
fn user_content(content: &Value, i: usize) -> Result<Value, ApiError> {
    let Value::Array(parts) = content else {
        return Ok(json!(text_of(content, i)?));
    };
    if !parts.iter().any(|p| p["type"] == "image_url") {
        return Ok(json!(text_of(content, i)?));
    }
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        if part["type"] == "image_url" {
            let url = part
                .get("image_url")
                .and_then(|u| u.get("url").or(Some(u)))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let mut image = json!({"url": url});
            if let Some(detail) = part["image_url"].get("detail").filter(|d| d.is_string()) {
                image["detail"] = detail.clone();
            }
            out.push(json!({"type": "image_url", "image_url": image}));
        } else {
            let text = text_of(&Value::Array(vec![part.clone()]), i)?;
            out.push(json!({"type": "text", "text": text}));
        }
    }
    Ok(Value::Array(out))
}

/// An assistant `tool_calls[j]` as v2 has it (arguments stay a JSON string).
fn tool_call(call: &Value, i: usize, j: usize) -> Result<Value, ApiError> {
    let param = format!("messages[{i}].tool_calls[{j}]");
    let function = call.get("function").unwrap_or(&Value::Null);
    let (Some(id), Some(name)) = (
        call.get("id").and_then(Value::as_str),
        function.get("name").and_then(Value::as_str),
    ) else {
        return Err(ApiError::invalid(
            Some(&param),
            format!("`{param}` needs an `id` and a `function.name`."),
        ));
    };
    let arguments = match function.get("arguments") {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(s)) if s.trim().is_empty() => "{}".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    Ok(json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}))
}

/// OpenAI function `tools` → v2 tools (the same shape, unknown keys left out).
fn translate_tools(tools: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    Ok(super::function_tools(tools)?
        .into_iter()
        .map(|t| {
            let mut f = json!({"name": t.name});
            if let Some(d) = t.description {
                f["description"] = json!(d);
            }
            f["parameters"] = t.parameters;
            json!({"type": "function", "function": f})
        })
        .collect())
}

/// `response_format` json_object / json_schema → v2's `{"type":"json_object","json_schema"?}`.
fn response_format(format: Option<&Value>) -> Result<Option<Value>, ApiError> {
    let Some(format) = format.filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let schema = format
                .get("json_schema")
                .and_then(|s| s.get("schema"))
                .filter(|s| s.is_object());
            Ok(Some(match schema {
                Some(schema) => json!({"type": "json_object", "json_schema": schema}),
                None => json!({"type": "json_object"}),
            }))
        }
        _ => Err(ApiError::invalid(
            Some("response_format"),
            "`response_format.type` must be text, json_object or json_schema.",
        )),
    }
}

/// Cohere's `finish_reason` → OpenAI's; `Err` for the reasons that mean no usable answer.
pub fn finish_reason(reason: Option<&str>) -> Result<&'static str, ApiError> {
    match reason {
        Some("MAX_TOKENS") => Ok("length"),
        Some("TOOL_CALL") => Ok("tool_calls"),
        Some("ERROR_TOXIC") => Ok("content_filter"),
        Some(r @ ("ERROR" | "ERROR_LIMIT" | "TIMEOUT")) => Err(ApiError::bad_gateway(
            "upstream_error",
            format!("The provider ended its answer with finish_reason {r}."),
        )),
        _ => Ok("stop"), // COMPLETE, STOP_SEQUENCE
    }
}

/// v2 `usage` → OpenAI usage, from `tokens` (what the model read and wrote); `billed_units`
/// is what Cohere charges and is left aside.
pub fn usage(u: &Value) -> Value {
    let n = |k: &str| {
        u.get("tokens")
            .and_then(|t| t.get(k))
            .and_then(Value::as_f64)
            .map_or(0, |n| n as u64)
    };
    let (prompt, completion) = (n("input_tokens"), n("output_tokens"));
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

/// A 2xx v2 Chat answer → an OpenAI `chat.completion` (v2 does not echo the model: `model` is
/// the one asked for).
pub fn response(model: &str, bytes: &[u8]) -> Result<Reply, ApiError> {
    let bad = |why: &str| {
        ApiError::bad_gateway(
            "upstream_bad_response",
            format!("The provider's response is not a Cohere chat answer: {why}."),
        )
    };
    let answer: Value = serde_json::from_slice(bytes).map_err(|_| bad("not JSON"))?;
    let message = answer
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| bad("no `message`"))?;
    let mut text: Option<String> = None;
    for block in message
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if block["type"] == "text" {
            let t = block["text"].as_str().unwrap_or_default();
            text.get_or_insert_with(String::new).push_str(t);
        }
    }
    let tool_calls: Vec<Value> = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let arguments = match &c["function"]["arguments"] {
                Value::String(s) => s.clone(),
                Value::Null => "{}".into(),
                other => other.to_string(),
            };
            json!({
                "id": c.get("id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {"name": c["function"]["name"].clone(), "arguments": arguments},
            })
        })
        .collect();
    if text.is_none() && !tool_calls.is_empty() {
        text = message
            .get("tool_plan")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
    }
    let mut out = json!({"role": "assistant", "content": text, "refusal": null});
    if !tool_calls.is_empty() {
        out["tool_calls"] = Value::Array(tool_calls);
    }
    let reason = finish_reason(answer.get("finish_reason").and_then(Value::as_str))?;
    let usage = answer.get("usage").map(usage);
    let completion = json!({
        "id": answer.get("id").cloned().unwrap_or(Value::Null),
        "object": "chat.completion",
        "created": crate::providers::anthropic::unix_now(),
        "model": model,
        "choices": [{"index": 0, "message": out, "logprobs": null, "finish_reason": reason}],
        "usage": usage,
    });
    Ok(Reply {
        body: serde_json::to_vec(&completion).unwrap_or_default(),
        usage,
    })
}

/// The request for `POST {base}/v2/embed`: texts in order, floats asked for; `input_type`
/// is the request's own field, else [`DEFAULT_INPUT_TYPE`]; `dimensions` is `output_dimension`.
pub fn embeddings_request(
    endpoint: &Endpoint,
    model: &str,
    body: Map<String, Value>,
) -> Result<Call, ApiError> {
    let texts = match body.get("input") {
        Some(Value::String(s)) => vec![json!(s)],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items.clone(),
        _ => {
            return Err(ApiError::invalid(
                Some("input"),
                "Cohere embeds text here: `input` must be a string or an array of strings (token arrays are not accepted).",
            ))
        }
    };
    let input_type = match body.get("input_type") {
        None | Some(Value::Null) => DEFAULT_INPUT_TYPE,
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(ApiError::invalid(
                Some("input_type"),
                "`input_type` must be a string (search_document, search_query, classification, clustering).",
            ))
        }
    };
    match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") | Some("base64") => {}
        Some(other) => {
            return Err(ApiError::invalid(
                Some("encoding_format"),
                format!("encoding_format must be float or base64, not {other:?}"),
            ))
        }
    }
    let mut out = json!({
        "model": model,
        "texts": texts,
        "input_type": input_type,
        "embedding_types": ["float"],
    });
    match body.get("dimensions") {
        None | Some(Value::Null) => {}
        Some(v) => {
            let d = v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
                ApiError::invalid(
                    Some("dimensions"),
                    "`dimensions` must be a positive integer.",
                )
            })?;
            out["output_dimension"] = json!(d);
        }
    }
    if let Some(truncate) = body.get("truncate").filter(|t| t.is_string()) {
        out["truncate"] = truncate.clone();
    }
    Ok(call(endpoint, "/v2/embed", &out, false))
}

/// A v2 Embed answer (`embeddings.float`) → an OpenAI embeddings list, in input order; the
/// usage is the billed input tokens, the only count Embed reports.
pub fn embeddings_response(model: &str, bytes: Vec<u8>, base64: bool) -> Result<Reply, ApiError> {
    let bad = |why: &str| ApiError::bad_gateway("upstream_bad_response", why.to_string());
    let answer: Value = serde_json::from_slice(&bytes)
        .map_err(|_| bad("The provider's embeddings answer is not JSON."))?;
    let vectors = answer
        .pointer("/embeddings/float")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("The provider's answer has no float embeddings."))?;
    let mut data = Vec::with_capacity(vectors.len());
    for (index, values) in vectors.iter().enumerate() {
        let values = values
            .as_array()
            .ok_or_else(|| bad("An embedding is not an array of numbers."))?;
        data.push(super::embedding_item(index, values, base64));
    }
    let usage = answer
        .pointer("/meta/billed_units/input_tokens")
        .and_then(Value::as_f64)
        .map(|n| json!({"prompt_tokens": n as u64, "total_tokens": n as u64}));
    let list = json!({"object": "list", "data": data, "model": model, "usage": usage});
    Ok(Reply {
        body: serde_json::to_vec(&list).unwrap_or_default(),
        usage,
    })
}

/// Cohere's error (`{"message": …}`, sometimes with an `id`) → the OpenAI error shape, message
/// verbatim: 4xx kept, 503 kept, any other 5xx → 502.
pub fn parse_error(status: u16, body: &[u8]) -> ApiError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            let raw = String::from_utf8_lossy(&body[..body.len().min(500)]);
            format!("The provider answered HTTP {status}: {}", raw.trim())
        });
    error_for(status, message)
}

/// The error for an upstream status and message.
fn error_for(status: u16, message: String) -> ApiError {
    let client_status = match status {
        400..=499 | 503 => status,
        _ => 502,
    };
    let kind = match client_status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        500..=599 => "upstream_error",
        _ => "invalid_request_error",
    };
    let mut e = ApiError::new(client_status, kind, None, message);
    if status >= 500 {
        e.code = Some(format!("upstream_http_{status}"));
    }
    e
}

#[cfg(test)]
mod tests;
