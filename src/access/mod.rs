//! Access control: who may call, what, how often, for how much. [`Access`] holds the gateway
//! keys (from `GATEWAY_API_KEYS`, the config file, and the store for keys made through the
//! admin API) in
//! memory by hash, decides each request's admission at dispatch (401, 429 for rpm/tpm, 429
//! `insufficient_quota` for a spent budget, 503 when the shared store is down and the key has
//! limits), and settles each admitted call from its interaction record when the exchange ends:
//! its real tokens replace the estimate in the tpm window, its cost is charged to the key's
//! budgets and to the day's totals.
//!
//! Two backends, one behaviour. Embedded (the default): windows in memory, spend in memory
//! and saved to the store at most each second by a background thread, so a crash loses at
//! most the spend of the last second (the calls settled since the last save; calls in flight
//! are never charged) and the rpm/tpm windows (at most one minute of rate-limit history). Redis (`REDIS_URL`): windows, spend
//! and reservations live in Redis, each admission and each settlement one atomic script
//! (`shared.rs`), so every instance sees the same numbers; keys are cached for
//! [`KEY_CACHE`] and looked up in Redis on a miss.
//!
//! Budgets across concurrent calls: an instance admits a budgeted key's call while its spend
//! plus what calls in flight reserve (each the most one call of that key has cost, seen on
//! this instance) stays within the budget; beyond that, only when the instance has no other
//! call of that key in flight. So a budget is overspent by at most one call per instance.

pub mod keys;
mod refusals;
mod shared;
pub mod spend;
pub mod windows;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::ApiError;
use crate::events::Interaction;
use crate::http::Request;
use crate::store::Store;
use keys::{KeyHash, KeyRecord};
use spend::{Charge, DayTotals, Ledger, Period, WindowId};
use windows::Window;

pub(crate) use refusals::check_or_refuse;
use refusals::{check_budget, rate_limited, store_down};
pub use refusals::{
    limit_headers, model_not_allowed, model_not_priced, no_admin_key, no_admin_key_for_records,
    over_budget, unauthorized, Reserve,
};

/// How long an instance sharing Redis trusts its copy of the keys (a key blocked or deleted
/// elsewhere is refused here within this time).
pub const KEY_CACHE: Duration = Duration::from_secs(5);
/// How often the embedded backend saves spend.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Store spaces (document API).
const KEYS: &str = "keys";
const SPEND_WINDOWS: &str = "spend_windows";
const SPEND_DAYS: &str = "spend_days";

/// Who a request is, once authenticated.
#[derive(Clone, Debug)]
pub enum Caller {
    /// The admin key (`ADMIN_API_KEY` or the config file's `master_key`): every route, no
    /// limit, named `admin`.
    Admin,
    Key(Arc<KeyRecord>),
}

impl Caller {
    pub fn name(&self) -> &str {
        match self {
            Caller::Admin => "admin",
            Caller::Key(k) => k.name(),
        }
    }

    pub fn team(&self) -> Option<&str> {
        match self {
            Caller::Admin => None,
            Caller::Key(k) => k.team_id.as_deref(),
        }
    }

    /// Whether the caller may call `model` (the admin may call any).
    pub fn allows(&self, model: &str) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Key(k) => k.allows(model),
        }
    }

    pub fn refuses_unpriced(&self) -> bool {
        matches!(self, Caller::Key(k) if k.refuse_unpriced)
    }
}

/// An admitted call: what to settle when it ends.
#[derive(Debug)]
pub struct Admission {
    pub caller: Caller,
    /// The second it was admitted (its tokens' bucket) and its token estimate.
    second: i64,
    estimate: u64,
    /// Budget reserved on this instance while in flight.
    reserved: f64,
    /// An API call (rate-limited and charged); else only authenticated.
    counted: bool,
    /// The `x-ratelimit-*` headers for every answer.
    pub headers: Vec<(String, String)>,
}

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// No key (`/health`).
    Open,
    /// A gateway key (or the admin key); `counted`: rate limits and budgets apply.
    Client { counted: bool },
    /// Monitoring and docs: the admin key; when none is configured, any gateway key.
    Admin,
    /// Managing keys and spend (`/key/*`, `/admin/spend`): the admin key only, and it must be
    /// configured, else anyone could make the first key of an open gateway and lock its owner
    /// out.
    Manage,
    /// The interaction records (`/admin/interactions`), which hold every caller's request and
    /// response bodies: open while no key at all is configured (local use, like the
    /// dashboard); once any is, the admin key only, which must then be configured.
    Records,
}

/// One key's state on this instance, behind one lock: its calls in flight and the most one
/// call cost (for budgets), its rpm/tpm window (embedded backend), and what its calls settled
/// here added up to (for `/metrics`).
#[derive(Default)]
struct Live {
    calls: u32,
    reserved: f64,
    max_cost: f64,
    /// A call of the key has cost something known here: `max_cost` is a cost seen.
    settled: bool,
    window: Window,
    usage: Option<KeyUsage>,
}

impl Live {
    /// What a new call finds: see [`Reserve`].
    fn reserve(&self) -> Reserve {
        Reserve {
            this: self.max_cost,
            in_flight: self.reserved,
            alone: self.calls == 0,
            known: self.settled,
        }
    }

    /// Counts a new call in flight, reserving the most one call has cost.
    fn take(&mut self) -> f64 {
        self.calls += 1;
        self.reserved += self.max_cost;
        self.max_cost
    }

    /// A call is over (refused, or settled with `cost`).
    fn release(&mut self, reserved: f64, cost: Option<f64>) {
        self.calls = self.calls.saturating_sub(1);
        self.reserved = if self.calls == 0 {
            0.0
        } else {
            (self.reserved - reserved).max(0.0)
        };
        if let Some(cost) = cost {
            self.max_cost = self.max_cost.max(cost);
            self.settled = true;
        }
    }
}

/// How rate limits and spend are kept.
enum Backend {
    Embedded { ledger: Arc<Mutex<Ledger>> },
    Redis(shared::Shared),
}

pub struct Access {
    admin: Option<KeyHash>,
    /// Keys from the environment and the config file: always present, never stored.
    fixed: Vec<Arc<KeyRecord>>,
    keys: RwLock<HashMap<KeyHash, Arc<KeyRecord>>>,
    /// When the Redis backend last read every key.
    refreshed: Mutex<Instant>,
    store: Store,
    backend: Backend,
    /// Each key's state here. Lock order: the ledger, then this.
    live: Mutex<HashMap<KeyHash, Live>>,
    /// Redis down: admit keys with limits anyway (`REDIS_FAIL_OPEN`).
    fail_open: bool,
    clock: fn() -> i64,
    saver: Mutex<Option<(crossbeam_channel::Sender<()>, JoinHandle<()>)>>,
    /// Stops the saver and the saves.
    stopped: AtomicBool,
}

fn unix_now() -> i64 {
    crate::events::unix_now() as i64
}

impl Access {
    /// The keys of the environment and the store, and the backend the store implies. The
    /// embedded backend loads its spend and starts its saver.
    pub fn new(config: &Config, store: Store) -> Result<Arc<Access>, String> {
        Access::with_clock(config, store, unix_now)
    }

    /// As [`Access::new`], with the clock tests move.
    pub fn with_clock(
        config: &Config,
        store: Store,
        clock: fn() -> i64,
    ) -> Result<Arc<Access>, String> {
        let now = clock();
        let (admin, from_file) = keys::from_config(config, now)?;
        let mut fixed: Vec<Arc<KeyRecord>> = match &config.gateway_api_keys {
            Some(list) => keys::parse_env_list(list, now)
                .map_err(|e| format!("GATEWAY_API_KEYS: {e}"))?
                .into_iter()
                .map(|(_, record)| Arc::new(record))
                .collect(),
            None => Vec::new(),
        };
        fixed.extend(from_file.into_iter().map(Arc::new));
        let backend = match store.redis() {
            Some(_) => Backend::Redis(shared::Shared::new(store.clone())),
            None => {
                let windows = store
                    .list(SPEND_WINDOWS)
                    .map_err(|e| format!("reading spend: {e}"))?
                    .into_iter()
                    .filter_map(|(_, v)| serde_json::from_slice::<(WindowId, f64)>(&v).ok())
                    .collect();
                let days = store
                    .list(SPEND_DAYS)
                    .map_err(|e| format!("reading spend: {e}"))?
                    .into_iter()
                    .filter_map(|(_, v)| serde_json::from_slice::<DayTotals>(&v).ok())
                    .collect();
                Backend::Embedded {
                    ledger: Arc::new(Mutex::new(Ledger::load(windows, days))),
                }
            }
        };
        let access = Arc::new(Access {
            admin: admin.as_deref().map(KeyHash::of),
            fixed,
            keys: RwLock::default(),
            refreshed: Mutex::new(Instant::now()),
            store,
            backend,
            live: Mutex::default(),
            fail_open: config.redis_fail_open,
            clock,
            saver: Mutex::new(None),
            stopped: AtomicBool::new(false),
        });
        if let Err(e) = access.reload_keys() {
            // Only Redis can be unreachable; the environment's keys still work and the
            // stored ones are read again on the next request.
            log::warn!("gateway keys: {e}");
        }
        if let Backend::Embedded { ledger, .. } = &access.backend {
            let (tx, rx) = crossbeam_channel::bounded::<()>(1);
            let (ledger, store) = (ledger.clone(), access.store.clone());
            let thread = std::thread::Builder::new()
                .name("spend-saver".into())
                .spawn(move || loop {
                    let stop = !matches!(
                        rx.recv_timeout(SAVE_EVERY),
                        Err(crossbeam_channel::RecvTimeoutError::Timeout)
                    );
                    save(&ledger, &store);
                    if stop {
                        break;
                    }
                })
                .map_err(|e| format!("cannot start the spend saver: {e}"))?;
            *access.saver.lock().unwrap_or_else(|e| e.into_inner()) = Some((tx, thread));
        }
        Ok(access)
    }

    /// Saves the spend not saved yet and stops saving (at shutdown).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        let saver = self.saver.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((tx, thread)) = saver {
            let _ = tx.send(());
            let _ = thread.join();
        }
    }

    /// Whether any key is configured: if not, the gateway is open as it was.
    pub fn enabled(&self) -> bool {
        self.admin.is_some() || !self.read_keys().is_empty()
    }

    pub fn backend_name(&self) -> &'static str {
        self.store.backend()
    }

    fn read_keys(&self) -> std::sync::RwLockReadGuard<'_, HashMap<KeyHash, Arc<KeyRecord>>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads every stored key again (and the environment's).
    fn reload_keys(&self) -> Result<(), String> {
        *self.refreshed.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let mut all: HashMap<KeyHash, Arc<KeyRecord>> = HashMap::new();
        let stored = self.store.list(KEYS);
        for record in &self.fixed {
            if let Some(hash) = record.hash() {
                all.insert(hash, record.clone());
            }
        }
        let stored = stored.map_err(|e| format!("reading keys: {e}"))?;
        for (_, bytes) in stored {
            if let Ok(record) = serde_json::from_slice::<KeyRecord>(&bytes) {
                if let Some(hash) = record.hash() {
                    all.insert(hash, Arc::new(record));
                }
            }
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = all;
        Ok(())
    }

    /// The key with this hash: from memory, or (sharing Redis) from the store when the copy
    /// is old or lacks it.
    fn find(&self, hash: &KeyHash) -> Result<Option<Arc<KeyRecord>>, ApiError> {
        let shared = matches!(self.backend, Backend::Redis(_));
        if shared {
            let stale = self
                .refreshed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .elapsed()
                > KEY_CACHE;
            if stale {
                if let Err(e) = self.reload_keys() {
                    log::warn!("gateway keys: {e}");
                }
            }
        }
        if let Some(found) = self.read_keys().get(hash) {
            return Ok(Some(found.clone()));
        }
        if !shared {
            return Ok(None);
        }
        match self.store.get(KEYS, &hash.hex()) {
            Ok(Some(bytes)) => {
                let record = serde_json::from_slice::<KeyRecord>(&bytes)
                    .ok()
                    .map(Arc::new);
                if let Some(record) = &record {
                    self.keys
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(*hash, record.clone());
                }
                Ok(record)
            }
            Ok(None) => Ok(None),
            Err(e) => Err(store_down(&e.to_string())),
        }
    }

    /// Authenticates a request for a route: `None` when no key is needed (none configured,
    /// or an open route); else the caller, or the 401 to answer.
    pub fn authenticate(&self, req: &Request, guard: Guard) -> Result<Option<Caller>, ApiError> {
        if guard == Guard::Manage && self.admin.is_none() {
            return Err(no_admin_key());
        }
        if guard == Guard::Records && self.enabled() && self.admin.is_none() {
            return Err(no_admin_key_for_records());
        }
        if guard == Guard::Open || !self.enabled() {
            return Ok(None);
        }
        let Some(secret) = keys::presented(req) else {
            return Err(unauthorized(
                "You didn't provide an API key. Send your gateway key in an Authorization header \
                 (Authorization: Bearer sk-gw-...), or as x-api-key.",
            ));
        };
        let hash = KeyHash::of(&secret);
        if self.admin.is_some_and(|admin| admin == hash) {
            return Ok(Some(Caller::Admin));
        }
        if matches!(guard, Guard::Manage | Guard::Records)
            || (guard == Guard::Admin && self.admin.is_some())
        {
            return Err(unauthorized(
                "This route takes the admin key (ADMIN_API_KEY), not a gateway key.",
            ));
        }
        let Some(record) = self.find(&hash)? else {
            return Err(unauthorized(format!(
                "Incorrect API key provided: {}. Check the gateway key you were given.",
                keys::display_name(&secret)
            )));
        };
        if record.blocked {
            return Err(unauthorized(format!(
                "The key {} is blocked.",
                record.name()
            )));
        }
        if record.expires_at.is_some_and(|t| t <= (self.clock)()) {
            return Err(unauthorized(format!(
                "The key {} has expired.",
                record.name()
            )));
        }
        Ok(Some(Caller::Key(record)))
    }

    /// Admits an authenticated call: rate limits and budgets for a counted route. `estimate`
    /// is its prompt's tokens as guessed from the body.
    pub fn admit(
        &self,
        caller: Caller,
        counted: bool,
        estimate: u64,
    ) -> Result<Admission, ApiError> {
        let mut admission = Admission {
            caller,
            second: (self.clock)(),
            estimate,
            reserved: 0.0,
            counted,
            headers: Vec::new(),
        };
        let Caller::Key(key) = admission.caller.clone() else {
            return Ok(admission);
        };
        if !counted || !key.is_limited() {
            return Ok(admission);
        }
        let hash = key.hash().unwrap_or(KeyHash([0; 32]));
        let now = admission.second;
        let budgeted = !key.budgets.is_empty();
        let usage = match &self.backend {
            Backend::Embedded { ledger } => {
                // The spend is read and the call counted in flight under the same locks, so two
                // calls of this instance never both see themselves alone.
                let ledger = ledger.lock().unwrap_or_else(|e| e.into_inner());
                let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
                let state = live.entry(hash).or_default();
                let reserve = state.reserve();
                for budget in &key.budgets {
                    let spent = ledger.spent(&key.token, budget.period, now);
                    check_budget(&key, budget, spent, reserve)?;
                }
                let usage = state
                    .window
                    .admit(now, key.rpm_limit, key.tpm_limit, estimate)
                    .map_err(|refusal| rate_limited(&key, refusal))?;
                if budgeted {
                    admission.reserved = state.take();
                }
                usage
            }
            Backend::Redis(shared) => {
                let reserve = if budgeted {
                    let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
                    let state = live.entry(hash).or_default();
                    let reserve = state.reserve();
                    state.take();
                    reserve
                } else {
                    Reserve {
                        alone: true,
                        ..Reserve::default()
                    }
                };
                let result = match shared.admit(&key, now, estimate, reserve) {
                    Ok(result) => {
                        result.and_then(|u| u.map_err(|refusal| rate_limited(&key, refusal)))
                    }
                    Err(e) if self.fail_open => {
                        log::warn!("key {}: admitted without limits: {e}", key.name());
                        self.release(&hash, budgeted, reserve.this, None);
                        admission.counted = false;
                        return Ok(admission);
                    }
                    Err(e) => Err(store_down(&e)),
                };
                match result {
                    Ok(usage) => {
                        admission.reserved = reserve.this;
                        usage
                    }
                    Err(e) => {
                        self.release(&hash, budgeted, reserve.this, None);
                        return Err(e);
                    }
                }
            }
        };
        admission.headers = limit_headers(&key, usage);
        Ok(admission)
    }

    /// The cost of an admitted call, known once its usage is (before its answer is out): the
    /// next call of its key on this instance reserves at least that much, rather than wait
    /// for this call to be settled to learn what a call costs.
    pub fn note_cost(&self, admission: &Admission, cost: f64) {
        let Caller::Key(key) = &admission.caller else {
            return;
        };
        if key.budgets.is_empty() || !admission.counted || !cost.is_finite() {
            return;
        }
        let hash = key.hash().unwrap_or(KeyHash([0; 32]));
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(state) = live.get_mut(&hash) {
            state.max_cost = state.max_cost.max(cost);
            state.settled = true;
        }
    }

    /// A refused call of a budgeted key is no longer in flight here.
    fn release(&self, hash: &KeyHash, budgeted: bool, reserved: f64, cost: Option<f64>) {
        if budgeted {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(state) = live.get_mut(hash) {
                state.release(reserved, cost);
            }
        }
    }

    /// Settles an admitted call from its record: tokens into the tpm window, cost into the
    /// budgets and the day's totals.
    pub fn settle(&self, admission: Admission, record: &Interaction) {
        let Caller::Key(key) = &admission.caller else {
            return;
        };
        if !admission.counted {
            return;
        }
        let now = (self.clock)();
        let hash = key.hash().unwrap_or(KeyHash([0; 32]));
        let tokens = record
            .usage
            .as_ref()
            .and_then(crate::pricing::Tokens::from_usage);
        let (prompt, completion) = tokens.map_or((0, 0), |t| (t.prompt, t.completion));
        let cost = record.cost.filter(|c| c.is_finite() && *c >= 0.0);
        let model = record
            .model_requested
            .as_deref()
            .or(record.model.as_deref())
            .unwrap_or_default();
        let charge = (tokens.is_some() || cost.is_some()).then(|| Charge {
            token: &key.token,
            key_name: key.name(),
            team: key.team_id.as_deref(),
            user: key.user_id.as_deref(),
            model,
            prompt_tokens: prompt,
            completion_tokens: completion,
            cost,
        });
        let periods: Vec<Period> = key.budgets.iter().map(|b| b.period).collect();
        // The spend first; only then may this instance count the call as over (its key's
        // next call must find its cost in the spend or in what calls in flight reserve).
        let ledger = match &self.backend {
            Backend::Embedded { ledger } => {
                let mut ledger = ledger.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(charge) = &charge {
                    ledger.charge(charge, &periods, now);
                }
                Some(ledger)
            }
            Backend::Redis(shared) => {
                let settled = shared.settle(
                    key,
                    now,
                    admission.second,
                    admission.estimate,
                    prompt + completion,
                    admission.reserved,
                    charge.as_ref(),
                    &periods,
                );
                if let Err(e) = settled {
                    log::error!("key {}: spend not recorded: {e}", key.name());
                }
                None
            }
        };
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        drop(ledger);
        let state = live.entry(hash).or_default();
        if ledger_backend(&self.backend) && key.tpm_limit.is_some() {
            state.window.settle(
                now,
                admission.second,
                admission.estimate,
                prompt + completion,
            );
        }
        if !key.budgets.is_empty() {
            state.release(admission.reserved, Some(cost.unwrap_or(0.0)));
        }
        let usage = state.usage.get_or_insert_with(|| KeyUsage {
            key: key.name().to_string(),
            team: key.team_id.clone(),
            ..KeyUsage::default()
        });
        usage.requests += 1;
        usage.prompt_tokens += prompt;
        usage.completion_tokens += completion;
        match cost {
            Some(cost) => usage.spend += cost,
            None if tokens.is_some() => usage.unpriced_requests += 1,
            None => {}
        }
    }

    /// What a key spent in the current window of `period`.
    pub fn spent(&self, key: &KeyRecord, period: Period) -> Result<f64, String> {
        let now = (self.clock)();
        match &self.backend {
            Backend::Embedded { ledger, .. } => Ok(ledger
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .spent(&key.token, period, now)),
            Backend::Redis(shared) => shared.spent(&key.token, period, now),
        }
    }

    /// Every day's totals between two days (`YYYY-MM-DD`, inclusive).
    pub fn days(&self, from: &str, to: &str) -> Result<Vec<DayTotals>, String> {
        let all = match &self.backend {
            Backend::Embedded { ledger, .. } => {
                ledger.lock().unwrap_or_else(|e| e.into_inner()).days()
            }
            Backend::Redis(shared) => shared.days(from, to, (self.clock)())?,
        };
        Ok(all
            .into_iter()
            .filter(|d| d.day.as_str() >= from && d.day.as_str() <= to)
            .collect())
    }

    /// Every key: the environment's and the stored ones.
    pub fn list(&self) -> Result<Vec<Arc<KeyRecord>>, String> {
        if matches!(self.backend, Backend::Redis(_)) {
            self.reload_keys()?;
        }
        let mut all: Vec<_> = self.read_keys().values().cloned().collect();
        all.sort_by(|a, b| (a.created_at, &a.token).cmp(&(b.created_at, &b.token)));
        Ok(all)
    }

    /// The key a reference (the key, or its hash) names.
    pub fn get(&self, reference: &str) -> Result<Option<Arc<KeyRecord>>, ApiError> {
        self.find(&KeyHash::of_reference(reference))
    }

    /// Stores a key made or changed through the admin API.
    pub fn put(&self, record: KeyRecord) -> Result<Arc<KeyRecord>, String> {
        let bytes = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        self.store
            .put(KEYS, &record.token, &bytes, None)
            .map_err(|e| format!("storing the key: {e}"))?;
        let record = Arc::new(record);
        if let Some(hash) = record.hash() {
            self.keys
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(hash, record.clone());
        }
        Ok(record)
    }

    /// Deletes a stored key; false when there was none.
    pub fn delete(&self, hash: &KeyHash) -> Result<bool, String> {
        let deleted = self
            .store
            .delete(KEYS, &hash.hex())
            .map_err(|e| format!("deleting the key: {e}"))?;
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(hash);
        Ok(deleted)
    }

    /// Sets a key's spend in its current windows (`/key/update` with `spend`).
    pub fn set_spend(&self, key: &KeyRecord, spend: f64) -> Result<(), String> {
        let now = (self.clock)();
        let mut periods = vec![Period::Total];
        periods.extend(key.budgets.iter().map(|b| b.period));
        match &self.backend {
            Backend::Embedded { ledger, .. } => {
                ledger
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .set(&key.token, &periods, spend, now);
                Ok(())
            }
            Backend::Redis(shared) => shared.set_spend(&key.token, &periods, spend, now),
        }
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Whether a key from the environment is behind this hash (it cannot be changed through
    /// the API).
    pub fn is_fixed(&self, hash: &KeyHash) -> bool {
        self.fixed.iter().any(|k| k.hash().as_ref() == Some(hash))
    }

    /// What the calls of each key settled on this instance added up to since start, for
    /// `/metrics` (per instance, so Prometheus sums a fleet), busiest first.
    pub fn usage_by_key(&self) -> Vec<KeyUsage> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<KeyUsage> = live.values().filter_map(|l| l.usage.clone()).collect();
        all.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.key.cmp(&b.key)));
        all
    }
}

/// One key's calls settled on this instance since start.
#[derive(Clone, Debug, Default)]
pub struct KeyUsage {
    pub key: String,
    pub team: Option<String>,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// USD of the priced calls.
    pub spend: f64,
    pub unpriced_requests: u64,
}

impl Drop for Access {
    fn drop(&mut self) {
        if !self.stopped.load(Ordering::Relaxed) {
            self.stop();
        }
    }
}

/// Whether the rpm/tpm windows are kept here (not in Redis).
fn ledger_backend(backend: &Backend) -> bool {
    matches!(backend, Backend::Embedded { .. })
}

/// Saves what changed in the ledger.
fn save(ledger: &Mutex<Ledger>, store: &Store) {
    let (windows, days) = ledger
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take_dirty();
    for (id, spent) in windows {
        let name = format!("{}|{}|{}", id.key, id.period, id.window);
        let bytes = serde_json::to_vec(&(id, spent)).unwrap_or_default();
        if let Err(e) = store.put(SPEND_WINDOWS, &name, &bytes, None) {
            log::error!("saving spend: {e}");
        }
    }
    for totals in days {
        let bytes = serde_json::to_vec(&totals).unwrap_or_default();
        if let Err(e) = store.put(SPEND_DAYS, &totals.id(), &bytes, None) {
            log::error!("saving spend: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicI64;

    use super::*;
    use crate::access::keys::Source;
    use crate::access::spend::Budget;

    /// 2026-03-31T23:59:00Z: a minute before both a day and a month end.
    const MARCH_31_23_59: i64 = 1_775_001_540;
    static NOW: AtomicI64 = AtomicI64::new(MARCH_31_23_59);

    fn clock() -> i64 {
        NOW.load(Ordering::Relaxed)
    }

    #[test]
    fn a_spent_budget_admits_again_when_the_clock_crosses_the_day_and_month_boundary() {
        let dir = std::env::temp_dir().join(format!("llmcg-access-clock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = Config::from_lookup(|_| None).unwrap();
        let store = Store::open(&dir, None).unwrap();
        let access = Access::with_clock(&config, store, clock).unwrap();
        let mut record = KeyRecord::new("sk-gw-test-fake-clock-0000", Source::Api, clock());
        record.budgets = vec![
            Budget {
                max_budget: 1.0,
                period: Period::Seconds(86_400),
            },
            Budget {
                max_budget: 2.0,
                period: Period::Months(1),
            },
        ];
        let key = access.put(record).unwrap();
        let call = |access: &Access| access.admit(Caller::Key(key.clone()), true, 10);
        let mut finished =
            Interaction::new(String::new(), "POST", "/", "127.0.0.1:1".parse().unwrap());
        finished.usage = Some(serde_json::json!({"prompt_tokens": 5, "completion_tokens": 5}));
        finished.cost = Some(1.0);

        access.settle(call(&access).unwrap(), &finished);
        let refused = call(&access).unwrap_err();
        assert_eq!(refused.kind, "insufficient_quota");
        assert!(refused.message.contains("per 1d"), "{}", refused.message);

        // April 1st, 00:00:00: a new day and a new month.
        NOW.store(MARCH_31_23_59 + 60, Ordering::Relaxed);
        access.settle(call(&access).unwrap(), &finished);
        assert_eq!(access.spent(&key, Period::Months(1)).unwrap(), 1.0);
        assert_eq!(access.spent(&key, Period::Total).unwrap(), 2.0);
        // The day's budget stops it again until the next day.
        assert!(call(&access).is_err());
        NOW.store(MARCH_31_23_59 + 60 + 86_400, Ordering::Relaxed);
        access.settle(call(&access).unwrap(), &finished);
        assert_eq!(access.spent(&key, Period::Months(1)).unwrap(), 2.0);
        assert!(call(&access).is_err(), "both budgets are spent now");
        access.stop();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
