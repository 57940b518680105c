//! The answers access control gives instead of admitting a call (401, 403, 429 for a rate
//! limit or a spent budget, 503 when the shared store is down), the `x-ratelimit-*` headers
//! on every answer to a limited key, and the budget rule both backends apply to a new call
//! ([`Reserve::fits`]).

use super::keys::KeyRecord;
use super::spend;
use super::windows::{Refusal, Usage};
use super::Caller;
use crate::error::ApiError;

/// A new call's budget reservation on this instance.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reserve {
    /// What it reserves: the most one call of the key has cost here.
    pub this: f64,
    /// What calls in flight here reserve already.
    pub in_flight: f64,
    /// No other call of the key is in flight here.
    pub alone: bool,
    /// A call of the key has ended here, so `this` is a cost seen, not a guess.
    pub known: bool,
}

impl Reserve {
    /// Whether a call may start with `spent` of `max` gone and `reserved` held by calls in
    /// flight: when it is the only call of its key in flight here, or when the spend plus
    /// the reservations, its own included, stays within the budget (at most one call per
    /// instance can overspend).
    pub fn fits(&self, spent: f64, reserved: f64, max: f64) -> bool {
        spent < max && (self.alone || (self.known && spent + reserved + self.this <= max))
    }
}

pub(super) fn check_budget(
    key: &KeyRecord,
    budget: &spend::Budget,
    spent: f64,
    reserve: Reserve,
) -> Result<(), ApiError> {
    if reserve.fits(spent, reserve.in_flight, budget.max_budget) {
        return Ok(());
    }
    Err(over_budget(key, budget, spent))
}

/// The refusal for a key's budget number `index` that the shared store found spent.
pub(crate) fn check_or_refuse(key: &KeyRecord, index: usize, spent: f64) -> ApiError {
    match key.budgets.get(index) {
        Some(budget) => over_budget(key, budget, spent),
        None => store_down("the admission script named no budget"),
    }
}

pub fn over_budget(key: &KeyRecord, budget: &spend::Budget, spent: f64) -> ApiError {
    let period = budget
        .period
        .label()
        .map_or(String::new(), |l| format!(" per {l}"));
    let mut e = ApiError::new(
        429,
        "insufficient_quota",
        Some("insufficient_quota"),
        if spent >= budget.max_budget {
            format!(
                "The key {} has spent its budget: {spent:.6} of {:.6} USD{period}.",
                key.name(),
                budget.max_budget
            )
        } else {
            format!(
                "The key {} has spent {spent:.6} of {:.6} USD{period}, and its calls in flight \
                 will spend the rest.",
                key.name(),
                budget.max_budget
            )
        },
    );
    // The OpenAI SDKs retry a 429 unless told not to; waiting does not refill a budget.
    e.headers.push(("x-should-retry".into(), "false".into()));
    e
}

/// 401 `invalid_api_key`.
pub fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(
        401,
        "invalid_request_error",
        Some("invalid_api_key"),
        message,
    )
}

/// 403: key management without an admin key configured.
pub fn no_admin_key() -> ApiError {
    ApiError::new(
        403,
        "invalid_request_error",
        Some("admin_key_not_configured"),
        "Managing keys and spend takes the admin key, and none is configured: set \
         ADMIN_API_KEY (or the config file's general_settings.master_key).",
    )
}

/// 403: the interaction records hold every caller's bodies; with keys, only the admin reads them.
pub fn no_admin_key_for_records() -> ApiError {
    ApiError::new(
        403,
        "invalid_request_error",
        Some("admin_key_not_configured"),
        "The interaction records hold every key's requests, so with gateway keys they take the \
         admin key, and none is configured: set ADMIN_API_KEY (or the config file's \
         general_settings.master_key).",
    )
}

/// 403: the key may not call this model.
pub fn model_not_allowed(caller: &Caller, model: &str) -> ApiError {
    let mut e = ApiError::new(
        403,
        "invalid_request_error",
        Some("model_not_allowed"),
        format!(
            "The key {} is not allowed to call the model `{model}`.",
            caller.name()
        ),
    );
    e.param = Some("model".into());
    e
}

/// 403: the key refuses models without a known price, and this one has none.
pub fn model_not_priced(caller: &Caller, model: &str) -> ApiError {
    let mut e = ApiError::new(
        403,
        "invalid_request_error",
        Some("model_not_priced"),
        format!(
            "The key {} may only call models with a known price, and `{model}` has none \
             (PRICES_FILE or the config file's model_info can give it one).",
            caller.name()
        ),
    );
    e.param = Some("model".into());
    e
}

/// 503: the shared store cannot be reached and the key has limits.
pub(super) fn store_down(why: &str) -> ApiError {
    let mut e = ApiError::new(
        503,
        "server_error",
        Some("store_unavailable"),
        format!(
            "The gateway cannot check this key's limits: its shared store is unreachable ({why}). \
             Retry shortly."
        ),
    );
    e.headers.push(("retry-after".into(), "1".into()));
    e
}

/// 429 `rate_limit_exceeded` with `retry-after`.
pub(super) fn rate_limited(key: &KeyRecord, refusal: Refusal) -> ApiError {
    let (what, limit, retry_after) = match refusal {
        Refusal::Requests { retry_after } => ("requests", key.rpm_limit, retry_after),
        Refusal::Tokens { retry_after } => ("tokens", key.tpm_limit, retry_after),
    };
    let mut e = ApiError::new(
        429,
        what,
        Some("rate_limit_exceeded"),
        format!(
            "Rate limit reached for key {} on {what} per min (RPM/TPM): limit {}. \
             Please try again in {retry_after}s.",
            key.name(),
            limit.unwrap_or(0)
        ),
    );
    e.headers
        .push(("retry-after".into(), retry_after.to_string()));
    e.headers.extend(limit_headers(
        key,
        Usage {
            requests: key.rpm_limit.unwrap_or(0),
            tokens: key.tpm_limit.unwrap_or(0),
            requests_reset: retry_after,
            tokens_reset: retry_after,
        },
    ));
    e
}

/// OpenAI's `x-ratelimit-*` headers for a key's limits after this request.
pub fn limit_headers(key: &KeyRecord, usage: Usage) -> Vec<(String, String)> {
    // On every admitted call of a key with limits: names are literals, not `format!`ed.
    let mut headers = Vec::with_capacity(6);
    let mut add = |names: [&str; 3], limit: Option<u64>, used: u64, reset: u64| {
        if let Some(limit) = limit {
            let mut reset = reset.to_string();
            reset.push('s');
            let values = [
                limit.to_string(),
                limit.saturating_sub(used).to_string(),
                reset,
            ];
            headers.extend(names.into_iter().map(String::from).zip(values));
        }
    };
    add(
        [
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ],
        key.rpm_limit,
        usage.requests,
        usage.requests_reset,
    );
    add(
        [
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ],
        key.tpm_limit,
        usage.tokens,
        usage.tokens_reset,
    );
    headers
}
