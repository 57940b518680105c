//! Configuration: the environment plus a `.env` file in the working directory (the
//! environment wins), validated into a [`Config`]. An invalid value is reported as one
//! [`ConfigError`] naming the variable and the problem. Secrets never appear in `Debug` or in
//! [`Config::describe`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::http::ServerConfig;
use crate::pricing::Prices;
use crate::providers::registry::PROVIDERS;
use crate::providers::{Provider, Settings};

/// Every variable the gateway reads, with its default and meaning: the source of `--help`,
/// `.env.example` and the README table.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    ("HOST", "127.0.0.1", "address or host name to listen on (0.0.0.0 for all interfaces; a name such as localhost is resolved at start)"),
    ("PORT", "8728", "port to listen on (0 picks a free one)"),
    ("LITELLM_API_KEY", "", "API key of the OpenAI-compatible upstream (alias: OPENAI_API_KEY)"),
    ("LITELLM_BASE_URL", "https://api.openai.com/v1", "base URL of the OpenAI-compatible upstream, with its version path (alias: OPENAI_BASE_URL)"),
    ("GEMINI_API_KEY", "", "API key for Google Gemini models, gemini/<model> or bare gemini-<model> (alias: GOOGLE_API_KEY)"),
    ("GEMINI_API_BASE", "https://generativelanguage.googleapis.com", "root URL of the Gemini API; the gateway appends /v1beta/models/<model>:generateContent and the like"),
    ("ANTHROPIC_API_KEY", "", "API key for anthropic/… and claude-… models (sent as x-api-key)"),
    ("ANTHROPIC_API_BASE", "https://api.anthropic.com", "root URL of the Anthropic API, without /v1 (the gateway appends /v1/messages)"),
    ("COHERE_API_KEY", "", "API key for cohere/… and command-… models (sent as a bearer token)"),
    ("COHERE_API_BASE", "https://api.cohere.com", "root URL of the Cohere API, without /v2 (the gateway appends /v2/chat and /v2/embed)"),
    ("<PROVIDER>_API_KEY", "", "API key of an OpenAI-compatible vendor for <provider>/<model>, e.g. GROQ_API_KEY for groq/llama-3.3-70b-versatile; the README's provider table lists every vendor (ollama, lm_studio, vllm, hosted_vllm, openai_compatible need none)"),
    ("<PROVIDER>_API_BASE", "(per provider)", "base URL of that vendor with its version path, e.g. OLLAMA_API_BASE=http://127.0.0.1:11434/v1; required for vllm, hosted_vllm and openai_compatible"),
    ("AZURE_API_KEY", "", "API key for Azure OpenAI, azure/<deployment> (sent as the api-key header)"),
    ("AZURE_API_BASE", "", "Azure OpenAI resource URL, https://<resource>.openai.azure.com (the gateway appends /openai/deployments/<deployment>/…)"),
    ("AWS_ACCESS_KEY_ID", "", "AWS access key for AWS Bedrock, bedrock/<model-id> (requests are SigV4-signed)"),
    ("AWS_SECRET_ACCESS_KEY", "", "AWS secret key that goes with AWS_ACCESS_KEY_ID"),
    ("AWS_SESSION_TOKEN", "", "session token of temporary AWS credentials (sent as x-amz-security-token)"),
    ("AWS_REGION", "us-east-1", "AWS region of Bedrock (alias: AWS_DEFAULT_REGION)"),
    ("AWS_BEARER_TOKEN_BEDROCK", "", "a Bedrock API key, sent as Authorization: Bearer instead of signing (wins over the access keys)"),
    ("BEDROCK_API_BASE", "https://bedrock-runtime.<region>.amazonaws.com", "root URL of Bedrock Runtime (the gateway appends /model/<model-id>/converse and the like)"),
    ("AZURE_API_VERSION", "2024-10-21", "the api-version query parameter sent to Azure OpenAI"),
    ("OPENAI_RESPONSES_API", "auto", "whether the openai upstream serves /v1/responses itself (relayed as it came): true, false, or auto (only at api.openai.com); otherwise Responses requests are translated to chat"),
    ("MODELS_CACHE_SECS", "300", "how long /v1/models keeps each provider's model list before asking it again"),
    ("DROP_UNSUPPORTED_PARAMS", "false", "true drops request parameters a provider cannot honour (the interactions log lists them) instead of answering 400"),
    ("WORKERS", "1024", "most worker threads: requests in flight; each holds one request until its answer, a stream until its head (the relay loop carries the events; idle keep-alive connections hold none)"),
    ("MAX_CONNECTIONS", "10000", "most open client connections, idle keep-alive ones included; past it new ones get 503 + retry-after"),
    ("LISTEN_BACKLOG", "4096", "connections the kernel completes and holds until the gateway accepts them (capped by net.core.somaxconn); a burst past it retries its SYN after a second"),
    ("KEEPALIVE_IDLE_SECS", "5", "an idle keep-alive connection is closed after this long"),
    ("CLIENT_HEADER_TIMEOUT", "10", "seconds a client has to send a whole request head (else 408)"),
    ("CLIENT_BODY_TIMEOUT", "60", "seconds a client has to send a whole request body (else 408)"),
    ("CLIENT_SEND_TIMEOUT", "60", "seconds a write to a stalled client may block before it counts as gone"),
    ("MAX_REQUEST_BYTES", "33554432", "largest request body accepted (else 413); 32 MiB"),
    ("SHUTDOWN_GRACE_SECS", "30", "on SIGINT/SIGTERM, how long requests in flight may take to finish"),
    ("UPSTREAM_CONNECT_TIMEOUT", "10", "seconds to connect to a provider (else 502)"),
    ("UPSTREAM_TIMEOUT", "600", "seconds to wait for a provider's response headers (else 504)"),
    ("STREAM_IDLE_TIMEOUT", "300", "a stream silent this many seconds is cut with an SSE error event"),
    ("CORS_ALLOW_ORIGINS", "*", "comma-separated origins allowed by CORS, or *"),
    ("LOG_LEVEL", "info", "level of the gateway's own log: error, warn, info, debug, trace"),
    ("DEBUG", "false", "true adds detail to the gateway's own log (never secrets)"),
    ("LOG_DIR", "logs", "directory for the log files"),
    ("LOG_BODIES", "truncated", "request/response bodies in the interactions log: full, truncated, metadata (none), none (no interactions file)"),
    ("LOG_MAX_BODY_BYTES", "65536", "with LOG_BODIES=truncated, the most bytes kept of each body"),
    ("LOG_ROTATE_MB", "100", "a log file rotates daily and when it reaches this size (decimals allowed)"),
    ("LOG_RETENTION_DAYS", "14", "log files and trend history older than this many days are deleted; 0 keeps them forever (LOG_MAX_TOTAL_MB still applies)"),
    ("LOG_MAX_TOTAL_MB", "2048", "the oldest log files are deleted while all of them together exceed this"),
    ("ACCESS_LOG", "true", "one access line per request in the system log (false turns them off)"),
    ("EXPLORER_RECENT", "2000", "interactions the dashboard's explorer keeps in memory (as logged, at most 64 MiB); older ones are read from the interaction files; 0 keeps none"),
    ("METRICS", "true", "keep live metrics and trends (false turns both off)"),
    ("PRICES_FILE", "", "a JSON price table laid over the built-in one: {\"model\": {\"input\": 2.5, \"cached_input\": 1.25, \"output\": 10}} in USD per million tokens"),
    ("CONFIG_FILE", "", "a LiteLLM proxy config.yaml (model_list aliases, router_settings, litellm_settings); also --config PATH"),
    ("MAX_RETRIES", "2", "retries of a provider failure before the first byte, when no config file sets num_retries"),
    ("GATEWAY_API_KEYS", "", "gateway keys clients must send (comma list; name=key names one); with none configured and no ADMIN_API_KEY the gateway is open"),
    ("ADMIN_API_KEY", "", "the admin key: /key/* (LiteLLM's key API), /admin/*, /metrics*, /dashboard, /docs; also any model (default: the config file's general_settings.master_key)"),
    ("ALLOW_UNAUTHENTICATED", "false", "true lets the gateway listen on a non-loopback HOST with a provider key and no gateway key (anyone reaching the port spends the provider credit)"),
    ("REDIS_FAIL_OPEN", "false", "with REDIS_URL unreachable, true admits keys with limits unchecked; false (fail closed) answers them 503"),
    ("ENABLE_RELOAD", "false", "true re-reads CONFIG_FILE when it changes (SIGHUP always does); an invalid file is refused and the old table kept"),
    ("DATA_DIR", "data", "directory of the embedded store (llmcallgateway.db): gateway keys, spend, rate-limit state, stored responses"),
    ("REDIS_URL", "", "redis://[:password@]host:port[/db]: keep the store in Redis instead, shared by every instance behind a load balancer"),
    ("RESPONSES_RETENTION_DAYS", "30", "stored Responses (store: true) are deleted after this many days; 0 keeps them until deleted"),
];

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    /// The address `HOST` names (a host name is resolved once, at start).
    pub host: IpAddr,
    /// `HOST` as written, when it is a name rather than an address (`localhost`).
    pub host_name: Option<String>,
    pub port: u16,
    /// Every provider of the registry with its settings (base, key, extra variables), by name.
    pub providers: BTreeMap<&'static str, Arc<Settings>>,
    /// How long a provider's model list is kept for `/v1/models`.
    pub models_cache: Duration,
    pub drop_unsupported_params: bool,
    /// The HTTP layer's limits: WORKERS, MAX_CONNECTIONS, the client timeouts,
    /// MAX_REQUEST_BYTES, SHUTDOWN_GRACE_SECS.
    pub server: ServerConfig,
    pub upstream_connect_timeout: Duration,
    pub upstream_timeout: Duration,
    pub stream_idle_timeout: Duration,
    pub cors_allow_origins: Vec<String>,
    pub log_level: String,
    pub debug: bool,
    pub log_dir: PathBuf,
    pub log_bodies: LogBodies,
    pub log_max_body_bytes: usize,
    pub log_rotate_bytes: u64,
    pub log_retention_days: u32,
    pub log_max_total_bytes: u64,
    pub access_log: bool,
    /// Interaction lines the explorer keeps in memory (`EXPLORER_RECENT`).
    pub explorer_recent: usize,
    pub metrics: bool,
    pub prices: Prices,
    pub prices_file: Option<PathBuf>,
    /// A LiteLLM config file with the routing table (read by the router).
    pub config_file: Option<PathBuf>,
    pub max_retries: usize,
    pub enable_reload: bool,
    /// Where the embedded store lives (`DATA_DIR`).
    pub data_dir: PathBuf,
    /// The shared store instead of the embedded one (`REDIS_URL`).
    pub redis_url: Option<String>,
    /// How long a stored response is kept, in days; 0 keeps it until deleted.
    pub responses_retention_days: u32,
    /// `GATEWAY_API_KEYS` as given (secret).
    pub gateway_api_keys: Option<String>,
    /// `ADMIN_API_KEY` (secret), or the config file's `general_settings.master_key`.
    pub admin_api_key: Option<String>,
    pub allow_unauthenticated: bool,
    pub redis_fail_open: bool,
}

/// How much of each request and response body the interactions log keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogBodies {
    Full,
    Truncated,
    Metadata,
    None,
}

/// A variable with an invalid value.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration: {}: {}",
            self.variable, self.problem
        )
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment and `./.env` (the environment wins).
    pub fn from_env() -> Result<Config, ConfigError> {
        let mut vars: HashMap<String, String> = HashMap::new();
        if let Ok(entries) = dotenvy::from_path_iter(".env") {
            for entry in entries {
                let (key, value) = entry.map_err(|e| ConfigError {
                    variable: ".env".into(),
                    problem: e.to_string(),
                })?;
                vars.insert(key, value);
            }
        }
        vars.extend(std::env::vars());
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    /// Builds a configuration from any variable source (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut providers = BTreeMap::new();
        for provider in PROVIDERS {
            providers.insert(provider.name, Arc::new(read_settings(provider, &get)?));
        }
        let max_connections = parse_count(&get, "MAX_CONNECTIONS", 10_000)?;
        let host = parse_host(get("HOST"))?;
        Ok(Config {
            host: host.0,
            host_name: host.1,
            port: parse(&get, "PORT", 8728, "a port number 0-65535")?,
            providers,
            models_cache: parse_secs(&get, "MODELS_CACHE_SECS", 300.0)?,
            drop_unsupported_params: parse_bool(&get, "DROP_UNSUPPORTED_PARAMS")?,
            server: ServerConfig {
                workers: parse_count(&get, "WORKERS", 1024)?,
                max_connections,
                keepalive_idle: parse_secs(&get, "KEEPALIVE_IDLE_SECS", 5.0)?,
                header_timeout: parse_secs(&get, "CLIENT_HEADER_TIMEOUT", 10.0)?,
                body_timeout: parse_secs(&get, "CLIENT_BODY_TIMEOUT", 60.0)?,
                send_timeout: parse_secs(&get, "CLIENT_SEND_TIMEOUT", 60.0)?,
                max_body_bytes: parse(&get, "MAX_REQUEST_BYTES", 32 * 1024 * 1024, "a byte count")?,
                shutdown_grace: parse_secs(&get, "SHUTDOWN_GRACE_SECS", 30.0)?,
                backlog: parse_count(&get, "LISTEN_BACKLOG", 4096)?
                    .try_into()
                    .unwrap_or(i32::MAX),
                ..ServerConfig::default()
            },
            upstream_connect_timeout: parse_secs(&get, "UPSTREAM_CONNECT_TIMEOUT", 10.0)?,
            upstream_timeout: parse_secs(&get, "UPSTREAM_TIMEOUT", 600.0)?,
            stream_idle_timeout: parse_secs(&get, "STREAM_IDLE_TIMEOUT", 300.0)?,
            cors_allow_origins: get("CORS_ALLOW_ORIGINS")
                .unwrap_or_else(|| "*".into())
                .split(',')
                .map(|o| o.trim().to_string())
                .filter(|o| !o.is_empty())
                .collect(),
            log_level: parse_level(get("LOG_LEVEL"))?,
            debug: parse_bool(&get, "DEBUG")?,
            log_dir: PathBuf::from(get("LOG_DIR").unwrap_or_else(|| "logs".into())),
            log_bodies: match get("LOG_BODIES").map(|v| v.to_ascii_lowercase()).as_deref() {
                None | Some("truncated") => LogBodies::Truncated,
                Some("full") => LogBodies::Full,
                Some("metadata") => LogBodies::Metadata,
                Some("none") => LogBodies::None,
                Some(other) => {
                    return Err(invalid(
                        "LOG_BODIES",
                        format!("{other:?} is not one of full, truncated, metadata, none"),
                    ))
                }
            },
            log_max_body_bytes: parse_count(&get, "LOG_MAX_BODY_BYTES", 65536)?,
            log_rotate_bytes: parse_megabytes(&get, "LOG_ROTATE_MB", 100.0)?,
            log_retention_days: parse(&get, "LOG_RETENTION_DAYS", 14, "a number of days")?,
            log_max_total_bytes: parse_megabytes(&get, "LOG_MAX_TOTAL_MB", 2048.0)?,
            access_log: get("ACCESS_LOG").is_none() || parse_bool(&get, "ACCESS_LOG")?,
            explorer_recent: parse(&get, "EXPLORER_RECENT", 2000, "a whole number of records")?,
            metrics: get("METRICS").is_none() || parse_bool(&get, "METRICS")?,
            prices: match get("PRICES_FILE") {
                None => Prices::default(),
                Some(path) => Prices::with_file(Path::new(&path))
                    .map_err(|e| invalid("PRICES_FILE", format!("{path}: {e}")))?,
            },
            prices_file: get("PRICES_FILE").map(PathBuf::from),
            config_file: get("CONFIG_FILE").map(PathBuf::from),
            max_retries: parse(&get, "MAX_RETRIES", 2, "a whole number of retries")?,
            enable_reload: parse_bool(&get, "ENABLE_RELOAD")?,
            data_dir: PathBuf::from(get("DATA_DIR").unwrap_or_else(|| "data".into())),
            redis_url: match get("REDIS_URL") {
                Some(url) if !url.starts_with("redis://") && !url.starts_with("rediss://") => {
                    return Err(invalid(
                        "REDIS_URL",
                        format!("{} is not a redis:// URL", masked_url(&url)),
                    ))
                }
                url => url,
            },
            responses_retention_days: parse(
                &get,
                "RESPONSES_RETENTION_DAYS",
                30,
                "a number of days",
            )?,
            gateway_api_keys: get("GATEWAY_API_KEYS"),
            admin_api_key: get("ADMIN_API_KEY"),
            allow_unauthenticated: parse_bool(&get, "ALLOW_UNAUTHENTICATED")?,
            redis_fail_open: parse_bool(&get, "REDIS_FAIL_OPEN")?,
        })
    }

    /// A provider's settings, by its registry name.
    pub fn provider(&self, name: &str) -> &Settings {
        static NONE: Settings = Settings {
            base_url: None,
            api_key: None,
            extra: BTreeMap::new(),
            explicit: false,
            timeout: None,
            stream_timeout: None,
            price: None,
        };
        self.providers.get(name).map_or(&NONE, |s| s)
    }

    /// Every secret the configuration holds (provider keys and secret extra variables), for
    /// the log redactor.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets = Vec::new();
        for provider in PROVIDERS {
            let settings = self.provider(provider.name);
            secrets.extend(settings.api_key.clone());
            for extra in provider.extra_vars.iter().filter(|e| e.secret) {
                secrets.extend(settings.extra(extra.var).map(str::to_string));
            }
        }
        secrets.extend(self.redis_url.as_deref().and_then(url_password));
        secrets.extend(self.admin_api_key.clone());
        if let Some(list) = &self.gateway_api_keys {
            secrets.extend(
                list.split(',')
                    .map(|e| e.split_once('=').map_or(e, |(_, k)| k).trim().to_string())
                    .filter(|k| !k.is_empty()),
            );
        }
        secrets
    }

    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// The effective configuration, one `NAME=value` per line, secrets masked.
    pub fn describe(&self) -> String {
        let secs = |d: Duration| format!("{}", d.as_secs_f64());
        let host = match &self.host_name {
            Some(name) => format!("HOST={name} ({})", self.host),
            None => format!("HOST={}", self.host),
        };
        let mut lines = vec![host, format!("PORT={}", self.port)];
        if !self.provider("openai").explicit {
            lines.push("LITELLM_BASE_URL=(not configured: only mock/ models)".into());
        }
        for provider in PROVIDERS {
            let settings = self.provider(provider.name);
            if !settings.explicit {
                continue;
            }
            if let Some(base) = &settings.base_url {
                lines.push(format!("{}={base}", provider.base_var()));
            }
            if !provider.key_vars.is_empty() {
                let key = settings.api_key.as_deref().map(mask);
                let key = key.unwrap_or_else(|| "(none)".into());
                lines.push(format!("{}={key}", provider.key_var()));
            }
            for extra in provider.extra_vars {
                if let Some(value) = settings.extra(extra.var) {
                    let value = if extra.secret {
                        mask(value)
                    } else {
                        value.into()
                    };
                    lines.push(format!("{}={value}", extra.var));
                }
            }
        }
        lines.extend([
            format!("MODELS_CACHE_SECS={}", secs(self.models_cache)),
            format!("DROP_UNSUPPORTED_PARAMS={}", self.drop_unsupported_params),
            format!("WORKERS={}", self.server.workers),
            format!("MAX_CONNECTIONS={}", self.server.max_connections),
            format!("LISTEN_BACKLOG={}", self.server.backlog),
            format!("KEEPALIVE_IDLE_SECS={}", secs(self.server.keepalive_idle)),
            format!("CLIENT_HEADER_TIMEOUT={}", secs(self.server.header_timeout)),
            format!("CLIENT_BODY_TIMEOUT={}", secs(self.server.body_timeout)),
            format!("CLIENT_SEND_TIMEOUT={}", secs(self.server.send_timeout)),
            format!("MAX_REQUEST_BYTES={}", self.server.max_body_bytes),
            format!("SHUTDOWN_GRACE_SECS={}", secs(self.server.shutdown_grace)),
            format!(
                "UPSTREAM_CONNECT_TIMEOUT={}",
                secs(self.upstream_connect_timeout)
            ),
            format!("UPSTREAM_TIMEOUT={}", secs(self.upstream_timeout)),
            format!("STREAM_IDLE_TIMEOUT={}", secs(self.stream_idle_timeout)),
            format!("CORS_ALLOW_ORIGINS={}", self.cors_allow_origins.join(",")),
            format!("LOG_LEVEL={}", self.log_level),
            format!("DEBUG={}", self.debug),
            format!("LOG_DIR={}", self.log_dir.display()),
            format!(
                "LOG_BODIES={}",
                format!("{:?}", self.log_bodies).to_ascii_lowercase()
            ),
            format!("LOG_MAX_BODY_BYTES={}", self.log_max_body_bytes),
            format!("EXPLORER_RECENT={}", self.explorer_recent),
            format!(
                "CONFIG_FILE={}",
                self.config_file
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string())
            ),
            format!("MAX_RETRIES={}", self.max_retries),
            format!("ENABLE_RELOAD={}", self.enable_reload),
            format!("ACCESS_LOG={}", self.access_log),
            format!("METRICS={}", self.metrics),
            format!(
                "PRICES_FILE={}",
                self.prices_file
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string())
            ),
            format!(
                "GATEWAY_API_KEYS={}",
                self.gateway_api_keys.as_deref().map_or(String::new(), |l| {
                    format!(
                        "({} keys)",
                        l.split(',').filter(|e| !e.trim().is_empty()).count()
                    )
                })
            ),
            format!(
                "ADMIN_API_KEY={}",
                self.admin_api_key.as_deref().map_or(String::new(), mask)
            ),
            format!("ALLOW_UNAUTHENTICATED={}", self.allow_unauthenticated),
            format!("REDIS_FAIL_OPEN={}", self.redis_fail_open),
            format!(
                "LOG_ROTATE_MB={}",
                self.log_rotate_bytes as f64 / 1_048_576.0
            ),
            format!("LOG_RETENTION_DAYS={}", self.log_retention_days),
            format!("DATA_DIR={}", self.data_dir.display()),
            format!("RESPONSES_RETENTION_DAYS={}", self.responses_retention_days),
            format!(
                "REDIS_URL={}",
                self.redis_url.as_deref().map_or(String::new(), masked_url)
            ),
            format!(
                "LOG_MAX_TOTAL_MB={}",
                self.log_max_total_bytes as f64 / 1_048_576.0
            ),
        ]);
        lines.join("\n")
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A provider's settings from its variables: the first set of each list wins; a base is a
/// validated URL (the row's default when none is set, `{VAR}` replaced by an extra's value).
fn read_settings(
    provider: &Provider,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let first = |vars: &[&'static str]| vars.iter().find_map(|&v| Some((v, get(v)?)));
    let mut settings = Settings {
        api_key: first(provider.key_vars).map(|(_, key)| key),
        ..Settings::default()
    };
    for extra in provider.extra_vars {
        let names: Vec<&'static str> = [extra.var]
            .into_iter()
            .chain(extra.aliases.iter().copied())
            .collect();
        let value = first(&names);
        settings.explicit |= value.is_some() && extra.secret;
        if let Some(value) = value.map(|(_, v)| v).or(extra.default.map(str::to_string)) {
            settings.extra.insert(extra.var, value);
        }
    }
    let base = match first(provider.base_vars) {
        Some((var, base)) => Some(parse_url(var, &base)?),
        None => provider.default_base.map(|base| {
            settings
                .extra
                .iter()
                .fold(base.to_string(), |b, (var, value)| {
                    b.replace(&format!("{{{var}}}"), value)
                })
        }),
    };
    settings.explicit |= settings.api_key.is_some() || first(provider.base_vars).is_some();
    settings.base_url = base;
    Ok(settings)
}

/// Shows that a secret is set without showing it: `sk-…abcd` keeps only its last 4 characters
/// when it is long enough for that to reveal nothing useful.
/// A `REDIS_URL` with its password (if any) masked, for `--check` and error texts.
pub fn masked_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://***@{host}"),
        },
        None => url.to_string(),
    }
}

/// The password a `REDIS_URL` holds, for the log redactor.
pub fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.rsplit_once('@')?.0;
    let secret = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
    (!secret.is_empty()).then(|| secret.to_string())
}

pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() >= 16 {
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("***{tail}")
    } else {
        "***".into()
    }
}

fn invalid(variable: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable: variable.into(),
        problem: problem.into(),
    }
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
    expected: &str,
) -> Result<T, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| invalid(name, format!("{v:?} is not {expected}"))),
    }
}

fn parse_count(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: usize,
) -> Result<usize, ConfigError> {
    let n: usize = parse(get, name, default, "a positive whole number")?;
    if n == 0 {
        return Err(invalid(name, "must be at least 1"));
    }
    Ok(n)
}

fn parse_secs(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: f64,
) -> Result<Duration, ConfigError> {
    let secs: f64 = parse(get, name, default, "a number of seconds")?;
    if !secs.is_finite() || secs <= 0.0 || secs > 1e7 {
        return Err(invalid(
            name,
            format!("{secs} must be a positive number of seconds"),
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A size in megabytes (MiB), as bytes; at least about 1 KB.
fn parse_megabytes(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: f64,
) -> Result<u64, ConfigError> {
    let mb: f64 = parse(get, name, default, "a number of megabytes")?;
    if !mb.is_finite() || !(0.001..=1e9).contains(&mb) {
        return Err(invalid(
            name,
            format!("{mb} must be a number of megabytes, at least 0.001"),
        ));
    }
    Ok((mb * 1_048_576.0) as u64)
}

fn parse_bool(get: &impl Fn(&str) -> Option<String>, name: &str) -> Result<bool, ConfigError> {
    match get(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
        Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
        Some(v) => Err(invalid(name, format!("{v:?} is not true or false"))),
    }
}

/// `HOST`: an IP address, or a host name resolved now (`localhost`, a container's name); an
/// IPv4 address is preferred when a name has both.
fn parse_host(value: Option<String>) -> Result<(IpAddr, Option<String>), ConfigError> {
    use std::net::ToSocketAddrs;
    let Some(value) = value else {
        return Ok((IpAddr::from([127, 0, 0, 1]), None));
    };
    if let Ok(ip) = value.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok((ip, None));
    }
    let resolved: Vec<IpAddr> = (value.as_str(), 0)
        .to_socket_addrs()
        .map_err(|e| {
            invalid(
                "HOST",
                format!("{value:?} is not an IP address, and resolving it failed: {e}"),
            )
        })?
        .map(|a| a.ip())
        .collect();
    let ip = resolved
        .iter()
        .find(|ip| ip.is_ipv4())
        .or(resolved.first())
        .copied()
        .ok_or_else(|| invalid("HOST", format!("{value:?} resolves to no address")))?;
    Ok((ip, Some(value)))
}

fn parse_level(value: Option<String>) -> Result<String, ConfigError> {
    let level = value.unwrap_or_else(|| "info".into()).to_ascii_lowercase();
    match level.as_str() {
        "error" | "warn" | "warning" | "info" | "debug" | "trace" | "critical" => {
            Ok(match level.as_str() {
                "warning" => "warn".into(),
                "critical" => "error".into(),
                _ => level,
            })
        }
        _ => Err(invalid(
            "LOG_LEVEL",
            format!("{level:?} is not one of error, warn, info, debug, trace"),
        )),
    }
}

/// An http(s) URL with a host; returned without a trailing slash.
fn parse_url(name: &str, value: &str) -> Result<String, ConfigError> {
    let uri: ureq::http::Uri = value
        .parse()
        .map_err(|_| invalid(name, format!("{value:?} is not a URL")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(invalid(
                name,
                format!("{value:?} must start with http:// or https://"),
            ))
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid(name, format!("{value:?} has no host")));
    }
    if uri.query().is_some() {
        return Err(invalid(
            name,
            format!("{value:?} must not carry a query string"),
        ));
    }
    Ok(value.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_serve_only_mock_models_on_localhost() {
        let c = load(&[]).unwrap();
        assert_eq!(c.listen_addr().to_string(), "127.0.0.1:8728");
        assert!(!c.provider("openai").explicit);
        assert_eq!(c.server.max_body_bytes, 32 * 1024 * 1024);
        assert_eq!(c.server.backlog, 4096);
        let c = load(&[("LISTEN_BACKLOG", "512")]).unwrap();
        assert_eq!(c.server.backlog, 512);
        let c = load(&[("LISTEN_BACKLOG", "99999999999")]).unwrap();
        assert_eq!(
            c.server.backlog,
            i32::MAX,
            "the kernel caps it at somaxconn anyway"
        );
    }

    #[test]
    fn host_names_resolve_and_addresses_stay_as_written() {
        let c = load(&[("HOST", "localhost")]).unwrap();
        assert!(c.host.is_loopback(), "{}", c.host);
        assert!(c.describe().starts_with("HOST=localhost (127.0.0.1)"));
        let c = load(&[("HOST", "::1")]).unwrap();
        assert_eq!(c.describe().lines().next(), Some("HOST=::1"));
    }

    #[test]
    fn litellm_variables_win_over_openai_ones() {
        let c = load(&[
            ("OPENAI_API_KEY", "sk-openai-fake"),
            ("LITELLM_API_KEY", "sk-litellm-fake"),
            ("OPENAI_BASE_URL", "http://a.example/v1"),
            ("LITELLM_BASE_URL", "http://b.example/v1/"),
        ])
        .unwrap();
        let u = c.provider("openai");
        assert_eq!(u.base_url.as_deref(), Some("http://b.example/v1"));
        assert_eq!(u.api_key.as_deref(), Some("sk-litellm-fake"));
    }

    #[test]
    fn a_key_alone_targets_openai() {
        let c = load(&[("OPENAI_API_KEY", "sk-fake")]).unwrap();
        let u = c.provider("openai");
        assert!(u.explicit);
        assert_eq!(u.base_url.as_deref(), Some("https://api.openai.com/v1"));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        assert_eq!(load(&[("PORT", "abc")]).unwrap_err().variable, "PORT");
        assert_eq!(load(&[("PORT", "70000")]).unwrap_err().variable, "PORT");
        assert_eq!(
            load(&[("CLIENT_HEADER_TIMEOUT", "-1")])
                .unwrap_err()
                .variable,
            "CLIENT_HEADER_TIMEOUT"
        );
        assert_eq!(
            load(&[("LITELLM_BASE_URL", "ftp://x")])
                .unwrap_err()
                .variable,
            "LITELLM_BASE_URL"
        );
        assert_eq!(
            load(&[("OPENAI_BASE_URL", "not a url")])
                .unwrap_err()
                .variable,
            "OPENAI_BASE_URL"
        );
        assert_eq!(load(&[("WORKERS", "0")]).unwrap_err().variable, "WORKERS");
        for bad in ["0", "-1", "lots"] {
            assert_eq!(
                load(&[("LISTEN_BACKLOG", bad)]).unwrap_err().variable,
                "LISTEN_BACKLOG"
            );
        }
        assert_eq!(load(&[("DEBUG", "maybe")]).unwrap_err().variable, "DEBUG");
        assert_eq!(
            load(&[("LOG_LEVEL", "loud")]).unwrap_err().variable,
            "LOG_LEVEL"
        );
    }

    #[test]
    fn vendors_read_their_variables_from_the_table() {
        let c = load(&[
            ("GROQ_API_KEY", "gsk-fake"),
            ("VLLM_API_BASE", "http://127.0.0.1:8000/v1/"),
            ("AZURE_API_BASE", "https://res.openai.azure.com/"),
        ])
        .unwrap();
        let base = |name: &str| c.provider(name).base_url.clone();
        let groq = c.provider("groq");
        assert_eq!(
            base("groq").as_deref(),
            Some("https://api.groq.com/openai/v1")
        );
        assert_eq!(groq.api_key.as_deref(), Some("gsk-fake"));
        assert_eq!(base("vllm").as_deref(), Some("http://127.0.0.1:8000/v1"));
        assert_eq!(base("hosted_vllm"), None, "no default base");
        assert_eq!(base("ollama").as_deref(), Some("http://127.0.0.1:11434/v1"));
        assert_eq!(
            base("azure").as_deref(),
            Some("https://res.openai.azure.com")
        );
        assert_eq!(
            c.provider("azure").extra("AZURE_API_VERSION"),
            Some("2024-10-21")
        );
        assert_eq!(
            base("bedrock").as_deref(),
            Some("https://bedrock-runtime.us-east-1.amazonaws.com")
        );
        assert_eq!(c.models_cache, Duration::from_secs(300));
        assert_eq!(
            load(&[("MISTRAL_API_BASE", "nope")]).unwrap_err().variable,
            "MISTRAL_API_BASE"
        );
    }

    #[test]
    fn redis_urls_are_masked_and_their_password_known_to_the_redactor() {
        assert_eq!(
            masked_url("redis://user:s3cret@cache:6379/0"),
            "redis://user:***@cache:6379/0"
        );
        assert_eq!(masked_url("redis://:s3cret@cache"), "redis://:***@cache");
        assert_eq!(masked_url("redis://cache:6379"), "redis://cache:6379");
        assert_eq!(
            url_password("redis://user:s3cret@cache:6379").as_deref(),
            Some("s3cret")
        );
        assert_eq!(url_password("redis://cache:6379"), None);
    }

    #[test]
    fn describe_masks_the_key() {
        let c = load(&[("LITELLM_API_KEY", "sk-test-fake-0123456789abcdef")]).unwrap();
        let text = c.describe();
        assert!(!text.contains("sk-test-fake-0123456789abcdef"));
        assert!(text.contains("***cdef"));
        assert!(!format!("{c:?}").contains("0123456789"));
    }

    #[test]
    fn every_variable_read_is_documented() {
        let source = include_str!("config.rs");
        let source = &source[..source.find("#[cfg(test)]").unwrap()];
        let mut read = 0;
        for marker in ["get(\"", "&get, \""] {
            for (i, _) in source.match_indices(marker) {
                let rest = &source[i + marker.len()..];
                let name = &rest[..rest.find('"').unwrap()];
                let documented = VARIABLES
                    .iter()
                    .any(|(v, _, doc)| *v == name || doc.contains(name));
                assert!(documented, "{name} is read but not in VARIABLES");
                read += 1;
            }
        }
        assert!(
            read >= 25,
            "the scan found the variables read here ({read})"
        );
        // The providers' variables are read from the registry: each is documented by name,
        // or (an OpenAI-compatible vendor's `<NAME>_API_KEY` / `<NAME>_API_BASE`) by the two
        // pattern rows and the README's provider table.
        for pattern in ["<PROVIDER>_API_KEY", "<PROVIDER>_API_BASE"] {
            assert!(VARIABLES.iter().any(|(v, _, _)| *v == pattern));
        }
        for provider in PROVIDERS {
            let upper = provider.name.to_ascii_uppercase();
            let extras = provider.extra_vars.iter();
            let vars = (provider.key_vars.iter().chain(provider.base_vars))
                .chain(extras.flat_map(|e| [&e.var].into_iter().chain(e.aliases)));
            for var in vars {
                let documented = VARIABLES
                    .iter()
                    .any(|(v, _, doc)| v == var || doc.contains(var))
                    || *var == format!("{upper}_API_KEY")
                    || *var == format!("{upper}_API_BASE");
                assert!(documented, "{var} is read but not in VARIABLES");
            }
        }
    }

    #[test]
    fn readme_and_env_example_document_every_variable() {
        let readme = include_str!("../README.md");
        let example = include_str!("../.env.example");
        for (name, _, _) in VARIABLES {
            assert!(
                readme.contains(&format!("| `{name}` |")),
                "{name} missing from README.md"
            );
            assert!(
                example.contains(&format!("# {name}=")),
                "{name} missing from .env.example"
            );
        }
        for provider in PROVIDERS {
            for var in provider.key_vars.iter().chain(provider.base_vars) {
                assert!(
                    readme.contains(&format!("`{var}`")),
                    "{var} missing from README.md's provider table"
                );
            }
        }
    }
}
