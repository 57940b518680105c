//! Requests and tokens per minute as sliding windows of sixty one-second buckets: a request is
//! admitted when the last 60 seconds hold fewer than `rpm` requests and, counting its estimated
//! tokens, no more than `tpm` tokens (a window with no tokens admits one request whatever its
//! size, so one large prompt is not refused for ever); its real usage replaces the estimate
//! when it ends. Memory is bounded by the bucket count, not by the limit. The Redis backend
//! keeps the same buckets in a hash, changed by one script (`redis.rs`).

/// Buckets in a window: one per second of a minute.
pub const SECONDS: i64 = 60;

/// Limits as admitted: what the `x-ratelimit-*` headers report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub requests: u64,
    pub tokens: u64,
    /// Seconds until the oldest request, and the oldest tokens, leave the window.
    pub requests_reset: u64,
    pub tokens_reset: u64,
}

/// Why a request was refused, and when to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Requests { retry_after: u64 },
    Tokens { retry_after: u64 },
}

/// One key's window: `(second, requests, tokens)` per bucket, oldest first.
#[derive(Default, Debug)]
pub struct Window {
    buckets: std::collections::VecDeque<(i64, u64, i64)>,
}

impl Window {
    fn expire(&mut self, now: i64) {
        while self.buckets.front().is_some_and(|b| b.0 <= now - SECONDS) {
            self.buckets.pop_front();
        }
    }

    /// Requests and tokens in the window, and when each first goes down.
    fn usage(&self, now: i64) -> Usage {
        let requests = self.buckets.iter().map(|b| b.1).sum();
        let tokens: i64 = self.buckets.iter().map(|b| b.2).sum();
        let reset = |first: Option<i64>| first.map_or(0, |s| (s + SECONDS - now).max(1) as u64);
        Usage {
            requests,
            tokens: tokens.max(0) as u64,
            requests_reset: reset(self.buckets.iter().find(|b| b.1 > 0).map(|b| b.0)),
            tokens_reset: reset(self.buckets.iter().find(|b| b.2 > 0).map(|b| b.0)),
        }
    }

    /// Admits one request estimated at `tokens` at second `now` against the limits, or says
    /// which limit it hit. Returns the usage counting this request.
    pub fn admit(
        &mut self,
        now: i64,
        rpm: Option<u64>,
        tpm: Option<u64>,
        tokens: u64,
    ) -> Result<Usage, Refusal> {
        self.expire(now);
        let used = self.usage(now);
        if rpm.is_some_and(|rpm| used.requests >= rpm) {
            return Err(Refusal::Requests {
                retry_after: used.requests_reset.max(1),
            });
        }
        if tpm.is_some_and(|tpm| used.tokens > 0 && used.tokens + tokens > tpm) {
            return Err(Refusal::Tokens {
                retry_after: used.tokens_reset.max(1),
            });
        }
        match self.buckets.back_mut() {
            Some(b) if b.0 == now => {
                b.1 += 1;
                b.2 += tokens as i64;
            }
            _ => self.buckets.push_back((now, 1, tokens as i64)),
        }
        Ok(self.usage(now))
    }

    /// Replaces a request's estimate (admitted at second `admitted`) with its real tokens.
    pub fn settle(&mut self, now: i64, admitted: i64, estimate: u64, actual: u64) {
        self.expire(now);
        let delta = actual as i64 - estimate as i64;
        if delta == 0 {
            return;
        }
        if let Some(b) = self.buckets.iter_mut().find(|b| b.0 == admitted) {
            b.2 += delta;
        } else if delta > 0 {
            // The admission's second has left the window: the excess counts from now.
            match self.buckets.back_mut() {
                Some(b) if b.0 == now => b.2 += delta,
                _ => self.buckets.push_back((now, 0, delta)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rpm_window_slides_second_by_second() {
        let mut w = Window::default();
        for s in 0..3 {
            assert!(w.admit(100 + s, Some(3), None, 0).is_ok());
        }
        assert_eq!(
            w.admit(130, Some(3), None, 0),
            Err(Refusal::Requests { retry_after: 30 })
        );
        // At 160 the request of second 100 has left the window; the other two have not.
        let usage = w.admit(160, Some(3), None, 0).unwrap();
        assert_eq!(usage.requests, 3);
        assert!(w.admit(160, Some(3), None, 0).is_err());
    }

    #[test]
    fn tokens_are_admitted_on_the_estimate_and_settled_on_the_usage() {
        let mut w = Window::default();
        // An empty window admits even a request larger than the limit.
        assert!(w.admit(0, None, Some(100), 500).is_ok());
        w.settle(1, 0, 500, 40);
        assert_eq!(w.admit(2, None, Some(100), 50).unwrap().tokens, 90);
        assert_eq!(
            w.admit(3, None, Some(100), 20),
            Err(Refusal::Tokens { retry_after: 57 })
        );
        w.settle(4, 2, 50, 0);
        assert!(w.admit(5, None, Some(100), 20).is_ok());
    }
}
