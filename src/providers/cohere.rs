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

mod stream;

use serde_json::{json, Map, Value};

use super::calls::{self, bearer};
use super::errors::{kind_of_status, raw_message, upstream_code};
use super::request::{self, text_of, JsonFormat, ToolChoice};
use super::{
    bad_response, shape, ChatStream, Dialect, Listed, Prepared, Reply, RequestContext, Settings,
    Target,
};
use crate::error::ApiError;
use crate::upstream::{Call, Received};

/// `input_type` of an embeddings request when the client gives none.
const DEFAULT_INPUT_TYPE: &str = "search_document";

/// OpenAI parameters Cohere cannot honour. A value that asks for nothing (`null`, `false`,
/// `0`, `n: 1`) is accepted silently.
const UNSUPPORTED: &[&[&str]] = &[request::TOKEN_PARAMS, request::OPENAI_ONLY_PARAMS];

/// Request fields translated here (everything else not in [`UNSUPPORTED`] passes through).
/// Cohere decides on parallel calls itself; `parallel_tool_calls: false` cannot be honoured
/// but asks for no different answer shape, so it is accepted like LiteLLM does.
const TRANSLATED: &[&[&str]] = &[request::TRANSLATED_PARAMS, &["top_p"]];

/// The request for `POST {base}/v2/chat`.
fn chat_request(
    target: &Target,
    body: Map<String, Value>,
    stream: bool,
    context: &RequestContext<'_>,
) -> Result<Prepared, ApiError> {
    let dropped =
        request::unsupported_params(&body, UNSUPPORTED, "Cohere", context.drop_unsupported)?;
    let messages = request::messages(&body)?;

    let mut out = Map::new();
    out.insert("model".into(), json!(target.model));
    out.insert(
        "messages".into(),
        Value::Array(translate_messages(messages)?),
    );
    if let Some(n) = request::max_tokens(&body)? {
        out.insert("max_tokens".into(), json!(n));
    }
    if let Some(p) = body.get("top_p").filter(|v| !v.is_null()) {
        out.insert("p".into(), p.clone());
    }
    if let Some(stops) = request::stop_sequences(&body)? {
        out.insert("stop_sequences".into(), stops);
    }
    let mut tools = translate_tools(body.get("tools"))?;
    match request::tool_choice(body.get("tool_choice"))? {
        None | Some(ToolChoice::Auto) => {}
        Some(ToolChoice::None) => {
            out.insert("tool_choice".into(), json!("NONE"));
        }
        Some(ToolChoice::Required) => {
            out.insert("tool_choice".into(), json!("REQUIRED"));
        }
        Some(ToolChoice::Function(name)) => {
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
    request::pass_through(&body, &mut out, TRANSLATED, UNSUPPORTED);
    if stream {
        out.insert("stream".into(), json!(true));
    }
    Ok(Prepared {
        call: call(target, "/v2/chat", &Value::Object(out), stream),
        dropped,
    })
}

/// A POST to `{base}{path}` with the key as a bearer token (as OpenAI's).
fn call(target: &Target, path: &str, body: &Value, stream: bool) -> Call {
    calls::post(target, path, bearer(target.api_key(), stream), body)
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
                let id = request::tool_call_id(m, i)?;
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
            let mut image = json!({"url": request::image_url(part)});
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
    let (id, name, arguments) = request::tool_call_text(call, i, j)?;
    Ok(shape::tool_call(json!(id), json!(name), arguments))
}

/// OpenAI function `tools` → v2 tools (the same shape, unknown keys left out).
fn translate_tools(tools: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    Ok(request::function_tools(tools)?
        .into_iter()
        .map(|t| {
            let mut f = t.declaration();
            f["parameters"] = t.parameters;
            json!({"type": "function", "function": f})
        })
        .collect())
}

/// `response_format` json_object / json_schema → v2's `{"type":"json_object","json_schema"?}`.
fn response_format(format: Option<&Value>) -> Result<Option<Value>, ApiError> {
    Ok(request::json_format(format)?.map(|format| match format {
        JsonFormat::Schema {
            schema: Some(schema),
            ..
        } => json!({"type": "json_object", "json_schema": schema}),
        _ => json!({"type": "json_object"}),
    }))
}

/// Cohere's `finish_reason` → OpenAI's; `Err` for the reasons that mean no usable answer.
fn finish_reason(reason: Option<&str>) -> Result<&'static str, ApiError> {
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

/// v2 `usage` → OpenAI usage, from `tokens` (what the model read and wrote), with
/// `cached_tokens` as `prompt_tokens_details.cached_tokens`; `billed_units`, what Cohere
/// charges (and the cost is computed from), kept as `billed_units`.
fn usage(u: &Value) -> Value {
    // Cohere's counts are JSON numbers that may be written as floats (`5.0`).
    let n = |v: Option<&Value>| v.and_then(Value::as_f64).map_or(0, |n| n as u64);
    let tokens = |k: &str| n(u.get("tokens").and_then(|t| t.get(k)));
    let (prompt, completion) = (tokens("input_tokens"), tokens("output_tokens"));
    let mut usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        // Saturating: the counts are the provider's, and a bogus one must not panic.
        "total_tokens": prompt.saturating_add(completion),
        "prompt_tokens_details": {"cached_tokens": n(u.get("cached_tokens")).min(prompt)},
    });
    if let Some(billed) = u.get("billed_units").filter(|b| b.is_object()) {
        let units = |k: &str| n(billed.get(k));
        usage["billed_units"] =
            json!({"input_tokens": units("input_tokens"), "output_tokens": units("output_tokens")});
    }
    usage
}

/// A 2xx v2 Chat answer → an OpenAI `chat.completion` (v2 does not echo the model: `model` is
/// the one asked for).
fn response(model: &str, bytes: &[u8]) -> Result<Reply, ApiError> {
    let bad = |why: &str| bad_response(format_args!("not a Cohere chat answer: {why}"));
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
            shape::tool_call(
                c.get("id").cloned().unwrap_or(Value::Null),
                c["function"]["name"].clone(),
                arguments,
            )
        })
        .collect();
    if text.is_none() && !tool_calls.is_empty() {
        text = message
            .get("tool_plan")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
    }
    let message = shape::assistant_message(text, None, tool_calls);
    let reason = finish_reason(answer.get("finish_reason").and_then(Value::as_str))?;
    Ok(shape::completion(
        answer.get("id").cloned().unwrap_or(Value::Null),
        json!(model),
        vec![shape::choice(0, message, reason)],
        answer.get("usage").map(usage),
    ))
}

/// The request for `POST {base}/v2/embed`: texts in order, floats asked for; `input_type`
/// is the request's own field, else [`DEFAULT_INPUT_TYPE`]; `dimensions` is `output_dimension`.
fn embeddings_request(target: &Target, body: &Map<String, Value>) -> Result<Call, ApiError> {
    let read = request::text_embeddings(body, "Cohere")?;
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
    let mut out = json!({
        "model": target.model,
        "texts": read.texts,
        "input_type": input_type,
        "embedding_types": ["float"],
    });
    if let Some(d) = read.dimensions {
        out["output_dimension"] = json!(d);
    }
    if let Some(truncate) = body.get("truncate").filter(|t| t.is_string()) {
        out["truncate"] = truncate.clone();
    }
    Ok(call(target, "/v2/embed", &out, false))
}

/// A v2 Embed answer (`embeddings.float`) → an OpenAI embeddings list, in input order; the
/// usage is the billed input tokens, the only count Embed reports.
fn embeddings_response(model: &str, bytes: &[u8], base64: bool) -> Result<Reply, ApiError> {
    let answer: Value = serde_json::from_slice(bytes)
        .map_err(|_| bad_response("the embeddings answer is not JSON"))?;
    let vectors = answer
        .pointer("/embeddings/float")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_response("no float embeddings"))?;
    let tokens = answer
        .pointer("/meta/billed_units/input_tokens")
        .and_then(Value::as_f64)
        .map(|n| n as u64);
    shape::embeddings(model, vectors, base64, tokens)
        .ok_or_else(|| bad_response("an embedding is not an array of numbers"))
}

/// Cohere's error (`{"message": …}`, sometimes with an `id`) → the OpenAI error shape, message
/// verbatim: 4xx kept, 503 kept, any other 5xx → 502.
fn parse_error(status: u16, body: &[u8]) -> ApiError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| raw_message(status, body));
    error_for(status, message)
}

/// The error for an upstream status and message.
fn error_for(status: u16, message: String) -> ApiError {
    let client_status = match status {
        400..=499 | 503 => status,
        _ => 502,
    };
    let mut e = ApiError::new(client_status, kind_of_status(client_status), None, message);
    e.code = upstream_code(status);
    e
}

pub struct Cohere;

impl Dialect for Cohere {
    fn chat_request(
        &self,
        target: &Target,
        body: Map<String, Value>,
        stream: bool,
        context: &RequestContext<'_>,
    ) -> Result<Prepared, ApiError> {
        chat_request(target, body, stream, context)
    }

    fn chat_response(&self, target: &Target, answer: Received) -> Result<Reply, ApiError> {
        response(&target.model, &answer.body)
    }

    fn chat_stream(&self, target: &Target) -> Box<dyn ChatStream> {
        Box::new(stream::StreamState::new(&target.model))
    }

    fn embeddings_request(
        &self,
        target: &Target,
        body: Map<String, Value>,
    ) -> Result<Vec<Call>, ApiError> {
        Ok(vec![embeddings_request(target, &body)?])
    }

    fn embeddings_response(
        &self,
        target: &Target,
        answers: Vec<Received>,
        base64: bool,
    ) -> Result<Reply, ApiError> {
        let body = answers.first().map_or(&[][..], |a| &a.body[..]);
        embeddings_response(&target.model, body, base64)
    }

    fn parse_error(&self, status: u16, body: &[u8]) -> ApiError {
        parse_error(status, body)
    }

    /// `GET {base}/v1/models?page_size=1000` (bearer).
    fn models_request(&self, settings: &Settings) -> Option<Call> {
        calls::models_call(settings, "/v1/models?page_size=1000", |key| {
            bearer(Some(key), false)
        })
    }

    /// `models[].name`.
    fn models_response(&self, body: &[u8]) -> Result<Vec<Listed>, String> {
        calls::listed(body, "models", |m| Some(calls::named(m["name"].as_str()?)))
    }
}

#[cfg(test)]
mod tests;
