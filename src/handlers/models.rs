//! `GET /v1/models` and `GET /v1/models/{id}`: the config file's aliases, the built-in mock
//! models, then the models of every configured provider of the registry that has a list endpoint — the default upstream
//! (ids as it gives them) and the others as `provider/model`, owned by the provider. Each
//! provider's list (its dialect's `models_request`: the first page, at the largest page size
//! its API allows; keys in headers, never in the URL) is fetched when first needed, all stale
//! ones at once, each within [`LIST_TIMEOUT`], and kept for `MODELS_CACHE_SECS`. A provider
//! that fails is logged and left out (or keeps its last list), and is asked again after at most
//! [`RETRY_AFTER`]. Ids may contain `/`, which the SDKs send percent-encoded (`mock%2Fecho`).
//!
//! A request carrying `anthropic-version` (an Anthropic SDK, Claude Code) gets Anthropic's
//! shapes: `{"type":"model","id","display_name","created_at"}` items in a list with
//! `has_more`, `first_id` and `last_id` (one page: every model the gateway can serve).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::exchange::Exchange;
use crate::gateway::{Gateway, ModelList};
use crate::handlers::percent_decode;
use crate::http::Responder;
use crate::providers::registry::{PROVIDERS, UPSTREAM};
use crate::providers::{Listed, Provider};
use crate::upstream::{self, Call};

/// The longest one provider's model list may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);
/// A provider whose list could not be fetched is asked again after this long at most.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// A provider's listed model as `/v1/models` shows it: the upstream's ids as it gives them,
/// the others' as `provider/model`, owned by the provider (a remote list's owners, such as
/// "system", say nothing to the client; the built-in models name their own).
fn model_object(provider: &Provider, m: Listed, local: bool) -> Value {
    let (id, owned_by) = match (provider.name == UPSTREAM, m.owned_by) {
        (true, owner) => (m.id, owner.unwrap_or_else(|| provider.name.into())),
        (false, Some(owner)) if local => (format!("{}/{}", provider.name, m.id), owner),
        (false, _) => (format!("{}/{}", provider.name, m.id), provider.name.into()),
    };
    json!({"id": id, "object": "model", "created": m.created, "owned_by": owned_by})
}

/// The providers whose models are fetched: configured on purpose, callable, with a list.
fn sources(gw: &Gateway) -> Vec<(&'static Provider, Call)> {
    PROVIDERS
        .iter()
        .filter_map(|p| {
            let settings = gw.config.provider(p.name);
            let usable = settings.explicit && p.dialect.missing(p, settings).is_none();
            usable
                .then(|| p.dialect.models_request(settings))?
                .map(|c| (p, c))
        })
        .collect()
}

/// One provider's list, as the gateway lists it.
fn fetch(gw: &Gateway, provider: &'static Provider, call: &Call) -> Result<Vec<Value>, String> {
    let timeout = LIST_TIMEOUT.min(gw.config.upstream_timeout);
    let (status, body) =
        upstream::get(gw.agents.get(), &call.url, &call.headers, timeout).map_err(|e| e.message)?;
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}"));
    }
    let listed = provider.dialect.models_response(&body)?;
    Ok(listed
        .into_iter()
        .map(|m| model_object(provider, m, false))
        .collect())
}

/// Every model the gateway can list now: the built-in ones, then each provider's (from the
/// cache, refreshing the stale lists concurrently).
fn all_models(gw: &Gateway) -> Vec<Value> {
    let sources = sources(gw);
    let now = Instant::now();
    let stale: Vec<&(&'static Provider, Call)> = {
        let lists = gw.model_lists.lock().unwrap_or_else(|e| e.into_inner());
        sources
            .iter()
            .filter(|(p, _)| lists.get(p.name).is_none_or(|c| c.expires <= now))
            .collect()
    };
    if !stale.is_empty() {
        let fetched: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = stale
                .iter()
                .map(|&&(p, ref call)| (p, call, scope.spawn(move || fetch(gw, p, call))))
                .collect();
            handles
                .into_iter()
                .map(|(p, call, h)| (p, call, h.join().unwrap_or_else(|_| Err("panicked".into()))))
                .collect()
        });
        let mut lists = gw.model_lists.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for (provider, call, result) in fetched {
            match result {
                Ok(models) => {
                    let expires = now + gw.config.models_cache;
                    lists.insert(provider.name, ModelList { expires, models });
                }
                Err(problem) => {
                    log::warn!(
                        "cannot list the models of {} ({}): {problem}",
                        provider.name,
                        call.url
                    );
                    let expires = now + gw.config.models_cache.min(RETRY_AFTER);
                    let models = lists
                        .remove(provider.name)
                        .map(|c| c.models)
                        .unwrap_or_default();
                    lists.insert(provider.name, ModelList { expires, models });
                }
            }
        }
    }
    // The config file's aliases first: the names its users are meant to call.
    let mut data: Vec<Value> = (gw.routing().aliases.keys())
        .map(|alias| json!({"id": alias, "object": "model", "created": 0, "owned_by": "llmcallgateway"}))
        .collect();
    data.extend(local_models());
    let mut seen: HashSet<String> = HashSet::new();
    let lists = gw.model_lists.lock().unwrap_or_else(|e| e.into_inner());
    for (provider, _) in &sources {
        for model in lists.get(provider.name).map_or(&[][..], |c| &c.models[..]) {
            if seen.insert(model["id"].as_str().unwrap_or_default().to_string()) {
                data.push(model.clone());
            }
        }
    }
    data
}

/// The models the providers serve without being asked (the built-in ones).
fn local_models() -> Vec<Value> {
    PROVIDERS
        .iter()
        .flat_map(|p| {
            p.dialect
                .local_models()
                .into_iter()
                .map(move |m| model_object(p, m, true))
        })
        .collect()
}

pub fn list(x: &Exchange, res: &mut Responder<'_>) {
    let mut models = all_models(&x.gw);
    // A gateway key sees the models it may call, as LiteLLM's /v1/models shows a key's.
    if let Some(caller) = x.caller() {
        models.retain(|m| m["id"].as_str().is_some_and(|id| caller.allows(id)));
    }
    let body = if wants_anthropic(x) {
        let data: Vec<Value> = models.iter().map(anthropic_model).collect();
        json!({
            "data": data,
            "has_more": false,
            "first_id": data.first().map(|m| m["id"].clone()),
            "last_id": data.last().map(|m| m["id"].clone()),
        })
    } else {
        json!({"object": "list", "data": models})
    };
    let _ = x.send_json(res, 200, body.to_string().into_bytes(), Vec::new());
}

/// Whether the client speaks Anthropic's API (its SDKs always send `anthropic-version`).
fn wants_anthropic(x: &Exchange) -> bool {
    x.req.header("anthropic-version").is_some()
}

/// A listed model in Anthropic's shape: `created_at` in RFC 3339, the id as its display name.
fn anthropic_model(model: &Value) -> Value {
    let created = model["created"].as_i64().unwrap_or(0);
    let created_at = time::OffsetDateTime::from_unix_timestamp(created)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    json!({
        "type": "model",
        "id": model["id"],
        "display_name": model["id"],
        "created_at": created_at.unwrap_or_else(|| "1970-01-01T00:00:00Z".into()),
    })
}

pub fn retrieve(x: &Exchange, res: &mut Responder<'_>, raw_id: &str) {
    let id = percent_decode(raw_id);
    let known = local_models()
        .into_iter()
        .find(|m| m["id"] == id.as_str())
        .or_else(|| {
            all_models(&x.gw)
                .into_iter()
                .find(|m| m["id"] == id.as_str())
        });
    match known {
        Some(model) => {
            let model = if wants_anthropic(x) {
                anthropic_model(&model)
            } else {
                model
            };
            let _ = x.send_json(res, 200, model.to_string().into_bytes(), Vec::new());
        }
        None => x.send_error(res, &ApiError::model_not_found(&id, "")),
    }
}
