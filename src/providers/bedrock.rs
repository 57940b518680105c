//! The AWS Bedrock dialect (Converse, `POST {base}/model/{model-id}/converse`, and
//! ConverseStream, `…/converse-stream`): an OpenAI chat body becomes a Converse request, the
//! Converse answer a `chat.completion`, Bedrock's errors the OpenAI error shape, and its binary
//! event stream (decoded by [`eventstream`]) OpenAI chunks ([`stream::StreamState`]).
//!
//! Requests are signed with SigV4 ([`sigv4`]) from the AWS access keys, or carry a Bedrock API
//! key (`AWS_BEARER_TOKEN_BEDROCK`) as a bearer token. The model id goes in the path
//! URI-encoded (`:` as `%3A`).
//!
//! Translation: system (and developer) messages become `system` blocks; turns of the same role
//! are merged so user and assistant alternate; `tool` messages become `toolResult` blocks of a
//! user turn; assistant `tool_calls` become `toolUse` blocks; images (base64 data URLs) become
//! `image` blocks with their bytes. `max_tokens`, `temperature`, `top_p` and `stop` go into
//! `inferenceConfig`; `tools`/`tool_choice` into `toolConfig`. Converse's own top-level fields
//! (`additionalModelRequestFields`, `guardrailConfig`, …) pass through; OpenAI parameters
//! Converse cannot honour are a 400 naming them (or dropped with `DROP_UNSUPPORTED_PARAMS`).

pub mod eventstream;
pub mod sigv4;
pub mod stream;

use serde_json::{json, Map, Value};

use crate::config::{Config, Endpoint};
use crate::error::ApiError;
use crate::providers::{missing_key, Prepared, Provider, Reply, Target};
use crate::upstream::Call;

pub use stream::StreamState;

/// The SigV4 service name of Bedrock Runtime.
pub const SERVICE: &str = "bedrock";

/// How requests to Bedrock are authenticated.
#[derive(Clone)]
pub enum Auth {
    /// A Bedrock API key (`AWS_BEARER_TOKEN_BEDROCK`).
    Bearer(String),
    /// SigV4 with these credentials, for this region.
    SigV4 {
        credentials: sigv4::Credentials,
        region: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Bearer(_) => write!(f, "Bearer(***)"),
            Auth::SigV4 { region, .. } => write!(f, "SigV4 {{ region: {region:?} }}"),
        }
    }
}

/// The target for `bedrock/<model-id>`; `Ok(None)`: no credentials, the OpenAI-compatible
/// upstream gets the name as is.
pub fn target(config: &Config, requested: &str, model: &str) -> Result<Option<Target>, ApiError> {
    let b = &config.bedrock;
    let auth = match (&b.bearer_token, &b.access_key_id, &b.secret_access_key) {
        (Some(token), _, _) => Auth::Bearer(token.clone()),
        (None, Some(id), Some(secret)) => Auth::SigV4 {
            credentials: sigv4::Credentials {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
                session_token: b.session_token.clone(),
            },
            region: b.region.clone(),
        },
        _ if config.upstream.is_some() => return Ok(None),
        _ => {
            return Err(missing_key(
                requested,
                "bedrock",
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_BEARER_TOKEN_BEDROCK)",
            ))
        }
    };
    if model.is_empty() {
        return Err(ApiError::invalid(
            Some("model"),
            "A Bedrock model is named bedrock/<model-id>, e.g. bedrock/anthropic.claude-3-5-haiku-20241022-v1:0.",
        ));
    }
    let endpoint = Endpoint {
        base_url: b.base_url.clone(),
        api_key: None,
    };
    Ok(Some(Target {
        aws: Some(auth),
        ..Target::new(Provider::Bedrock, model, Some(endpoint))
    }))
}

/// A call to `{base}/model/{model-id}/{action}` with `body`, authenticated.
pub fn call(
    endpoint: &Endpoint,
    auth: Option<&Auth>,
    model: &str,
    action: &str,
    body: Vec<u8>,
    accept: &str,
) -> Call {
    call_at(
        endpoint,
        auth,
        model,
        action,
        body,
        accept,
        &sigv4::amz_date_now(),
    )
}

/// [`call`] at a given time (`x-amz-date`).
pub fn call_at(
    endpoint: &Endpoint,
    auth: Option<&Auth>,
    model: &str,
    action: &str,
    body: Vec<u8>,
    accept: &str,
    amz_date: &str,
) -> Call {
    let url = format!(
        "{}/model/{}/{action}",
        endpoint.base_url,
        sigv4::uri_encode(model)
    );
    let mut headers = vec![("accept", accept.to_string())];
    if accept != "application/json" {
        // A compressed event stream would be held back by the decoder.
        headers.push(("accept-encoding", "identity".into()));
    }
    match auth {
        Some(Auth::Bearer(token)) => headers.push(("authorization", format!("Bearer {token}"))),
        Some(Auth::SigV4 {
            credentials,
            region,
        }) => headers.extend(sigv4::signed_headers(
            credentials,
            region,
            SERVICE,
            amz_date,
            &url,
            &body,
        )),
        None => {}
    }
    Call {
        url,
        headers,
        body,
        idle_timeout: None,
    }
}

/// OpenAI parameters Converse cannot honour; a value that asks for nothing is accepted.
const UNSUPPORTED: &[&str] = &[
    // Converse has no JSON mode.
    "response_format",
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

/// Converse's own request fields, passed through as the client sent them.
const PASSED: &[&str] = &[
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "guardrailConfig",
    "performanceConfig",
    "promptVariables",
    "requestMetadata",
];

/// The Converse (or ConverseStream) request for an OpenAI chat body.
pub fn chat_request(
    endpoint: &Endpoint,
    target: &Target,
    body: Map<String, Value>,
    stream: bool,
    drop_unsupported: bool,
) -> Result<Prepared, ApiError> {
    let out = converse_body(&body, drop_unsupported)?;
    let (action, accept) = if stream {
        ("converse-stream", eventstream::CONTENT_TYPE)
    } else {
        ("converse", "application/json")
    };
    Ok(Prepared {
        call: call(
            endpoint,
            target.aws.as_ref(),
            &target.model,
            action,
            serde_json::to_vec(&out.0).unwrap_or_default(),
            accept,
        ),
        dropped: out.1,
    })
}

/// The Converse body for an OpenAI chat body, and the parameters dropped.
pub fn converse_body(
    body: &Map<String, Value>,
    drop_unsupported: bool,
) -> Result<(Value, Vec<String>), ApiError> {
    let dropped = super::unsupported_params(body, UNSUPPORTED, "Bedrock", drop_unsupported)?;
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid(Some("messages"), "`messages` must be an array."))?;
    let (system, turns) = translate_messages(messages)?;
    let mut out = Map::new();
    out.insert("messages".into(), Value::Array(turns));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    let mut config = Map::new();
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
        config.insert("maxTokens".into(), json!(n));
    }
    for (from, to) in [("temperature", "temperature"), ("top_p", "topP")] {
        match body.get(from) {
            None | Some(Value::Null) => {}
            Some(v) if v.is_number() => {
                config.insert(to.into(), v.clone());
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    Some(from),
                    format!("`{from}` must be a number."),
                ))
            }
        }
    }
    if let Some(stops) = super::stop_sequences(body)? {
        config.insert("stopSequences".into(), stops);
    }
    if !config.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(config));
    }
    let tools = translate_tools(body.get("tools"))?;
    let choice = translate_tool_choice(body.get("tool_choice"))?;
    if !tools.is_empty() && choice != Some(None) {
        let mut tool_config = json!({"tools": tools});
        if let Some(Some(choice)) = choice {
            tool_config["toolChoice"] = choice;
        }
        out.insert("toolConfig".into(), tool_config);
    }
    for name in PASSED {
        if let Some(v) = body.get(*name).filter(|v| !v.is_null()) {
            out.insert(name.to_string(), v.clone());
        }
    }
    Ok((Value::Object(out), dropped))
}

fn invalid_at(i: usize, message: impl Into<String>) -> ApiError {
    ApiError::invalid(Some(&format!("messages[{i}].content")), message)
}

/// OpenAI messages → (`system` blocks, alternating `messages`).
fn translate_messages(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>), ApiError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        let content = m.get("content").unwrap_or(&Value::Null);
        let (turn_role, blocks) = match role {
            "system" | "developer" => {
                system.extend(text_blocks(content, i)?);
                continue;
            }
            "user" => ("user", user_blocks(content, i)?),
            "assistant" => {
                let mut blocks = text_blocks(content, i)?;
                if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                    for (j, call) in calls.iter().enumerate() {
                        blocks.push(tool_use_block(call, i, j)?);
                    }
                }
                ("assistant", blocks)
            }
            "tool" => {
                let id = m.get("tool_call_id").and_then(Value::as_str).ok_or_else(|| {
                    ApiError::invalid(
                        Some(&format!("messages[{i}].tool_call_id")),
                        format!("`messages[{i}]` (role `tool`) needs a string `tool_call_id`."),
                    )
                })?;
                let mut content = text_blocks(content, i)?;
                if content.is_empty() {
                    content.push(json!({"text": ""}));
                }
                (
                    "user",
                    vec![json!({"toolResult": {"toolUseId": id, "content": content}})],
                )
            }
            other => {
                return Err(ApiError::invalid(
                    Some(&format!("messages[{i}].role")),
                    format!("The role `{other}` is not supported for Bedrock models (use system, user, assistant or tool)."),
                ))
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == turn_role => existing.extend(blocks),
            _ => turns.push((turn_role, blocks)),
        }
    }
    let turns = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok((system, turns))
}

/// Text content (a string, or `text`/`refusal` parts) as `{"text"}` blocks; empty text is
/// left out (Converse rejects blank text blocks).
fn text_blocks(content: &Value, i: usize) -> Result<Vec<Value>, ApiError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![json!({"text": s})]),
        Value::Array(parts) => {
            let mut blocks = Vec::new();
            for part in parts {
                let kind = part.get("type").and_then(Value::as_str).unwrap_or("text");
                let text = match kind {
                    "text" => part.get("text"),
                    "refusal" => part.get("refusal"),
                    _ => {
                        return Err(invalid_at(
                            i,
                            format!(
                                "Content parts of type `{kind}` are only accepted in user messages."
                            ),
                        ))
                    }
                };
                let text = text
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid_at(i, "A text content part needs a string `text`."))?;
                if !text.is_empty() {
                    blocks.push(json!({"text": text}));
                }
            }
            Ok(blocks)
        }
        _ => Err(invalid_at(
            i,
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
            Some("image_url") => blocks.push(image_block(part, i)?),
            _ => blocks.extend(text_blocks(&Value::Array(vec![part.clone()]), i)?),
        }
    }
    Ok(blocks)
}

/// An `image_url` part with a base64 data URL → an `image` block with its bytes (Converse
/// takes bytes or S3 locations, not URLs).
fn image_block(part: &Value, i: usize) -> Result<Value, ApiError> {
    let url = part
        .get("image_url")
        .and_then(|u| u.get("url").or(Some(u)))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(invalid_at(
            i,
            "Bedrock models take images as base64 data URLs (data:image/png;base64,…), not links.",
        ));
    };
    let (media_type, data) = rest.split_once(";base64,").ok_or_else(|| {
        invalid_at(
            i,
            "An image data URL must be `data:<media type>;base64,<data>`.",
        )
    })?;
    let format = match media_type {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(invalid_at(
                i,
                format!("Bedrock accepts png, jpeg, gif and webp images, not `{other}`."),
            ))
        }
    };
    Ok(json!({"image": {"format": format, "source": {"bytes": data}}}))
}

/// An assistant `tool_calls[j]` → a `toolUse` block (arguments parsed from their JSON string).
fn tool_use_block(call: &Value, i: usize, j: usize) -> Result<Value, ApiError> {
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
    let input = match function.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|_| {
            ApiError::invalid(
                Some(&param),
                format!("`{param}.function.arguments` is not valid JSON."),
            )
        })?,
        Some(other) => other.clone(),
    };
    Ok(json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}))
}

/// OpenAI `tools` (functions) → Converse `toolSpec`s.
fn translate_tools(tools: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    Ok(super::function_tools(tools)?
        .into_iter()
        .map(|t| {
            let mut spec = json!({"name": t.name});
            if let Some(d) = t.description {
                spec["description"] = json!(d);
            }
            spec["inputSchema"] = json!({"json": t.parameters});
            json!({"toolSpec": spec})
        })
        .collect())
}

/// OpenAI `tool_choice` → Converse's: `None` not given, `Some(None)` `none` (the tools are
/// left out: Converse has no "none"), `Some(Some(choice))` auto / any / a named tool.
fn translate_tool_choice(choice: Option<&Value>) -> Result<Option<Option<Value>>, ApiError> {
    Ok(match choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(Some(json!({"auto": {}}))),
            "none" => Some(None),
            "required" => Some(Some(json!({"any": {}}))),
            other => {
                return Err(ApiError::invalid(
                    Some("tool_choice"),
                    format!("`tool_choice` {other:?} is not one of auto, none, required."),
                ))
            }
        },
        Some(v) => match v.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
            Some(name) => Some(Some(json!({"tool": {"name": name}}))),
            None => {
                return Err(ApiError::invalid(
                    Some("tool_choice"),
                    "`tool_choice` must be auto, none, required or {\"type\":\"function\",\"function\":{\"name\":…}}.",
                ))
            }
        },
    })
}

/// Converse's `stopReason` → OpenAI's `finish_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("content_filtered") | Some("guardrail_intervened") => "content_filter",
        _ => "stop",
    }
}

/// Converse usage → OpenAI usage: cache reads and writes are prompt tokens too; cache reads
/// are `cached_tokens`.
pub fn usage(u: &Value) -> Value {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("cacheReadInputTokens");
    let prompt = n("inputTokens") + cached + n("cacheWriteInputTokens");
    let completion = n("outputTokens");
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    })
}

pub fn new_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

/// A 2xx Converse answer → an OpenAI `chat.completion`.
pub fn response(model: &str, bytes: &[u8]) -> Result<Reply, ApiError> {
    let bad = |why: &str| {
        ApiError::bad_gateway(
            "upstream_bad_response",
            format!("The provider's response is not a Converse answer: {why}."),
        )
    };
    let answer: Value = serde_json::from_slice(bytes).map_err(|_| bad("not JSON"))?;
    let blocks = answer
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no `output.message.content` array"))?;
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in blocks {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.get_or_insert_with(String::new).push_str(t);
        } else if let Some(t) = block
            .pointer("/reasoningContent/reasoningText/text")
            .and_then(Value::as_str)
        {
            reasoning.get_or_insert_with(String::new).push_str(t);
        } else if let Some(tool) = block.get("toolUse") {
            let input = tool.get("input").cloned().unwrap_or_else(|| json!({}));
            tool_calls.push(json!({
                "id": tool.get("toolUseId").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {"name": tool.get("name").cloned().unwrap_or(Value::Null), "arguments": input.to_string()},
            }));
        }
    }
    let mut message = json!({"role": "assistant", "content": text, "refusal": null});
    if let Some(reasoning) = reasoning {
        message["reasoning_content"] = json!(reasoning);
    }
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let usage = answer.get("usage").map(usage);
    let completion = json!({
        "id": new_id(),
        "object": "chat.completion",
        "created": super::anthropic::unix_now(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(answer.get("stopReason").and_then(Value::as_str)),
        }],
        "usage": usage,
    });
    Ok(Reply {
        body: serde_json::to_vec(&completion).unwrap_or_default(),
        usage,
    })
}

/// The HTTP status a Bedrock exception stands for (for exceptions inside a stream).
pub fn status_of(exception: &str) -> u16 {
    match exception.to_ascii_lowercase().as_str() {
        "validationexception" => 400,
        "accessdeniedexception" => 403,
        "resourcenotfoundexception" => 404,
        "modeltimeoutexception" => 408,
        "throttlingexception" => 429,
        "serviceunavailableexception" => 503,
        _ => 500,
    }
}

/// Bedrock's `{"message": …}` error (its type in the `x-amzn-ErrorType` header, sometimes in
/// `__type`) → the OpenAI error shape, message verbatim. 4xx statuses pass through (throttling
/// is 429); 5xx become 502.
pub fn parse_error(status: u16, body: &[u8]) -> ApiError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let message = field("message")
        .or_else(|| field("Message"))
        .unwrap_or_else(|| {
            let raw = String::from_utf8_lossy(&body[..body.len().min(500)]);
            format!("The provider answered HTTP {status}: {}", raw.trim())
        });
    let exception = field("__type").map(|t| t.rsplit('#').next().unwrap_or_default().to_string());
    error_for(status, exception.as_deref(), message)
}

/// The error for an upstream status, exception name and message.
pub fn error_for(status: u16, exception: Option<&str>, message: String) -> ApiError {
    let (client_status, kind) = match status {
        401 | 403 => (status, "authentication_error"),
        404 => (status, "not_found_error"),
        429 => (status, "rate_limit_error"),
        400..=499 => (status, "invalid_request_error"),
        _ => (502, "upstream_error"),
    };
    let mut e = ApiError::new(client_status, kind, exception, message);
    if status >= 500 {
        e.code = Some(format!("upstream_http_{status}"));
    }
    e
}

/// The Bedrock embedding models the gateway speaks to through InvokeModel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Embedder {
    /// `amazon.titan-embed-*`: `{"inputText", "dimensions"}`, one text per call.
    Titan,
    /// `cohere.embed-*`: `{"texts", "input_type"}`, all texts in one call.
    Cohere,
}

fn embedder(model: &str) -> Result<Embedder, ApiError> {
    if model.contains("titan-embed") {
        Ok(Embedder::Titan)
    } else if model.contains("cohere.embed") {
        Ok(Embedder::Cohere)
    } else {
        Err(ApiError::invalid(
            Some("model"),
            format!("`bedrock/{model}` is not a Bedrock embedding model the gateway knows (amazon.titan-embed-* or cohere.embed-*)."),
        ))
    }
}

/// The InvokeModel calls (`/model/{model-id}/invoke`) for an OpenAI embeddings body: one per
/// input for Titan, one for all inputs for Cohere.
pub fn embeddings_calls(
    endpoint: &Endpoint,
    target: &Target,
    body: &Map<String, Value>,
) -> Result<Vec<Call>, ApiError> {
    let kind = embedder(&target.model)?;
    let texts: Vec<&str> = match body.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).collect()
        }
        _ => {
            return Err(ApiError::invalid(
                Some("input"),
                "Bedrock embeds text only: `input` must be a string or an array of strings (token arrays are not accepted).",
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
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
            ApiError::invalid(
                Some("dimensions"),
                "`dimensions` must be a positive integer.",
            )
        })?),
    };
    let invoke = |payload: Value| {
        call(
            endpoint,
            target.aws.as_ref(),
            &target.model,
            "invoke",
            serde_json::to_vec(&payload).unwrap_or_default(),
            "application/json",
        )
    };
    Ok(match kind {
        Embedder::Titan => texts
            .into_iter()
            .map(|text| {
                let mut payload = json!({"inputText": text});
                if let Some(d) = dimensions {
                    payload["dimensions"] = json!(d);
                }
                invoke(payload)
            })
            .collect(),
        Embedder::Cohere => {
            if dimensions.is_some() {
                return Err(ApiError::invalid(
                    Some("dimensions"),
                    "Cohere embedding models on Bedrock do not take `dimensions`.",
                ));
            }
            let input_type = body
                .get("input_type")
                .and_then(Value::as_str)
                .unwrap_or("search_document");
            vec![invoke(json!({"texts": texts, "input_type": input_type}))]
        }
    })
}

/// The 2xx InvokeModel answers (each with Bedrock's `x-amzn-bedrock-input-token-count`
/// header, when sent) → one OpenAI embeddings list.
pub fn embeddings_response(
    model: &str,
    answers: &[(Vec<u8>, Option<u64>)],
    base64: bool,
) -> Result<Reply, ApiError> {
    let bad = |why: &str| {
        ApiError::bad_gateway(
            "upstream_bad_response",
            format!("The provider's embeddings answer is not usable: {why}."),
        )
    };
    let mut vectors: Vec<Value> = Vec::new();
    let mut tokens: Option<u64> = None;
    for (bytes, counted) in answers {
        let answer: Value = serde_json::from_slice(bytes).map_err(|_| bad("not JSON"))?;
        let counted = answer
            .get("inputTextTokenCount")
            .and_then(Value::as_u64)
            .or(*counted);
        if let Some(n) = counted {
            tokens = Some(tokens.unwrap_or(0) + n);
        }
        if let Some(e) = answer.get("embedding").filter(|e| e.is_array()) {
            vectors.push(e.clone());
        } else if let Some(list) = answer.get("embeddings") {
            // Cohere: a list of vectors, or `{"float": [...]}` with embedding_types.
            let list = list.get("float").unwrap_or(list);
            let list = list
                .as_array()
                .ok_or_else(|| bad("`embeddings` is not a list"))?;
            vectors.extend(list.iter().cloned());
        } else {
            return Err(bad("no `embedding` or `embeddings`"));
        }
    }
    let mut data = Vec::with_capacity(vectors.len());
    for (index, values) in vectors.into_iter().enumerate() {
        let values = values
            .as_array()
            .ok_or_else(|| bad("an embedding is not a list"))?;
        data.push(super::embedding_item(index, values, base64));
    }
    let usage = tokens.map(|n| json!({"prompt_tokens": n, "total_tokens": n}));
    let list = json!({"object": "list", "data": data, "model": model, "usage": usage});
    Ok(Reply {
        body: serde_json::to_vec(&list).unwrap_or_default(),
        usage,
    })
}

#[cfg(test)]
mod tests;
