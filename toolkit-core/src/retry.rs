//! Exponential backoff used by `ping_postgres` and by `run_in_transaction`.

use std::time::Duration;

use crate::{Error, Result};

/// How often and how patiently an operation is retried.
///
/// Delay before attempt `n + 1` is `initial_delay * factor^(n - 1)`, capped at `max_delay`.
/// The defaults (5 attempts, 500 ms doubling up to 8 s) give up after about 7.5 s of waiting;
/// tests use [`RetryPolicy::fast`] to make failures quick.
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

    /// The wait after failed attempt number `failed` (1-based).
    pub fn delay_after(&self, failed: u32) -> Duration {
        let exponent = i32::try_from(failed.saturating_sub(1)).unwrap_or(i32::MAX);
        let scaled = self.initial_delay.as_secs_f64() * self.factor.powi(exponent);
        Duration::try_from_secs_f64(scaled).map_or(self.max_delay, |d| d.min(self.max_delay))
    }

    pub(crate) fn validate(&self, field: &'static str) -> Result<()> {
        if self.attempts == 0 {
            return Err(Error::settings(field, "attempts must be at least 1"));
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
