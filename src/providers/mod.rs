//! Which provider serves a model name, under which name, and the dialect adapters.
//!
//! `mock/…` models are built in and answered in-process. A native provider's `provider/model`
//! name, or a bare name of its family (`gemini-…`), goes to that provider when its key is set
//! (else to the OpenAI-compatible upstream if there is one, else 401 naming the key variable).
//! An OpenAI-compatible vendor's `vendor/model` (`groq/…`, `ollama/…`: the table in
//! [`compat`]) goes to that vendor through the OpenAI adapter when its key is set (local
//! servers need none), with the same fallback; `azure/<deployment>` goes to Azure OpenAI.
//! `openai/<model>` and every other name go to the OpenAI-compatible upstream
//! (`LITELLM_BASE_URL`), name unchanged, so a LiteLLM-style upstream can route `provider/model`
//! names itself.
//!
//! Each remote dialect is one module with the same functions: `chat_request` (the provider's
//! request for an OpenAI chat body), a response translator (the provider's 2xx body → an
//! OpenAI answer and its usage), `parse_error` (the provider's error → the OpenAI error shape),
//! and a `StreamState` fed one SSE event at a time that emits OpenAI chunks. They are pure:
//! they never touch a socket or the recorder. The functions here dispatch on [`Provider`] with
//! exhaustive matches, so adding a provider breaks every dispatch site at compile time.

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod cohere;
pub mod compat;
pub mod gemini;
pub mod mock;
pub mod openai;

use serde_json::{json, Map, Value};

use crate::config::{Config, Endpoint, NATIVE_PROVIDERS};
use crate::error::ApiError;
use crate::upstream::{Answer, Call, SseEvent};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Mock,
    OpenAI,
    Gemini,
    Anthropic,
    /// Azure OpenAI (the OpenAI dialect, addressed by deployment).
    Azure,
    Cohere,
    /// AWS Bedrock (Converse), `bedrock/<model-id>`.
    Bedrock,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Mock => "mock",
            Provider::OpenAI => "openai",
            Provider::Gemini => "gemini",
            Provider::Anthropic => "anthropic",
            Provider::Azure => "azure",
            Provider::Cohere => "cohere",
            Provider::Bedrock => "bedrock",
        }
    }
}

/// The native providers by the name used in `provider/model` and in `NATIVE_PROVIDERS`.
const NATIVES: &[(&str, Provider)] = &[
    ("anthropic", Provider::Anthropic),
    ("gemini", Provider::Gemini),
    ("cohere", Provider::Cohere),
];

/// Bare model-name prefixes that name a native provider's models (`claude-…`).
const BARE_PREFIXES: &[(&str, &str)] = &[
    ("claude-", "anthropic"),
    ("gemini-", "gemini"),
    ("command-", "cohere"), // every Cohere chat model (command-a-…, command-r-…), as LiteLLM routes them
];

/// A resolved model: who serves it, the name to send them, and where they are.
#[derive(Clone, Debug)]
pub struct Target {
    pub provider: Provider,
    pub model: String,
    /// `None` for the built-in models.
    pub endpoint: Option<Endpoint>,
    /// An OpenAI-compatible vendor from the table (its quirks); `None` for the others.
    pub vendor: Option<&'static compat::Vendor>,
    /// Azure: the `api-version` query parameter.
    pub api_version: Option<String>,
    /// Bedrock: how requests are signed.
    pub aws: Option<bedrock::Auth>,
}

impl Target {
    fn new(provider: Provider, model: &str, endpoint: Option<Endpoint>) -> Target {
        Target {
            provider,
            model: model.to_string(),
            endpoint,
            vendor: None,
            api_version: None,
            aws: None,
        }
    }

    /// Who serves it, as the logs and metrics name it (`groq`, not `openai`).
    pub fn provider_name(&self) -> &'static str {
        self.vendor.map_or(self.provider.name(), |v| v.name)
    }
}

/// The 401 for a provider whose key is not set.
pub(crate) fn missing_key(requested: &str, name: &str, var: &str) -> ApiError {
    ApiError::new(
        401,
        "authentication_error",
        Some("missing_api_key"),
        format!("`{requested}` is served by {name}, and no key is configured for it: set {var}."),
    )
}

/// Azure's or a table vendor's target; `Ok(None)`: not configured, an upstream will do.
fn resolve_table(
    config: &Config,
    requested: &str,
    name: &str,
    model: &str,
) -> Result<Option<Target>, ApiError> {
    let no_base = |var: &str| {
        ApiError::new(
            400,
            "invalid_request_error",
            Some("provider_not_configured"),
            format!(
                "`{requested}` is served by {name}, whose address is not configured: set {var}."
            ),
        )
    };
    if name == "bedrock" {
        return bedrock::target(config, requested, model);
    }
    if name == "azure" {
        let azure = &config.azure;
        return match (&azure.base_url, &azure.api_key) {
            (Some(base), Some(key)) => {
                azure::check_deployment(model)?;
                Ok(Some(Target {
                    api_version: Some(azure.api_version.clone()),
                    ..Target::new(
                        Provider::Azure,
                        model,
                        Some(Endpoint {
                            base_url: base.clone(),
                            api_key: Some(key.clone()),
                        }),
                    )
                }))
            }
            _ if config.upstream.is_some() => Ok(None),
            (_, None) => Err(missing_key(requested, name, "AZURE_API_KEY")),
            (None, Some(_)) => Err(no_base("AZURE_API_BASE")),
        };
    }
    let Some(vendor) = compat::vendor(name) else {
        return Ok(None);
    };
    let endpoint = config.compat.get(vendor.name);
    let usable = endpoint.filter(|e| vendor.key == compat::Key::Optional || e.api_key.is_some());
    match usable {
        Some(endpoint) => Ok(Some(Target {
            vendor: Some(vendor),
            ..Target::new(Provider::OpenAI, model, Some(endpoint.clone()))
        })),
        None if config.upstream.is_some() => Ok(None),
        None if endpoint.is_none() => Err(no_base(vendor.base_var)),
        None => Err(missing_key(requested, name, vendor.key_var)),
    }
}

/// Resolves a requested model name.
pub fn resolve(config: &Config, requested: &str) -> Result<Target, ApiError> {
    if let Some(name) = requested.strip_prefix("mock/") {
        if mock::MODELS.contains(&name) {
            return Ok(Target::new(Provider::Mock, name, None));
        }
        return Err(ApiError::model_not_found(
            requested,
            "The built-in models are mock/echo, mock/lorem and mock/embed.",
        ));
    }
    if let Some((name, model)) = requested.split_once('/') {
        if let Some(target) = resolve_table(config, requested, name, model)? {
            return Ok(target);
        }
    }
    let native = match requested.split_once('/') {
        Some((name, model)) if config.natives.contains_key(name) => Some((name, model)),
        _ => BARE_PREFIXES
            .iter()
            .find(|(prefix, _)| requested.starts_with(prefix))
            .map(|(_, name)| (*name, requested)),
    };
    if let Some((name, model)) = native {
        let provider = NATIVES.iter().find(|(n, _)| *n == name).map(|(_, p)| *p);
        if let (Some(provider), Some(endpoint)) = (provider, config.natives.get(name)) {
            if endpoint.api_key.is_some() {
                return Ok(Target::new(provider, model, Some(endpoint.clone())));
            }
            if config.upstream.is_none() {
                let var = NATIVE_PROVIDERS
                    .iter()
                    .find(|n| n.name == name)
                    .map_or("its API key variable", |n| n.key_vars[0]);
                return Err(missing_key(requested, name, var));
            }
            // No key of its own, but an OpenAI-compatible upstream: it gets the name as is.
        }
    }
    let Some(upstream) = &config.upstream else {
        return Err(ApiError::model_not_found(
            requested,
            "No provider is configured: set LITELLM_BASE_URL and LITELLM_API_KEY (or OPENAI_API_KEY), or use a built-in model such as mock/echo.",
        ));
    };
    let model = requested.strip_prefix("openai/").unwrap_or(requested);
    Ok(Target::new(Provider::OpenAI, model, Some(upstream.clone())))
}

/// Response headers of a provider that are passed on to the client: retry advice and rate
/// limits, which clients act on.
const FORWARDED_HEADERS: &[&str] = &[
    "retry-after",
    "retry-after-ms",
    "x-should-retry",
    "openai-processing-ms",
    "openai-version",
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
];

/// The provider's response headers that are passed on to the client.
pub fn forwarded_headers(answer: &Answer) -> Vec<(String, String)> {
    FORWARDED_HEADERS
        .iter()
        .filter_map(|name| answer.header(name).map(|v| (name.to_string(), v)))
        .collect()
}

/// A provider's 2xx answer as the client gets it, and the usage it reported.
pub struct Reply {
    pub body: Vec<u8>,
    pub usage: Option<Value>,
}

/// What a stream translator makes of one provider event.
#[derive(Debug)]
pub enum Emit {
    /// An OpenAI chunk as the provider sent it (relayed byte for byte).
    Raw(String),
    /// An OpenAI chunk the translator built.
    Chunk(Value),
    /// The stream is complete (`data: [DONE]`).
    Done,
}

/// The per-stream state of a dialect's translator.
pub enum ChatStream {
    OpenAI(openai::StreamState),
    Gemini(gemini::StreamState),
    Anthropic(anthropic::StreamState),
    Cohere(cohere::StreamState),
    Bedrock(bedrock::StreamState),
}

impl ChatStream {
    /// Feeds one provider event in; what comes out goes to the client in order.
    pub fn on_event(&mut self, event: &SseEvent) -> Result<Vec<Emit>, ApiError> {
        match self {
            ChatStream::OpenAI(state) => state.on_event(event),
            ChatStream::Gemini(state) => state.on_event(event),
            ChatStream::Anthropic(state) => state.on_event(event),
            ChatStream::Cohere(state) => state.on_event(event),
            ChatStream::Bedrock(state) => state.on_event(event),
        }
    }
}

fn endpoint(target: &Target) -> Result<&Endpoint, ApiError> {
    target.endpoint.as_ref().ok_or_else(|| {
        ApiError::new(
            500,
            "server_error",
            None,
            "The built-in models are not called over HTTP.",
        )
    })
}

/// What a dialect may need from the client's request besides its body.
pub struct RequestContext<'a> {
    /// Drop parameters the provider cannot honour instead of answering 400.
    pub drop_unsupported: bool,
    /// The client's request headers (some dialects pass a few on, e.g. `anthropic-beta`).
    pub client_headers: &'a [(String, String)],
}

/// A provider request, and the parameters dropped to make it (`DROP_UNSUPPORTED_PARAMS`).
pub struct Prepared {
    pub call: Call,
    pub dropped: Vec<String>,
}

/// The provider's request for an OpenAI chat body.
pub fn chat_request(
    target: &Target,
    body: Map<String, Value>,
    stream: bool,
    context: &RequestContext<'_>,
) -> Result<Prepared, ApiError> {
    let endpoint = endpoint(target)?;
    match target.provider {
        Provider::OpenAI => {
            let mut body = body;
            let dropped = match target.vendor {
                Some(vendor) => compat::adapt(vendor, &mut body, context.drop_unsupported)?,
                None => Vec::new(),
            };
            let include_usage = target.vendor.is_none_or(|v| v.stream_usage);
            Ok(Prepared {
                call: openai::chat_request(endpoint, &target.model, body, stream, include_usage),
                dropped,
            })
        }
        Provider::Azure => Ok(Prepared {
            call: azure::chat_request(
                endpoint,
                &target.model,
                target.api_version.as_deref().unwrap_or_default(),
                body,
                stream,
            ),
            dropped: Vec::new(),
        }),
        Provider::Gemini => gemini::chat_request(
            endpoint,
            &target.model,
            body,
            stream,
            context.drop_unsupported,
        ),
        Provider::Anthropic => {
            anthropic::chat_request(endpoint, &target.model, body, stream, context)
        }
        Provider::Cohere => cohere::chat_request(endpoint, &target.model, body, stream, context),
        Provider::Bedrock => {
            bedrock::chat_request(endpoint, target, body, stream, context.drop_unsupported)
        }
        Provider::Mock => Err(ApiError::new(
            500,
            "server_error",
            None,
            "mock models answer in-process",
        )),
    }
}

/// The provider's 2xx chat answer as an OpenAI `chat.completion`.
pub fn chat_response(target: &Target, body: Vec<u8>) -> Result<Reply, ApiError> {
    match target.provider {
        Provider::Gemini => gemini::chat_response(&target.model, body),
        Provider::OpenAI | Provider::Azure | Provider::Mock => openai::response(body),
        Provider::Anthropic => anthropic::response(&body),
        Provider::Cohere => cohere::response(&target.model, &body),
        Provider::Bedrock => bedrock::response(&target.model, &body),
    }
}

/// The translator for a stream from this provider.
pub fn chat_stream(target: &Target) -> ChatStream {
    match target.provider {
        Provider::Gemini => ChatStream::Gemini(gemini::StreamState::new(&target.model)),
        Provider::OpenAI | Provider::Azure | Provider::Mock => {
            ChatStream::OpenAI(openai::StreamState)
        }
        Provider::Anthropic => ChatStream::Anthropic(anthropic::StreamState::new()),
        Provider::Cohere => ChatStream::Cohere(cohere::StreamState::new(&target.model)),
        Provider::Bedrock => ChatStream::Bedrock(bedrock::StreamState::new(&target.model)),
    }
}

/// The provider's error answer in the OpenAI shape, its status kept by the dialect's rules.
pub fn parse_error(target: &Target, status: u16, body: &[u8]) -> ApiError {
    match target.provider {
        Provider::Gemini => gemini::parse_error(status, body),
        Provider::OpenAI | Provider::Azure | Provider::Mock => openai::parse_error(status, body),
        Provider::Anthropic => anthropic::parse_error(status, body),
        Provider::Cohere => cohere::parse_error(status, body),
        Provider::Bedrock => bedrock::parse_error(status, body),
    }
}

/// The provider's request for an OpenAI embeddings body.
pub fn embeddings_request(target: &Target, body: Map<String, Value>) -> Result<Call, ApiError> {
    let endpoint = endpoint(target)?;
    match target.provider {
        Provider::OpenAI => Ok(openai::embeddings_request(endpoint, &target.model, body)),
        Provider::Azure => Ok(azure::embeddings_request(
            endpoint,
            &target.model,
            target.api_version.as_deref().unwrap_or_default(),
            body,
        )),
        Provider::Gemini => gemini::embeddings_request(endpoint, &target.model, body),
        Provider::Cohere => cohere::embeddings_request(endpoint, &target.model, body),
        Provider::Anthropic => Err(ApiError::invalid(
            Some("model"),
            format!(
                "`{}` is an Anthropic model, and Anthropic has no embeddings API.",
                target.model
            ),
        )),
        // One call per input: the embeddings handler uses bedrock::embeddings_calls.
        Provider::Bedrock => Err(ApiError::new(
            500,
            "server_error",
            None,
            "Bedrock embeddings are made by bedrock::embeddings_calls.",
        )),
        Provider::Mock => Err(ApiError::new(
            500,
            "server_error",
            None,
            "mock models answer in-process",
        )),
    }
}

/// The provider's 2xx embeddings answer as an OpenAI embeddings list (`base64`: the client
/// asked for `encoding_format=base64`; OpenAI-dialect answers already are in its format).
pub fn embeddings_response(
    target: &Target,
    body: Vec<u8>,
    base64: bool,
) -> Result<Reply, ApiError> {
    match target.provider {
        Provider::Gemini => gemini::embeddings_response(&target.model, body, base64),
        Provider::Cohere => cohere::embeddings_response(&target.model, body, base64),
        Provider::OpenAI | Provider::Azure | Provider::Mock => openai::response(body),
        Provider::Anthropic => Err(ApiError::invalid(
            Some("model"),
            "Anthropic has no embeddings API.",
        )),
        // One call per input: the embeddings handler uses bedrock::embeddings_calls.
        Provider::Bedrock => Err(ApiError::new(
            500,
            "server_error",
            None,
            "Bedrock embeddings are made by bedrock::embeddings_calls.",
        )),
    }
}

/// The parameters among `unsupported` that a request asks for, for a provider that cannot
/// honour them: a 400 naming the first, or with `drop` (`DROP_UNSUPPORTED_PARAMS`) their names,
/// to leave out and log. A value that asks for nothing (`null`, `false`, `0`, `n: 1`, a `text`
/// `response_format`) is accepted silently: clients send such defaults.
pub fn unsupported_params(
    body: &Map<String, Value>,
    unsupported: &[&str],
    provider: &str,
    drop: bool,
) -> Result<Vec<String>, ApiError> {
    let mut dropped = Vec::new();
    for &name in unsupported {
        let asks_nothing = match body.get(name) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => true,
            Some(Value::Number(n)) => {
                n.as_f64() == Some(0.0) || (name == "n" && n.as_f64() == Some(1.0))
            }
            Some(v) if name == "response_format" => v.get("type") == Some(&json!("text")),
            _ => false,
        };
        if asks_nothing {
            continue;
        }
        if !drop {
            return Err(ApiError::invalid(
                Some(name),
                format!("`{name}` is not supported by {provider} models. Remove it, or set DROP_UNSUPPORTED_PARAMS=true to have the gateway drop it."),
            ));
        }
        dropped.push(name.to_string());
    }
    Ok(dropped)
}

/// OpenAI's `stop` (a string or strings) as a list of stop sequences; `None` when absent or
/// empty, a 400 naming `stop` when it is neither.
pub fn stop_sequences(body: &Map<String, Value>) -> Result<Option<Value>, ApiError> {
    match body.get("stop") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(json!([s]))),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            Ok((!a.is_empty()).then(|| Value::Array(a.clone())))
        }
        Some(_) => Err(ApiError::invalid(
            Some("stop"),
            "`stop` must be a string or an array of strings.",
        )),
    }
}

/// A function tool from an OpenAI request's `tools`, validated.
pub struct FunctionTool<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    /// The JSON Schema of its arguments (an empty object schema when the client gave none).
    pub parameters: Value,
    /// The tool as the client sent it (for dialect extras such as `cache_control`).
    pub raw: &'a Value,
}

/// The function tools of an OpenAI request (none when `tools` is absent); a 400 naming the
/// tool that is not a function tool with a name. Every native dialect starts from these.
pub fn function_tools(tools: Option<&Value>) -> Result<Vec<FunctionTool<'_>>, ApiError> {
    let tools = match tools {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(t)) => t,
        Some(_) => {
            return Err(ApiError::invalid(
                Some("tools"),
                "`tools` must be an array.",
            ))
        }
    };
    tools
        .iter()
        .enumerate()
        .map(|(k, tool)| {
            let is_function = tool
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("function")
                == "function";
            let function = tool.get("function").filter(|_| is_function);
            let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
            let (Some(function), Some(name)) = (function, name) else {
                return Err(ApiError::invalid(
                    Some(&format!("tools[{k}]")),
                    format!("`tools[{k}]` must be a function tool with a name."),
                ));
            };
            Ok(FunctionTool {
                name,
                description: function.get("description").and_then(Value::as_str),
                parameters: function
                    .get("parameters")
                    .filter(|p| p.is_object())
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                raw: tool,
            })
        })
        .collect()
}

/// One item of an OpenAI embeddings list from a provider's vector: floats, or base64 of
/// little-endian f32 when the client asked for `encoding_format: base64`.
pub fn embedding_item(index: usize, values: &[Value], base64: bool) -> Value {
    let embedding = if base64 {
        use base64::Engine;
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|v| (v.as_f64().unwrap_or(0.0) as f32).to_le_bytes())
            .collect();
        json!(base64::engine::general_purpose::STANDARD.encode(bytes))
    } else {
        Value::Array(values.to_vec())
    };
    json!({"object": "embedding", "index": index, "embedding": embedding})
}

/// Whether the client asked for the usage chunk itself.
pub fn client_wants_usage(body: &Map<String, Value>) -> bool {
    body.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(upstream: bool) -> Config {
        Config::from_lookup(|k| match (k, upstream) {
            ("LITELLM_BASE_URL", true) => Some("http://127.0.0.1:9/v1".into()),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn mock_models_resolve_without_a_provider() {
        let t = resolve(&config(false), "mock/echo").unwrap();
        assert_eq!((t.provider, t.model.as_str()), (Provider::Mock, "echo"));
        assert_eq!(
            resolve(&config(false), "mock/nope").unwrap_err().status,
            404
        );
    }

    #[test]
    fn other_models_need_the_upstream() {
        assert_eq!(resolve(&config(false), "gpt-4o").unwrap_err().status, 404);
        let t = resolve(&config(true), "openai/gpt-4o").unwrap();
        assert_eq!((t.provider, t.model.as_str()), (Provider::OpenAI, "gpt-4o"));
        let t = resolve(&config(true), "anthropic/claude-x").unwrap();
        assert_eq!(t.model, "anthropic/claude-x");
    }

    #[test]
    fn the_client_asks_for_usage_with_stream_options() {
        let asks = json!({"stream_options": {"include_usage": true}});
        assert!(client_wants_usage(asks.as_object().unwrap()));
        assert!(!client_wants_usage(
            json!({"stream": true}).as_object().unwrap()
        ));
    }
}
