//! Model name → plan: the ordered candidates a request may be sent to. Today each name has one
//! candidate; the routing issue adds aliases, deployments, retries and fallbacks here, and the
//! handlers that walk a plan stay as they are.
//!
//! Resolution: `provider/model` names a registry row (`mock/…`, `anthropic/…`, `groq/…`,
//! `azure/<deployment>`, `bedrock/<model-id>`, …), and a bare name of a provider's family
//! (`claude-…`, `gemini-…`, `command-…`) names it too. A provider that lacks its key (or
//! base) leaves the name, unchanged, to the OpenAI-compatible upstream when one is configured,
//! else the request gets 401 (400 for a base) naming the variable to set. `openai/<model>` and
//! every other name go to the upstream (`LITELLM_BASE_URL`), so a LiteLLM-style upstream can
//! route `provider/model` names itself.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::config::Config;
use crate::error::ApiError;
use crate::events::Attempt;
use crate::pricing::Price;
use crate::providers::registry::{self, UPSTREAM};
use crate::providers::{Missing, Settings, Target};

pub mod file;
pub mod health;
mod yaml;

pub use file::FileError;
use health::{Caps, Health, Rules};

/// The longest wait a provider's `retry-after` may impose on a retry.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(30);
/// The first backoff step; each retry doubles it (with jitter).
const BACKOFF: Duration = Duration::from_millis(100);

/// The routing table: the aliases of the config file and their deployments (each with its
/// live health), the router's settings, and the environment's configuration for every other
/// name. Built whole and swapped whole on reload, so a request sees one table throughout.
pub struct Routing {
    pub config: Config,
    /// Alias → its deployments, in file order.
    pub aliases: BTreeMap<String, Vec<Arc<Deployment>>>,
    pub settings: RouterSettings,
    /// How many times each counter below happened since start (kept across reloads by the
    /// gateway, which owns them).
    pub counters: Arc<Counters>,
}

/// Retries and fallbacks done, for `/metrics`.
#[derive(Default)]
pub struct Counters {
    pub retries: AtomicU64,
    pub fallbacks: AtomicU64,
}

/// One deployment's state as `/metrics` shows it.
pub struct DeploymentState {
    pub alias: String,
    pub provider: &'static str,
    pub model: String,
    pub cooling: bool,
    pub consecutive_fails: u32,
    pub in_flight: usize,
}

/// How the next deployment of an alias is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Weighted random (`simple-shuffle`).
    Shuffle,
    /// Fewest calls in flight (`least-busy`).
    LeastBusy,
    /// Lowest recent latency (`latency-based-routing`).
    Latency,
    /// Fewest tokens this minute (`usage-based-routing`).
    Usage,
}

#[derive(Debug)]
pub struct RouterSettings {
    pub strategy: Strategy,
    pub num_retries: usize,
    pub min_retry_wait: Duration,
    pub rules: Rules,
    pub fallbacks: BTreeMap<String, Vec<String>>,
    pub context_window_fallbacks: BTreeMap<String, Vec<String>>,
    pub default_fallbacks: Vec<String>,
}

/// One deployment of an alias: where it goes and how it is used.
pub struct Deployment {
    pub alias: String,
    pub target: Target,
    pub weight: f64,
    pub caps: Caps,
    /// Request parameters it sets when the client does not.
    pub params: Map<String, Value>,
    /// Retries of a failed call on this same deployment (`litellm_params.max_retries`, what
    /// LiteLLM gives the deployment's own client) before the router counts it as failed.
    pub max_retries: usize,
    pub health: Health,
}

impl Routing {
    /// The environment's configuration alone: every name resolved as the registry says.
    pub fn from_env(config: Config) -> Routing {
        Routing {
            settings: RouterSettings {
                strategy: Strategy::Shuffle,
                num_retries: config.max_retries,
                min_retry_wait: Duration::ZERO,
                rules: Rules {
                    allowed_fails: 3,
                    cooldown: Duration::from_secs(5),
                },
                fallbacks: BTreeMap::new(),
                context_window_fallbacks: BTreeMap::new(),
                default_fallbacks: Vec::new(),
            },
            config,
            aliases: BTreeMap::new(),
            counters: Arc::default(),
        }
    }

    /// The table for a configuration: its `CONFIG_FILE` read and resolved when it names one.
    /// The warnings are for the start-up log.
    pub fn load(config: &Config) -> Result<(Routing, Vec<String>), FileError> {
        let mut routing = Routing::from_env(config.clone());
        let Some(path) = &config.config_file else {
            return Ok((routing, Vec::new()));
        };
        let file = file::read(path)?;
        let s = file.settings;
        routing.settings = RouterSettings {
            strategy: match s.strategy.as_deref() {
                Some("least-busy") => Strategy::LeastBusy,
                Some("latency-based-routing") => Strategy::Latency,
                Some(u) if u.starts_with("usage-based") => Strategy::Usage,
                _ => Strategy::Shuffle,
            },
            num_retries: s.num_retries.unwrap_or(2),
            min_retry_wait: s.retry_after.unwrap_or_default(),
            rules: Rules {
                allowed_fails: s.allowed_fails.unwrap_or(3),
                cooldown: s.cooldown_time.unwrap_or(Duration::from_secs(5)),
            },
            fallbacks: s.fallbacks.into_iter().collect(),
            context_window_fallbacks: s.context_window_fallbacks.into_iter().collect(),
            default_fallbacks: s.default_fallbacks,
        };
        if let Some(drop) = s.drop_params {
            routing.config.drop_unsupported_params = drop;
        }
        if let Some(timeout) = s.timeout {
            routing.config.upstream_timeout = timeout;
        }
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        for spec in file.deployments {
            let d = deployment(&routing.config, path, spec, &env)?;
            routing
                .aliases
                .entry(d.alias.clone())
                .or_default()
                .push(Arc::new(d));
        }
        let lists = (routing.settings.fallbacks.iter())
            .chain(&routing.settings.context_window_fallbacks)
            .flat_map(|(from, to)| std::iter::once(from).chain(to))
            .chain(&routing.settings.default_fallbacks);
        for name in lists {
            if !routing.aliases.contains_key(name) {
                if let Err(e) = resolve(&routing.config, name) {
                    return Err(FileError {
                        path: path.clone(),
                        line: 0,
                        reason: format!("fallback {name:?} is neither an alias of model_list nor a model the gateway can call: {}", e.message),
                    });
                }
            }
        }
        Ok((routing, file.warnings))
    }

    /// Every deployment of the config file's aliases, in table order, with its health now.
    pub fn deployment_states(&self) -> Vec<DeploymentState> {
        let now = Instant::now();
        (self.aliases.values().flatten())
            .map(|d| DeploymentState {
                alias: d.alias.clone(),
                provider: d.target.provider.name,
                model: d.target.model.clone(),
                cooling: d.health.cooling(now),
                consecutive_fails: d.health.consecutive_fails(),
                in_flight: d.health.in_flight(),
            })
            .collect()
    }

    /// The routing table as `--check` prints it.
    pub fn describe(&self) -> String {
        let s = &self.settings;
        let mut out = format!(
            "routing: strategy {:?}, num_retries {}, allowed_fails {}, cooldown {} s\n",
            s.strategy,
            s.num_retries,
            s.rules.allowed_fails,
            s.rules.cooldown.as_secs_f64()
        );
        for (alias, deployments) in &self.aliases {
            let _ = writeln!(out, "  {alias}");
            for d in deployments {
                let t = &d.target.settings;
                let _ = writeln!(
                    out,
                    "    → {}/{} at {} (weight {}{}{}{}{}{}{})",
                    d.target.provider.name,
                    d.target.model,
                    d.target.base_url(),
                    d.weight,
                    d.caps.rpm.map(|r| format!(", rpm {r}")).unwrap_or_default(),
                    d.caps.tpm.map(|t| format!(", tpm {t}")).unwrap_or_default(),
                    t.timeout
                        .map(|d| format!(", timeout {} s", d.as_secs_f64()))
                        .unwrap_or_default(),
                    t.stream_timeout
                        .map(|d| format!(", stream_timeout {} s", d.as_secs_f64()))
                        .unwrap_or_default(),
                    t.price
                        .map(|p| format!(", USD/M tokens {} in, {} out", p.input, p.output))
                        .unwrap_or_default(),
                    if d.params.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", sets {}",
                            d.params.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    }
                );
            }
            for (label, lists) in [
                ("fallbacks", &s.fallbacks),
                ("context-window fallbacks", &s.context_window_fallbacks),
            ] {
                if let Some(list) = lists.get(alias) {
                    let _ = writeln!(out, "    {label}: {}", list.join(", "));
                }
            }
        }
        if !s.default_fallbacks.is_empty() {
            let _ = writeln!(
                out,
                "  default fallbacks: {}",
                s.default_fallbacks.join(", ")
            );
        }
        out
    }
}

/// A `model_list` entry resolved to a target: its provider from `model` as the registry
/// says, the environment's settings for that provider overlaid with the entry's own.
fn deployment(
    config: &Config,
    path: &Path,
    spec: file::Spec,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Deployment, FileError> {
    let error = |reason: String| FileError {
        path: path.to_path_buf(),
        line: spec.line,
        reason: format!("model {:?} of {:?}: {reason}", spec.model, spec.alias),
    };
    let (provider, model) = match spec.model.split_once('/') {
        Some((name, model)) => match registry::find(name) {
            Some(p) => (p, model),
            None => {
                return Err(error(format!(
                    "{name:?} is not a provider the gateway knows"
                )))
            }
        },
        None => (
            registry::by_bare_name(&spec.model)
                .unwrap_or_else(|| registry::find(UPSTREAM).expect("the upstream row")),
            spec.model.as_str(),
        ),
    };
    let mut settings: Settings = (*config.providers[provider.name]).clone();
    if let Some(base) = &spec.api_base {
        let uri: Option<ureq::http::Uri> = base.parse().ok();
        if !uri.is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https"))) {
            return Err(error(format!("api_base {base:?} is not an http(s) URL")));
        }
        settings.base_url = Some(base.trim_end_matches('/').to_string());
    }
    match &spec.api_key {
        Some(file::Secret::Env(name)) => match env(name) {
            Some(key) => settings.api_key = Some(key),
            None => {
                return Err(error(format!(
                    "api_key names os.environ/{name}, which is not set"
                )))
            }
        },
        Some(file::Secret::Literal(key)) => settings.api_key = Some(key.clone()),
        None => {}
    }
    if let Some(version) = &spec.api_version {
        settings
            .extra
            .insert(crate::providers::azure::API_VERSION_VAR, version.clone());
    }
    settings.explicit = true;
    match provider.dialect.missing(provider, &settings) {
        Some(Missing::Key(vars)) => {
            return Err(error(format!("no api_key, and {vars} is not set")))
        }
        Some(Missing::Base(var)) => {
            return Err(error(format!("no api_base, and {var} is not set")))
        }
        None => {}
    }
    provider
        .dialect
        .check_model(&spec.model, model)
        .map_err(|e| error(e.message))?;
    // The router's `timeout` (already in `config`) is every deployment's unless it has one.
    settings.timeout = Some(spec.timeout.unwrap_or(config.upstream_timeout));
    settings.stream_timeout = spec.stream_timeout;
    // LiteLLM's prices are per token; the table's per million. A price left out is free,
    // cached input the input price.
    let [input, output, cached] = spec.prices;
    if input.is_some() || output.is_some() {
        settings.price = Some(Price {
            input: input.unwrap_or(0.0) * 1e6,
            output: output.unwrap_or(0.0) * 1e6,
            cached_input: cached.map(|c| c * 1e6),
        });
    }
    Ok(Deployment {
        alias: spec.alias,
        target: Target {
            provider,
            model: model.to_string(),
            settings: Arc::new(settings),
        },
        weight: spec.weight,
        caps: Caps {
            rpm: spec.rpm,
            tpm: spec.tpm,
        },
        params: spec.params,
        max_retries: spec.max_retries.unwrap_or(0),
        health: Health::default(),
    })
}

/// The candidates for one request: the alias's deployments (or the one target of a plain
/// name), then its fallbacks' and, for a context-length error, its context-window fallbacks'.
pub struct Plan {
    /// The name the client asked for (what a gateway key's model list allows).
    pub requested: String,
    /// Every target the plan may try, for handlers that prepare per kind of target.
    pub candidates: Vec<Target>,
    routing: Arc<Routing>,
    groups: Vec<Vec<Arc<Deployment>>>,
    context_groups: Vec<Vec<Arc<Deployment>>>,
    /// The calls `walk` made, for the interaction line.
    attempts: Mutex<Vec<Attempt>>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("candidates", &self.candidates)
            .finish()
    }
}

impl Plan {
    /// The calls made so far, in order.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn note(&self, d: &Deployment, started: Instant, failure: Option<&ApiError>) {
        let target = &d.target;
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Attempt {
                alias: d.alias.clone(),
                deployment: format!("{}/{}", target.provider.name, target.model),
                api_base: target.settings.base_url.clone(),
                status: failure.map_or(200, |e| e.status),
                latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                error: failure.map(|e| e.message.clone()),
            });
    }

    /// Tries the candidates until one answers. Within a group (an alias's deployments), a
    /// provider failure (unreachable, overloaded, a 5xx, 408 or 429) before anything reached
    /// the client is retried up to `num_retries` times after a backoff, on another healthy
    /// deployment when there is one; then the next fallback group is tried. A context-length
    /// error goes to the context-window fallbacks; any other refusal of the request is the
    /// answer at once, as is the last failure.
    pub fn walk(
        &self,
        body: Map<String, Value>,
        mut attempt: impl FnMut(&Target, Map<String, Value>) -> Result<(), Failure>,
    ) -> Result<(), ApiError> {
        let settings = &self.routing.settings;
        let tokens = (serde_json::to_vec(&body).map_or(0, |b| b.len()) / 4) as u64;
        let mut last: Option<ApiError> = None;
        let mut groups: Vec<&Vec<Arc<Deployment>>> = self.groups.iter().collect();
        let mut g = 0;
        let mut tried_any = false;
        while g < groups.len() {
            let group = groups[g];
            if g > 0 && tried_any {
                self.routing
                    .counters
                    .fallbacks
                    .fetch_add(1, Ordering::Relaxed);
            }
            let mut tried: Vec<usize> = Vec::new();
            for n in 0..=settings.num_retries {
                let Some(i) = pick(group, &tried, settings.strategy, tokens) else {
                    break;
                };
                if n > 0 {
                    self.routing
                        .counters
                        .retries
                        .fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(wait(n, last.as_ref(), settings.min_retry_wait));
                }
                tried.push(i);
                tried_any = true;
                let d = &group[i];
                let mut this = body.clone();
                for (k, v) in &d.params {
                    this.entry(k.clone()).or_insert_with(|| v.clone());
                }
                let started = Instant::now();
                let result = {
                    let _in_flight = d.health.begin(tokens);
                    let first = if d.max_retries > 0 {
                        this.clone()
                    } else {
                        std::mem::take(&mut this)
                    };
                    let mut result = timed(&mut attempt, &d.target, first);
                    for k in 1..=d.max_retries {
                        let Err(Failure::Retryable(e)) = &result else {
                            break;
                        };
                        log::info!("{:?} failed ({}); its own retry {k}", d.target, e.message);
                        std::thread::sleep(wait(k, Some(e), settings.min_retry_wait));
                        result = timed(&mut attempt, &d.target, this.clone());
                    }
                    result
                };
                self.note(
                    d,
                    started,
                    match &result {
                        Ok(()) => None,
                        Err(Failure::Retryable(e) | Failure::Final(e)) => Some(e),
                    },
                );
                match result {
                    Ok(()) => {
                        d.health.succeeded(started.elapsed());
                        return Ok(());
                    }
                    Err(Failure::Retryable(e)) => {
                        log::info!("{:?} failed ({}); retrying", d.target, e.message);
                        d.health.failed(e.status, &settings.rules, Instant::now());
                        last = Some(e);
                    }
                    Err(Failure::Final(e))
                        if is_context_error(&e) && !self.context_groups.is_empty() =>
                    {
                        d.health.answered();
                        log::info!(
                            "{:?}: the context is too long; trying the larger-context fallback",
                            d.target
                        );
                        groups.truncate(g + 1);
                        groups.extend(self.context_groups.iter());
                        last = Some(e);
                        break;
                    }
                    Err(Failure::Final(e)) => {
                        d.health.answered();
                        return Err(e);
                    }
                }
            }
            g += 1;
        }
        Err(last.unwrap_or_else(|| {
            let mut e = ApiError::new(
                503,
                "server_error",
                Some("no_healthy_deployment"),
                "Every deployment of this model is cooling down or at its rate cap; try again shortly.",
            );
            let wait = settings.rules.cooldown.as_secs().max(1);
            e.headers.push(("retry-after".into(), wait.to_string()));
            e
        }))
    }
}

/// The deployment to try next: an admitted one not tried yet, else (a retry on the only
/// one) an admitted one already tried; chosen by the strategy.
fn pick(
    group: &[Arc<Deployment>],
    tried: &[usize],
    strategy: Strategy,
    tokens: u64,
) -> Option<usize> {
    let now = Instant::now();
    let fresh: Vec<usize> = (0..group.len()).filter(|i| !tried.contains(i)).collect();
    let pool = if fresh.is_empty() {
        (0..group.len()).collect()
    } else {
        fresh
    };
    // Sorted by preference; the first that admits the call wins (admitting may take a probe
    // slot, so it is asked once per pick).
    let mut order = pool;
    match strategy {
        Strategy::Shuffle => shuffle_weighted(group, &mut order),
        Strategy::LeastBusy => order.sort_by_key(|&i| group[i].health.in_flight()),
        Strategy::Latency => order.sort_by(|&a, &b| {
            group[a]
                .health
                .latency()
                .total_cmp(&group[b].health.latency())
        }),
        Strategy::Usage => order.sort_by_key(|&i| group[i].health.tokens_this_minute(now)),
    }
    order
        .into_iter()
        .find(|&i| group[i].health.admit(group[i].caps, tokens, now))
}

/// Orders `order` by weighted random draws without replacement.
fn shuffle_weighted(group: &[Arc<Deployment>], order: &mut Vec<usize>) {
    let mut rest = std::mem::take(order);
    while !rest.is_empty() {
        let total: f64 = rest.iter().map(|&i| group[i].weight).sum();
        let mut x = random() * total;
        let mut k = rest.len() - 1;
        for (j, &i) in rest.iter().enumerate() {
            if x < group[i].weight {
                k = j;
                break;
            }
            x -= group[i].weight;
        }
        order.push(rest.remove(k));
    }
}

/// A uniform number in [0, 1): xorshift, seeded per thread from a random UUID.
fn random() -> f64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(uuid::Uuid::new_v4().as_u64_pair().0 | 1);
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// How long to wait before retry `n`: the provider's `retry-after(-ms)` when it sent one
/// (capped), else exponential backoff with full jitter; never less than `retry_after`.
fn wait(n: usize, last: Option<&ApiError>, least: Duration) -> Duration {
    let header = |name: &str| {
        last?
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let asked = header("retry-after-ms")
        .and_then(|ms| ms.parse::<f64>().ok())
        .map(|ms| ms / 1000.0)
        .or_else(|| header("retry-after").and_then(|s| s.parse::<f64>().ok()))
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s).min(RETRY_AFTER_CAP));
    let backoff = || BACKOFF.mul_f64(2f64.powi(n as i32 - 1) * random());
    asked.unwrap_or_else(backoff).max(least)
}

/// Whether a refusal says the prompt is longer than the model's context window: OpenAI's
/// `context_length_exceeded` code, or one of the providers' phrasings below.
pub fn is_context_error(e: &ApiError) -> bool {
    let m = e.message.to_ascii_lowercase();
    e.code.as_deref() == Some("context_length_exceeded")
        || m.contains("context length")
        || m.contains("context window")
        || m.contains("prompt is too long")
        || m.contains("input token count") && m.contains("exceeds")
        || m.contains("too many tokens")
        || m.contains("input is too long")
}

/// Why an attempt failed: whether another candidate may serve the request.
pub enum Failure {
    Retryable(ApiError),
    Final(ApiError),
}

/// One provider call; a timeout's message then names the provider, the model and how long
/// the call took.
fn timed(
    attempt: &mut impl FnMut(&Target, Map<String, Value>) -> Result<(), Failure>,
    target: &Target,
    body: Map<String, Value>,
) -> Result<(), Failure> {
    let started = Instant::now();
    let mut result = attempt(target, body);
    if let Err(Failure::Retryable(e) | Failure::Final(e)) = &mut result {
        if e.status == 504 {
            let said = e.message.trim_end().trim_end_matches('.');
            e.message = format!(
                "{said}: {} (model {}) after {:.1} s.",
                target.provider.name,
                target.model,
                started.elapsed().as_secs_f64()
            );
        }
    }
    result
}

impl From<ApiError> for Failure {
    /// A failure of the provider may be retried; a refusal of the request may not.
    fn from(e: ApiError) -> Failure {
        if e.status >= 500 || e.status == 429 || e.status == 408 {
            Failure::Retryable(e)
        } else {
            Failure::Final(e)
        }
    }
}

/// The plan for a requested model name: its alias's deployments, or the one target the
/// name resolves to, followed by the fallbacks.
pub fn plan(routing: &Arc<Routing>, requested: &str) -> Result<Plan, ApiError> {
    let group = |name: &str| -> Result<Vec<Arc<Deployment>>, ApiError> {
        match routing.aliases.get(name) {
            Some(deployments) => Ok(deployments.clone()),
            None => Ok(vec![Arc::new(Deployment {
                alias: name.to_string(),
                target: resolve(&routing.config, name)?,
                weight: 1.0,
                caps: Caps::default(),
                params: Map::new(),
                max_retries: 0,
                health: Health::default(),
            })]),
        }
    };
    let s = &routing.settings;
    let mut groups = vec![group(requested)?];
    let fallbacks = s.fallbacks.get(requested).unwrap_or(&s.default_fallbacks);
    for name in fallbacks.iter().filter(|n| *n != requested) {
        groups.push(group(name)?);
    }
    let context_groups = match s.context_window_fallbacks.get(requested) {
        Some(names) => names.iter().map(|n| group(n)).collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let candidates = groups
        .iter()
        .chain(&context_groups)
        .flatten()
        .map(|d| d.target.clone())
        .collect();
    Ok(Plan {
        requested: requested.to_string(),
        candidates,
        routing: routing.clone(),
        groups,
        context_groups,
        attempts: Mutex::default(),
    })
}

/// The one target a name resolves to.
pub fn resolve(config: &Config, requested: &str) -> Result<Target, ApiError> {
    let upstream = config.provider(UPSTREAM);
    let named = requested
        .split_once('/')
        .and_then(|(name, model)| Some((registry::find(name)?, model)))
        .filter(|(provider, _)| provider.name != UPSTREAM);
    let bare = || registry::by_bare_name(requested).map(|p| (p, requested));
    if let Some((provider, model)) = named.or_else(bare) {
        let settings = &config.providers[provider.name];
        match provider.dialect.missing(provider, settings) {
            None => {
                provider.dialect.check_model(requested, model)?;
                return Ok(Target {
                    provider,
                    model: model.to_string(),
                    settings: settings.clone(),
                });
            }
            // Not configured, but an OpenAI-compatible upstream: it gets the name as is.
            Some(_) if upstream.explicit => {}
            Some(Missing::Key(vars)) => {
                return Err(ApiError::new(
                    401,
                    "authentication_error",
                    Some("missing_api_key"),
                    format!(
                    "`{requested}` is served by {}, and no key is configured for it: set {vars}.",
                    provider.name
                ),
                ))
            }
            Some(Missing::Base(var)) => {
                return Err(ApiError::new(
                    400,
                    "invalid_request_error",
                    Some("provider_not_configured"),
                    format!(
                    "`{requested}` is served by {}, whose address is not configured: set {var}.",
                    provider.name
                ),
                ))
            }
        }
    }
    if !upstream.explicit {
        return Err(ApiError::model_not_found(
            requested,
            "No provider is configured: set LITELLM_BASE_URL and LITELLM_API_KEY (or OPENAI_API_KEY), or use a built-in model such as mock/echo.",
        ));
    }
    let provider = registry::find(UPSTREAM).expect("the upstream has a registry row");
    Ok(Target {
        provider,
        model: requested
            .strip_prefix("openai/")
            .unwrap_or(requested)
            .to_string(),
        settings: config.providers[UPSTREAM].clone(),
    })
}

#[cfg(test)]
mod tests {

    /// Each provider's own wording of a prompt longer than the model's window, from fixtures
    /// written from its API reference, read through its dialect as a client would get it.
    #[test]
    fn each_providers_context_length_error_is_recognised() {
        let fixture = |path: &str| {
            let root = env!("CARGO_MANIFEST_DIR");
            std::fs::read(format!("{root}/tests/fixtures/{path}")).unwrap()
        };
        for (provider, path) in [
            ("openai", "openai/error_400_context_length.json"),
            ("mistral", "openai/error_400_context_length.json"),
            ("anthropic", "anthropic/error_400_context_length.json"),
            ("gemini", "gemini/error_400_context_length.json"),
            ("cohere", "cohere/error_400_context_length.json"),
            ("bedrock", "bedrock/error_400_context_length.json"),
        ] {
            let dialect = registry::find(provider).unwrap().dialect;
            let e = dialect.parse_error(400, &fixture(path));
            assert_eq!(e.status, 400, "{provider}");
            assert!(is_context_error(&e), "{provider}: {}", e.message);
        }
        let other = registry::find("anthropic").unwrap().dialect;
        let e = other.parse_error(400, &fixture("anthropic/error_400.json"));
        assert!(!is_context_error(&e), "another 400 is not a context error");
    }

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Arc<Routing> {
        let config = Config::from_lookup(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        Arc::new(Routing::from_env(config))
    }

    /// A table from a config file's text (mock deployments need no key).
    fn table(yaml: &str) -> Arc<Routing> {
        let dir = std::env::temp_dir().join(format!("llmcg-router-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.yaml");
        std::fs::write(&path, yaml).unwrap();
        let mut config = config(&[]).config.clone();
        config.config_file = Some(path);
        let (routing, _) = Routing::load(&config).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        Arc::new(routing)
    }

    fn error(status: u16, message: &str) -> ApiError {
        ApiError::new(status, "x", None, message)
    }

    const TWO: &str = "model_list:\n  - model_name: chat\n    litellm_params: {model: mock/echo, weight: 3}\n  - model_name: chat\n    litellm_params: {model: mock/lorem, weight: 1}\n  - model_name: big\n    litellm_params: {model: mock/lorem, temperature: 0.5}\nrouter_settings:\n  num_retries: 1\n  fallbacks: [{chat: [big]}]\n  context_window_fallbacks: [{chat: [big]}]\n  allowed_fails: 1\n  cooldown_time: 60\n";

    #[test]
    fn an_alias_plans_its_deployments_then_its_fallbacks() {
        let t = table(TWO);
        let p = plan(&t, "chat").unwrap();
        let models: Vec<&str> = p.candidates.iter().map(|t| t.model.as_str()).collect();
        assert_eq!(models, ["echo", "lorem", "lorem", "lorem"]);
        assert!(
            t.describe().contains("chat\n    → mock/echo"),
            "{}",
            t.describe()
        );
        let priced = table("model_list:\n  - model_name: x\n    litellm_params: {model: mock/echo, timeout: 2, stream_timeout: 0.5}\n    model_info: {input_cost_per_token: 0.000001, output_cost_per_token: 0.000004}\n");
        let line = priced.describe();
        assert!(
            line.contains("timeout 2 s, stream_timeout 0.5 s, USD/M tokens 1 in, 4 out"),
            "{line}"
        );
    }

    #[test]
    fn a_failure_is_retried_on_the_other_deployment_then_falls_back() {
        let t = table(TWO);
        let mut seen = Vec::new();
        let r = plan(&t, "chat").unwrap().walk(Map::new(), |target, body| {
            seen.push((target.model.clone(), body.get("temperature").cloned()));
            if seen.len() < 3 {
                Err(Failure::Retryable(error(503, "down")))
            } else {
                Ok(())
            }
        });
        assert!(r.is_ok());
        let mut first_two = vec![seen[0].0.clone(), seen[1].0.clone()];
        first_two.sort();
        assert_eq!(
            first_two,
            ["echo", "lorem"],
            "the retry went to the other one"
        );
        assert_eq!(
            seen[2],
            ("lorem".into(), Some(0.5.into())),
            "the fallback, its params merged"
        );
        assert_eq!(t.counters.retries.load(Ordering::Relaxed), 1);
        assert_eq!(t.counters.fallbacks.load(Ordering::Relaxed), 1);
        // Both chat deployments are cooling down now (allowed_fails 1): straight to `big`.
        let mut calls = 0;
        let _ = plan(&t, "chat").unwrap().walk(Map::new(), |target, _| {
            calls += 1;
            assert_eq!(target.model, "lorem");
            Ok(())
        });
        assert_eq!(calls, 1);
    }

    #[test]
    fn refusals_are_not_retried_but_context_errors_fall_back() {
        let t = table(TWO);
        let mut calls = 0;
        let e = plan(&t, "chat").unwrap().walk(Map::new(), |_, _| {
            calls += 1;
            Err(Failure::Final(error(401, "bad key")))
        });
        assert_eq!((e.unwrap_err().status, calls), (401, 1));
        let mut seen = Vec::new();
        let r = plan(&t, "chat").unwrap().walk(Map::new(), |target, body| {
            seen.push(target.model.clone());
            if seen.len() == 1 {
                Err(Failure::Final(error(
                    400,
                    "prompt is too long: 300000 tokens > 200000 maximum",
                )))
            } else {
                assert_eq!(body["temperature"], 0.5, "it went to `big`");
                Ok(())
            }
        });
        assert!(r.is_ok());
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn weights_hold_over_many_picks() {
        let t = table(TWO);
        let group = &t.aliases["chat"];
        let n = 10_000;
        let echo = (0..n)
            .filter(|_| pick(group, &[], Strategy::Shuffle, 0) == Some(0))
            .count();
        // Weight 3 of 4: p = 0.75, sd = sqrt(n p (1-p)) ≈ 43; five sd either way.
        assert!((7284..=7716).contains(&echo), "{echo} of {n}");
    }

    #[test]
    fn retry_waits_honour_retry_after_up_to_a_cap() {
        let mut e = error(429, "slow down");
        e.headers.push(("retry-after".into(), "1".into()));
        assert_eq!(wait(1, Some(&e), Duration::ZERO), Duration::from_secs(1));
        e.headers[0] = ("retry-after-ms".into(), "250".into());
        assert_eq!(
            wait(1, Some(&e), Duration::ZERO),
            Duration::from_millis(250)
        );
        e.headers[0] = ("retry-after".into(), "3600".into());
        assert_eq!(wait(1, Some(&e), Duration::ZERO), RETRY_AFTER_CAP);
        assert!(wait(3, None, Duration::ZERO) <= BACKOFF * 4);
        assert_eq!(
            wait(1, None, Duration::from_secs(2)),
            Duration::from_secs(2)
        );
    }

    fn target(config: &Arc<Routing>, name: &str) -> Result<(&'static str, String), ApiError> {
        let plan = plan(config, name)?;
        assert_eq!(plan.candidates.len(), 1);
        let t = &plan.candidates[0];
        Ok((t.provider.name, t.model.clone()))
    }

    const UPSTREAM_BASE: (&str, &str) = ("LITELLM_BASE_URL", "http://127.0.0.1:9/v1");

    #[test]
    fn mock_models_resolve_without_a_provider() {
        let c = config(&[]);
        assert_eq!(target(&c, "mock/echo").unwrap(), ("mock", "echo".into()));
        assert_eq!(target(&c, "mock/nope").unwrap_err().status, 404);
    }

    #[test]
    fn other_models_need_the_upstream_and_keep_their_name() {
        assert_eq!(target(&config(&[]), "gpt-4o").unwrap_err().status, 404);
        let c = config(&[UPSTREAM_BASE]);
        assert_eq!(
            target(&c, "openai/gpt-4o").unwrap(),
            ("openai", "gpt-4o".into())
        );
        let t = target(&c, "anthropic/claude-x").unwrap();
        assert_eq!(t, ("openai", "anthropic/claude-x".into()));
    }

    #[test]
    fn claude_names_route_to_anthropic_and_need_its_key() {
        let with_key = config(&[("ANTHROPIC_API_KEY", "sk-ant-x")]);
        for (name, model) in [
            ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"),
            ("claude-3-5-haiku-latest", "claude-3-5-haiku-latest"),
        ] {
            let plan = plan(&with_key, name).unwrap();
            let t = &plan.candidates[0];
            assert_eq!((t.provider.name, t.model.as_str()), ("anthropic", model));
            assert_eq!(t.base_url(), "https://api.anthropic.com");
        }
        let e = plan(&config(&[]), "claude-sonnet-4-5").unwrap_err();
        assert_eq!(e.status, 401);
        assert!(e.message.contains("ANTHROPIC_API_KEY"), "{}", e.message);
    }

    #[test]
    fn a_provider_without_its_base_or_key_is_named_in_the_error() {
        let e = plan(&config(&[]), "vllm/llama").unwrap_err();
        assert_eq!(
            (e.status, e.code.as_deref()),
            (400, Some("provider_not_configured"))
        );
        assert!(e.message.contains("VLLM_API_BASE"));
        let e = plan(&config(&[]), "bedrock/amazon.titan").unwrap_err();
        assert!(e.message.contains("AWS_ACCESS_KEY_ID"), "{}", e.message);
        let azure = config(&[
            ("AZURE_API_KEY", "k"),
            ("AZURE_API_BASE", "https://r.example"),
        ]);
        assert_eq!(plan(&azure, "azure/../x").unwrap_err().status, 400);
    }
}
