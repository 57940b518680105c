//! `GET /v1/models` and `GET /v1/models/{id}`: the built-in mock models, then the models of each
//! configured OpenAI-compatible provider — the default upstream (ids as it gives them) and every
//! table vendor that has a key, or a base of its own for the keyless ones (ids as
//! `vendor/model`, `owned_by` the vendor). Each provider's list (`GET {base}/models`) is fetched
//! when first needed, all stale ones at once, each within [`LIST_TIMEOUT`], and kept for
//! `MODELS_CACHE_SECS`. A provider that fails is logged and left out (or keeps its last list),
//! and is asked again after at most [`RETRY_AFTER`]. Ids may contain `/`, which the SDKs send
//! percent-encoded (`mock%2Fecho`).
//!
//! The native providers that have a key are listed too, from their own list endpoints (first
//! page only, asked for the largest page): Anthropic's `GET {base}/v1/models` (`x-api-key`),
//! Gemini's `GET {base}/v1beta/models` (`x-goog-api-key`), Cohere's `GET {base}/v1/models`
//! (bearer), as `provider/model` owned by the provider. Keys go in headers, never in the URL.
//! Bedrock and Azure are not listed: Bedrock's `ListFoundationModels` is on another host
//! (`bedrock.{region}`, not `bedrock-runtime`) and signed for another service, and Azure lists
//! deployments through its management API, not the inference endpoint.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::config::Config;
use crate::error::ApiError;
use crate::handlers::percent_decode;
use crate::http::Responder;
use crate::providers::{compat, mock};
use crate::reply::Exchange;
use crate::routes::Gateway;

/// The longest one provider's model list may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);
/// A provider whose list could not be fetched is asked again after this long at most.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// The providers' model lists, by provider name.
#[derive(Default)]
pub struct Cache {
    lists: Mutex<HashMap<&'static str, Cached>>,
}

struct Cached {
    expires: Instant,
    models: Vec<Value>,
}

/// A provider whose models are listed.
struct Source {
    /// `openai` for the default upstream.
    name: &'static str,
    url: String,
    headers: Vec<(&'static str, String)>,
    /// Ids become `name/id`.
    prefixed: bool,
    format: Format,
}

/// The shape of a provider's model list.
#[derive(Clone, Copy)]
enum Format {
    /// `data[].id`, `created` in seconds.
    OpenAI,
    /// `data[].id`, `created_at` in RFC 3339.
    Anthropic,
    /// `models[].name` as `models/<id>`.
    Gemini,
    /// `models[].name`.
    Cohere,
}

fn sources(config: &Config) -> Vec<Source> {
    let bearer = |key: &Option<String>| {
        let mut headers = vec![("accept", "application/json".to_string())];
        if let Some(key) = key {
            headers.push(("authorization", format!("Bearer {key}")));
        }
        headers
    };
    let mut out = Vec::new();
    if let Some(upstream) = &config.upstream {
        out.push(Source {
            name: "openai",
            url: format!("{}/models", upstream.base_url),
            headers: bearer(&upstream.api_key),
            prefixed: false,
            format: Format::OpenAI,
        });
    }
    for vendor in compat::VENDORS {
        let Some(endpoint) = config.compat.get(vendor.name) else {
            continue;
        };
        let own_base = vendor.default_base != Some(endpoint.base_url.as_str());
        let listed =
            endpoint.api_key.is_some() || (vendor.key == compat::Key::Optional && own_base);
        if listed {
            out.push(Source {
                name: vendor.name,
                url: format!("{}/models", endpoint.base_url),
                headers: bearer(&endpoint.api_key),
                prefixed: true,
                format: Format::OpenAI,
            });
        }
    }
    // The native providers with a key (Bedrock and Azure have no list here: see the module doc).
    for (name, format) in [
        ("anthropic", Format::Anthropic),
        ("gemini", Format::Gemini),
        ("cohere", Format::Cohere),
    ] {
        let Some((endpoint, key)) = config
            .natives
            .get(name)
            .and_then(|e| Some((e, e.api_key.as_ref()?)))
        else {
            continue;
        };
        let mut headers = vec![("accept", "application/json".to_string())];
        let path = match format {
            Format::Anthropic => {
                headers.push(("x-api-key", key.clone()));
                headers.push((
                    "anthropic-version",
                    crate::providers::anthropic::API_VERSION.to_string(),
                ));
                "/v1/models?limit=1000"
            }
            Format::Gemini => {
                headers.push(("x-goog-api-key", key.clone()));
                "/v1beta/models?pageSize=1000"
            }
            Format::Cohere | Format::OpenAI => {
                headers.push(("authorization", format!("Bearer {key}")));
                "/v1/models?page_size=1000"
            }
        };
        out.push(Source {
            name,
            url: format!("{}{path}", endpoint.base_url),
            headers,
            prefixed: true,
            format,
        });
    }
    out
}

fn model_object(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": mock::CREATED, "owned_by": "llmcallgateway"})
}

/// One provider's list, as the gateway lists it.
fn fetch(gw: &Gateway, source: &Source) -> Result<Vec<Value>, String> {
    let timeout = LIST_TIMEOUT.min(gw.config.upstream_timeout);
    let (status, body) =
        crate::upstream::get(gw.agents.get(), &source.url, &source.headers, timeout)
            .map_err(|e| e.message)?;
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}"));
    }
    let list: Value = serde_json::from_slice(&body).map_err(|_| "not JSON".to_string())?;
    let field = match source.format {
        Format::OpenAI | Format::Anthropic => "data",
        Format::Gemini | Format::Cohere => "models",
    };
    let items = list[field]
        .as_array()
        .ok_or_else(|| format!("no `{field}` list"))?;
    Ok(items
        .iter()
        .filter_map(|m| {
            let (id, created) = match source.format {
                Format::OpenAI => (m["id"].as_str()?, m["created"].as_u64().unwrap_or(0)),
                Format::Anthropic => (m["id"].as_str()?, rfc3339_secs(&m["created_at"])),
                Format::Gemini => {
                    let name = m["name"].as_str()?;
                    (name.strip_prefix("models/").unwrap_or(name), 0)
                }
                Format::Cohere => (m["name"].as_str()?, 0),
            };
            Some(if source.prefixed {
                json!({"id": format!("{}/{id}", source.name), "object": "model", "created": created, "owned_by": source.name})
            } else {
                let owned_by = m["owned_by"].as_str().unwrap_or(source.name);
                json!({"id": id, "object": "model", "created": created, "owned_by": owned_by})
            })
        })
        .collect())
}

/// Seconds since the epoch of an RFC 3339 timestamp; 0 if it is not one.
fn rfc3339_secs(value: &Value) -> u64 {
    value
        .as_str()
        .and_then(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        })
        .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
        .unwrap_or(0)
}

/// Every model the gateway can list now: the mock models, then each provider's (from the cache,
/// refreshing the stale lists concurrently).
fn all_models(gw: &Gateway) -> Vec<Value> {
    let sources = sources(&gw.config);
    let now = Instant::now();
    let stale: Vec<&Source> = {
        let lists = gw.models.lists.lock().unwrap_or_else(|e| e.into_inner());
        sources
            .iter()
            .filter(|s| lists.get(s.name).is_none_or(|c| c.expires <= now))
            .collect()
    };
    if !stale.is_empty() {
        let fetched: Vec<(&Source, Result<Vec<Value>, String>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = stale
                .iter()
                .map(|s| (*s, scope.spawn(|| fetch(gw, s))))
                .collect();
            handles
                .into_iter()
                .map(|(s, h)| (s, h.join().unwrap_or_else(|_| Err("panicked".into()))))
                .collect()
        });
        let mut lists = gw.models.lists.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for (source, result) in fetched {
            match result {
                Ok(models) => {
                    let expires = now + gw.config.models_cache;
                    lists.insert(source.name, Cached { expires, models });
                }
                Err(problem) => {
                    log::warn!(
                        "cannot list the models of {} ({}): {problem}",
                        source.name,
                        source.url
                    );
                    let expires = now + gw.config.models_cache.min(RETRY_AFTER);
                    let models = lists
                        .remove(source.name)
                        .map(|c| c.models)
                        .unwrap_or_default();
                    lists.insert(source.name, Cached { expires, models });
                }
            }
        }
    }
    let mut data: Vec<Value> = mock::MODELS
        .iter()
        .map(|m| model_object(&format!("mock/{m}")))
        .collect();
    let mut seen: HashSet<String> = HashSet::new();
    let lists = gw.models.lists.lock().unwrap_or_else(|e| e.into_inner());
    for source in &sources {
        for model in lists.get(source.name).map_or(&[][..], |c| &c.models[..]) {
            if seen.insert(model["id"].as_str().unwrap_or_default().to_string()) {
                data.push(model.clone());
            }
        }
    }
    data
}

pub fn list(x: &Exchange<'_>, res: &mut Responder<'_>) {
    let body = json!({"object": "list", "data": all_models(x.gw)});
    let _ = x.send_json(res, 200, body.to_string().into_bytes(), Vec::new());
}

pub fn retrieve(x: &Exchange<'_>, res: &mut Responder<'_>, raw_id: &str) {
    let id = percent_decode(raw_id);
    let known = if id
        .strip_prefix("mock/")
        .is_some_and(|m| mock::MODELS.contains(&m))
    {
        Some(model_object(&id))
    } else {
        all_models(x.gw)
            .into_iter()
            .find(|m| m["id"] == id.as_str())
    };
    match known {
        Some(model) => {
            let _ = x.send_json(res, 200, model.to_string().into_bytes(), Vec::new());
        }
        None => x.send_error(res, &ApiError::model_not_found(&id, "")),
    }
}
