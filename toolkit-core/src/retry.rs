//! Exponential backoff with jitter: the one retry loop of `ping_postgres` and
//! `run_in_transaction`.

use std::time::Duration;

use crate::{Error, Result};

/// How often and how patiently an operation is retried.
///
/// The wait before attempt `n + 1` is drawn uniformly from zero to
/// `initial_delay * factor^(n - 1)` capped at `max_delay` ("full jitter"), so callers that fail
/// together (forty tasks hitting the same serialization failure, a fleet reconnecting after a
/// restart) do not retry in lockstep. The defaults (5 attempts, 500 ms doubling up to 8 s) give
/// up after at most about 7.5 s of waiting; tests use [`RetryPolicy::fast`] to make failures
/// quick.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, including the first one. At least 1.
    pub attempts: u32,
    /// Wait after the first failed attempt.
    pub initial_delay: Duration,
    /// Multiplier applied to the wait after each further failure. At least 1.0.
    pub factor: f64,
    /// Upper bound of any single wait.
    pub max_delay: Duration,
}

/// The one retry loop of the toolkit, spelled by its callers as
/// `loop { match op().await { Err(e) if attempts.retry(e.is_x(), announce).await => continue, .. } }` so
/// that their futures stay `Send` (an async closure passed in here would not be, rust#100013).
#[derive(Debug)]
pub(crate) struct Attempts<'p> {
    policy: &'p RetryPolicy,
    made: u32,
}

/// A retry about to happen, for its caller to announce (an event: a retry nobody hears of
/// makes a failing `init_db` look hung).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Next {
    /// Attempts failed so far.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) failed: u32,
    /// Attempts the policy allows in all.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) attempts: u32,
    /// The wait before the next attempt.
    pub(crate) delay: Duration,
}

impl Attempts<'_> {
    /// Counts a failed attempt; when `retryable` and attempts remain, calls `announce`, waits
    /// the jittered delay and returns true.
    pub(crate) async fn retry(&mut self, retryable: bool, announce: impl FnOnce(&Next)) -> bool {
        self.made += 1;
        if !retryable || self.made >= self.policy.attempts {
            return false;
        }
        let next = Next {
            failed: self.made,
            attempts: self.policy.attempts,
            delay: self.policy.jittered_delay_after(self.made),
        };
        announce(&next);
        tokio::time::sleep(next.delay).await;
        true
    }

    /// Attempts made so far.
    pub(crate) fn made(&self) -> u32 {
        self.made
    }
}

/// Longer waits between attempts are a mistake in the settings, not a policy.
const MAX_DELAY: Duration = Duration::from_secs(24 * 60 * 60);

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial_delay: Duration::from_millis(500),
            factor: 2.0,
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// A policy for tests: `attempts` tries, 10 ms apart.
    pub fn fast(attempts: u32) -> Self {
        RetryPolicy {
            attempts,
            initial_delay: Duration::from_millis(10),
            factor: 1.0,
            max_delay: Duration::from_millis(10),
        }
    }

    /// A policy that tries exactly once.
    pub fn none() -> Self {
        RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The longest wait after failed attempt number `failed` (1-based): the bound the jittered
    /// wait is drawn under.
    pub fn delay_after(&self, failed: u32) -> Duration {
        let exponent = i32::try_from(failed.saturating_sub(1)).unwrap_or(i32::MAX);
        let scaled = self.initial_delay.as_secs_f64() * self.factor.powi(exponent);
        Duration::try_from_secs_f64(scaled).map_or(self.max_delay, |d| d.min(self.max_delay))
    }

    /// The wait actually slept after failed attempt `failed`: uniform in
    /// `0..=delay_after(failed)`.
    pub fn jittered_delay_after(&self, failed: u32) -> Duration {
        self.delay_after(failed).mul_f64(fastrand::f64())
    }

    /// The retry loop's bookkeeping: call [`Attempts::retry`] after each failure.
    pub(crate) fn attempts(&self) -> Attempts<'_> {
        Attempts {
            policy: self,
            made: 0,
        }
    }

    pub(crate) fn validate(&self, field: &'static str) -> Result<()> {
        if self.attempts == 0 {
            return Err(Error::settings(field, "attempts must be at least 1"));
        }
        if self.initial_delay > MAX_DELAY || self.max_delay > MAX_DELAY {
            return Err(Error::settings(
                field,
                format!("delays must be at most {MAX_DELAY:?}"),
            ));
        }
        if !self.factor.is_finite() || self.factor < 1.0 {
            return Err(Error::settings(
                field,
                format!("factor must be a finite number >= 1.0, got {}", self.factor),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_cap() {
        let p = RetryPolicy {
            attempts: 6,
            initial_delay: Duration::from_millis(100),
            factor: 2.0,
            max_delay: Duration::from_millis(500),
        };
        let ms: Vec<u128> = (1..=5).map(|n| p.delay_after(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 500, 500]);
    }

    #[test]
    fn jitter_stays_within_zero_and_the_bound_and_spreads() {
        let p = RetryPolicy {
            attempts: 6,
            initial_delay: Duration::from_millis(100),
            factor: 2.0,
            max_delay: Duration::from_millis(500),
        };
        for failed in 1..=5 {
            let bound = p.delay_after(failed);
            let draws: Vec<Duration> = (0..1000).map(|_| p.jittered_delay_after(failed)).collect();
            assert!(draws.iter().all(|d| *d <= bound), "a wait above {bound:?}");
            // Lockstep would mean one value; full jitter covers the range.
            assert!(
                draws.iter().any(|d| *d < bound / 4),
                "no short wait under {bound:?}"
            );
            assert!(
                draws.iter().any(|d| *d > bound * 3 / 4),
                "no long wait under {bound:?}"
            );
            let distinct: std::collections::HashSet<_> = draws.iter().collect();
            assert!(
                distinct.len() > 900,
                "{} distinct waits of 1000",
                distinct.len()
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_stop_at_the_limit_or_at_a_final_error() {
        let p = RetryPolicy::fast(4);
        let mut attempts = p.attempts();
        let mut announced = Vec::new();
        while attempts
            .retry(true, |next| announced.push((next.failed, next.attempts)))
            .await
        {}
        assert_eq!(announced, [(1, 4), (2, 4), (3, 4)]);
        assert_eq!(attempts.made(), 4);
        let mut attempts = p.attempts();
        assert!(!attempts.retry(false, |_| {}).await);
        assert_eq!(attempts.made(), 1);
    }

    #[test]
    fn huge_exponent_saturates_at_max() {
        let p = RetryPolicy {
            factor: 1e300,
            ..RetryPolicy::default()
        };
        assert_eq!(p.delay_after(u32::MAX), p.max_delay);
    }

    #[test]
    fn invalid_policies_name_the_field() {
        let err = RetryPolicy {
            attempts: 0,
            ..RetryPolicy::default()
        }
        .validate("retry")
        .unwrap_err();
        assert!(matches!(err, Error::InvalidSettings { field: "retry", .. }));
        let err = RetryPolicy {
            factor: f64::NAN,
            ..RetryPolicy::default()
        }
        .validate("retry")
        .unwrap_err();
        assert!(matches!(err, Error::InvalidSettings { field: "retry", .. }));
    }
}
