//! Pipelining single statements when the pool is saturated.
//!
//! A repository call on a `Database` runs one statement with no session state, so it does not
//! need a connection of its own. When every connection is busy and the pool is at
//! `max_pool_size`, such a call joins a connection already lent to another single statement
//! (up to `pipeline_depth` statements on one connection) instead of queueing for the pool:
//! tokio-postgres pipelines them, and the server's backend never waits for the client between
//! them. Transactions, `connection()` and the COPY route of `create_bulk` always get a
//! connection of their own.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::{Connection, Pool};
use crate::Result;

impl Pool {
    /// A connection for one single statement: an idle one when there is one, else a lent one
    /// with room, else whatever the pool gives within `pool_timeout`.
    pub(crate) async fn get_for_statement(&self) -> Result<Arc<Connection>> {
        if self.shared.pipeline_depth > 1 && self.saturated() {
            if let Some(conn) = self.join_lent() {
                self.shared.pipelined.fetch_add(1, Ordering::Relaxed);
                return Ok(conn);
            }
        }
        let conn = Arc::new(self.get().await?);
        if self.shared.pipeline_depth > 1 {
            if let Ok(mut lent) = self.shared.lent.lock() {
                lent.retain(|weak| weak.strong_count() > 0);
                lent.push(Arc::downgrade(&conn));
            }
        }
        Ok(conn)
    }

    /// Every connection is open and checked out: waiting would only queue behind them.
    fn saturated(&self) -> bool {
        self.shared.gate.available_permits() == 0
    }

    /// The least loaded lent connection with room for one more statement.
    fn join_lent(&self) -> Option<Arc<Connection>> {
        let mut lent = self.shared.lent.lock().ok()?;
        lent.retain(|weak| weak.strong_count() > 0);
        let best = lent
            .iter()
            .filter_map(Weak::upgrade)
            // One reference is ours from `upgrade`; the rest are statements in flight.
            .filter(|conn| {
                Arc::strong_count(conn) - 1 < self.shared.pipeline_depth && conn.usable()
            })
            .min_by_key(Arc::strong_count)?;
        Some(best)
    }
}
