//! Timing samples and the printed table.

use std::time::Duration;

/// One run of one workload on one side.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Operations (or rows) per second.
    pub rate: f64,
    /// Per-operation latencies, when the workload has operations.
    pub latencies: Vec<Duration>,
}

impl Run {
    pub fn from_ops(latencies: Vec<Duration>, total: Duration) -> Run {
        let rate = latencies.len() as f64 / total.as_secs_f64();
        Run { rate, latencies }
    }

    pub fn from_rows(rows: usize, total: Duration) -> Run {
        Run {
            rate: rows as f64 / total.as_secs_f64(),
            latencies: vec![total],
        }
    }

    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let rank = ((sorted.len() - 1) as f64 * p).round();
        // The rank is within 0..len by construction.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        sorted[rank as usize]
    }
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

pub fn fmt_rate(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2}M", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1}k", rate / 1e3)
    } else {
        format!("{rate:.0}")
    }
}

pub fn fmt_dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.1}ms", us / 1000.0)
    } else {
        format!("{us:.0}µs")
    }
}
