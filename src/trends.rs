//! History for `/metrics/trends`: per-minute rollups (requests, errors, tokens, cost, a
//! latency histogram) per provider and model (as `/metrics/models` keys them), kept by the
//! recorder thread. Minutes older than 48 hours are
//! folded into hours, and hours older than `LOG_RETENTION_DAYS` are dropped, so memory stays
//! bounded. Every closed minute is appended as one JSON line to
//! `LOG_DIR/llmcallgateway_trends.jsonl`; at start the file is read back (so trends survive a
//! restart) and rewritten without what has expired. Lines written before trends were keyed by
//! provider have no `provider`: they are read back under the provider `""`, which only a query
//! for all providers counts.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::metrics::{Histogram, LATENCY_BOUNDS};

pub const FILE_NAME: &str = "llmcallgateway_trends.jsonl";
/// Minutes are kept this long (seconds); older history is hourly.
pub const MINUTE_HORIZON: i64 = 48 * 3600;
const MINUTE: i64 = 60;
const HOUR: i64 = 3600;

/// One model's traffic in one time slot.
#[derive(Clone, Debug, PartialEq)]
pub struct Rollup {
    pub requests: u64,
    pub errors: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
    pub unpriced: u64,
    pub latency: Histogram,
}

impl Default for Rollup {
    fn default() -> Self {
        Rollup {
            requests: 0,
            errors: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_usd: 0.0,
            unpriced: 0,
            latency: Histogram::new(LATENCY_BOUNDS),
        }
    }
}

impl Rollup {
    fn merge(&mut self, other: &Rollup) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cost_usd += other.cost_usd;
        self.unpriced += other.unpriced;
        self.latency.merge(&other.latency);
    }
}

/// What one request adds to a rollup.
pub struct Sample {
    pub error: bool,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// `None` when the request had usage but no known price.
    pub cost_usd: Option<f64>,
    pub has_usage: bool,
    pub latency_seconds: f64,
}

/// The file form of a rollup: one line per slot, provider and model.
#[derive(Serialize, Deserialize)]
struct Line {
    /// Slot start, Unix seconds.
    t: i64,
    /// `m` for a minute, `h` for an hour.
    g: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    provider: String,
    model: String,
    requests: u64,
    errors: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost_usd: f64,
    unpriced: u64,
    latency_counts: Vec<u64>,
    latency_sum: f64,
}

/// (provider, model).
type Series = (String, String);
type Slots = BTreeMap<i64, BTreeMap<Series, Rollup>>;

pub struct Trends {
    minutes: Slots,
    hours: Slots,
    path: PathBuf,
    /// Seconds of history kept; `None` (`LOG_RETENTION_DAYS=0`): all of it.
    retention: Option<i64>,
    /// What was added since the file was last written, per minute: written as it closes, and
    /// added up with what the file holds when read back (a late request for a minute already
    /// written only adds its own share).
    pending: Slots,
    last_compaction: i64,
}

impl Trends {
    /// Loads the history under `dir`, dropping what is older than `retention_days` (0: none), and
    /// rewrites the file compacted. A missing or partly unreadable file is not an error.
    pub fn load(dir: &Path, retention_days: u32, now: i64) -> Trends {
        let mut trends = Trends {
            minutes: Slots::new(),
            hours: Slots::new(),
            path: dir.join(FILE_NAME),
            retention: (retention_days > 0).then(|| i64::from(retention_days) * 86_400),
            pending: Slots::new(),
            last_compaction: now,
        };
        if let Ok(file) = File::open(&trends.path) {
            for line in BufReader::new(file).lines().map_while(Result::ok) {
                let Ok(l) = serde_json::from_str::<Line>(&line) else {
                    continue;
                };
                if l.latency_counts.len() != LATENCY_BOUNDS.len() + 1 {
                    continue;
                }
                let mut latency = Histogram::new(LATENCY_BOUNDS);
                latency.counts = l.latency_counts;
                latency.sum = l.latency_sum;
                latency.count = latency.counts.iter().sum();
                let rollup = Rollup {
                    requests: l.requests,
                    errors: l.errors,
                    prompt_tokens: l.prompt_tokens,
                    completion_tokens: l.completion_tokens,
                    cost_usd: l.cost_usd,
                    unpriced: l.unpriced,
                    latency,
                };
                let slots = if l.g == "m" {
                    &mut trends.minutes
                } else {
                    &mut trends.hours
                };
                slots
                    .entry(l.t)
                    .or_default()
                    .entry((l.provider, l.model))
                    .or_default()
                    .merge(&rollup);
            }
        }
        trends.expire(now);
        trends.compact();
        trends
    }

    /// Adds one request, at `at` (Unix seconds), for `model` served by `provider`.
    pub fn observe(&mut self, at: i64, provider: &str, model: &str, s: &Sample) {
        let minute = at - at.rem_euclid(MINUTE);
        let mut one = Rollup {
            requests: 1,
            errors: u64::from(s.error),
            prompt_tokens: s.prompt_tokens,
            completion_tokens: s.completion_tokens,
            cost_usd: s.cost_usd.unwrap_or(0.0),
            unpriced: u64::from(s.cost_usd.is_none() && s.has_usage),
            ..Rollup::default()
        };
        one.latency.observe(s.latency_seconds);
        for slots in [&mut self.minutes, &mut self.pending] {
            slots
                .entry(minute)
                .or_default()
                .entry((provider.to_string(), model.to_string()))
                .or_default()
                .merge(&one);
        }
    }

    /// Writes what was added to the minutes that have closed by `now` (to every minute when
    /// `all`, at shutdown), folds old minutes into hours, and compacts the file once a day.
    pub fn persist(&mut self, now: i64, all: bool) {
        let current = now - now.rem_euclid(MINUTE);
        let due: Vec<i64> = self
            .pending
            .keys()
            .copied()
            .filter(|m| all || *m < current)
            .collect();
        if !due.is_empty() {
            let mut out = String::new();
            for minute in due {
                for (series, r) in self.pending.remove(&minute).into_iter().flatten() {
                    out.push_str(&line_text(minute, "m", &series, &r));
                }
            }
            let written = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .and_then(|mut f| f.write_all(out.as_bytes()));
            if let Err(e) = written {
                log::warn!("cannot write {}: {e}", self.path.display());
            }
        }
        self.expire(now);
        if now - self.last_compaction >= 86_400 {
            self.compact();
            self.last_compaction = now;
        }
    }

    /// Folds minutes past the minute horizon into hours; drops hours past retention.
    fn expire(&mut self, now: i64) {
        let horizon = now - MINUTE_HORIZON;
        let old: Vec<i64> = self.minutes.range(..horizon).map(|(t, _)| *t).collect();
        for t in old {
            if let Some(models) = self.minutes.remove(&t) {
                let hour = t - t.rem_euclid(HOUR);
                let slot = self.hours.entry(hour).or_default();
                for (series, r) in models {
                    slot.entry(series).or_default().merge(&r);
                }
            }
        }
        if let Some(retention) = self.retention {
            let cutoff = now - retention;
            self.hours.retain(|t, _| *t >= cutoff);
            self.minutes.retain(|t, _| *t >= cutoff);
        }
    }

    /// Rewrites the file with exactly what is held; nothing is pending after that.
    fn compact(&mut self) {
        self.pending.clear();
        let mut out = String::new();
        for (g, slots) in [("h", &self.hours), ("m", &self.minutes)] {
            for (t, models) in slots {
                for (series, r) in models {
                    out.push_str(&line_text(*t, g, series, r));
                }
            }
        }
        let tmp = self.path.with_extension("jsonl.tmp");
        let result = fs::write(&tmp, out).and_then(|()| fs::rename(&tmp, &self.path));
        if let Err(e) = result {
            log::warn!("cannot rewrite {}: {e}", self.path.display());
        }
    }

    /// The series for the last `hours`, in `bucket`-second slots aligned to UTC, optionally for
    /// one provider, one model, or one model of one provider. Empty slots are present with
    /// zeros, so charts have no gaps.
    pub fn query(
        &self,
        now: i64,
        hours: i64,
        bucket: i64,
        provider: Option<&str>,
        model: Option<&str>,
    ) -> Vec<Value> {
        let start = now - hours * HOUR;
        let first = start - start.rem_euclid(bucket);
        let mut series = Vec::new();
        let mut slot = first;
        while slot <= now {
            let end = slot + bucket;
            let mut sum = Rollup::default();
            for slots in [&self.minutes, &self.hours] {
                for (_, models) in slots.range(slot..end) {
                    for ((p, name), r) in models {
                        if model.is_none_or(|m| m == name) && provider.is_none_or(|w| w == p) {
                            sum.merge(r);
                        }
                    }
                }
            }
            series.push(json!({
                "start": slot,
                "requests": sum.requests,
                "errors": sum.errors,
                "tokens": {
                    "prompt": sum.prompt_tokens,
                    "completion": sum.completion_tokens,
                    "total": sum.prompt_tokens + sum.completion_tokens,
                },
                "cost_usd": sum.cost_usd,
                "unpriced_requests": sum.unpriced,
                "latency_p50": sum.latency.quantile(0.5),
                "latency_p99": sum.latency.quantile(0.99),
            }));
            slot = end;
        }
        series
    }
}

fn line_text(t: i64, g: &str, (provider, model): &Series, r: &Rollup) -> String {
    let line = Line {
        t,
        g: g.into(),
        provider: provider.clone(),
        model: model.clone(),
        requests: r.requests,
        errors: r.errors,
        prompt_tokens: r.prompt_tokens,
        completion_tokens: r.completion_tokens,
        cost_usd: r.cost_usd,
        unpriced: r.unpriced,
        latency_counts: r.latency.counts.clone(),
        latency_sum: r.latency.sum,
    };
    let mut text = serde_json::to_string(&line).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(tokens: u64, latency: f64) -> Sample {
        Sample {
            error: false,
            prompt_tokens: tokens,
            completion_tokens: tokens,
            cost_usd: Some(0.5),
            has_usage: true,
            latency_seconds: latency,
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("llmcg-trends-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn requests_land_in_their_bucket_across_a_boundary() {
        let dir = temp_dir("boundary");
        let t0 = 1_800_000_000; // a multiple of 3600: a minute, 5-minute and hour boundary
        let mut trends = Trends::load(&dir, 14, t0);
        trends.observe(t0 - 1, "p", "a", &sample(1, 0.1)); // last second of the previous slot
        trends.observe(t0, "p", "a", &sample(2, 0.1));
        trends.observe(t0 + 299, "p", "b", &sample(4, 0.1));
        trends.observe(t0 + 300, "p", "a", &sample(8, 0.1));
        let now = t0 + 400;
        let series = trends.query(now, 1, 300, None, None);
        let at = |t: i64| series.iter().find(|s| s["start"] == t).unwrap().clone();
        assert_eq!(at(t0 - 300)["requests"], 1);
        assert_eq!(at(t0)["requests"], 2);
        assert_eq!(at(t0)["tokens"]["prompt"], 6);
        assert_eq!(at(t0 + 300)["requests"], 1);
        let only_b = trends.query(now, 1, 300, None, Some("b"));
        assert_eq!(
            only_b
                .iter()
                .map(|s| s["requests"].as_u64().unwrap())
                .sum::<u64>(),
            1
        );
        let minutes = trends.query(now, 1, 60, None, None);
        assert_eq!(
            minutes.iter().find(|s| s["start"] == t0 + 240).unwrap()["requests"],
            1
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn history_survives_a_restart_and_an_open_minute_is_not_counted_twice() {
        let dir = temp_dir("restart");
        let t0 = 1_800_000_000;
        let mut trends = Trends::load(&dir, 14, t0);
        trends.observe(t0 + 1, "p", "a", &sample(1, 0.2));
        trends.observe(t0 + 61, "p", "a", &sample(1, 0.2));
        trends.persist(t0 + 70, false); // the first minute closed and was written
        trends.persist(t0 + 70, true); // shutdown: the open minute too
        trends.observe(t0 + 75, "p", "a", &sample(1, 0.2)); // more in the same minute
        trends.observe(t0 + 5, "p", "a", &sample(1, 0.2)); // a late one for a written minute
        trends.persist(t0 + 80, true);
        let reloaded = Trends::load(&dir, 14, t0 + 90);
        let series = reloaded.query(t0 + 90, 1, 60, None, None);
        let total: u64 = series.iter().map(|s| s["requests"].as_u64().unwrap()).sum();
        assert_eq!(total, 4);
        assert_eq!(
            series.iter().find(|s| s["start"] == t0).unwrap()["requests"],
            2
        );
        assert_eq!(
            series.iter().find(|s| s["start"] == t0 + 60).unwrap()["requests"],
            2
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn old_minutes_fold_into_hours_and_expire_with_retention() {
        let dir = temp_dir("expire");
        let t0 = 1_800_000_000;
        let mut trends = Trends::load(&dir, 3, t0);
        trends.observe(t0 + 10, "p", "a", &sample(1, 0.2));
        trends.observe(t0 + 130, "p", "a", &sample(1, 0.2));
        trends.persist(t0 + MINUTE_HORIZON + 3600, false);
        assert!(trends.minutes.is_empty());
        assert_eq!(
            trends.hours[&t0][&("p".to_string(), "a".to_string())].requests,
            2
        );
        let day = trends.query(t0 + MINUTE_HORIZON + 3600, 72, 86_400, None, None);
        assert_eq!(
            day.iter()
                .map(|s| s["requests"].as_u64().unwrap())
                .sum::<u64>(),
            2
        );
        trends.persist(t0 + 4 * 86_400, false);
        assert!(trends.hours.is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn series_are_keyed_by_provider_and_model_and_old_lines_read_back() {
        let dir = temp_dir("providers");
        let t0 = 1_800_000_000;
        // A line as written before trends were keyed by provider.
        let old = r#"{"t":1799999940,"g":"m","model":"gpt-4o","requests":4,"errors":0,"prompt_tokens":0,"completion_tokens":0,"cost_usd":0.0,"unpriced":0,"latency_counts":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"latency_sum":0.0}"#;
        fs::write(dir.join(FILE_NAME), format!("{old}\n")).unwrap();
        let mut trends = Trends::load(&dir, 14, t0);
        trends.observe(t0 + 1, "openai", "gpt-4o", &sample(1, 0.1));
        trends.observe(t0 + 2, "azure", "gpt-4o", &sample(1, 0.1));
        trends.observe(t0 + 3, "azure", "gpt-4o", &sample(1, 0.1));
        let total = |p: Option<&str>, m: Option<&str>| -> u64 {
            let series = trends.query(t0 + 90, 1, 3600, p, m);
            series.iter().map(|s| s["requests"].as_u64().unwrap()).sum()
        };
        assert_eq!(total(None, Some("gpt-4o")), 4 + 3);
        assert_eq!(total(Some("azure"), Some("gpt-4o")), 2);
        assert_eq!(total(Some("openai"), None), 1);
        trends.persist(t0 + 120, true);
        let text = fs::read_to_string(dir.join(FILE_NAME)).unwrap();
        assert!(
            text.contains(r#""provider":"azure","model":"gpt-4o""#),
            "{text}"
        );
        let reloaded = Trends::load(&dir, 14, t0 + 120);
        let series = reloaded.query(t0 + 120, 1, 3600, Some("azure"), None);
        let n: u64 = series.iter().map(|s| s["requests"].as_u64().unwrap()).sum();
        assert_eq!(n, 2);
        fs::remove_dir_all(&dir).unwrap();
    }
}
