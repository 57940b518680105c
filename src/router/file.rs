//! LiteLLM's proxy `config.yaml`, read as LiteLLM documents it: `model_list` (aliases and
//! their deployments), `router_settings` and `litellm_settings` (retries, cooldowns,
//! fallbacks, the routing strategy), plus `general_settings.master_key` and the gateway's own
//! `gateway_keys` list for the access layer. What LiteLLM reads and the gateway does not is warned
//! about once per key; a key LiteLLM does not know either is an error (a typo), as is a bad
//! value. Every error names the file, the line and the reason.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::yaml;

/// What the file says, checked but not yet resolved to providers.
#[derive(Debug, Default)]
pub struct File {
    pub deployments: Vec<Spec>,
    pub settings: Settings,
    /// One line per key read but not implemented, for the start-up log.
    pub warnings: Vec<String>,
    /// `general_settings.master_key`: the admin key when `ADMIN_API_KEY` is not set.
    pub master_key: Option<Secret>,
    /// `gateway_keys` (the gateway's own section): each entry with its line, checked by the
    /// access layer.
    pub gateway_keys: Vec<(usize, Map<String, Value>)>,
}

/// One `model_list` entry.
#[derive(Debug, Default)]
pub struct Spec {
    /// `model_name`: the alias clients call.
    pub alias: String,
    pub line: usize,
    /// `litellm_params.model`: `provider/model`.
    pub model: String,
    pub api_base: Option<String>,
    pub api_key: Option<Secret>,
    pub api_version: Option<String>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub weight: f64,
    pub timeout: Option<Duration>,
    pub stream_timeout: Option<Duration>,
    pub max_retries: Option<usize>,
    /// Request parameters the deployment sets when the client does not (`temperature`, …).
    pub params: Map<String, Value>,
    /// `model_info` prices, USD per token: input, output, cached input.
    pub prices: [Option<f64>; 3],
}

/// An `api_key`: a variable's name (`os.environ/NAME`) or the key itself.
#[derive(Debug)]
pub enum Secret {
    Env(String),
    Literal(String),
}

/// The routing settings of `router_settings` and `litellm_settings` (the router's win).
#[derive(Debug, Default)]
pub struct Settings {
    pub strategy: Option<String>,
    pub num_retries: Option<usize>,
    /// The least wait before a retry.
    pub retry_after: Option<Duration>,
    pub allowed_fails: Option<u32>,
    pub cooldown_time: Option<Duration>,
    pub timeout: Option<Duration>,
    pub fallbacks: Vec<(String, Vec<String>)>,
    pub context_window_fallbacks: Vec<(String, Vec<String>)>,
    pub default_fallbacks: Vec<String>,
    pub drop_params: Option<bool>,
}

/// A file that cannot be used: where and why.
#[derive(Debug, PartialEq, Eq)]
pub struct FileError {
    pub path: PathBuf,
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.reason)
    }
}

impl std::error::Error for FileError {}

/// The routing strategies LiteLLM names and the gateway implements.
pub const STRATEGIES: &[&str] = &[
    "simple-shuffle",
    "least-busy",
    "latency-based-routing",
    "usage-based-routing",
    "usage-based-routing-v2",
];

/// `litellm_params` the gateway reads itself.
const DEPLOYMENT_KEYS: &[&str] = &[
    "model",
    "api_base",
    "api_key",
    "api_version",
    "rpm",
    "tpm",
    "weight",
    "timeout",
    "stream_timeout",
    "max_retries",
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
];
/// `litellm_params` that are request parameters, merged into each request that lacks them.
const REQUEST_PARAMS: &[&str] = &[
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "top_p",
    "n",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "user",
    "response_format",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    "top_k",
    "extra_body",
    "extra_headers",
    "dimensions",
    "encoding_format",
];
/// `litellm_params` LiteLLM reads that the gateway does not (warned about).
const DEPLOYMENT_IGNORED: &[&str] = &[
    "custom_llm_provider",
    "organization",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_region_name",
    "aws_profile_name",
    "vertex_project",
    "vertex_location",
    "vertex_credentials",
    "region_name",
    "base_model",
    "tags",
    "mock_response",
    "max_parallel_requests",
    "order",
    "use_in_pass_through",
    "merge_reasoning_content_in_choices",
    "azure_ad_token",
    "tenant_id",
    "client_id",
    "client_secret",
    "api_type",
    "litellm_credential_name",
    "cache_control_injection_points",
    "use_litellm_proxy",
    "configurable_clientside_auth_params",
    "model_info",
    "drop_params",
    "additional_drop_params",
    "input_cost_per_second",
    "output_cost_per_second",
];
const MODEL_INFO_IGNORED: &[&str] = &[
    "id",
    "mode",
    "base_model",
    "max_tokens",
    "max_input_tokens",
    "max_output_tokens",
    "supports_function_calling",
    "supports_vision",
    "supports_reasoning",
    "supports_response_schema",
    "supports_prompt_caching",
    "team_id",
    "access_groups",
    "db_model",
    "litellm_provider",
    "tier",
    "description",
    "health_check_model",
    "cache_creation_input_token_cost",
    "input_cost_per_second",
    "output_cost_per_second",
];
const ROUTER_KEYS: &[&str] = &[
    "routing_strategy",
    "num_retries",
    "retry_after",
    "allowed_fails",
    "cooldown_time",
    "timeout",
    "fallbacks",
    "context_window_fallbacks",
    "default_fallbacks",
];
const ROUTER_IGNORED: &[&str] = &[
    "redis_host",
    "redis_port",
    "redis_password",
    "redis_url",
    "redis_db",
    "model_group_alias",
    "enable_pre_call_checks",
    "routing_strategy_args",
    "retry_policy",
    "allowed_fails_policy",
    "content_policy_fallbacks",
    "cache_responses",
    "cache_kwargs",
    "provider_budget_config",
    "enable_tag_filtering",
    "disable_cooldowns",
    "max_fallbacks",
    "stream_timeout",
    "optional_pre_call_checks",
    "client_ttl",
    "polling_interval",
    "default_max_parallel_requests",
    "default_priority",
    "set_verbose",
    "debug_level",
    "alerting_config",
    "model_group_retry_policy",
    "router_general_settings",
    "assistants_config",
    "default_litellm_params",
];
const LITELLM_KEYS: &[&str] = &[
    "drop_params",
    "num_retries",
    "request_timeout",
    "fallbacks",
    "context_window_fallbacks",
    "default_fallbacks",
];
const LITELLM_IGNORED: &[&str] = &[
    "success_callback",
    "failure_callback",
    "callbacks",
    "service_callback",
    "cache",
    "cache_params",
    "set_verbose",
    "json_logs",
    "turn_off_message_logging",
    "redact_user_api_key_info",
    "redact_messages_in_exceptions",
    "max_budget",
    "budget_duration",
    "default_team_settings",
    "content_policy_fallbacks",
    "telemetry",
    "force_ipv4",
    "modify_params",
    "enable_preview_features",
    "max_internal_user_budget",
    "internal_user_budget_duration",
    "upperbound_key_generate_params",
    "default_key_generate_params",
    "key_generation_settings",
    "disable_end_user_cost_tracking",
    "return_response_headers",
    "ssl_verify",
    "allowed_fails",
    "cooldown_time",
    "mcp_aliases",
    "default_internal_user_params",
    "max_end_user_budget",
    "enable_json_schema_validation",
    "disable_add_transform_inline_image_block",
    "use_client_credentials_pass_through_routes",
    "callback_settings",
    "guardrails",
    "global_max_parallel_requests",
    "num_retries_per_request",
    "disable_hf_tokenizer_download",
    "logging",
];
/// Top-level sections LiteLLM reads that the gateway does not (each of their keys is warned
/// about as `section.key`).
const TOP_IGNORED: &[&str] = &[
    "general_settings",
    "environment_variables",
    "include",
    "credential_list",
    "guardrails",
    "callback_settings",
    "mcp_servers",
    "mcp_tools",
    "finetune_settings",
    "files_settings",
    "assistant_settings",
    "vector_store_registry",
    "prompts",
    "search_tools",
    "pass_through_endpoints",
    "model_group_settings",
    "alerting",
    "alert_types",
];

/// Reads and checks a LiteLLM config file.
pub fn read(path: &Path) -> Result<File, FileError> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError {
        path: path.to_path_buf(),
        line: 0,
        reason: format!("cannot read it: {e}"),
    })?;
    parse(path, &text)
}

/// Checks a LiteLLM config file's text.
pub fn parse(path: &Path, text: &str) -> Result<File, FileError> {
    let doc = yaml::parse(text).map_err(|(line, reason)| FileError {
        path: path.into(),
        line,
        reason,
    })?;
    let mut r = Reader {
        path,
        lines: &doc.lines,
        file: File::default(),
    };
    r.document(&doc.value)?;
    Ok(r.file)
}

struct Reader<'a> {
    path: &'a Path,
    lines: &'a HashMap<String, usize>,
    file: File,
}

type Checked<T> = Result<T, FileError>;

impl Reader<'_> {
    fn error(&self, at: &str, reason: impl Into<String>) -> FileError {
        // A path without a key of its own (a list item) is reported at its parent's key.
        let mut key = at;
        let line = loop {
            if let Some(&line) = self.lines.get(key) {
                break line;
            }
            match key.rfind(['.', '[']) {
                Some(i) => key = &key[..i],
                None => break 1,
            }
        };
        FileError {
            path: self.path.into(),
            line,
            reason: format!("{at}: {}", reason.into()),
        }
    }

    fn warn(&mut self, at: &str) {
        let line = self.lines.get(at).copied().unwrap_or(0);
        self.file.warnings.push(format!(
            "{}:{line}: {at} is a LiteLLM setting this gateway does not implement; ignored",
            self.path.display()
        ));
    }

    /// The keys of a mapping, each either read (`known`), warned about (`ignored`) or an error.
    fn mapping<'v>(
        &mut self,
        at: &str,
        value: &'v Value,
        known: &[&str],
        ignored: &[&str],
    ) -> Checked<Vec<(String, &'v Value)>> {
        let map = match value {
            Value::Object(map) => map,
            Value::Null => return Ok(Vec::new()),
            _ => return Err(self.error(at, "must be a mapping of keys to values")),
        };
        let mut read = Vec::new();
        for (key, v) in map {
            let path = join(at, key);
            if known.contains(&key.as_str()) {
                read.push((path, v));
            } else if ignored.contains(&key.as_str()) {
                self.warn(&path);
            } else {
                return Err(self.error(&path, "not a key of LiteLLM's config format (a typo?)"));
            }
        }
        Ok(read)
    }

    fn document(&mut self, root: &Value) -> Checked<()> {
        let map = match root {
            Value::Object(map) => map,
            Value::Null => return Ok(()),
            _ => return Err(self.error("", "the file must be a mapping of sections")),
        };
        for (section, value) in map {
            match section.as_str() {
                "model_list" => self.model_list(value)?,
                "gateway_keys" => {
                    let Value::Array(items) = value else {
                        return Err(self.error(section, "must be a list of keys"));
                    };
                    for (i, item) in items.iter().enumerate() {
                        let at = format!("{section}[{i}]");
                        let Value::Object(entry) = item else {
                            return Err(self.error(&at, "must be a mapping of key settings"));
                        };
                        let first = entry.keys().next().map(|k| join(&at, k));
                        let line = self.error(first.as_deref().unwrap_or(&at), "").line;
                        self.file.gateway_keys.push((line, entry.clone()));
                    }
                }
                "router_settings" => self.settings(section, value, ROUTER_KEYS, ROUTER_IGNORED)?,
                "litellm_settings" => {
                    self.settings(section, value, LITELLM_KEYS, LITELLM_IGNORED)?;
                }
                s if TOP_IGNORED.contains(&s) => match value {
                    Value::Object(keys) if !keys.is_empty() => {
                        for (key, v) in keys {
                            let path = join(section, key);
                            if path == "general_settings.master_key" {
                                let key = self.string(&path, v)?;
                                self.file.master_key =
                                    Some(match key.strip_prefix("os.environ/") {
                                        Some(name) => Secret::Env(name.to_string()),
                                        None => Secret::Literal(key),
                                    });
                            } else {
                                self.warn(&path);
                            }
                        }
                    }
                    _ => self.warn(section),
                },
                _ => {
                    return Err(self.error(
                        section,
                        "not a section of LiteLLM's config format (a typo?)",
                    ));
                }
            }
        }
        Ok(())
    }

    fn model_list(&mut self, value: &Value) -> Checked<()> {
        let Value::Array(entries) = value else {
            return Err(self.error("model_list", "must be a list of models"));
        };
        for (i, entry) in entries.iter().enumerate() {
            let at = format!("model_list[{i}]");
            let mut spec = Spec {
                weight: 1.0,
                line: self
                    .lines
                    .get(&format!("{at}.model_name"))
                    .copied()
                    .unwrap_or(0),
                ..Spec::default()
            };
            let keys = ["model_name", "litellm_params", "model_info"];
            let mut has_params = false;
            for (path, v) in self.mapping(&at, entry, &keys, &[])? {
                match &path[at.len() + 1..] {
                    "model_name" => spec.alias = self.string(&path, v)?,
                    "litellm_params" => {
                        has_params = true;
                        self.deployment(&path, v, &mut spec)?;
                    }
                    _ => self.model_info(&path, v, &mut spec)?,
                }
            }
            if spec.alias.is_empty() {
                return Err(self.error(&at, "model_name is missing"));
            }
            if !has_params || spec.model.is_empty() {
                return Err(self.error(&at, "litellm_params.model is missing"));
            }
            self.file.deployments.push(spec);
        }
        Ok(())
    }

    fn deployment(&mut self, at: &str, value: &Value, spec: &mut Spec) -> Checked<()> {
        let known: Vec<&str> = DEPLOYMENT_KEYS
            .iter()
            .chain(REQUEST_PARAMS)
            .copied()
            .collect();
        for (path, v) in self.mapping(at, value, &known, DEPLOYMENT_IGNORED)? {
            let key = &path[at.len() + 1..];
            match key {
                "model" => spec.model = self.string(&path, v)?,
                "api_base" => spec.api_base = Some(self.string(&path, v)?),
                "api_key" => {
                    let key = self.string(&path, v)?;
                    spec.api_key = Some(match key.strip_prefix("os.environ/") {
                        Some(name) => Secret::Env(name.to_string()),
                        None => {
                            self.file.warnings.push(format!(
                                "{}:{}: {path} is a key written in the file; prefer os.environ/NAME",
                                self.path.display(),
                                self.lines.get(&path).copied().unwrap_or(0)
                            ));
                            Secret::Literal(key)
                        }
                    });
                }
                "api_version" => spec.api_version = Some(self.string(&path, v)?),
                "rpm" => spec.rpm = Some(self.count(&path, v)? as u64),
                "tpm" => spec.tpm = Some(self.count(&path, v)? as u64),
                "weight" => spec.weight = self.number(&path, v)?,
                "timeout" => spec.timeout = Some(self.seconds(&path, v)?),
                "stream_timeout" => spec.stream_timeout = Some(self.seconds(&path, v)?),
                "max_retries" => spec.max_retries = Some(self.count(&path, v)?),
                "input_cost_per_token" => spec.prices[0] = Some(self.number(&path, v)?),
                "output_cost_per_token" => spec.prices[1] = Some(self.number(&path, v)?),
                "cache_read_input_token_cost" => spec.prices[2] = Some(self.number(&path, v)?),
                _ => {
                    spec.params.insert(key.to_string(), v.clone());
                }
            }
        }
        Ok(())
    }

    fn model_info(&mut self, at: &str, value: &Value, spec: &mut Spec) -> Checked<()> {
        let known = [
            "input_cost_per_token",
            "output_cost_per_token",
            "cache_read_input_token_cost",
        ];
        for (path, v) in self.mapping(at, value, &known, MODEL_INFO_IGNORED)? {
            let price = Some(self.number(&path, v)?);
            match &path[at.len() + 1..] {
                "input_cost_per_token" => spec.prices[0] = price,
                "output_cost_per_token" => spec.prices[1] = price,
                _ => spec.prices[2] = price,
            }
        }
        Ok(())
    }

    /// `router_settings` or `litellm_settings`; a value in the router's wins.
    fn settings(
        &mut self,
        at: &str,
        value: &Value,
        known: &[&str],
        ignored: &[&str],
    ) -> Checked<()> {
        let router = at == "router_settings";
        for (path, v) in self.mapping(at, value, known, ignored)? {
            let s = &mut self.file.settings;
            let set = router || {
                // litellm_settings fills only what router_settings left unset.
                match &path[at.len() + 1..] {
                    "num_retries" => s.num_retries.is_none(),
                    "request_timeout" => s.timeout.is_none(),
                    "fallbacks" => s.fallbacks.is_empty(),
                    "context_window_fallbacks" => s.context_window_fallbacks.is_empty(),
                    "default_fallbacks" => s.default_fallbacks.is_empty(),
                    _ => true,
                }
            };
            if !set {
                continue;
            }
            match &path[at.len() + 1..] {
                "routing_strategy" => {
                    let name = self.string(&path, v)?;
                    if !STRATEGIES.contains(&name.as_str()) {
                        return Err(self.error(
                            &path,
                            format!("{name:?} is not one of {}", STRATEGIES.join(", ")),
                        ));
                    }
                    self.file.settings.strategy = Some(name);
                }
                "num_retries" => self.file.settings.num_retries = Some(self.count(&path, v)?),
                "retry_after" => {
                    self.file.settings.retry_after = Some(self.seconds_or_zero(&path, v)?)
                }
                "allowed_fails" => {
                    self.file.settings.allowed_fails = Some(self.count(&path, v)? as u32)
                }
                "cooldown_time" => {
                    self.file.settings.cooldown_time = Some(self.seconds_or_zero(&path, v)?)
                }
                "timeout" | "request_timeout" => {
                    self.file.settings.timeout = Some(self.seconds(&path, v)?)
                }
                "fallbacks" => self.file.settings.fallbacks = self.fallbacks(&path, v)?,
                "context_window_fallbacks" => {
                    self.file.settings.context_window_fallbacks = self.fallbacks(&path, v)?;
                }
                "default_fallbacks" => {
                    self.file.settings.default_fallbacks = self.names(&path, v)?;
                }
                _ => {
                    let Value::Bool(b) = v else {
                        return Err(self.error(&path, "must be true or false"));
                    };
                    self.file.settings.drop_params = Some(*b);
                }
            }
        }
        Ok(())
    }

    /// `[{"alias": ["fallback", …]}, …]`, as LiteLLM writes fallbacks.
    fn fallbacks(&self, at: &str, v: &Value) -> Checked<Vec<(String, Vec<String>)>> {
        let shape = "must be a list of {alias: [fallback aliases]} mappings";
        let Value::Array(items) = v else {
            return Err(self.error(at, shape));
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = format!("{at}[{i}]");
            let Value::Object(map) = item else {
                return Err(self.error(&at, shape));
            };
            for (alias, list) in map {
                out.push((alias.clone(), self.names(&join(&at, alias), list)?));
            }
        }
        Ok(out)
    }

    fn names(&self, at: &str, v: &Value) -> Checked<Vec<String>> {
        match v {
            Value::Array(items) => items.iter().map(|n| self.string(at, n)).collect(),
            _ => Err(self.error(at, "must be a list of model names")),
        }
    }

    fn string(&self, at: &str, v: &Value) -> Checked<String> {
        match v {
            Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            _ => Err(self.error(at, "must be a non-empty string")),
        }
    }

    fn number(&self, at: &str, v: &Value) -> Checked<f64> {
        match v
            .as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        {
            Some(n) if n.is_finite() && n >= 0.0 => Ok(n),
            _ => Err(self.error(at, "must be a number, 0 or more")),
        }
    }

    fn count(&self, at: &str, v: &Value) -> Checked<usize> {
        match self.number(at, v)? {
            n if n.fract() == 0.0 && n < 1e12 => Ok(n as usize),
            _ => Err(self.error(at, "must be a whole number")),
        }
    }

    fn seconds_or_zero(&self, at: &str, v: &Value) -> Checked<Duration> {
        let secs = self.number(at, v)?;
        if secs > 1e7 {
            return Err(self.error(at, "is too many seconds"));
        }
        Ok(Duration::from_secs_f64(secs))
    }

    fn seconds(&self, at: &str, v: &Value) -> Checked<Duration> {
        match self.seconds_or_zero(at, v)? {
            d if d.is_zero() => Err(self.error(at, "must be more than 0 seconds")),
            d => Ok(d),
        }
    }
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<File, FileError> {
        parse(Path::new("c.yaml"), text)
    }

    #[test]
    fn reads_the_documented_shape() {
        let f = check(
            "model_list:\n  - model_name: chat\n    litellm_params:\n      model: openai/gpt-4o\n      api_key: os.environ/K\n      rpm: 10\n      temperature: 0.2\n    model_info:\n      input_cost_per_token: 0.000001\nrouter_settings:\n  num_retries: 3\n  fallbacks: [{chat: [backup]}]\nlitellm_settings:\n  num_retries: 9\n  drop_params: true\ngeneral_settings:\n  database_url: x\n",
        )
        .unwrap();
        let d = &f.deployments[0];
        assert_eq!(
            (d.alias.as_str(), d.model.as_str(), d.rpm),
            ("chat", "openai/gpt-4o", Some(10))
        );
        assert!(matches!(&d.api_key, Some(Secret::Env(n)) if n == "K"));
        assert_eq!(d.params["temperature"], 0.2);
        assert_eq!(d.prices[0], Some(0.000001));
        assert_eq!(f.settings.num_retries, Some(3), "router_settings wins");
        assert_eq!(
            f.settings.fallbacks,
            vec![("chat".into(), vec!["backup".into()])]
        );
        assert_eq!(f.settings.drop_params, Some(true));
        assert_eq!(f.warnings.len(), 1);
        assert!(
            f.warnings[0].contains("general_settings.database_url"),
            "{:?}",
            f.warnings
        );
    }

    #[test]
    fn errors_name_the_line_and_the_key() {
        let e = check("model_list:\n  - model_name: a\n    litellm_params:\n      model: mock/echo\n      temprature: 1\n").unwrap_err();
        assert_eq!(e.line, 5);
        assert!(
            e.reason.contains("temprature") && e.reason.contains("typo"),
            "{e}"
        );
        let e = check("router_settings:\n  routing_strategy: random\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = check("model_list:\n  - model_name: a\n").unwrap_err();
        assert!(e.reason.contains("litellm_params.model"), "{e}");
        assert_eq!(
            check("a: [").unwrap_err().to_string().split(':').next(),
            Some("c.yaml")
        );
    }
}
