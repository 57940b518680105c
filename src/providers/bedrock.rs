//! The AWS Bedrock dialect (Converse, `POST {base}/model/{model-id}/converse`, and
//! ConverseStream, `…/converse-stream`): an OpenAI chat body becomes a Converse request, the
//! Converse answer a `chat.completion`, Bedrock's errors the OpenAI error shape, and its binary
//! event stream (decoded by `upstream::eventstream`) OpenAI chunks ([`stream::StreamState`]).
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

pub mod sigv4;
mod stream;

use serde_json::{json, Map, Value};

use super::errors::{kind_of_status, raw_message, relayed_status, upstream_code};
use super::request::{self, Image, ToolChoice, TurnBlocks};
use super::{
    bad_response, shape, ChatStream, Dialect, Extra, Missing, Prepared, Provider, Reply,
    RequestContext, Settings, Target,
};
use crate::error::ApiError;
use crate::upstream::{eventstream, url_component, Call, Received};

/// The SigV4 service name of Bedrock Runtime.
const SERVICE: &str = "bedrock";

/// The AWS variables Bedrock reads besides its API key and base.
pub const VARIABLES: &[Extra] = &[
    Extra {
        var: "AWS_REGION",
        aliases: &["AWS_DEFAULT_REGION"],
        default: Some("us-east-1"),
        secret: false,
    },
    Extra {
        var: "AWS_ACCESS_KEY_ID",
        aliases: &[],
        default: None,
        secret: true,
    },
    Extra {
        var: "AWS_SECRET_ACCESS_KEY",
        aliases: &[],
        default: None,
        secret: true,
    },
    Extra {
        var: "AWS_SESSION_TOKEN",
        aliases: &[],
        default: None,
        secret: true,
    },
];

/// How requests to Bedrock are authenticated.
#[derive(Clone)]
enum Auth {
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

/// How the settings authenticate: a Bedrock API key wins over the access keys.
fn auth(settings: &Settings) -> Option<Auth> {
    if let Some(token) = &settings.api_key {
        return Some(Auth::Bearer(token.clone()));
    }
    let id = settings.extra("AWS_ACCESS_KEY_ID")?;
    let secret = settings.extra("AWS_SECRET_ACCESS_KEY")?;
    Some(Auth::SigV4 {
        credentials: sigv4::Credentials {
            access_key_id: id.to_string(),
            secret_access_key: secret.to_string(),
            session_token: settings.extra("AWS_SESSION_TOKEN").map(str::to_string),
        },
        region: settings
            .extra("AWS_REGION")
            .unwrap_or("us-east-1")
            .to_string(),
    })
}

/// A call to `{base}/model/{model-id}/{action}` with `body`, authenticated.
fn call(target: &Target, action: &str, body: Vec<u8>, accept: &str) -> Call {
    call_at(target, action, body, accept, &sigv4::amz_date_now())
}

/// [`call`] at a given time (`x-amz-date`).
fn call_at(target: &Target, action: &str, body: Vec<u8>, accept: &str, amz_date: &str) -> Call {
    let url = format!(
        "{}/model/{}/{action}",
        target.base_url(),
        url_component(&target.model)
    );
    let mut headers = vec![("accept", accept.to_string())];
    if accept != "application/json" {
        // A compressed event stream would be held back by the decoder.
        headers.push(("accept-encoding", "identity".into()));
    }
    match auth(&target.settings) {
        Some(Auth::Bearer(token)) => headers.push(("authorization", format!("Bearer {token}"))),
        Some(Auth::SigV4 {
            credentials,
            region,
        }) => headers.extend(sigv4::signed_headers(
            &credentials,
            &region,
            SERVICE,
            amz_date,
            &url,
            &body,
        )),
        None => {}
    }
    Call::post(url, headers, body)
}

/// OpenAI parameters Converse cannot honour (it has no JSON mode); a value that asks for
/// nothing is accepted.
const UNSUPPORTED: &[&[&str]] = &[
    &["response_format"],
    request::TOKEN_PARAMS,
    request::PENALTY_PARAMS,
    request::OPENAI_ONLY_PARAMS,
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
fn chat_request(
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
            target,
            action,
            serde_json::to_vec(&out.0).unwrap_or_default(),
            accept,
        ),
        dropped: out.1,
    })
}

/// The Converse body for an OpenAI chat body, and the parameters dropped.
fn converse_body(
    body: &Map<String, Value>,
    drop_unsupported: bool,
) -> Result<(Value, Vec<String>), ApiError> {
    let dropped = request::unsupported_params(body, UNSUPPORTED, "Bedrock", drop_unsupported)?;
    let messages = request::messages(body)?;
    let (system, turns) = translate_messages(messages)?;
    let mut out = Map::new();
    out.insert("messages".into(), Value::Array(turns));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    let mut config = Map::new();
    if let Some(n) = request::max_tokens(body)? {
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
    if let Some(stops) = request::stop_sequences(body)? {
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
    let (system, turns) = request::alternating_turns(messages, &Blocks)?;
    let turns = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok((system, turns))
}

/// Converse's content blocks for each kind of OpenAI message.
struct Blocks;

impl TurnBlocks for Blocks {
    fn label(&self) -> &str {
        "Bedrock"
    }

    /// A `{"text"}` block; empty text is never asked for (Converse rejects blank text blocks).
    fn text(&self, text: &str, _part: Option<&Value>) -> Value {
        json!({ "text": text })
    }

    /// A base64 data URL → an `image` block with its bytes (Converse takes bytes or S3
    /// locations, not URLs).
    fn image(&self, part: &Value, i: usize) -> Result<Value, ApiError> {
        let Image::Base64 { media_type, data } = request::image(part, i)? else {
            return Err(invalid_at(
                i,
                "Bedrock models take images as base64 data URLs (data:image/png;base64,…), not links.",
            ));
        };
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

    /// An assistant `tool_calls[j]` → a `toolUse` block.
    fn tool_use(&self, call: &Value, i: usize, j: usize) -> Result<Value, ApiError> {
        let (id, name, input) = request::tool_call_parts(call, i, j)?;
        Ok(json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}))
    }

    fn tool_result(&self, id: &str, content: &Value, i: usize) -> Result<Value, ApiError> {
        let mut content = self.texts(content, i)?;
        if content.is_empty() {
            content.push(json!({"text": ""}));
        }
        Ok(json!({"toolResult": {"toolUseId": id, "content": content}}))
    }
}

/// OpenAI `tools` (functions) → Converse `toolSpec`s.
fn translate_tools(tools: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    Ok(request::function_tools(tools)?
        .into_iter()
        .map(|t| {
            let mut spec = t.declaration();
            spec["inputSchema"] = json!({"json": t.parameters});
            json!({"toolSpec": spec})
        })
        .collect())
}

/// OpenAI `tool_choice` → Converse's: `None` not given, `Some(None)` `none` (the tools are
/// left out: Converse has no "none"), `Some(Some(choice))` auto / any / a named tool.
fn translate_tool_choice(choice: Option<&Value>) -> Result<Option<Option<Value>>, ApiError> {
    Ok(request::tool_choice(choice)?.map(|choice| match choice {
        ToolChoice::Auto => Some(json!({"auto": {}})),
        ToolChoice::None => None,
        ToolChoice::Required => Some(json!({"any": {}})),
        ToolChoice::Function(name) => Some(json!({"tool": {"name": name}})),
    }))
}

/// Converse's `stopReason` → OpenAI's `finish_reason`.
fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("content_filtered") | Some("guardrail_intervened") => "content_filter",
        _ => "stop",
    }
}

/// Converse usage → OpenAI usage: cache reads and writes are prompt tokens too; cache reads
/// are `cached_tokens`; writes are Converse's default 5-minute cache points.
fn usage(u: &Value) -> Value {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    shape::cached_usage(
        n("inputTokens"),
        n("cacheReadInputTokens"),
        shape::CacheWrites {
            five_minutes: n("cacheWriteInputTokens"),
            one_hour: 0,
        },
        n("outputTokens"),
    )
}

/// A 2xx Converse answer → an OpenAI `chat.completion`.
fn response(model: &str, bytes: &[u8]) -> Result<Reply, ApiError> {
    let bad = |why: &str| bad_response(format_args!("not a Converse answer: {why}"));
    let answer: Value = serde_json::from_slice(bytes).map_err(|_| bad("not JSON"))?;
    let blocks = answer
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no `output.message.content` array"))?;
    let mut parts = shape::MessageParts::default();
    for block in blocks {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            parts.text(t);
        } else if let Some(t) = block
            .pointer("/reasoningContent/reasoningText/text")
            .and_then(Value::as_str)
        {
            parts.reasoning(t);
        } else if let Some(tool) = block.get("toolUse") {
            parts.tool_use(tool.get("toolUseId"), tool.get("name"), tool.get("input"));
        }
    }
    let message = parts.message();
    let finish = finish_reason(answer.get("stopReason").and_then(Value::as_str));
    Ok(shape::completion(
        json!(shape::completion_id()),
        json!(model),
        vec![shape::choice(0, message, finish)],
        answer.get("usage").map(usage),
    ))
}

/// The HTTP status a Bedrock exception stands for (for exceptions inside a stream).
fn status_of(exception: &str) -> u16 {
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
/// is 429), and so do 503 (`ServiceUnavailableException`) and 504; other 5xx become 502.
fn parse_error(status: u16, body: &[u8]) -> ApiError {
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
        .unwrap_or_else(|| raw_message(status, body));
    let exception = field("__type").map(|t| t.rsplit('#').next().unwrap_or_default().to_string());
    error_for(status, exception.as_deref(), message)
}

/// The error for an upstream status, exception name and message.
fn error_for(status: u16, exception: Option<&str>, message: String) -> ApiError {
    // 4xx, 503 and 504 pass through (a 503 keeps the provider's retry-after); other 5xx are 502.
    let client_status = relayed_status(status);
    // A 403 stays an `authentication_error`: Bedrock answers bad signatures and keys with 403.
    let kind = match client_status {
        403 => "authentication_error",
        other => kind_of_status(other),
    };
    let mut e = ApiError::new(client_status, kind, exception, message);
    e.code = upstream_code(status).or(e.code);
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
fn embeddings_calls(target: &Target, body: &Map<String, Value>) -> Result<Vec<Call>, ApiError> {
    let kind = embedder(&target.model)?;
    let read = request::text_embeddings(body, "Bedrock")?;
    let invoke = |payload: Value| {
        call(
            target,
            "invoke",
            serde_json::to_vec(&payload).unwrap_or_default(),
            "application/json",
        )
    };
    Ok(match kind {
        Embedder::Titan => read
            .texts
            .into_iter()
            .map(|text| {
                let mut payload = json!({"inputText": text});
                if let Some(d) = read.dimensions {
                    payload["dimensions"] = json!(d);
                }
                invoke(payload)
            })
            .collect(),
        Embedder::Cohere => {
            if read.dimensions.is_some() {
                return Err(ApiError::invalid(
                    Some("dimensions"),
                    "Cohere embedding models on Bedrock do not take `dimensions`.",
                ));
            }
            let input_type = body
                .get("input_type")
                .and_then(Value::as_str)
                .unwrap_or("search_document");
            vec![invoke(
                json!({"texts": read.texts, "input_type": input_type}),
            )]
        }
    })
}

/// The 2xx InvokeModel answers (each with Bedrock's `x-amzn-bedrock-input-token-count`
/// header, when sent) → one OpenAI embeddings list.
fn embeddings_response(model: &str, answers: &[Received], base64: bool) -> Result<Reply, ApiError> {
    let bad = |why: &str| bad_response(format_args!("the embeddings answer is not usable: {why}"));
    let mut vectors: Vec<Value> = Vec::new();
    let mut tokens: Option<u64> = None;
    for received in answers {
        let answer: Value = serde_json::from_slice(&received.body).map_err(|_| bad("not JSON"))?;
        let counted = answer
            .get("inputTextTokenCount")
            .and_then(Value::as_u64)
            .or_else(|| {
                received
                    .header("x-amzn-bedrock-input-token-count")
                    .and_then(|n| n.parse().ok())
            });
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
    shape::embeddings(model, &vectors, base64, tokens)
        .ok_or_else(|| bad("an embedding is not a list"))
}

pub struct Bedrock;

impl Dialect for Bedrock {
    /// A model id goes in the path as one encoded segment; dots alone (`.`, `..`) would still
    /// be a dot segment there, which moves the call out of `/model/`.
    fn check_model(&self, _requested: &str, model: &str) -> Result<(), ApiError> {
        if model.chars().all(|c| c == '.') {
            return Err(ApiError::invalid(
                Some("model"),
                "A Bedrock model is named bedrock/<model-id>, e.g. bedrock/anthropic.claude-3-5-haiku-20241022-v1:0.",
            ));
        }
        Ok(())
    }

    /// A Bedrock API key or both AWS access keys.
    fn missing(&self, _provider: &Provider, settings: &Settings) -> Option<Missing> {
        auth(settings).is_none().then(|| {
            Missing::Key(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_BEARER_TOKEN_BEDROCK)".into(),
            )
        })
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
        response(&target.model, &answer.body)
    }

    fn chat_stream(&self, target: &Target) -> Box<dyn ChatStream> {
        Box::new(stream::StreamState::new(&target.model))
    }

    /// Titan embeds one text per call: one InvokeModel call per input.
    fn embeddings_request(
        &self,
        target: &Target,
        body: Map<String, Value>,
    ) -> Result<Vec<Call>, ApiError> {
        embeddings_calls(target, &body)
    }

    fn embeddings_response(
        &self,
        target: &Target,
        answers: Vec<Received>,
        base64: bool,
    ) -> Result<Reply, ApiError> {
        embeddings_response(&target.model, &answers, base64)
    }

    fn parse_error(&self, status: u16, body: &[u8]) -> ApiError {
        parse_error(status, body)
    }
}

#[cfg(test)]
mod tests;
