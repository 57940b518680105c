//! The providers: one module per dialect, each behind the same interface ([`Dialect`], with
//! [`ChatStream`] for a stream's state), and one registry table ([`registry::PROVIDERS`]) whose
//! rows name each provider, its model-name prefixes, its variables and its dialect.
//!
//! Requests enter as the gateway's internal request: an OpenAI-shaped chat (or embeddings) body.
//! A dialect turns it into its provider's [`Call`], and the provider's answer, stream events and
//! errors back into OpenAI shapes. Dialects are pure translators: they never touch a socket, the
//! recorder or the configuration; what they know of the deployment comes in the [`Target`] (the
//! provider's row, the model name to send, its [`Settings`]). Provider-specific needs stay
//! behind the interface: SigV4 and per-input embedding calls in `bedrock`, deployments in
//! `azure`, in-process answers in `mock`.
//!
//! This file holds only the interface and the types that cross it; the readers and builders
//! every dialect shares are [`request`] (reading the internal request), [`shape`] (building
//! OpenAI answers), [`calls`] (call headers, relayed answers, model lists, stream events) and
//! [`errors`] (provider errors in the OpenAI shape). Adding a provider is one new module implementing [`Dialect`] and one row
//! in [`registry::PROVIDERS`].

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod calls;
pub mod cohere;
pub mod errors;
pub mod gemini;
pub mod mock;
pub mod openai;
pub mod registry;
pub mod request;
pub mod shape;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::pricing::Price;
use crate::upstream::{self, Answer, Call, Received, SseEvent};

/// One row of the provider registry: everything the gateway needs to know about a provider
/// besides its dialect's code.
pub struct Provider {
    /// The prefix in `name/model`, and the provider's name in logs and metrics.
    pub name: &'static str,
    /// How people call it (`Mistral`), for messages and the README.
    pub label: &'static str,
    /// Bare model-name prefixes that name its models (`claude-`).
    pub bare_prefixes: &'static [&'static str],
    /// Variables holding its key; the first that is set wins.
    pub key_vars: &'static [&'static str],
    pub key: Key,
    /// Variables holding its base URL; the first that is set wins.
    pub base_vars: &'static [&'static str],
    /// The base when no base variable is set; `{VAR}` stands for an extra variable's value.
    pub default_base: Option<&'static str>,
    /// Other variables it reads (Azure's API version, Bedrock's AWS credentials).
    pub extra_vars: &'static [Extra],
    pub dialect: &'static dyn Dialect,
}

/// Whether a provider needs a key to be called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// A cloud API: without its key its models are not routed to it.
    Required,
    /// A local or self-hosted server: a key is sent when set.
    Optional,
}

/// A variable a provider reads besides its key and base.
pub struct Extra {
    pub var: &'static str,
    /// Other names for it; the first set of `var` and these wins.
    pub aliases: &'static [&'static str],
    pub default: Option<&'static str>,
    /// Shown masked by `--check` and redacted from every log.
    pub secret: bool,
}

impl Provider {
    /// The variable named in a "set …" hint for its key.
    pub fn key_var(&self) -> &'static str {
        self.key_vars.first().copied().unwrap_or("its API key")
    }

    /// The variable named in a "set …" hint for its base.
    pub fn base_var(&self) -> &'static str {
        self.base_vars.first().copied().unwrap_or("its base URL")
    }
}

/// A provider's configuration as read from the environment.
#[derive(Clone, Default)]
pub struct Settings {
    /// The base URL without a trailing slash: the variable's value, else the row's default.
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    /// The row's extra variables that have a value, by variable name.
    pub extra: BTreeMap<&'static str, String>,
    /// Whether any of the provider's own variables is set: configured on purpose, so listed
    /// in `/v1/models` and shown by `--check`.
    pub explicit: bool,
    /// A config file deployment's `timeout` (a whole call that is not streamed) and
    /// `stream_timeout` (the longest silence in a stream), over the environment's.
    pub timeout: Option<Duration>,
    pub stream_timeout: Option<Duration>,
    /// A config file deployment's `model_info` prices, over the price table's.
    pub price: Option<Price>,
}

impl Settings {
    pub fn extra(&self, var: &str) -> Option<&str> {
        self.extra.get(var).map(String::as_str)
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What stops a provider from being called, for the error that says what to set.
#[derive(Debug, PartialEq, Eq)]
pub enum Missing {
    /// Credentials: a 401 naming these variables.
    Key(String),
    /// Its address: a 400 naming this variable.
    Base(&'static str),
}

/// One candidate for a request: the provider, the model name to send it, and its settings.
#[derive(Clone)]
pub struct Target {
    pub provider: &'static Provider,
    pub model: String,
    pub settings: Arc<Settings>,
}

impl Target {
    pub fn dialect(&self) -> &'static dyn Dialect {
        self.provider.dialect
    }

    /// The longest a call that is not streamed may take: the deployment's, else `default`.
    pub fn deadline(&self, default: Duration) -> Duration {
        self.settings.timeout.unwrap_or(default)
    }

    /// The longest silence in a stream: the deployment's, else `default`.
    pub fn idle_timeout(&self, default: Duration) -> Duration {
        self.settings.stream_timeout.unwrap_or(default)
    }

    /// The base URL (empty for the built-in models, which have none).
    pub fn base_url(&self) -> &str {
        self.settings.base_url.as_deref().unwrap_or_default()
    }

    pub fn api_key(&self) -> Option<&str> {
        self.settings.api_key.as_deref()
    }

    /// Whether this deployment serves `api` itself (see [`Dialect::serves_with`]).
    pub fn serves(&self, api: Api) -> bool {
        self.dialect().serves_with(&self.settings, api)
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({}/{})", self.provider.name, self.model)
    }
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

/// A client-facing API that a provider may serve as it is, so that an ingress route speaking it
/// relays to that provider untouched instead of translating through the internal request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// Anthropic's Messages API (`POST /v1/messages`).
    AnthropicMessages,
    /// OpenAI's legacy completions (`POST /v1/completions`), served by OpenAI and most
    /// OpenAI-compatible servers.
    Completions,
    /// OpenAI's Responses API (`POST /v1/responses`): OpenAI and Azure, as configured.
    Responses,
}

/// A model the provider lists: its id, creation time (seconds; 0 when unknown) and owner.
pub struct Listed {
    pub id: String,
    pub created: u64,
    pub owned_by: Option<String>,
}

/// The interface every provider's dialect implements. All of it is pure translation, except
/// [`Dialect::send`], which the built-in models override to answer in-process.
pub trait Dialect: Send + Sync {
    /// Refuses a model name this provider cannot be called with, before any call (a name that
    /// would leave its path segment, an unknown built-in model).
    fn check_model(&self, _requested: &str, _model: &str) -> Result<(), ApiError> {
        Ok(())
    }

    /// What is missing for this provider to be called, if anything: by default its key (when
    /// the row requires one), then its base.
    fn missing(&self, provider: &Provider, settings: &Settings) -> Option<Missing> {
        if provider.key == Key::Required && settings.api_key.is_none() {
            return Some(Missing::Key(provider.key_var().to_string()));
        }
        settings
            .base_url
            .is_none()
            .then(|| Missing::Base(provider.base_var()))
    }

    /// The provider's request for an internal chat request.
    fn chat_request(
        &self,
        target: &Target,
        body: Map<String, Value>,
        stream: bool,
        context: &RequestContext<'_>,
    ) -> Result<Prepared, ApiError>;

    /// The provider's 2xx chat answer as an OpenAI `chat.completion`.
    fn chat_response(&self, target: &Target, answer: Received) -> Result<Reply, ApiError>;

    /// The translator for one stream of this provider's chat events.
    fn chat_stream(&self, target: &Target) -> Box<dyn ChatStream>;

    /// The provider's requests for an internal embeddings request (most need one call; a
    /// provider that embeds one input per call needs one per input).
    fn embeddings_request(
        &self,
        target: &Target,
        _body: Map<String, Value>,
    ) -> Result<Vec<Call>, ApiError> {
        Err(ApiError::invalid(
            Some("model"),
            format!(
                "`{}` is a {} model, and {} has no embeddings API.",
                target.model, target.provider.label, target.provider.label
            ),
        ))
    }

    /// The provider's 2xx embeddings answers, in the order of the calls, as one OpenAI
    /// embeddings list (`base64`: the client asked for `encoding_format: base64`).
    fn embeddings_response(
        &self,
        target: &Target,
        _answers: Vec<Received>,
        _base64: bool,
    ) -> Result<Reply, ApiError> {
        Err(ApiError::invalid(
            Some("model"),
            format!("{} has no embeddings API.", target.provider.label),
        ))
    }

    /// The provider's error answer in the OpenAI shape, its status kept by the dialect's rules.
    fn parse_error(&self, status: u16, body: &[u8]) -> ApiError;

    /// The GET that lists the provider's models (first page, largest page size), if it has one.
    fn models_request(&self, _settings: &Settings) -> Option<Call> {
        None
    }

    /// The models in the provider's answer to [`Dialect::models_request`].
    fn models_response(&self, _body: &[u8]) -> Result<Vec<Listed>, String> {
        Ok(Vec::new())
    }

    /// Models the provider serves without being asked (the built-in models).
    fn local_models(&self) -> Vec<Listed> {
        Vec::new()
    }

    /// Whether the provider serves `api` itself (see [`Api`]).
    fn serves(&self, _api: Api) -> bool {
        false
    }

    /// Whether the provider, as configured, serves `api` itself: [`Dialect::serves`], unless
    /// the dialect reads a setting for it.
    fn serves_with(&self, _settings: &Settings, api: Api) -> bool {
        self.serves(api)
    }

    /// The call that carries a client's OpenAI-shaped request in `api` (one this provider
    /// serves) as it came: only the model set, and on streams usage asked for where the
    /// provider accepts it.
    fn native_call(
        &self,
        target: &Target,
        _api: Api,
        _body: Map<String, Value>,
        _stream: bool,
    ) -> Result<Call, ApiError> {
        Err(not_served(target))
    }

    /// Sends a call and returns the answer's head: over HTTP, except for the built-in models.
    fn send(&self, agent: &ureq::Agent, call: &Call) -> Result<Answer, ApiError> {
        upstream::post(agent, call)
    }
}

/// The state of one translated stream, fed one provider event at a time.
pub trait ChatStream: Send {
    /// What one provider event amounts to, in order; `Emit::Done` once the stream is complete.
    /// An error event of the provider is an `Err`.
    fn on_event(&mut self, event: SseEvent) -> Result<Vec<Emit>, ApiError>;

    /// The provider's body ended without a terminal event: the chunks still owed and
    /// `Emit::Done` when the answer is nevertheless complete, else the error that it was cut.
    fn finish(&mut self) -> Result<Vec<Emit>, ApiError>;
}

/// The error for a native call to a provider that does not serve the API (a routing bug).
pub fn not_served(target: &Target) -> ApiError {
    ApiError::new(
        500,
        "server_error",
        None,
        format!("{} does not serve this API itself.", target.provider.label),
    )
}

/// The error for a stream whose provider stopped before the answer was complete.
pub fn truncated() -> ApiError {
    ApiError::bad_gateway(
        "upstream_stream_truncated",
        "The provider's stream ended before the response was complete.",
    )
}

/// The error for a provider event or body that is not the JSON its dialect sends.
pub fn bad_response(what: impl fmt::Display) -> ApiError {
    ApiError::bad_gateway(
        "upstream_bad_response",
        format!("The provider's response is not usable: {what}."),
    )
}

/// The provider's response headers that are passed on to the client: retry advice and rate
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
pub fn forwarded_headers(header: impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    FORWARDED_HEADERS
        .iter()
        .filter_map(|name| header(name).map(|v| (name.to_string(), v)))
        .collect()
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

    #[test]
    fn the_client_asks_for_usage_with_stream_options() {
        let asks = json!({"stream_options": {"include_usage": true}});
        assert!(client_wants_usage(asks.as_object().unwrap()));
        assert!(!client_wants_usage(
            json!({"stream": true}).as_object().unwrap()
        ));
    }
}
