//! `Pool::status()`: the pool's connections right now, and counters of what happened to it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::Pool;

/// A snapshot of a pool, from [`Pool::status`]: its connections now, and counts since it was
/// created. Counters only grow; compare two snapshots for rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStatus {
    /// Open connections, idle or checked out.
    pub connections: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// Open connections checked out (`connections - idle`).
    pub in_use: u32,
    /// Checkouts waiting for a connection to free up, in arrival order (the pool's fair gate).
    pub waiters: usize,
    /// Connections opened.
    pub connects: u64,
    /// Connect attempts that failed (each retry counts).
    pub connect_failures: u64,
    /// Checkouts that gave up after `pool_timeout`.
    pub checkout_timeouts: u64,
    /// Connections thrown away instead of reused: lost, abandoned after a client-side timeout,
    /// left in doubt, past `max_lifetime`, or closed with the pool. Connections that idled past
    /// `idle_timeout` are closed, not counted here.
    pub discarded: u64,
}

/// The counters behind [`PoolStatus`], shared by the pool and its connections.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) waiters: AtomicUsize,
    pub(crate) connects: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) checkout_timeouts: AtomicU64,
    pub(crate) discarded: AtomicU64,
}

impl Counters {
    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the caller among the waiters until the guard is dropped (a cancelled wait
    /// included).
    pub(crate) fn waiting(&self) -> Waiting<'_> {
        self.waiters.fetch_add(1, Ordering::Relaxed);
        Waiting(&self.waiters)
    }
}

/// One waiter at the gate; see [`Counters::waiting`].
pub(crate) struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pool {
    /// Connections open, idle and in use, checkouts waiting, and counters of connects,
    /// connect failures, checkout timeouts and discarded connections.
    ///
    /// ```no_run
    /// # async fn demo(db: toolkit_core::Database) -> toolkit_core::Result<()> {
    /// let status = db.get_pool().await?.status();
    /// println!("{} of {} connections in use, {} waiting", status.in_use, status.connections, status.waiters);
    /// # Ok(()) }
    /// ```
    pub fn status(&self) -> PoolStatus {
        let state = self.state();
        let counters = &self.shared.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        PoolStatus {
            connections: state.connections,
            idle: state.idle,
            in_use: state.connections.saturating_sub(state.idle),
            waiters: counters.waiters.load(Ordering::Relaxed),
            connects: load(&counters.connects),
            connect_failures: load(&counters.connect_failures),
            checkout_timeouts: load(&counters.checkout_timeouts),
            discarded: load(&counters.discarded),
        }
    }
}
