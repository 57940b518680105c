//! The Redis backend of access control, for instances sharing the load: a key's rpm/tpm
//! window (a hash of one-second buckets, as in `windows.rs`), its spend per budget window (a
//! float per window, expiring a day after the window ends), what its calls in flight reserve
//! of its budgets, and each day's totals per key and model (a hash per day). One Lua script
//! admits a call (budgets, then the window) and one settles it, each one round trip and
//! atomic, so no two instances ever read-modify-write the same number. Every key of one
//! gateway key shares a `{hash tag}`. A single Redis, not a Cluster: a day's totals span keys.

use redis::Script;

use super::keys::KeyRecord;
use super::spend::{day, Charge, DayTotals, Period};
use super::windows::{Refusal, Usage};
use super::{check_or_refuse, Reserve};
use crate::error::ApiError;
use crate::store::Store;

/// How long a reservation outlives the last admission of its key, should the instance that
/// made it die before settling.
const RESERVATION_TTL_SECS: u64 = 900;
/// Spend windows are kept this long after they end (for `/key/info` right after a reset).
const WINDOW_GRACE_SECS: i64 = 86_400;
/// The most days one `/admin/spend` query reads.
const MAX_DAYS: i64 = 400;

const ADMIT: &str = r#"
local now = tonumber(ARGV[1])
local rpm = tonumber(ARGV[2])
local tpm = tonumber(ARGV[3])
local est = tonumber(ARGV[4])
local this = tonumber(ARGV[5])
local alone = ARGV[6] == '1'
local known = ARGV[7] == '1'
local ttl = tonumber(ARGV[8])
local reserved = tonumber(redis.call('GET', KEYS[2]) or '0')
for i = 3, #KEYS do
  local spent = tonumber(redis.call('GET', KEYS[i]) or '0')
  local max = tonumber(ARGV[6 + i])
  if not (spent < max and (alone or (known and spent + reserved + this <= max))) then
    return {'budget', tostring(i - 2), tostring(spent)}
  end
end
local h = redis.call('HGETALL', KEYS[1])
local reqs, toks, rfirst, tfirst = 0, 0, nil, nil
for j = 1, #h, 2 do
  local f = h[j]
  local sec = tonumber(string.sub(f, 1, -3))
  local kind = string.sub(f, -1)
  if sec <= now - 60 then
    redis.call('HDEL', KEYS[1], f)
  else
    local v = tonumber(h[j + 1])
    if kind == 'r' then
      reqs = reqs + v
      if v > 0 and (rfirst == nil or sec < rfirst) then rfirst = sec end
    else
      toks = toks + v
      if v > 0 and (tfirst == nil or sec < tfirst) then tfirst = sec end
    end
  end
end
if toks < 0 then toks = 0 end
local function reset(first)
  if first == nil then return 0 end
  local r = first + 60 - now
  if r < 1 then r = 1 end
  return r
end
if rpm >= 0 and reqs >= rpm then return {'requests', tostring(reset(rfirst))} end
if tpm >= 0 and toks > 0 and toks + est > tpm then return {'tokens', tostring(reset(tfirst))} end
redis.call('HINCRBY', KEYS[1], now .. ':r', 1)
if est > 0 then redis.call('HINCRBY', KEYS[1], now .. ':t', est) end
redis.call('EXPIRE', KEYS[1], 120)
if #KEYS >= 3 and this > 0 then
  redis.call('INCRBYFLOAT', KEYS[2], tostring(this))
  redis.call('EXPIRE', KEYS[2], ttl)
end
if rfirst == nil then rfirst = now end
if tfirst == nil and est > 0 then tfirst = now end
return {'ok', tostring(reqs + 1), tostring(toks + est), tostring(reset(rfirst)), tostring(reset(tfirst))}
"#;

const SETTLE: &str = r#"
local now = ARGV[1]
local admitted = ARGV[2]
local delta = tonumber(ARGV[3])
local this = tonumber(ARGV[4])
if delta ~= 0 then
  if redis.call('HEXISTS', KEYS[1], admitted .. ':r') == 1 then
    redis.call('HINCRBY', KEYS[1], admitted .. ':t', delta)
  elseif delta > 0 then
    redis.call('HINCRBY', KEYS[1], now .. ':t', delta)
    redis.call('EXPIRE', KEYS[1], 120)
  end
end
if this > 0 then
  local left = tonumber(redis.call('INCRBYFLOAT', KEYS[2], tostring(-this)))
  if left <= 0.0000000001 then redis.call('DEL', KEYS[2]) end
end
if ARGV[5] == '1' then
  local f = ARGV[7] .. '\31'
  redis.call('HINCRBY', KEYS[3], f .. 'requests', 1)
  redis.call('HINCRBY', KEYS[3], f .. 'prompt_tokens', ARGV[8])
  redis.call('HINCRBY', KEYS[3], f .. 'completion_tokens', ARGV[9])
  redis.call('EXPIRE', KEYS[3], ARGV[10])
  if ARGV[6] == '' then
    redis.call('HINCRBY', KEYS[3], f .. 'unpriced_requests', 1)
  else
    redis.call('HINCRBYFLOAT', KEYS[3], f .. 'spend', ARGV[6])
    for i = 4, #KEYS do
      redis.call('INCRBYFLOAT', KEYS[i], ARGV[6])
      local ttl = tonumber(ARGV[7 + i])
      if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) end
    end
  end
end
return 'ok'
"#;

/// The scripts, loaded once (`EVALSHA`, falling back to `EVAL` after a Redis restart).
pub struct Shared {
    store: Store,
    admit: Script,
    settle: Script,
}

fn window_key(token: &str) -> String {
    format!("llmgw:{{{token}}}:window")
}

fn reserved_key(token: &str) -> String {
    format!("llmgw:{{{token}}}:reserved")
}

fn spend_key(token: &str, period: Period, now: i64) -> String {
    format!(
        "llmgw:{{{token}}}:spend:{}:{}",
        period.code(),
        period.window(now)
    )
}

fn day_key(day: &str) -> String {
    format!("llmgw:day:{day}")
}

/// Seconds a spend window's counter is kept: until a day after its window ends; none for a
/// total.
fn spend_ttl(period: Period, now: i64) -> i64 {
    period
        .resets_at(now)
        .map_or(0, |end| (end - now).max(1) + WINDOW_GRACE_SECS)
}

impl Shared {
    pub fn new(store: Store) -> Shared {
        Shared {
            store,
            admit: Script::new(ADMIT),
            settle: Script::new(SETTLE),
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, String> {
        let redis = self.store.redis().ok_or("the store is not Redis")?;
        redis.with(f).map_err(|e| e.to_string())
    }

    /// Admits one call (see the module): `Err` when Redis cannot answer; `Ok(Err)` with the
    /// refusal to answer; `Ok(Ok)` with the window's usage.
    #[allow(clippy::type_complexity)]
    pub fn admit(
        &self,
        key: &KeyRecord,
        now: i64,
        estimate: u64,
        reserve: Reserve,
    ) -> Result<Result<Result<Usage, Refusal>, ApiError>, String> {
        let mut invocation = self.admit.prepare_invoke();
        invocation
            .key(window_key(&key.token))
            .key(reserved_key(&key.token));
        for budget in &key.budgets {
            invocation.key(spend_key(&key.token, budget.period, now));
        }
        let limit = |l: Option<u64>| l.map_or(-1, |l| l as i64);
        invocation
            .arg(now)
            .arg(limit(key.rpm_limit))
            .arg(limit(key.tpm_limit))
            .arg(estimate)
            .arg(reserve.this)
            .arg(u8::from(reserve.alone))
            .arg(u8::from(reserve.known))
            .arg(RESERVATION_TTL_SECS);
        for budget in &key.budgets {
            invocation.arg(budget.max_budget);
        }
        let reply: Vec<String> = self.with(|c| invocation.invoke(c))?;
        let n = |i: usize| {
            reply
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(match reply.first().map(String::as_str) {
            Some("ok") => Ok(Ok(Usage {
                requests: n(1),
                tokens: n(2),
                requests_reset: n(3),
                tokens_reset: n(4),
            })),
            Some("requests") => Ok(Err(Refusal::Requests {
                retry_after: n(1).max(1),
            })),
            Some("tokens") => Ok(Err(Refusal::Tokens {
                retry_after: n(1).max(1),
            })),
            Some("budget") => {
                let index = (n(1) as usize).saturating_sub(1);
                let spent = reply.get(2).and_then(|v| v.parse().ok()).unwrap_or(0.0);
                Err(check_or_refuse(key, index, spent))
            }
            _ => {
                return Err(format!(
                    "unexpected reply from the admission script: {reply:?}"
                ))
            }
        })
    }

    /// Settles one call (see the module).
    #[allow(clippy::too_many_arguments)]
    pub fn settle(
        &self,
        key: &KeyRecord,
        now: i64,
        admitted: i64,
        estimate: u64,
        actual: u64,
        reserved: f64,
        charge: Option<&Charge<'_>>,
        periods: &[Period],
    ) -> Result<(), String> {
        let mut invocation = self.settle.prepare_invoke();
        let today = day(now);
        invocation
            .key(window_key(&key.token))
            .key(reserved_key(&key.token))
            .key(day_key(&today));
        let mut all = vec![Period::Total];
        all.extend(periods.iter().copied().filter(|p| *p != Period::Total));
        for period in &all {
            invocation.key(spend_key(&key.token, *period, now));
        }
        let field = charge.map_or(String::new(), |c| {
            [
                c.key_name,
                c.team.unwrap_or(""),
                c.user.unwrap_or(""),
                c.model,
            ]
            .join("\u{1f}")
        });
        invocation
            .arg(now)
            .arg(admitted)
            .arg(actual as i64 - estimate as i64)
            .arg(reserved)
            .arg(u8::from(charge.is_some()))
            .arg(
                charge
                    .and_then(|c| c.cost)
                    .map_or(String::new(), |c| format!("{c:.12}")),
            )
            .arg(field)
            .arg(charge.map_or(0, |c| c.prompt_tokens))
            .arg(charge.map_or(0, |c| c.completion_tokens))
            .arg(MAX_DAYS * 86_400);
        for period in &all {
            invocation.arg(spend_ttl(*period, now));
        }
        let _: String = self.with(|c| invocation.invoke(c))?;
        Ok(())
    }

    pub fn spent(&self, token: &str, period: Period, now: i64) -> Result<f64, String> {
        let key = spend_key(token, period, now);
        let value: Option<String> = self.with(|c| redis::cmd("GET").arg(&key).query(c))?;
        Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0.0))
    }

    pub fn set_spend(
        &self,
        token: &str,
        periods: &[Period],
        spend: f64,
        now: i64,
    ) -> Result<(), String> {
        self.with(|c| {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for period in periods {
                let key = spend_key(token, *period, now);
                pipe.cmd("SET").arg(&key).arg(spend).ignore();
                let ttl = spend_ttl(*period, now);
                if ttl > 0 {
                    pipe.cmd("EXPIRE").arg(&key).arg(ttl).ignore();
                }
            }
            pipe.query::<()>(c)
        })
    }

    /// The days' totals from `from` to `to` (at most [`MAX_DAYS`] days, ending at `to` or
    /// today).
    pub fn days(&self, from: &str, to: &str, now: i64) -> Result<Vec<DayTotals>, String> {
        let parse = |d: &str| {
            time::Date::parse(d, time::macros::format_description!("[year]-[month]-[day]"))
                .ok()
                .map(|d| d.midnight().assume_utc().unix_timestamp())
        };
        let end = parse(to).unwrap_or(now).min(now);
        let start = parse(from).unwrap_or(end).max(end - MAX_DAYS * 86_400);
        let mut out = Vec::new();
        let mut t = start;
        while t <= end {
            let d = day(t);
            let fields: Vec<(String, String)> =
                self.with(|c| redis::cmd("HGETALL").arg(day_key(&d)).query(c))?;
            let mut by: std::collections::BTreeMap<String, DayTotals> = Default::default();
            for (field, value) in fields {
                let mut parts = field.split('\u{1f}');
                let (Some(key), Some(team), Some(user), Some(model), Some(metric)) = (
                    parts.next(),
                    parts.next(),
                    parts.next(),
                    parts.next(),
                    parts.next(),
                ) else {
                    continue;
                };
                let totals = by
                    .entry(format!("{key}\u{1f}{model}"))
                    .or_insert_with(|| DayTotals {
                        day: d.clone(),
                        key: key.into(),
                        team: Some(team.to_string()).filter(|t| !t.is_empty()),
                        user: Some(user.to_string()).filter(|u| !u.is_empty()),
                        model: model.into(),
                        ..DayTotals::default()
                    });
                let n = value.parse::<f64>().unwrap_or(0.0);
                match metric {
                    "requests" => totals.requests += n as u64,
                    "prompt_tokens" => totals.prompt_tokens += n as u64,
                    "completion_tokens" => totals.completion_tokens += n as u64,
                    "unpriced_requests" => totals.unpriced_requests += n as u64,
                    "spend" => totals.spend += n,
                    _ => {}
                }
            }
            out.extend(by.into_values());
            t += 86_400;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_gateway_key_share_a_hash_tag() {
        let t = "ab".repeat(32);
        for k in [
            window_key(&t),
            reserved_key(&t),
            spend_key(&t, Period::Months(1), 0),
        ] {
            assert!(k.contains(&format!("{{{t}}}")), "{k}");
        }
        assert_eq!(
            crate::access::windows::SECONDS,
            60,
            "the script's window is 60 s too"
        );
        assert_eq!(spend_ttl(Period::Total, 5), 0);
        assert_eq!(spend_ttl(Period::Seconds(10), 5), 5 + WINDOW_GRACE_SECS);
    }
}
