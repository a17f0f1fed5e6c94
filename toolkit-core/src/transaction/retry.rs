//! `run_in_transaction`: commit on `Ok`, roll back on `Err` or panic, retry on 40001/40P01.

use super::{Transaction, TransactionBuilder};
use crate::{Result, RetryPolicy};

impl TransactionBuilder {
    /// Runs `body` in a transaction with these options: commits when it returns `Ok`, rolls back
    /// when it returns `Err` or panics (the panic propagates). A serialization failure (40001) or
    /// deadlock (40P01), from the body or from `COMMIT`, reruns the whole body in a new
    /// transaction under `policy`; after the last attempt the last error is returned. No other
    /// error is retried.
    ///
    /// Inside `tokio::spawn`, give an `async move` closure that owns what it captures: a closure
    /// borrowing its surroundings makes the spawned future fail the `Send` check, a compiler
    /// limitation (rust-lang/rust#100013), not a property of the transaction.
    ///
    /// ```no_run
    /// # async fn demo(db: toolkit_core::Database) -> toolkit_core::Result<()> {
    /// use toolkit_core::{IsolationLevel, RetryPolicy};
    /// let account = 7_i64;
    /// let task = tokio::spawn(async move {
    ///     db.build_transaction()
    ///         .isolation_level(IsolationLevel::Serializable)
    ///         .run(&RetryPolicy::fast(5), async move |tx| {
    ///             tx.execute("UPDATE accounts SET balance = balance + 1 WHERE id = $1", &[&account])
    ///                 .await
    ///         })
    ///         .await
    /// });
    /// # let _ = task.await;
    /// # Ok(()) }
    /// ```
    pub async fn run<T, F>(self, policy: &RetryPolicy, mut body: F) -> Result<T>
    where
        F: AsyncFnMut(&mut Transaction) -> Result<T>,
    {
        let mut attempts = policy.attempts();
        loop {
            match self.clone().attempt(&mut body).await {
                Err(err)
                    if attempts
                        .retry(err.is_retryable(), |next| {
                            crate::observe::transaction_retry(next, &err)
                        })
                        .await =>
                {
                    continue
                }
                outcome => return outcome,
            }
        }
    }

    async fn attempt<T, F>(self, body: &mut F) -> Result<T>
    where
        F: AsyncFnMut(&mut Transaction) -> Result<T>,
    {
        let mut tx = self.begin().await?;
        match body(&mut tx).await {
            Ok(value) => {
                tx.commit().await?;
                Ok(value)
            }
            Err(err) => {
                // The body's error matters more than a failed rollback; a failed rollback leaves
                // the connection in doubt, and the pool discards it.
                let _ = tx.rollback().await;
                Err(err)
            }
        }
    }
}
