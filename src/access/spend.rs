//! Budgets and spend. A budget is USD over a period (`budget_duration`: `30s`, `5m`, `1h`,
//! `1d`, `30d`, `1mo`, or none for a total); periods are calendar windows in UTC, so a daily
//! budget starts again at midnight and a monthly one on the 1st, whatever the time it was
//! set. The [`Ledger`] keeps, in memory, what each key spent in each of its windows and the
//! day's totals per key and model (for `/admin/spend`); the embedded store persists what
//! changed at most each second. Every function takes the time (`now`, Unix seconds) from its
//! caller, so tests move the clock.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime};

/// How a budget's windows are cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// No reset: the key's whole life.
    Total,
    /// Windows of this many seconds from the Unix epoch (days start at UTC midnight).
    Seconds(u64),
    /// Windows of this many calendar months (from January 1970).
    Months(u32),
}

impl Period {
    /// LiteLLM's `budget_duration`: a number and a unit (`s`, `m`, `h`, `d`, `w`, `mo`).
    pub fn parse(duration: &str) -> Result<Period, String> {
        let d = duration.trim();
        let split = d.find(|c: char| !c.is_ascii_digit()).unwrap_or(d.len());
        let (n, unit) = d.split_at(split);
        let n: u64 =
            n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                format!("{duration:?} is not a duration such as 30s, 1h, 1d, 1mo")
            })?;
        let secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "mo" => return Ok(Period::Months(n as u32)),
            _ => {
                return Err(format!(
                    "{duration:?}: the unit must be s, m, h, d, w or mo"
                ))
            }
        };
        Ok(Period::Seconds(n * secs))
    }

    /// The duration as written back (`1d`, `1mo`).
    pub fn label(&self) -> Option<String> {
        match *self {
            Period::Total => None,
            Period::Months(n) => Some(format!("{n}mo")),
            Period::Seconds(s) if s % 86_400 == 0 => Some(format!("{}d", s / 86_400)),
            Period::Seconds(s) if s % 3600 == 0 => Some(format!("{}h", s / 3600)),
            Period::Seconds(s) if s % 60 == 0 => Some(format!("{}m", s / 60)),
            Period::Seconds(s) => Some(format!("{s}s")),
        }
    }

    /// The window `now` falls in.
    pub fn window(&self, now: i64) -> i64 {
        match *self {
            Period::Total => 0,
            Period::Seconds(s) => now.div_euclid(s as i64),
            Period::Months(n) => month_index(now).div_euclid(n as i64),
        }
    }

    /// When the window `now` falls in ends (Unix seconds), `None` for a total.
    pub fn resets_at(&self, now: i64) -> Option<i64> {
        match *self {
            Period::Total => None,
            Period::Seconds(s) => Some((self.window(now) + 1) * s as i64),
            Period::Months(n) => Some(month_start((self.window(now) + 1) * n as i64)),
        }
    }

    /// The period a [`Period::code`] names.
    pub fn from_code(code: &str) -> Option<Period> {
        if code == "total" {
            return Some(Period::Total);
        }
        if let Some(n) = code.strip_suffix("mo") {
            return n.parse().ok().map(Period::Months);
        }
        code.strip_suffix('s')?.parse().ok().map(Period::Seconds)
    }

    /// A short, stable name for store keys: `total`, `86400s`, `1mo`.
    pub fn code(&self) -> String {
        match *self {
            Period::Total => "total".into(),
            Period::Seconds(s) => format!("{s}s"),
            Period::Months(n) => format!("{n}mo"),
        }
    }
}

/// Months since January 1970 of the UTC date of `now`.
fn month_index(now: i64) -> i64 {
    let t = OffsetDateTime::from_unix_timestamp(now).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    (t.year() as i64 - 1970) * 12 + (t.month() as i64 - 1)
}

/// The Unix time of the first second of a month index.
fn month_start(index: i64) -> i64 {
    let year = 1970 + index.div_euclid(12) as i32;
    let month = Month::try_from(index.rem_euclid(12) as u8 + 1).unwrap_or(Month::January);
    Date::from_calendar_date(year, month, 1)
        .map(|d| d.midnight().assume_utc().unix_timestamp())
        .unwrap_or(i64::MAX)
}

/// A spending limit in USD over a period.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub max_budget: f64,
    pub period: Period,
}

/// The UTC day of `now` as `YYYY-MM-DD`.
pub fn day(now: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(now).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}-{:02}", t.year(), t.month() as u8, t.day())
}

/// One key's spend in one window of one period.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WindowId {
    pub key: String,
    pub period: String,
    pub window: i64,
}

/// The day's totals of one key on one model, as `/admin/spend` groups them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DayTotals {
    pub day: String,
    pub key: String,
    pub team: Option<String>,
    pub user: Option<String>,
    pub model: String,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub spend: f64,
    /// Calls whose cost is unknown (no price): counted, not charged.
    pub unpriced_requests: u64,
}

impl DayTotals {
    pub fn id(&self) -> String {
        format!("{}|{}|{}", self.day, self.key, self.model)
    }
}

/// What one finished call adds.
#[derive(Clone, Debug, Default)]
pub struct Charge<'a> {
    /// The key's hash, hex (windows are per key).
    pub token: &'a str,
    /// The key's name (reports are by name).
    pub key_name: &'a str,
    pub team: Option<&'a str>,
    pub user: Option<&'a str>,
    pub model: &'a str,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// `None`: the model has no known price.
    pub cost: Option<f64>,
}

/// One key's windows: (period, window) → USD.
type KeyWindows = HashMap<(Period, i64), f64>;

/// Spend in memory: every window of every key, and the days' totals, with what changed since
/// the last save. Looked up by borrowed names, so a call's charge allocates only for what is
/// new.
#[derive(Default)]
pub struct Ledger {
    /// Key hash (hex) → its windows.
    windows: HashMap<String, KeyWindows>,
    days: HashMap<String, DayTotals>,
    dirty_windows: HashMap<String, HashSet<(Period, i64)>>,
    dirty_days: HashSet<String>,
    /// The day of the last charge (days since the epoch) and its name, named once a day
    /// rather than on every call.
    today: (i64, String),
}

impl Ledger {
    /// Loads what the store holds.
    pub fn load(windows: Vec<(WindowId, f64)>, days: Vec<DayTotals>) -> Ledger {
        let mut ledger = Ledger {
            days: days.into_iter().map(|d| (d.id(), d)).collect(),
            ..Ledger::default()
        };
        for (id, spent) in windows {
            if let Some(period) = Period::from_code(&id.period) {
                ledger
                    .windows
                    .entry(id.key)
                    .or_default()
                    .insert((period, id.window), spent);
            }
        }
        ledger
    }

    /// What `token` spent in the window of `period` that `now` falls in.
    pub fn spent(&self, token: &str, period: Period, now: i64) -> f64 {
        self.windows
            .get(token)
            .and_then(|w| w.get(&(period, period.window(now))))
            .copied()
            .unwrap_or(0.0)
    }

    /// Adds `cost` to one window of a key, and notes it to save.
    fn add(&mut self, token: &str, window: (Period, i64), cost: f64, replace: bool) {
        let windows = match self.windows.get_mut(token) {
            Some(w) => w,
            None => self.windows.entry(token.to_string()).or_default(),
        };
        let slot = windows.entry(window).or_insert(0.0);
        *slot = if replace { cost } else { *slot + cost };
        let dirty = match self.dirty_windows.get_mut(token) {
            Some(d) => d,
            None => self.dirty_windows.entry(token.to_string()).or_default(),
        };
        dirty.insert(window);
    }

    /// Adds a call: its cost to every window `periods` name for the key (the total always),
    /// its tokens and cost to the day's totals.
    pub fn charge(&mut self, charge: &Charge<'_>, periods: &[Period], now: i64) {
        if let Some(cost) = charge.cost.filter(|c| *c > 0.0) {
            self.add(charge.token, (Period::Total, 0), cost, false);
            for period in periods.iter().filter(|p| **p != Period::Total) {
                self.add(charge.token, (*period, period.window(now)), cost, false);
            }
        }
        let day_index = now.div_euclid(86_400);
        if self.today.1.is_empty() || self.today.0 != day_index {
            self.today = (day_index, day(now));
        }
        let today = &self.today.1;
        let mut id =
            String::with_capacity(today.len() + charge.key_name.len() + charge.model.len() + 2);
        for part in [today, "|", charge.key_name, "|", charge.model] {
            id.push_str(part);
        }
        let entry = match self.days.get_mut(&id) {
            Some(entry) => entry,
            None => self.days.entry(id.clone()).or_insert(DayTotals {
                day: today.clone(),
                key: charge.key_name.to_string(),
                team: charge.team.map(str::to_string),
                user: charge.user.map(str::to_string),
                model: charge.model.to_string(),
                ..DayTotals::default()
            }),
        };
        entry.requests += 1;
        entry.prompt_tokens += charge.prompt_tokens;
        entry.completion_tokens += charge.completion_tokens;
        match charge.cost {
            Some(cost) => entry.spend += cost,
            None => entry.unpriced_requests += 1,
        }
        if !self.dirty_days.contains(&id) {
            self.dirty_days.insert(id);
        }
    }

    /// Sets a key's spend in the current window of each period (`/key/update`'s `spend`).
    pub fn set(&mut self, token: &str, periods: &[Period], spend: f64, now: i64) {
        for period in periods {
            self.add(token, (*period, period.window(now)), spend, true);
        }
    }

    /// What changed since the last call, to save.
    pub fn take_dirty(&mut self) -> (Vec<(WindowId, f64)>, Vec<DayTotals>) {
        let mut windows = Vec::new();
        for (token, changed) in std::mem::take(&mut self.dirty_windows) {
            for (period, window) in changed {
                let spent = self.spent_in(&token, period, window);
                let id = WindowId {
                    key: token.clone(),
                    period: period.code(),
                    window,
                };
                windows.push((id, spent));
            }
        }
        let days = std::mem::take(&mut self.dirty_days)
            .into_iter()
            .filter_map(|id| self.days.get(&id).cloned())
            .collect();
        (windows, days)
    }

    fn spent_in(&self, token: &str, period: Period, window: i64) -> f64 {
        self.windows
            .get(token)
            .and_then(|w| w.get(&(period, window)))
            .copied()
            .unwrap_or(0.0)
    }

    /// Every day's totals (for reports), in day order.
    pub fn days(&self) -> Vec<DayTotals> {
        let mut all: Vec<DayTotals> = self.days.values().cloned().collect();
        all.sort_by(|a, b| (&a.day, &a.key, &a.model).cmp(&(&b.day, &b.key, &b.model)));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-31T23:59:59Z.
    const JAN_31_LAST_SECOND: i64 = 1_769_903_999;

    #[test]
    fn durations_parse_as_litellm_writes_them() {
        assert_eq!(Period::parse("30d"), Ok(Period::Seconds(30 * 86_400)));
        assert_eq!(Period::parse("1mo"), Ok(Period::Months(1)));
        assert_eq!(Period::parse("2h"), Ok(Period::Seconds(7200)));
        assert!(Period::parse("1y").is_err() && Period::parse("d").is_err());
        assert!(Period::parse("0d").is_err());
        assert_eq!(Period::Months(1).label().as_deref(), Some("1mo"));
        assert_eq!(Period::Seconds(86_400).label().as_deref(), Some("1d"));
    }

    #[test]
    fn daily_and_monthly_budgets_roll_over_at_the_utc_day_and_month_boundary() {
        let (daily, monthly) = (Period::Seconds(86_400), Period::Months(1));
        let mut ledger = Ledger::default();
        let charge = Charge {
            token: "k",
            key_name: "team-a",
            model: "mock/echo",
            cost: Some(2.0),
            ..Charge::default()
        };
        let before = JAN_31_LAST_SECOND;
        ledger.charge(&charge, &[daily, monthly], before - 3600);
        ledger.charge(&charge, &[daily, monthly], before);
        assert_eq!(ledger.spent("k", daily, before), 4.0);
        assert_eq!(ledger.spent("k", monthly, before), 4.0);
        assert_eq!(daily.resets_at(before), Some(before + 1));
        assert_eq!(monthly.resets_at(before), Some(before + 1));
        // One second later it is February 1st: both windows start empty, the total stays.
        let after = before + 1;
        assert_eq!(ledger.spent("k", daily, after), 0.0);
        assert_eq!(ledger.spent("k", monthly, after), 0.0);
        assert_eq!(ledger.spent("k", Period::Total, after), 4.0);
        ledger.charge(&charge, &[daily, monthly], after);
        assert_eq!(ledger.spent("k", daily, after), 2.0);
        // The next day is in the same month.
        assert_eq!(ledger.spent("k", monthly, after + 86_400), 2.0);
        assert_eq!(ledger.spent("k", daily, after + 86_400), 0.0);
        assert_eq!(day(before), "2026-01-31");
        for p in [Period::Total, daily, monthly, Period::Seconds(30)] {
            assert_eq!(Period::from_code(&p.code()), Some(p));
        }
        assert_eq!(day(after), "2026-02-01");
    }

    #[test]
    fn unpriced_calls_are_counted_and_not_charged() {
        let mut ledger = Ledger::default();
        let charge = Charge {
            token: "k",
            key_name: "n",
            model: "x",
            prompt_tokens: 5,
            ..Charge::default()
        };
        ledger.charge(&charge, &[], 0);
        let (windows, days) = ledger.take_dirty();
        assert!(windows.is_empty());
        assert_eq!(days[0].unpriced_requests, 1);
        assert_eq!(days[0].prompt_tokens, 5);
        assert_eq!(ledger.take_dirty().1.len(), 0, "saved once");
    }
}
