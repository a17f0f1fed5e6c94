//! Pipelining single statements when the pool is saturated.
//!
//! A repository call on a `Database` runs one statement with no session state, so it does not
//! need a connection of its own. When every connection is busy and the pool is at
//! `max_pool_size`, such a call joins a connection already lent to another single statement
//! (up to `pipeline_depth` statements on one connection) instead of queueing for the pool:
//! tokio-postgres pipelines them, and the server's backend never waits for the client between
//! them. Transactions, `connection()` and the COPY route of `create_bulk` always get a
//! connection of their own.
//!
//! A connection whose statement has run for longer than [`STALL`] is not joined: a statement
//! queued behind a slow one would wait for all of it, while in the pool's queue it gets the
//! first connection that frees up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::{Connection, Pool};
use crate::Result;

/// How long a lent connection may go without finishing a statement and still be joined. Point
/// statements finish in well under a millisecond of server time; one that has run this long
/// is likely a slow query, not a busy fast one.
const STALL: Duration = Duration::from_millis(5);

/// When a lent connection last started or finished a statement, in microseconds since
/// [`epoch`]: an atomic instant, so that joining needs no lock per connection.
#[derive(Debug, Default)]
pub(crate) struct Progress(AtomicU64);

impl Progress {
    pub(crate) fn touch(&self) {
        self.0.store(now_micros(), Ordering::Relaxed);
    }

    fn age(&self, now: u64) -> u64 {
        now.saturating_sub(self.0.load(Ordering::Relaxed))
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_micros() -> u64 {
    u64::try_from(epoch().elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// A connection lent to one single statement, possibly pipelined with others; counts itself
/// in the connection's `in_flight` for as long as it lives.
pub(crate) struct Lent(Arc<Connection>);

impl Lent {
    fn new(conn: Arc<Connection>) -> Self {
        conn.pg().in_flight.fetch_add(1, Ordering::SeqCst);
        Lent(conn)
    }

    pub(crate) fn connection(&self) -> &Connection {
        &self.0
    }

    /// No other statement runs on this connection right now.
    pub(crate) fn alone(&self) -> bool {
        self.0.pg().in_flight.load(Ordering::SeqCst) <= 1
    }

    pub(crate) fn touch(&self) {
        self.0.pg().progress.touch();
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.0.pg().in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Pool {
    /// A connection for one single statement: an idle one when there is one, else a lent one
    /// with room, else whatever the pool gives within `pool_timeout`.
    pub(crate) async fn get_for_statement(&self) -> Result<Lent> {
        if self.shared.pipeline_depth > 1 && self.saturated() {
            if let Some(conn) = self.join_lent() {
                self.shared.pipelined.fetch_add(1, Ordering::Relaxed);
                return Ok(conn);
            }
        }
        let conn = Arc::new(self.get().await?);
        if self.shared.pipeline_depth > 1 {
            conn.pg().progress.touch();
            if let Ok(mut lent) = self.shared.lent.lock() {
                lent.retain(|weak| weak.strong_count() > 0);
                lent.push(Arc::downgrade(&conn));
            }
        }
        Ok(Lent::new(conn))
    }

    /// Every connection is open and checked out: waiting would only queue behind them.
    fn saturated(&self) -> bool {
        self.shared.gate.available_permits() == 0
    }

    /// The least loaded lent connection with room for one more statement, among those that
    /// made progress recently; of equally loaded ones, the one that progressed last.
    fn join_lent(&self) -> Option<Lent> {
        let stall = u64::try_from(STALL.as_micros()).unwrap_or(u64::MAX);
        let depth = self.shared.pipeline_depth;
        let now = now_micros();
        let mut lent = self.shared.lent.lock().ok()?;
        lent.retain(|weak| weak.strong_count() > 0);
        lent.iter()
            .filter_map(Weak::upgrade)
            .filter_map(|conn| {
                let pg = conn.pg();
                let in_flight = pg.in_flight.load(Ordering::Acquire);
                let age = pg.progress.age(now);
                let open = in_flight < depth && age < stall && conn.usable();
                open.then_some(((in_flight, age), conn))
            })
            .min_by_key(|(load, _)| *load)
            .map(|(_, conn)| Lent::new(conn))
            // A statement that timed out marks the connection abandoned before it counts who
            // else is on it (to decide on a server-side cancel): checking again after counting
            // ourselves in means either it sees us and sends no cancel, or we see the mark.
            .filter(|lent| lent.connection().usable())
    }
}
