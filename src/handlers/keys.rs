//! LiteLLM's key-management API, so that LiteLLM users' scripts keep working:
//! `POST /key/generate` (the key is in this answer only), `GET /key/info`, `POST /key/update`,
//! `POST /key/delete`, `GET /key/list`, `POST /key/block` and `/key/unblock`, with LiteLLM's
//! field names. A key is named by itself or by its hash (`token`). The admin key may do all
//! of it; a gateway key may read its own `/key/info` (its spend). Fields LiteLLM has and the
//! gateway does not implement are refused when set (a 400 naming them), never ignored. The
//! request bodies here hold keys, so they are never written to the interactions log.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::access::keys::{self, KeyHash, KeyRecord, Source};
use crate::access::spend::{Budget, Period};
use crate::access::{self, Access, Caller};
use crate::error::ApiError;
use crate::exchange::Exchange;
use crate::handlers::{json_object, query_param};
use crate::http::Responder;

/// Fields of LiteLLM's `GenerateKeyRequest` this gateway does not implement: refused unless
/// empty.
const UNSUPPORTED: &[&str] = &[
    "aliases",
    "config",
    "permissions",
    "max_parallel_requests",
    "model_max_budget",
    "model_rpm_limit",
    "model_tpm_limit",
    "soft_budget",
    "budget_id",
    "tags",
    "guardrails",
    "enforced_params",
    "allowed_cache_controls",
    "allowed_routes",
    "organization_id",
    "temp_budget_increase",
    "temp_budget_expiry",
];

/// Every field the generate and update bodies take.
const FIELDS: &[&str] = &[
    "key",
    "key_alias",
    "models",
    "max_budget",
    "budget_duration",
    "budgets",
    "rpm_limit",
    "tpm_limit",
    "team_id",
    "user_id",
    "duration",
    "metadata",
    "blocked",
    "spend",
    "refuse_unpriced_models",
    "send_invite_email",
];

fn send(x: &Exchange, res: &mut Responder<'_>, result: Result<Value, ApiError>) {
    match result {
        Ok(value) => {
            let _ = x.send_value(res, &value, Vec::new());
        }
        Err(e) => x.send_error(res, &e),
    }
}

fn store_error(e: String) -> ApiError {
    ApiError::new(503, "server_error", Some("store_unavailable"), e)
}

/// The admin key, or a 401 (a gateway key reaches only `/key/info`).
fn admin_only(x: &Exchange) -> Result<(), ApiError> {
    match x.caller() {
        Some(Caller::Key(_)) => Err(access::unauthorized(
            "Managing keys takes the admin key (ADMIN_API_KEY).",
        )),
        _ => Ok(()),
    }
}

/// `POST /key/generate`.
pub fn generate(x: &Exchange, res: &mut Responder<'_>) {
    x.withhold_body();
    send(x, res, run_generate(x));
}

fn run_generate(x: &Exchange) -> Result<Value, ApiError> {
    admin_only(x)?;
    let body = json_object(&x.req.body)?;
    check_fields(&body)?;
    let access = &x.gw.access;
    let secret = match body.get("key") {
        None | Some(Value::Null) => keys::generate().map_err(store_error)?,
        Some(Value::String(k)) if k.len() >= 16 && !k.contains(char::is_whitespace) => k.clone(),
        Some(_) => {
            return Err(ApiError::invalid(
                Some("key"),
                "`key` must be a string of at least 16 characters without spaces.",
            ))
        }
    };
    let hash = KeyHash::of(&secret);
    if access.get(&hash.hex())?.is_some() {
        return Err(ApiError::invalid(Some("key"), "This key exists already."));
    }
    let mut record = KeyRecord::new(&secret, Source::Api, access.now());
    apply(x, &mut record, &body)?;
    let stored = access.put(record).map_err(store_error)?;
    let spend = body.get("spend").and_then(Value::as_f64);
    if let Some(spend) = spend {
        access.set_spend(&stored, spend).map_err(store_error)?;
    }
    log::info!("key {} generated", stored.name());
    let mut info = describe(access, &stored);
    info["key"] = json!(secret);
    info["token_id"] = info["token"].clone();
    Ok(info)
}

/// Unknown fields are a 400 (a typo would otherwise be a limit silently missing); LiteLLM's
/// fields the gateway lacks are a 400 when set.
fn check_fields(body: &Map<String, Value>) -> Result<(), ApiError> {
    for (name, value) in body {
        let empty = match value {
            Value::Null => true,
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        };
        if UNSUPPORTED.contains(&name.as_str()) {
            if !empty {
                return Err(ApiError::invalid(
                    Some(name),
                    format!("`{name}` is a LiteLLM key setting this gateway does not implement."),
                ));
            }
        } else if !FIELDS.contains(&name.as_str()) {
            return Err(ApiError::invalid(
                Some(name),
                format!("Unknown field `{name}`."),
            ));
        }
    }
    Ok(())
}

fn opt_string(body: &Map<String, Value>, name: &str) -> Result<Option<Option<String>>, ApiError> {
    match body.get(name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(Some(s.trim().to_string()))),
        Some(_) => Err(ApiError::invalid(
            Some(name),
            format!("`{name}` must be a non-empty string or null."),
        )),
    }
}

fn opt_count(body: &Map<String, Value>, name: &str) -> Result<Option<Option<u64>>, ApiError> {
    match body.get(name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Ok(Some(Some(n))),
            _ => Err(ApiError::invalid(
                Some(name),
                format!("`{name}` must be a positive whole number or null."),
            )),
        },
    }
}

fn budget(max: &Value, duration: &Value, param: &str) -> Result<Option<Budget>, ApiError> {
    let max_budget = match max {
        Value::Null => return Ok(None),
        v => v
            .as_f64()
            .filter(|m| m.is_finite() && *m >= 0.0)
            .ok_or_else(|| {
                ApiError::invalid(
                    Some(param),
                    "`max_budget` must be a number of USD, 0 or more.",
                )
            })?,
    };
    let period = match duration {
        Value::Null => Period::Total,
        Value::String(d) => {
            Period::parse(d).map_err(|e| ApiError::invalid(Some("budget_duration"), e))?
        }
        _ => {
            return Err(ApiError::invalid(
                Some("budget_duration"),
                "`budget_duration` must be a string such as 1d or 1mo.",
            ))
        }
    };
    Ok(Some(Budget { max_budget, period }))
}

/// Applies the body's fields to a record (absent: unchanged; null: cleared).
fn apply(x: &Exchange, record: &mut KeyRecord, body: &Map<String, Value>) -> Result<(), ApiError> {
    let access = &x.gw.access;
    if let Some(alias) = opt_string(body, "key_alias")? {
        if let Some(a) = &alias {
            let taken = access
                .list()
                .map_err(store_error)?
                .iter()
                .any(|k| k.key_alias.as_ref() == Some(a) && k.token != record.token);
            if taken {
                return Err(ApiError::invalid(
                    Some("key_alias"),
                    format!("The key_alias `{a}` is taken by another key."),
                ));
            }
        }
        record.key_alias = alias;
    }
    if let Some(team) = opt_string(body, "team_id")? {
        record.team_id = team;
    }
    if let Some(user) = opt_string(body, "user_id")? {
        record.user_id = user;
    }
    if let Some(rpm) = opt_count(body, "rpm_limit")? {
        record.rpm_limit = rpm;
    }
    if let Some(tpm) = opt_count(body, "tpm_limit")? {
        record.tpm_limit = tpm;
    }
    match body.get("models") {
        None => {}
        Some(Value::Null) => record.models.clear(),
        Some(Value::Array(models)) => {
            record.models = models
                .iter()
                .map(|m| m.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    ApiError::invalid(Some("models"), "`models` must be a list of model names.")
                })?;
        }
        Some(_) => {
            return Err(ApiError::invalid(
                Some("models"),
                "`models` must be a list of model names.",
            ))
        }
    }
    // `budgets` (the gateway's list) replaces every budget; `max_budget` with
    // `budget_duration` (LiteLLM's one budget) sets the first.
    let listed = body.contains_key("budgets");
    match body.get("budgets") {
        None => {}
        Some(Value::Null) => record.budgets.clear(),
        Some(Value::Array(list)) => {
            let mut budgets = Vec::new();
            for (i, b) in list.iter().enumerate() {
                let param = format!("budgets[{i}]");
                let parsed =
                    budget(&b["max_budget"], &b["budget_duration"], &param)?.ok_or_else(|| {
                        ApiError::invalid(Some(&param), "Each budget needs its `max_budget`.")
                    })?;
                budgets.push(parsed);
            }
            record.budgets = budgets;
        }
        Some(_) => {
            return Err(ApiError::invalid(
                Some("budgets"),
                "`budgets` must be a list of {max_budget, budget_duration}.",
            ))
        }
    }
    if body.contains_key("max_budget") || body.contains_key("budget_duration") {
        let old = if listed {
            None
        } else {
            record.budgets.first().copied()
        };
        let max = body
            .get("max_budget")
            .cloned()
            .unwrap_or_else(|| old.map_or(Value::Null, |b| json!(b.max_budget)));
        let duration = body.get("budget_duration").cloned().unwrap_or_else(|| {
            old.and_then(|b| b.period.label())
                .map_or(Value::Null, Value::from)
        });
        let first = budget(&max, &duration, "max_budget")?;
        if !listed && !record.budgets.is_empty() {
            record.budgets.remove(0);
        }
        if let Some(first) = first {
            record.budgets.insert(0, first);
        }
    }
    match body.get("duration") {
        None => {}
        Some(Value::Null) => record.expires_at = None,
        Some(Value::String(d)) => {
            let period = Period::parse(d).map_err(|e| ApiError::invalid(Some("duration"), e))?;
            let now = access.now();
            record.expires_at = Some(match period {
                Period::Seconds(s) => now + s as i64,
                Period::Months(n) => now + n as i64 * 30 * 86_400,
                Period::Total => now,
            });
        }
        Some(_) => {
            return Err(ApiError::invalid(
                Some("duration"),
                "`duration` must be a string such as 30d, or null for no expiry.",
            ))
        }
    }
    match body.get("metadata") {
        None => {}
        Some(Value::Null) => record.metadata = json!({}),
        Some(m @ Value::Object(_)) => record.metadata = m.clone(),
        Some(_) => {
            return Err(ApiError::invalid(
                Some("metadata"),
                "`metadata` must be an object.",
            ))
        }
    }
    for (field, slot) in [
        ("blocked", &mut record.blocked),
        ("refuse_unpriced_models", &mut record.refuse_unpriced),
    ] {
        match body.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => *slot = *b,
            Some(_) => {
                return Err(ApiError::invalid(
                    Some(field),
                    format!("`{field}` must be a boolean."),
                ))
            }
        }
    }
    if let Some(spend) = body.get("spend").filter(|v| !v.is_null()) {
        if !spend.as_f64().is_some_and(|s| s.is_finite() && s >= 0.0) {
            return Err(ApiError::invalid(
                Some("spend"),
                "`spend` must be a number of USD, 0 or more.",
            ));
        }
    }
    record.updated_at = access.now();
    Ok(())
}

/// The stored key a reference names, or 404; keys of the environment are read-only.
fn stored_key(x: &Exchange, reference: &str) -> Result<Arc<KeyRecord>, ApiError> {
    let found = x.gw.access.get(reference)?.ok_or_else(|| {
        ApiError::new(
            404,
            "invalid_request_error",
            Some("key_not_found"),
            "No such key.",
        )
    })?;
    Ok(found)
}

fn writable(x: &Exchange, key: &KeyRecord) -> Result<(), ApiError> {
    if key.source != Source::Api || key.hash().is_some_and(|h| x.gw.access.is_fixed(&h)) {
        return Err(ApiError::invalid(
            Some("key"),
            format!(
                "The key {} comes from {}; change it there.",
                key.name(),
                if key.source == Source::ConfigFile {
                    "the config file's gateway_keys"
                } else {
                    "GATEWAY_API_KEYS"
                }
            ),
        ));
    }
    Ok(())
}

fn key_param(body: &Map<String, Value>) -> Result<&str, ApiError> {
    body.get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid(Some("key"), "Missing required parameter: `key`."))
}

/// `GET /key/info?key=…`: LiteLLM's `{"key", "info"}`. Without `key`, the caller's own key.
pub fn info(x: &Exchange, res: &mut Responder<'_>) {
    send(x, res, run_info(x));
}

fn run_info(x: &Exchange) -> Result<Value, ApiError> {
    let asked = query_param(x.req.query(), "key");
    let key = match (x.caller(), asked) {
        (Some(Caller::Key(own)), None) => own,
        (Some(Caller::Key(own)), Some(asked)) => {
            if KeyHash::of_reference(&asked) != own.hash().unwrap_or(KeyHash([0; 32])) {
                return Err(access::unauthorized(
                    "A gateway key may read only its own /key/info.",
                ));
            }
            own
        }
        (_, Some(asked)) => stored_key(x, &asked)?,
        (_, None) => {
            return Err(ApiError::invalid(
                Some("key"),
                "Missing required query parameter: `key`.",
            ))
        }
    };
    Ok(json!({"key": key.token, "info": describe(&x.gw.access, &key)}))
}

/// `POST /key/update`: the fields given change, the others stay.
pub fn update(x: &Exchange, res: &mut Responder<'_>) {
    x.withhold_body();
    send(x, res, run_update(x));
}

fn run_update(x: &Exchange) -> Result<Value, ApiError> {
    admin_only(x)?;
    let body = json_object(&x.req.body)?;
    check_fields(&body)?;
    let current = stored_key(x, key_param(&body)?)?;
    writable(x, &current)?;
    let mut record = (*current).clone();
    let mut changes = body.clone();
    changes.remove("key");
    apply(x, &mut record, &changes)?;
    let stored = x.gw.access.put(record).map_err(store_error)?;
    if let Some(spend) = body.get("spend").and_then(Value::as_f64) {
        x.gw.access.set_spend(&stored, spend).map_err(store_error)?;
    }
    log::info!("key {} updated", stored.name());
    Ok(describe(&x.gw.access, &stored))
}

/// `POST /key/block` and `/key/unblock`.
pub fn block(x: &Exchange, res: &mut Responder<'_>, blocked: bool) {
    x.withhold_body();
    let result = (|| {
        admin_only(x)?;
        let body = json_object(&x.req.body)?;
        let current = stored_key(x, key_param(&body)?)?;
        writable(x, &current)?;
        let mut record = (*current).clone();
        record.blocked = blocked;
        record.updated_at = x.gw.access.now();
        let stored = x.gw.access.put(record).map_err(store_error)?;
        Ok(describe(&x.gw.access, &stored))
    })();
    send(x, res, result);
}

/// `POST /key/delete`: `{"keys": […]}` and/or `{"key_aliases": […]}`; all must exist.
pub fn delete(x: &Exchange, res: &mut Responder<'_>) {
    x.withhold_body();
    send(x, res, run_delete(x));
}

fn run_delete(x: &Exchange) -> Result<Value, ApiError> {
    admin_only(x)?;
    let body = json_object(&x.req.body)?;
    let list = |name: &str| -> Result<Vec<String>, ApiError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    ApiError::invalid(Some(name), format!("`{name}` must be a list of strings."))
                }),
            Some(_) => Err(ApiError::invalid(
                Some(name),
                format!("`{name}` must be a list of strings."),
            )),
        }
    };
    let (refs, aliases) = (list("keys")?, list("key_aliases")?);
    if refs.is_empty() && aliases.is_empty() {
        return Err(ApiError::invalid(
            Some("keys"),
            "At least one of `keys` or `key_aliases` must be given.",
        ));
    }
    let mut doomed = Vec::new();
    for reference in &refs {
        doomed.push(stored_key(x, reference)?);
    }
    let all = x.gw.access.list().map_err(store_error)?;
    for alias in &aliases {
        let found = all
            .iter()
            .find(|k| k.key_alias.as_ref() == Some(alias))
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    "invalid_request_error",
                    Some("key_not_found"),
                    format!("No key has the key_alias `{alias}`."),
                )
            })?;
        doomed.push(found.clone());
    }
    for key in &doomed {
        writable(x, key)?;
    }
    let mut deleted = Vec::new();
    for key in doomed {
        if let Some(hash) = key.hash() {
            x.gw.access.delete(&hash).map_err(store_error)?;
            log::info!("key {} deleted", key.name());
            deleted.push(key.token.clone());
        }
    }
    Ok(json!({"deleted_keys": deleted}))
}

/// `GET /key/list?page=&size=&key_alias=&team_id=&user_id=&return_full_object=`.
pub fn list(x: &Exchange, res: &mut Responder<'_>) {
    send(x, res, run_list(x));
}

fn run_list(x: &Exchange) -> Result<Value, ApiError> {
    admin_only(x)?;
    let q = x.req.query();
    let number = |name: &str, default: usize, max: usize| -> Result<usize, ApiError> {
        match query_param(q, name) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(Some(name), format!("`{name}` must be 1 to {max}."))
                }),
        }
    };
    let page = number("page", 1, usize::MAX)?;
    let size = number("size", 10, 100)?;
    let full = query_param(q, "return_full_object").is_some_and(|v| v == "true");
    let filters = [
        ("key_alias", query_param(q, "key_alias")),
        ("team_id", query_param(q, "team_id")),
        ("user_id", query_param(q, "user_id")),
    ];
    let keys: Vec<Arc<KeyRecord>> =
        x.gw.access
            .list()
            .map_err(store_error)?
            .into_iter()
            .filter(|k| {
                filters.iter().all(|(name, want)| {
                    let have = match *name {
                        "key_alias" => &k.key_alias,
                        "team_id" => &k.team_id,
                        _ => &k.user_id,
                    };
                    want.is_none() || want == have
                })
            })
            .collect();
    let total = keys.len();
    let shown: Vec<Value> = keys
        .iter()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .map(|k| {
            if full {
                describe(&x.gw.access, k)
            } else {
                json!(k.token)
            }
        })
        .collect();
    Ok(json!({
        "keys": shown,
        "total_count": total,
        "current_page": page,
        "total_pages": total.div_ceil(size),
    }))
}

/// A key's information as LiteLLM's `/key/info` and `/key/list` show it (never the key).
fn describe(access: &Access, key: &KeyRecord) -> Value {
    let now = access.now();
    let first = key.budgets.first();
    let spend = first.map_or_else(
        || access.spent(key, Period::Total),
        |b| access.spent(key, b.period),
    );
    let iso = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
    };
    let budgets: Vec<Value> = key
        .budgets
        .iter()
        .map(|b| {
            serde_json::json!({
                "max_budget": b.max_budget,
                "budget_duration": b.period.label(),
                "spend": access.spent(key, b.period).ok(),
                "budget_reset_at": b.period.resets_at(now).and_then(iso),
            })
        })
        .collect();
    serde_json::json!({
        "token": key.token,
        "key_name": key.key_name,
        "key_alias": key.key_alias,
        "team_id": key.team_id,
        "user_id": key.user_id,
        "models": key.models,
        "spend": spend.ok(),
        "total_spend": access.spent(key, Period::Total).ok(),
        "max_budget": first.map(|b| b.max_budget),
        "budget_duration": first.and_then(|b| b.period.label()),
        "budget_reset_at": first.and_then(|b| b.period.resets_at(now)).and_then(iso),
        "budgets": budgets,
        "rpm_limit": key.rpm_limit,
        "tpm_limit": key.tpm_limit,
        "expires": key.expires_at.and_then(iso),
        "blocked": key.blocked,
        "refuse_unpriced_models": key.refuse_unpriced,
        "metadata": key.metadata,
        "created_at": iso(key.created_at),
        "updated_at": iso(key.updated_at),
        "source": key.source,
    })
}
