//! The checked-out connection guard, and where a connection goes when it is given back.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio_postgres::Client;

use super::manager::{Manager, Marks, PgConnection};
use crate::statement_cache::StatementCache;

type Pooled = bb8::PooledConnection<'static, Manager>;

/// A pooled connection; derefs to [`tokio_postgres::Client`] and goes back to the pool on drop.
pub struct Connection {
    // `Some` from checkout until `Drop`, which may move it into a task (see `Drop`).
    conn: Option<Pooled>,
    // Dropped after `conn`: the connection is back in bb8 before the permit lets the next
    // waiter in.
    _permit: tokio::sync::OwnedSemaphorePermit,
    // Checked out for writes through a `Database` with replicas: when it is given back, that
    // handle's next read waits for what was written on it (read-your-writes).
    write_mark: Option<crate::replicas::WriteMark>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("closed", &self.pg().client.is_closed())
            .field("abandoned", &self.is_abandoned())
            .finish()
    }
}

impl Connection {
    pub(super) fn new(conn: Pooled, permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        Connection {
            conn: Some(conn),
            _permit: permit,
            write_mark: None,
        }
    }

    pub(crate) fn with_write_mark(mut self, mark: Option<crate::replicas::WriteMark>) -> Self {
        self.write_mark = mark;
        self
    }

    #[allow(clippy::expect_used)] // `conn` is only taken in `Drop`
    pub(crate) fn pg(&self) -> &PgConnection {
        self.conn
            .as_ref()
            .expect("a connection is present until it is dropped")
    }

    pub(crate) fn marks(&self) -> &Arc<Marks> {
        &self.pg().marks
    }

    pub(crate) fn statements(&self) -> &StatementCache {
        &self.pg().statements
    }

    /// Neither in doubt, abandoned, parked nor closed: safe to run another statement on.
    pub(crate) fn usable(&self) -> bool {
        !self.pg().doomed()
    }

    pub(crate) fn is_abandoned(&self) -> bool {
        self.pg().marks.abandoned.load(Ordering::Acquire)
    }

    /// Gives up on this connection for good: nothing more is sent on it and the pool discards
    /// it. Returns false if it already was.
    pub(crate) fn abandon(&self) -> bool {
        let first = !self.pg().marks.abandoned.swap(true, Ordering::SeqCst);
        if first {
            self.pg().pool.lost.fetch_add(1, Ordering::Relaxed);
        }
        first
    }

    /// Asks the server (on a separate connection, bounded by `connection_timeout`) to cancel
    /// whatever this connection's backend is running, so a stuck statement does not hold locks
    /// until the server notices. Only for an abandoned connection no other statement shares.
    pub(crate) fn cancel_on_server(&self) {
        let pg = self.pg();
        let token = pg.client.cancel_token();
        let limit = pg.limits.cancel;
        let tls = pg.pool.tls.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(limit, token.cancel_query(tls)).await;
            });
        }
    }

    /// Number of prepared statements this connection keeps (bounded by `statement_cache_size`).
    pub fn cached_statements(&self) -> usize {
        self.pg().statements.len()
    }
}

impl Deref for Connection {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.pg().client
    }
}

impl DerefMut for Connection {
    #[allow(clippy::expect_used)] // `conn` is only taken in `Drop`
    fn deref_mut(&mut self) -> &mut Client {
        &mut self
            .conn
            .as_mut()
            .expect("a connection is present until it is dropped")
            .client
    }
}

impl Drop for Connection {
    /// A healthy connection goes straight back. One that bb8 will discard makes bb8 spawn its
    /// replacement, and that spawn panics outside a runtime and is lost inside one that is
    /// shutting down (bb8 then counts a connection that never comes, and the pool starves).
    /// So the discard runs in a task of its own: when that task runs, the runtime is alive;
    /// when it is dropped unrun, or there is no runtime, the connection is parked instead:
    /// kept idle by bb8 and discarded by the next checkout, on a runtime that works.
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if !conn.doomed() {
            return;
        }
        let discard = Discard(Some(conn));
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { discard.now() });
            }
            Err(_) => drop(discard),
        }
    }
}

/// A doomed connection on its way out: discarded when [`Discard::now`] runs, parked when it is
/// dropped without running.
struct Discard(Option<Pooled>);

impl Discard {
    fn now(mut self) {
        if let Some(conn) = self.0.take() {
            conn.condemn();
            drop(conn);
        }
    }
}

impl Drop for Discard {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            conn.marks.parked.store(true, Ordering::Release);
        }
    }
}
