//! Read-your-writes bookkeeping: WAL positions, the per-handle record of writes, and the token
//! that carries it across requests.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::{Error, Result};

/// A WAL position (`pg_lsn`), as PostgreSQL prints it: `16/B374D848`.
pub(crate) fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.trim().split_once('/')?;
    let high = u64::from_str_radix(high, 16).ok()?;
    let low = u64::from_str_radix(low, 16).ok()?;
    (high <= u64::from(u32::MAX) && low <= u64::from(u32::MAX)).then_some((high << 32) | low)
}

fn format_lsn(lsn: u64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{:X}/{:X}", lsn >> 32, lsn & u64::from(u32::MAX))
}

/// Read-your-writes state to carry across requests (e.g. in a cookie): the primary's WAL
/// position after the writes it stands for. Printed and parsed as PostgreSQL prints a
/// `pg_lsn`.
///
/// ```
/// use toolkit_core::ConsistencyToken;
/// let token: ConsistencyToken = "16/B374D848".parse().unwrap();
/// assert_eq!(token.to_string(), "16/B374D848");
/// assert!("16-B3".parse::<ConsistencyToken>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConsistencyToken(pub(crate) u64);

impl fmt::Display for ConsistencyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        format_lsn(self.0, f)
    }
}

impl FromStr for ConsistencyToken {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        parse_lsn(s).map(ConsistencyToken).ok_or_else(|| {
            Error::invalid_data(
                "ConsistencyToken",
                "",
                format!("{s:?} is not a WAL position such as 16/B374D848"),
                None,
            )
        })
    }
}

/// What one `Database` handle (and its clones) wrote: whether a write finished since the
/// primary's position was last taken, and the position reads must wait for.
#[derive(Debug)]
pub(crate) struct Tracker {
    state: Mutex<State>,
    /// No write under way or ended since the position was taken: reads read `position`
    /// without the lock, which every clone of a `Database` shares.
    quiet: AtomicBool,
    position: AtomicU64,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::starting_at(0)
    }
}

#[derive(Debug, Default)]
struct State {
    /// The position reads wait for; 0 when nothing was written.
    lsn: u64,
    /// Writes under way: a position taken meanwhile may not cover them.
    writing: usize,
    /// Bumped when a write ends: a position taken before that does not cover it.
    ended: u64,
}

impl Tracker {
    pub(crate) fn starting_at(lsn: u64) -> Tracker {
        Tracker {
            state: Mutex::new(State {
                lsn,
                ..State::default()
            }),
            quiet: AtomicBool::new(true),
            position: AtomicU64::new(lsn),
        }
    }

    /// Whether the primary's position must be taken before the next read (and the epoch to
    /// hand back to [`Tracker::covered`]), or the known one serves.
    pub(crate) fn needs_position(&self) -> (bool, u64, u64) {
        if self.quiet.load(Ordering::Acquire) {
            return (false, 0, self.position.load(Ordering::Acquire));
        }
        match self.state.lock() {
            Ok(state) => (state.writing > 0 || state.ended > 0, state.ended, state.lsn),
            Err(_) => (true, 0, 0),
        }
    }

    /// Records the primary's position, taken after every write that had ended by `epoch`.
    pub(crate) fn covered(&self, lsn: u64, epoch: u64) -> u64 {
        let Ok(mut state) = self.state.lock() else {
            return lsn;
        };
        state.lsn = state.lsn.max(lsn);
        self.position.store(state.lsn, Ordering::Release);
        if state.writing == 0 && state.ended == epoch {
            state.ended = 0;
            self.quiet.store(true, Ordering::Release);
        }
        state.lsn
    }
}

/// Held while a write through a handle runs; when it ends, the handle's next read takes the
/// primary's position afresh.
#[derive(Debug)]
pub(crate) struct WriteMark(Arc<Tracker>);

impl WriteMark {
    pub(crate) fn new(tracker: &Arc<Tracker>) -> WriteMark {
        if let Ok(mut state) = tracker.state.lock() {
            state.writing += 1;
            tracker.quiet.store(false, Ordering::Release);
        }
        WriteMark(tracker.clone())
    }
}

impl Drop for WriteMark {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.state.lock() {
            state.writing = state.writing.saturating_sub(1);
            state.ended = state.ended.wrapping_add(1).max(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_text_round_trips() {
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(parse_lsn("FFFFFFFF/FFFFFFFF"), Some(u64::MAX));
        assert_eq!(parse_lsn("1/100000000"), None);
        assert_eq!(parse_lsn("x/1"), None);
        assert_eq!(ConsistencyToken(0x16_B374_D848).to_string(), "16/B374D848");
    }

    #[test]
    fn a_position_taken_during_a_write_does_not_cover_it() {
        let tracker = Arc::new(Tracker::default());
        assert_eq!(tracker.needs_position(), (false, 0, 0));
        let mark = WriteMark::new(&tracker);
        let (needed, epoch, _) = tracker.needs_position();
        assert!(needed);
        // Taken while the write runs: kept, but the next read must take it again.
        assert_eq!(tracker.covered(10, epoch), 10);
        assert!(tracker.needs_position().0);
        drop(mark);
        let (needed, epoch, _) = tracker.needs_position();
        assert!(needed);
        assert_eq!(tracker.covered(20, epoch), 20);
        assert_eq!(tracker.needs_position(), (false, 0, 20));
        // A write that ended after the position was taken is not covered by it.
        let (_, epoch, _) = {
            drop(WriteMark::new(&tracker));
            tracker.needs_position()
        };
        drop(WriteMark::new(&tracker));
        tracker.covered(30, epoch);
        assert!(tracker.needs_position().0);
    }
}
