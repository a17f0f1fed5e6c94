//! `TransactionManager` and the schema / test-data managers, all on one transaction.

use std::future::Future;

use super::{Transaction, TransactionBuilder};
use crate::sql::{control, Ident};
use crate::{Database, Result};

/// Creates and drops a schema (tables, types, ...) around a body, inside its transaction.
pub trait SchemaManager: Sync {
    /// What `create_schema` hands to the body (e.g. table names).
    type Schema: Send + Sync;
    /// Creates the schema.
    fn create_schema(&self, tx: &Transaction) -> impl Future<Output = Result<Self::Schema>> + Send;
    /// Drops it again.
    fn drop_schema(&self, tx: &Transaction) -> impl Future<Output = Result<()>> + Send;
}

/// Inserts and removes test data around a body, inside its transaction.
pub trait DataManager: Sync {
    /// What `setup_data` hands to the body (e.g. the ids it inserted).
    type Data: Send + Sync;
    /// Inserts the data.
    fn setup_data(&self, tx: &Transaction) -> impl Future<Output = Result<Self::Data>> + Send;
    /// Removes it again.
    fn cleanup_data(&self, tx: &Transaction) -> impl Future<Output = Result<()>> + Send;
}

/// Transactions on a [`Database`]: plain, retried, or managed with a schema and test data.
#[derive(Debug, Clone)]
pub struct TransactionManager {
    db: Database,
}

impl TransactionManager {
    pub(crate) fn new(db: Database) -> Self {
        TransactionManager { db }
    }

    /// Begins a transaction with default options.
    pub async fn transaction(&self) -> Result<Transaction> {
        self.db.transaction().await
    }

    /// A builder for isolation level, read only and deferrable.
    pub fn build_transaction(&self) -> TransactionBuilder {
        self.db.build_transaction()
    }

    /// See [`Database::run_in_transaction`].
    pub async fn run_in_transaction<T, F>(&self, body: F) -> Result<T>
    where
        F: AsyncFnMut(&mut Transaction) -> Result<T>,
    {
        self.db.run_in_transaction(body).await
    }

    /// Creates the schema, runs `body` with it, drops the schema, all in one transaction on one
    /// connection. See [`managed_transaction`](TransactionManager::managed_transaction).
    pub async fn with_schema<S, T, F>(&self, schema: &S, body: F) -> Result<T>
    where
        S: SchemaManager,
        F: AsyncFnOnce(&mut Transaction, &S::Schema) -> Result<T>,
    {
        let mut tx = self.transaction().await?;
        let created = schema.create_schema(&tx).await?;
        let outcome = guarded(&mut tx, async |tx| body(tx, &created).await).await;
        let cleanup = schema.drop_schema(&tx).await;
        conclude(tx, outcome, cleanup).await
    }

    /// Sets up the data, runs `body` with it, cleans the data up, all in one transaction.
    pub async fn with_test_data<D, T, F>(&self, data: &D, body: F) -> Result<T>
    where
        D: DataManager,
        F: AsyncFnOnce(&mut Transaction, &D::Data) -> Result<T>,
    {
        let mut tx = self.transaction().await?;
        let set_up = data.setup_data(&tx).await?;
        let outcome = guarded(&mut tx, async |tx| body(tx, &set_up).await).await;
        let cleanup = data.cleanup_data(&tx).await;
        conclude(tx, outcome, cleanup).await
    }

    /// Schema first, then data, then `body`; afterwards data is cleaned up and the schema
    /// dropped, whether `body` succeeded or failed, all on ONE connection in ONE transaction so
    /// the body sees both. The body's error is what the caller gets; a cleanup failure after a
    /// successful body is returned instead of committing. The work of a failed body is rolled
    /// back; the work of a successful one is committed.
    pub async fn managed_transaction<S, D, T, F>(
        &self,
        schema: Option<&S>,
        data: Option<&D>,
        body: F,
    ) -> Result<T>
    where
        S: SchemaManager,
        D: DataManager,
        F: AsyncFnOnce(&mut Transaction) -> Result<T>,
    {
        let mut tx = self.transaction().await?;
        let _created = match schema {
            Some(schema) => Some(schema.create_schema(&tx).await?),
            None => None,
        };
        let _set_up = match data {
            Some(data) => Some(data.setup_data(&tx).await?),
            None => None,
        };
        let outcome = guarded(&mut tx, body).await;
        let mut cleanup = Ok(());
        if let Some(data) = data {
            cleanup = data.cleanup_data(&tx).await;
        }
        if let Some(schema) = schema {
            let dropped = schema.drop_schema(&tx).await;
            cleanup = cleanup.and(dropped);
        }
        conclude(tx, outcome, cleanup).await
    }
}

/// Runs the body inside a savepoint, so that a failing body leaves the transaction usable for
/// the cleanup that follows.
async fn guarded<T, F>(tx: &mut Transaction, body: F) -> Result<T>
where
    F: AsyncFnOnce(&mut Transaction) -> Result<T>,
{
    let name = Ident::new("toolkit_managed_body")?;
    tx.batch_execute(&control::savepoint(&name)).await?;
    let outcome = body(tx).await;
    if outcome.is_err() {
        // The body's error is the one the caller needs. When this rollback fails too (the
        // connection is gone), the cleanup fails after it and the transaction is rolled back
        // anyway.
        let _ = tx
            .batch_execute(&control::rollback_to_savepoint_keep(&name))
            .await;
    }
    outcome
}

async fn conclude<T>(tx: Transaction, outcome: Result<T>, cleanup: Result<()>) -> Result<T> {
    match (outcome, cleanup) {
        (Ok(value), Ok(())) => {
            tx.commit().await?;
            Ok(value)
        }
        (Ok(_), Err(cleanup_err)) => {
            let _ = tx.rollback().await;
            Err(cleanup_err)
        }
        (Err(body_err), _) => {
            // Rolling back removes the schema and data even where their cleanup failed; the
            // body's own error is the one the caller needs.
            let _ = tx.rollback().await;
            Err(body_err)
        }
    }
}
