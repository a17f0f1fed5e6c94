//! Transactions that cannot leak into the pool, whatever is cancelled or dropped.
//!
//! The pooled connection is marked *in doubt* before `BEGIN` is sent and marked clean only after
//! the server confirmed `COMMIT` or `ROLLBACK`. A guard dropped before that spawns a `ROLLBACK`
//! and returns the connection only once the server confirmed it; when that cannot happen (no
//! runtime, the rollback fails or times out) the pool discards the connection instead of
//! reusing it.

mod builder;
mod manager;
mod query;
mod retry;
mod savepoint;

use std::sync::Mutex;
use std::time::Duration;

use tokio_postgres::Client;

use crate::sql::Ident;
use crate::{Connection, Error, Result};

pub use builder::{IsolationLevel, TransactionBuilder};
pub use manager::{DataManager, SchemaManager, TransactionManager};
pub use savepoint::Savepoint;

/// How long a rollback of a dropped guard may take before the connection is discarded instead.
const DROP_ROLLBACK_DEADLINE: Duration = Duration::from_secs(5);

/// An open transaction on a pooled connection it owns.
///
/// `commit` or `rollback` end it; dropping it rolls back. It offers the query API of a client
/// (`execute`, `query`, `query_one`, ...) and nested [`Savepoint`]s.
pub struct Transaction {
    conn: Option<Connection>,
    /// A savepoint dropped without commit or rollback: rolled back to before the next statement,
    /// since `Drop` cannot wait for the server.
    pending_rollback_to: Mutex<Option<Ident>>,
    /// The runtime `BEGIN` ran on. A guard dropped where no runtime is current (a sync caller
    /// of `block_on`) needs it for its rollback; without one, the pool would have to discard
    /// the connection from a thread where it cannot spawn the replacement, and panics.
    runtime: Option<tokio::runtime::Handle>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("open", &self.conn.is_some())
            .finish()
    }
}

impl Transaction {
    /// Sends `begin` on `conn`, which is marked in doubt before the statement leaves, so a
    /// cancelled `BEGIN` can never hand an open transaction to the next user.
    pub(crate) async fn begin(conn: Connection, begin: &str) -> Result<Transaction> {
        conn.set_in_doubt(true);
        let tx = Transaction {
            conn: Some(conn),
            pending_rollback_to: Mutex::new(None),
            runtime: tokio::runtime::Handle::try_current().ok(),
        };
        tx.raw_client()?.batch_execute(begin).await?;
        Ok(tx)
    }

    /// Commits. On failure the transaction is over and rolled back, except when the connection
    /// was lost while `COMMIT` was in flight: then its outcome is unknown.
    ///
    /// When an earlier statement failed and left the transaction aborted, this fails with
    /// SQLSTATE 25P02 (`in_failed_sql_transaction`) and rolls back.
    pub async fn commit(mut self) -> Result<()> {
        self.flush().await?;
        // The server answers `COMMIT` of an aborted transaction with a rollback, and the driver
        // cannot tell that from success. `SELECT 1` fails with 25P02 in an aborted transaction,
        // and the rest of the batch is then skipped, so that case surfaces as an error; in the
        // same message, it costs no round trip.
        self.finish("SELECT 1; COMMIT").await
    }

    /// Rolls back everything done in this transaction.
    pub async fn rollback(mut self) -> Result<()> {
        self.finish("ROLLBACK").await
    }

    /// Creates a savepoint named `name` (validated and quoted). Dropping the returned guard
    /// without [`Savepoint::commit`] rolls back to it, keeping the work done before it.
    pub async fn savepoint(&mut self, name: &str) -> Result<Savepoint<'_>> {
        Savepoint::create(self, name).await
    }

    /// The underlying client, after any dropped savepoint has been rolled back.
    pub async fn client(&self) -> Result<&Client> {
        self.flush().await?;
        self.raw_client()
    }

    /// The pooled connection, for the repository's statement cache (flush first).
    pub(crate) fn connection(&self) -> Result<&Connection> {
        self.conn.as_ref().ok_or_else(|| Error::NotAvailable {
            message: "the transaction is already finished".into(),
        })
    }

    fn raw_client(&self) -> Result<&Client> {
        self.conn.as_deref().ok_or_else(|| Error::NotAvailable {
            message: "the transaction is already finished".into(),
        })
    }

    /// Sends the statement that ends the transaction. The connection is released as clean only
    /// once the server confirmed it; on failure it stays in `self`, whose `Drop` (the caller
    /// consumed the guard) rolls back whatever may still be open and then decides between
    /// reuse and discard.
    async fn finish(&mut self, statement: &str) -> Result<()> {
        self.raw_client()?.batch_execute(statement).await?;
        if let Some(conn) = self.conn.take() {
            conn.set_in_doubt(false);
        }
        Ok(())
    }

    pub(crate) async fn flush(&self) -> Result<()> {
        let pending = self
            .pending_rollback_to
            .lock()
            .ok()
            .and_then(|mut p| p.take());
        if let Some(name) = pending {
            let quoted = name.quoted();
            let statement = format!("ROLLBACK TO SAVEPOINT {quoted}; RELEASE SAVEPOINT {quoted}");
            self.raw_client()?.batch_execute(&statement).await?;
        }
        Ok(())
    }

    pub(crate) fn defer_rollback_to(&self, name: Ident) {
        if let Ok(mut pending) = self.pending_rollback_to.lock() {
            // Savepoints drop innermost first, so the latest one dropped is the outermost:
            // rolling back to it also undoes the inner ones.
            *pending = Some(name);
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let runtime = tokio::runtime::Handle::try_current()
            .ok()
            .or_else(|| self.runtime.clone());
        let Some(runtime) = runtime else {
            // Begun outside tokio and dropped outside it: nothing can talk to the server, so the
            // connection leaves the pool in doubt and is discarded.
            return;
        };
        // A runtime that is shutting down drops the task, and the connection in it, right in
        // `spawn`; the pool then discards the connection and must find a runtime to spawn its
        // replacement on.
        let _entered = runtime.enter();
        runtime.spawn(async move {
            let rolled_back =
                tokio::time::timeout(DROP_ROLLBACK_DEADLINE, conn.batch_execute("ROLLBACK")).await;
            if matches!(rolled_back, Ok(Ok(()))) {
                conn.set_in_doubt(false);
            }
        });
    }
}
