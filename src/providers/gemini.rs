//! The Google Gemini dialect (`generativelanguage.googleapis.com`, API version `v1beta`).
//!
//! Chat: an OpenAI chat body becomes a `generateContent` request (`contents` of `user` and
//! `model` turns made of `parts`, `systemInstruction`, `tools` as `functionDeclarations`,
//! `toolConfig`, `generationConfig`); the answer's candidates become OpenAI choices, its
//! `functionCall` parts tool calls with ids `call_<n>` (numbered per choice, so a stream and
//! the same answer unstreamed agree), its thoughts `reasoning_content`, its `usageMetadata`
//! the usage. Streams use `:streamGenerateContent?alt=sse`, whose events are whole
//! `GenerateContentResponse`s and which has no terminal event: [`StreamState`] ends the
//! stream itself once every choice has a finish reason. Embeddings use `:batchEmbedContents`.
//! The key goes in the `x-goog-api-key` header, never in the URL.
//!
//! Gemini 3 returns a `thoughtSignature` with each function call and wants it back with the
//! call in later turns; it rides along in the tool call id (`call_0__thought__<signature>`),
//! which clients return unchanged.

mod messages;
mod schema;
mod stream;

use serde_json::{json, Map, Value};

use super::calls;
use super::errors::{kind_of_status, raw_message, relayed_status, upstream_code};
use super::{
    bad_response, request, shape, ChatStream, Dialect, Listed, Prepared, Reply, RequestContext,
    Settings, Target,
};
use crate::error::ApiError;
use crate::upstream::{Call, Received};

/// Separates a tool call's own id from the thought signature carried in it.
const SIGNATURE_MARK: &str = "__thought__";

/// The request for `POST {base}/v1beta/models/{model}:generateContent` (or
/// `:streamGenerateContent?alt=sse`).
fn chat_request(
    target: &Target,
    body: Map<String, Value>,
    stream: bool,
    drop_unsupported: bool,
) -> Result<Prepared, ApiError> {
    let model = model_path(&target.model)?;
    let (request, dropped) = chat_body(&body, drop_unsupported)?;
    let method = if stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    };
    Ok(Prepared {
        call: call(
            target,
            &format!("/v1beta/models/{model}:{method}"),
            &request,
            stream,
        ),
        dropped,
    })
}

/// The request for `POST {base}/v1beta/models/{model}:batchEmbedContents`: one call for the
/// whole batch, inputs in order.
fn embeddings_request(target: &Target, body: &Map<String, Value>) -> Result<Call, ApiError> {
    let model = model_path(&target.model)?;
    let read = request::text_embeddings(body, "Gemini")?;
    let requests: Vec<Value> = read
        .texts
        .into_iter()
        .map(|text| {
            let mut r =
                json!({"model": format!("models/{model}"), "content": {"parts": [{"text": text}]}});
            if let Some(d) = read.dimensions {
                r["outputDimensionality"] = json!(d);
            }
            r
        })
        .collect();
    Ok(call(
        target,
        &format!("/v1beta/models/{model}:batchEmbedContents"),
        &json!({ "requests": requests }),
        false,
    ))
}

/// A Gemini model name as it goes in the path; anything that could leave the path segment
/// is refused.
fn model_path(model: &str) -> Result<&str, ApiError> {
    let model = model.strip_prefix("models/").unwrap_or(model);
    let fine = !model.is_empty()
        && model
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if fine {
        Ok(model)
    } else {
        Err(ApiError::invalid(
            Some("model"),
            format!("`{model}` is not a valid Gemini model name."),
        ))
    }
}

/// A POST to `{base}{path}` with the key in `x-goog-api-key`.
fn call(target: &Target, path: &str, body: &Value, stream: bool) -> Call {
    calls::post(target, path, headers(target.api_key(), stream), body)
}

/// [`calls::headers`] with the key in `x-goog-api-key`.
fn headers(key: Option<&str>, stream: bool) -> Vec<(&'static str, String)> {
    calls::headers(key.map(|k| ("x-goog-api-key", k.to_string())), stream)
}

/// Parameters that do not change the answer, or are handled elsewhere: accepted, not sent.
const IGNORED: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "user",
    "metadata",
    "store",
    "service_tier",
];

/// The `generateContent` body for an OpenAI chat body, and the parameters dropped.
fn chat_body(
    body: &Map<String, Value>,
    drop_unsupported: bool,
) -> Result<(Value, Vec<String>), ApiError> {
    let mut out = Map::new();
    let mut config = Map::new();
    let mut dropped = Vec::new();
    for (key, value) in body {
        if IGNORED.contains(&key.as_str()) || value.is_null() {
            continue;
        }
        let supported = match key.as_str() {
            "max_tokens" | "max_completion_tokens" => {
                config.insert("maxOutputTokens".into(), json!(integer(key, value)?));
                true
            }
            "temperature" => set_number(&mut config, "temperature", key, value)?,
            "top_p" => set_number(&mut config, "topP", key, value)?,
            "presence_penalty" => set_number(&mut config, "presencePenalty", key, value)?,
            "frequency_penalty" => set_number(&mut config, "frequencyPenalty", key, value)?,
            "seed" => {
                config.insert(
                    "seed".into(),
                    json!(value.as_i64().ok_or_else(|| bad_type(key, "an integer"))?),
                );
                true
            }
            "n" => {
                config.insert("candidateCount".into(), json!(integer(key, value)?));
                true
            }
            "stop" => {
                let stops: Vec<Value> = match value {
                    Value::String(s) => vec![json!(s)],
                    Value::Array(items) if items.iter().all(Value::is_string) => items.clone(),
                    _ => return Err(bad_type(key, "a string or an array of strings")),
                };
                config.insert("stopSequences".into(), Value::Array(stops));
                true
            }
            "response_format" => response_format(&mut config, value)?,
            "reasoning_effort" => {
                let budget = match value.as_str() {
                    Some("none") | Some("minimal") => 0,
                    Some("low") => 1024,
                    Some("medium") => 8192,
                    Some("high") => 24576,
                    _ => return Err(bad_type(key, "one of none, minimal, low, medium, high")),
                };
                config.insert("thinkingConfig".into(), json!({"thinkingBudget": budget}));
                true
            }
            "tools" => tools(&mut out, value)?,
            "tool_choice" => tool_choice(&mut out, value)?,
            // Gemini may answer with several calls at once; it cannot be told not to.
            "parallel_tool_calls" => value.as_bool() != Some(false),
            "logprobs" => value.as_bool() == Some(false),
            _ => false,
        };
        if !supported {
            if !drop_unsupported {
                let mut e = ApiError::invalid(
                    Some(key),
                    format!("`{key}` is not supported by Gemini models; remove it, or set DROP_UNSUPPORTED_PARAMS=true to have the gateway drop it."),
                );
                e.code = Some("unsupported_parameter".into());
                return Err(e);
            }
            dropped.push(key.clone());
        }
    }
    let (system, contents) = messages::contents(body.get("messages"))?;
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    Ok((Value::Object(out), dropped))
}

fn bad_type(key: &str, expected: &str) -> ApiError {
    ApiError::invalid(Some(key), format!("`{key}` must be {expected}."))
}

fn integer(key: &str, value: &Value) -> Result<u64, ApiError> {
    value
        .as_u64()
        .ok_or_else(|| bad_type(key, "a non-negative integer"))
}

fn set_number(
    config: &mut Map<String, Value>,
    name: &str,
    key: &str,
    value: &Value,
) -> Result<bool, ApiError> {
    if !value.is_number() {
        return Err(bad_type(key, "a number"));
    }
    config.insert(name.into(), value.clone());
    Ok(true)
}

/// `response_format` → `responseMimeType` (+ `responseSchema`).
fn response_format(config: &mut Map<String, Value>, value: &Value) -> Result<bool, ApiError> {
    match value.get("type").and_then(Value::as_str) {
        Some("text") => {}
        Some("json_object") => {
            config.insert("responseMimeType".into(), json!("application/json"));
        }
        Some("json_schema") => {
            config.insert("responseMimeType".into(), json!("application/json"));
            if let Some(s) = value.get("json_schema").and_then(|j| j.get("schema")) {
                let cleaned = schema::clean(s, "response_format.json_schema.schema")?;
                config.insert("responseSchema".into(), cleaned);
            }
        }
        _ => {
            return Err(bad_type(
                "response_format",
                "an object whose type is text, json_object or json_schema",
            ))
        }
    }
    Ok(true)
}

/// `tools` → one `functionDeclarations` tool. Only function tools have an equivalent.
fn tools(out: &mut Map<String, Value>, value: &Value) -> Result<bool, ApiError> {
    let Some(list) = value.as_array() else {
        return Err(bad_type("tools", "an array"));
    };
    let mut declarations = Vec::new();
    for (i, tool) in list.iter().enumerate() {
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            return Ok(false);
        }
        let function = tool.get("function").unwrap_or(&Value::Null);
        let Some(name) = function.get("name").and_then(Value::as_str) else {
            return Err(ApiError::invalid(
                Some(&format!("tools[{i}].function.name")),
                "Each function tool needs a `name`.",
            ));
        };
        let mut d = json!({ "name": name });
        if let Some(text) = function.get("description").and_then(Value::as_str) {
            d["description"] = json!(text);
        }
        let params = function.get("parameters").unwrap_or(&Value::Null);
        if !schema::is_empty_object(params) {
            d["parameters"] = schema::clean(params, &format!("tools[{i}].function.parameters"))?;
        }
        declarations.push(d);
    }
    if !declarations.is_empty() {
        out.insert(
            "tools".into(),
            json!([{ "functionDeclarations": declarations }]),
        );
    }
    Ok(true)
}

/// `tool_choice` → `toolConfig.functionCallingConfig`.
fn tool_choice(out: &mut Map<String, Value>, value: &Value) -> Result<bool, ApiError> {
    let config = match value {
        Value::String(mode) => match mode.as_str() {
            "auto" => json!({"mode": "AUTO"}),
            "none" => json!({"mode": "NONE"}),
            "required" => json!({"mode": "ANY"}),
            _ => {
                return Err(bad_type(
                    "tool_choice",
                    "auto, none, required or a function",
                ))
            }
        },
        Value::Object(choice) => {
            let name = choice
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str);
            match (choice.get("type").and_then(Value::as_str), name) {
                (Some("function"), Some(name)) => {
                    json!({"mode": "ANY", "allowedFunctionNames": [name]})
                }
                _ => return Ok(false),
            }
        }
        _ => {
            return Err(bad_type(
                "tool_choice",
                "auto, none, required or a function",
            ))
        }
    };
    out.insert(
        "toolConfig".into(),
        json!({ "functionCallingConfig": config }),
    );
    Ok(true)
}

/// A `generateContent` answer → an OpenAI `chat.completion`.
fn chat_response(model: &str, bytes: Vec<u8>) -> Result<Reply, ApiError> {
    let answer = parse_answer(&bytes)?;
    let usage = answer.get("usageMetadata").map(usage);
    let mut choices = Vec::new();
    for (position, candidate) in candidates(&answer).iter().enumerate() {
        let index = candidate_index(candidate, position);
        let turn = Turn::of(candidate, index);
        let has_calls = !turn.calls.is_empty();
        let finish = candidate
            .get("finishReason")
            .and_then(Value::as_str)
            .map_or("stop", |r| finish_reason(r, has_calls));
        // A turn of tool calls alone has no text (`null`); any other keeps its text, even "".
        let text = (!turn.text.is_empty() || !has_calls).then_some(turn.text);
        let reasoning = (!turn.reasoning.is_empty()).then_some(turn.reasoning);
        let message = shape::assistant_message(text, reasoning, turn.calls);
        choices.push(shape::choice(index, message, finish));
    }
    if choices.is_empty() {
        if answer.pointer("/promptFeedback/blockReason").is_none() {
            return Err(ApiError::bad_gateway(
                "upstream_bad_response",
                "The provider's answer has no candidates.",
            ));
        }
        // The prompt itself was blocked.
        let message = shape::assistant_message(None, None, Vec::new());
        choices.push(shape::choice(0, message, "content_filter"));
    }
    Ok(shape::completion(
        json!(completion_id(&answer)),
        json!(answer
            .get("modelVersion")
            .and_then(Value::as_str)
            .unwrap_or(model)),
        choices,
        usage,
    ))
}

/// A `batchEmbedContents` answer → an OpenAI embeddings list, in input order. The API reports
/// no token counts, so usage is unknown (`null`), not 0.
fn embeddings_response(model: &str, bytes: Vec<u8>, base64: bool) -> Result<Reply, ApiError> {
    let answer = parse_answer(&bytes)?;
    let Some(embeddings) = answer.get("embeddings").and_then(Value::as_array) else {
        return Err(bad_response("no embeddings"));
    };
    let vectors = embeddings
        .iter()
        .map(|e| e.get("values").cloned().unwrap_or(Value::Null))
        .collect::<Vec<_>>();
    let tokens = answer
        .pointer("/usageMetadata/promptTokenCount")
        .and_then(Value::as_u64);
    shape::embeddings(model, &vectors, base64, tokens)
        .ok_or_else(|| bad_response("an embedding has no values"))
}

/// Google's error (`{"error":{"code","message","status","details"}}`) in the OpenAI shape:
/// the message verbatim, `code` from `status`, 4xx kept, 5xx → 502 except 503 and 504. A
/// `RetryInfo` delay becomes `retry-after`.
fn parse_error(status: u16, body: &[u8]) -> ApiError {
    let client_status = relayed_status(status);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    // The non-SSE stream endpoint wraps the error in an array.
    let parsed = match parsed {
        Some(Value::Array(mut items)) if !items.is_empty() => Some(items.swap_remove(0)),
        other => other,
    };
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    error_of(client_status, status, error, body)
}

fn error_of(client_status: u16, status: u16, error: Option<&Value>, body: &[u8]) -> ApiError {
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| raw_message(status, body));
    let code = error
        .and_then(|e| e.get("status"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| upstream_code(status));
    let mut e = ApiError::new(client_status, kind_of_status(client_status), None, message);
    e.code = code;
    let delay = error
        .and_then(|e| e.get("details"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find_map(|d| d.get("retryDelay").and_then(Value::as_str));
    if let Some(secs) = delay.and_then(|d| d.strip_suffix('s')?.parse::<f64>().ok()) {
        e.headers
            .push(("retry-after".into(), (secs.ceil() as u64).to_string()));
    }
    e
}

fn parse_answer(bytes: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(bad_response("not a JSON object")),
    }
}

fn candidates(answer: &Value) -> &[Value] {
    answer
        .get("candidates")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn candidate_index(candidate: &Value, position: usize) -> u64 {
    candidate
        .get("index")
        .and_then(Value::as_u64)
        .unwrap_or(position as u64)
}

fn completion_id(answer: &Value) -> String {
    match answer.get("responseId").and_then(Value::as_str) {
        Some(id) => format!("chatcmpl-{id}"),
        None => shape::completion_id(),
    }
}

/// What one candidate (or one stream event's piece of it) says.
struct Turn {
    text: String,
    reasoning: String,
    calls: Vec<Value>,
}

impl Turn {
    /// Reads a candidate's parts; tool calls are numbered from `first_call`.
    fn read(candidate: &Value, choice: u64, first_call: usize) -> Turn {
        let mut turn = Turn {
            text: String::new(),
            reasoning: String::new(),
            calls: Vec::new(),
        };
        let parts = candidate
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for part in parts {
            if let Some(call) = part.get("functionCall") {
                let n = first_call + turn.calls.len();
                let mut id = if choice == 0 {
                    format!("call_{n}")
                } else {
                    format!("call_{choice}_{n}")
                };
                if let Some(sig) = part.get("thoughtSignature").and_then(Value::as_str) {
                    id = format!("{id}{SIGNATURE_MARK}{sig}");
                }
                let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
                let name = call.get("name").and_then(Value::as_str).unwrap_or("");
                turn.calls
                    .push(shape::tool_call(json!(id), json!(name), args.to_string()));
            } else if let Some(text) = part.get("text").and_then(Value::as_str) {
                if part.get("thought").and_then(Value::as_bool) == Some(true) {
                    turn.reasoning.push_str(text);
                } else {
                    turn.text.push_str(text);
                }
            }
        }
        turn
    }

    fn of(candidate: &Value, choice: u64) -> Turn {
        Turn::read(candidate, choice, 0)
    }
}

/// Gemini's `finishReason` → OpenAI's.
fn finish_reason(reason: &str, has_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "PROHIBITED_CONTENT" | "BLOCKLIST" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ if has_calls => "tool_calls",
        _ => "stop",
    }
}

/// `usageMetadata` → OpenAI usage. Thoughts are output tokens (and billed as such); tokens of
/// tool results fed back by Google's own tools count as prompt. Zero counts are omitted by
/// Google's JSON, so a missing count is 0 when `usageMetadata` itself is there.
fn usage(meta: &Value) -> Value {
    let count = |key: &str| meta.get(key).and_then(Value::as_u64).unwrap_or(0);
    // Saturating: the counts are the provider's, and a bogus one must not panic.
    let prompt = count("promptTokenCount").saturating_add(count("toolUsePromptTokenCount"));
    let thoughts = count("thoughtsTokenCount");
    let completion = count("candidatesTokenCount").saturating_add(thoughts);
    let total = meta
        .get("totalTokenCount")
        .and_then(Value::as_u64)
        .unwrap_or(prompt.saturating_add(completion));
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total,
        "prompt_tokens_details": {"cached_tokens": count("cachedContentTokenCount")},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    })
}

pub struct Gemini;

impl Dialect for Gemini {
    fn check_model(&self, _requested: &str, model: &str) -> Result<(), ApiError> {
        model_path(model).map(|_| ())
    }

    fn chat_request(
        &self,
        target: &Target,
        body: Map<String, Value>,
        stream: bool,
        context: &RequestContext<'_>,
    ) -> Result<Prepared, ApiError> {
        chat_request(target, body, stream, context.drop_unsupported)
    }

    fn chat_response(&self, target: &Target, answer: Received) -> Result<Reply, ApiError> {
        chat_response(&target.model, answer.body)
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
        mut answers: Vec<Received>,
        base64: bool,
    ) -> Result<Reply, ApiError> {
        let answer = answers.pop().ok_or_else(|| bad_response("no answer"))?;
        embeddings_response(&target.model, answer.body, base64)
    }

    fn parse_error(&self, status: u16, body: &[u8]) -> ApiError {
        parse_error(status, body)
    }

    /// `GET {base}/v1beta/models?pageSize=1000` (`x-goog-api-key`).
    fn models_request(&self, settings: &Settings) -> Option<Call> {
        calls::models_call(settings, "/v1beta/models?pageSize=1000", |key| {
            headers(Some(key), false)
        })
    }

    /// `models[].name` as `models/<id>`.
    fn models_response(&self, body: &[u8]) -> Result<Vec<Listed>, String> {
        calls::listed(body, "models", |m| {
            let name = m["name"].as_str()?;
            Some(calls::named(name.strip_prefix("models/").unwrap_or(name)))
        })
    }
}

#[cfg(test)]
mod tests;
