//! Each deployment's live state, which the router reads to choose and writes after each
//! attempt: calls in flight (least-busy), recent latency (latency-based), this minute's
//! requests and tokens (rpm/tpm caps, usage-based), and consecutive failures with the
//! cooldown they lead to. After a cooldown one probe request is let through; its outcome
//! ends the cooldown or starts another.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Health {
    in_flight: AtomicUsize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    consecutive_fails: u32,
    cooling_until: Option<Instant>,
    /// A probe after a cooldown is out: nobody else is let through until it answers.
    probing: bool,
    /// Moving average of the latency of successful calls, in seconds.
    latency: Option<f64>,
    /// The minute the counters below count, from the process start.
    minute: u64,
    requests: u64,
    tokens: u64,
}

/// A deployment's caps, per minute.
#[derive(Clone, Copy, Debug, Default)]
pub struct Caps {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
}

/// When failures put a deployment in cooldown, and for how long.
#[derive(Debug)]
pub struct Rules {
    pub allowed_fails: u32,
    pub cooldown: Duration,
}

/// Counts a call in flight while alive.
pub struct InFlight<'h>(&'h Health);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn minute(now: Instant) -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    now.duration_since(*START.get_or_init(Instant::now))
        .as_secs()
        / 60
}

impl Health {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call may go here now: not cooling down (or the one probe after it), under
    /// its caps. Taking the probe slot is part of the answer, so two threads cannot both probe.
    pub fn admit(&self, caps: Caps, tokens: u64, now: Instant) -> bool {
        let mut s = self.state();
        if s.minute != minute(now) {
            (s.minute, s.requests, s.tokens) = (minute(now), 0, 0);
        }
        if caps.rpm.is_some_and(|cap| s.requests >= cap)
            || caps
                .tpm
                .is_some_and(|cap| s.tokens + tokens > cap && s.tokens > 0)
        {
            return false;
        }
        match s.cooling_until {
            Some(until) if now < until || s.probing => false,
            Some(_) => {
                s.probing = true;
                true
            }
            None => true,
        }
    }

    /// Starts a call: counted in flight, against this minute's requests and tokens.
    pub fn begin(&self, tokens: u64) -> InFlight<'_> {
        let mut s = self.state();
        s.requests += 1;
        s.tokens += tokens;
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    pub fn succeeded(&self, latency: Duration) {
        let mut s = self.state();
        (s.consecutive_fails, s.cooling_until, s.probing) = (0, None, false);
        let secs = latency.as_secs_f64();
        s.latency = Some(s.latency.map_or(secs, |avg| 0.7 * avg + 0.3 * secs));
    }

    /// A provider failure: a 429, or the `allowed_fails`-th in a row, starts a cooldown.
    pub fn failed(&self, status: u16, rules: &Rules, now: Instant) {
        let mut s = self.state();
        s.consecutive_fails += 1;
        s.probing = false;
        if status == 429
            || s.consecutive_fails >= rules.allowed_fails.max(1)
            || s.cooling_until.is_some()
        {
            s.cooling_until = Some(now + rules.cooldown);
        }
    }

    /// A failure that says nothing about the deployment (the request's fault): a probe
    /// it was still counts as answered.
    pub fn answered(&self) {
        self.state().probing = false;
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn latency(&self) -> f64 {
        self.state().latency.unwrap_or(0.0)
    }

    pub fn tokens_this_minute(&self, now: Instant) -> u64 {
        let s = self.state();
        if s.minute == minute(now) {
            s.tokens
        } else {
            0
        }
    }

    /// Whether it is cooling down now (for metrics and the dashboard).
    pub fn cooling(&self, now: Instant) -> bool {
        self.state().cooling_until.is_some_and(|until| now < until)
    }

    /// Provider failures since its last success (for metrics).
    pub fn consecutive_fails(&self) -> u32 {
        self.state().consecutive_fails
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cooldown_then_one_probe() {
        let h = Health::default();
        let rules = Rules {
            allowed_fails: 2,
            cooldown: Duration::from_secs(5),
        };
        let t0 = Instant::now();
        let caps = Caps::default();
        h.failed(500, &rules, t0);
        assert!(h.admit(caps, 0, t0), "one failure is allowed");
        h.failed(500, &rules, t0);
        assert!(!h.admit(caps, 0, t0 + Duration::from_secs(4)));
        let later = t0 + Duration::from_secs(6);
        assert!(h.admit(caps, 0, later), "the probe");
        assert!(!h.admit(caps, 0, later), "only one probe");
        h.succeeded(Duration::from_millis(5));
        assert!(h.admit(caps, 0, later));
        h.failed(429, &rules, later);
        assert!(!h.admit(caps, 0, later), "a 429 cools down at once");
    }

    #[test]
    fn rpm_cap() {
        let h = Health::default();
        let caps = Caps {
            rpm: Some(2),
            tpm: None,
        };
        let now = Instant::now();
        for _ in 0..2 {
            assert!(h.admit(caps, 0, now));
            drop(h.begin(0));
        }
        assert!(!h.admit(caps, 0, now));
    }
}
