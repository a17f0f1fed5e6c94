//! Transactions that cannot leak into the pool, whatever is cancelled or dropped.
//!
//! The pooled connection is marked *in doubt* (an [`InDoubt`] guard) before `BEGIN` is sent, and
//! settled only after the server confirmed `COMMIT` or `ROLLBACK`. A guard dropped before that
//! spawns a `ROLLBACK` and settles only once the server confirmed it; when that cannot happen
//! (no runtime, the rollback fails or times out, the connection was abandoned after a
//! `query_timeout`) the pool discards the connection instead of reusing it.

mod builder;
mod manager;
mod query;
mod retry;
mod savepoint;

use std::sync::Mutex;
use std::time::Duration;

use tokio_postgres::Client;

use crate::observe::OpSpan;
use crate::pool::{InDoubt, Session};
use crate::sql::{control, Ident};
use crate::{Connection, Error, Result};

pub use builder::{IsolationLevel, TransactionBuilder};
pub use manager::{DataManager, SchemaManager, TransactionManager};
pub use savepoint::Savepoint;

/// How long a rollback of a dropped guard may take before the connection is discarded instead.
const DROP_ROLLBACK_DEADLINE: Duration = Duration::from_secs(5);

/// An open transaction on a pooled connection it owns.
///
/// `commit` or `rollback` end it; dropping it rolls back. It offers the query API of a client
/// (`execute`, `query`, `query_one`, ...) and nested [`Savepoint`]s. Its statements go through
/// the connection's statement cache and honour `query_timeout`; once that deadline expired,
/// the transaction's connection is given up: every later call, `commit` included, fails and
/// the server rolls the transaction back.
pub struct Transaction {
    conn: Option<Connection>,
    in_doubt: Option<InDoubt>,
    /// A savepoint dropped without commit or rollback: rolled back to before the next statement,
    /// since `Drop` cannot wait for the server.
    pending_rollback_to: Mutex<Option<Ident>>,
    /// The runtime `BEGIN` ran on. A guard dropped where no runtime is current (a sync caller
    /// of `block_on`) needs it for its rollback.
    runtime: Option<tokio::runtime::Handle>,
    /// From the checkout to the end (a dropped guard's rollback included); the statements run
    /// in the transaction are its children.
    span: OpSpan,
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
    pub(crate) async fn begin(conn: Connection, begin: &str, span: OpSpan) -> Result<Transaction> {
        let in_doubt = InDoubt::set(&conn);
        let tx = Transaction {
            conn: Some(conn),
            in_doubt: Some(in_doubt),
            pending_rollback_to: Mutex::new(None),
            runtime: tokio::runtime::Handle::try_current().ok(),
            span,
        };
        let session = tx.raw_session()?;
        session.record_endpoint(&tx.span);
        session.batch_execute(begin).await?;
        Ok(tx)
    }

    /// The transaction's span, parent of the spans of the statements run in it.
    pub(crate) fn span(&self) -> &OpSpan {
        &self.span
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

    /// The underlying client, after any dropped savepoint has been rolled back. Statements sent
    /// on it directly bypass the statement cache and `query_timeout`.
    pub async fn client(&self) -> Result<&Client> {
        self.flush().await?;
        Ok(&**self.connection()?)
    }

    /// The session for the next statement, after any dropped savepoint has been rolled back.
    pub(crate) async fn session(&self) -> Result<Session<'_>> {
        self.flush().await?;
        self.raw_session()
    }

    /// The pooled connection.
    pub(crate) fn connection(&self) -> Result<&Connection> {
        self.conn.as_ref().ok_or_else(|| Error::NotAvailable {
            message: "the transaction is already finished".into(),
        })
    }

    fn raw_session(&self) -> Result<Session<'_>> {
        let session = self.connection().map(Session::in_transaction)?;
        Ok(session.traced_in(&self.span))
    }

    /// Sends the statement that ends the transaction. The connection is settled and released
    /// only once the server confirmed it; on failure it stays in `self`, whose `Drop` (the
    /// caller consumed the guard) rolls back whatever may still be open and then decides
    /// between reuse and discard.
    async fn finish(&mut self, statement: &str) -> Result<()> {
        self.raw_session()?.batch_execute(statement).await?;
        if let Some(in_doubt) = self.in_doubt.take() {
            in_doubt.settle();
        }
        self.conn = None;
        Ok(())
    }

    pub(crate) async fn flush(&self) -> Result<()> {
        let pending = self
            .pending_rollback_to
            .lock()
            .ok()
            .and_then(|mut p| p.take());
        if let Some(name) = pending {
            self.raw_session()?
                .batch_execute(&control::rollback_to_savepoint(&name))
                .await?;
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

    pub(crate) fn clear_deferred_rollback(&self) {
        if let Ok(mut pending) = self.pending_rollback_to.lock() {
            pending.take();
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        let (Some(conn), Some(in_doubt)) = (self.conn.take(), self.in_doubt.take()) else {
            return;
        };
        if conn.is_abandoned() {
            // Nothing more may be sent on it; the pool discards it and the server rolls back.
            return;
        }
        let runtime = tokio::runtime::Handle::try_current()
            .ok()
            .or_else(|| self.runtime.clone());
        let Some(runtime) = runtime else {
            // Begun outside tokio and dropped outside it: nothing can talk to the server, so the
            // connection leaves in doubt and is discarded.
            return;
        };
        // A runtime that is shutting down drops the task unrun, and the connection with it,
        // still in doubt: the pool then parks and discards it (see `Connection`'s `Drop`).
        let _entered = runtime.enter();
        // The span ends with the rollback, not with the guard.
        let span = std::mem::replace(&mut self.span, OpSpan::none());
        runtime.spawn(async move {
            let session = Session::in_transaction(&conn).traced_in(&span);
            let rollback = session.batch_execute("ROLLBACK");
            if let Ok(Ok(())) = tokio::time::timeout(DROP_ROLLBACK_DEADLINE, rollback).await {
                in_doubt.settle();
            }
            drop(conn);
        });
    }
}
