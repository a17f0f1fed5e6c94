//! Savepoints: real nested `SAVEPOINT`s with validated, quoted names.

use std::ops::Deref;

use super::Transaction;
use crate::sql::{control, Ident};
use crate::Result;

/// A savepoint inside a [`Transaction`] (or inside another savepoint).
///
/// Derefs to the transaction for queries. [`commit`](Savepoint::commit) releases it;
/// [`rollback`](Savepoint::rollback) or dropping it undoes the work done since it was created,
/// keeping the work before it.
#[derive(Debug)]
pub struct Savepoint<'a> {
    tx: &'a mut Transaction,
    name: Ident,
    done: bool,
}

impl<'a> Savepoint<'a> {
    pub(super) async fn create(tx: &'a mut Transaction, name: &str) -> Result<Savepoint<'a>> {
        let name = Ident::new(name)?;
        tx.session()
            .await?
            .batch_execute(&control::savepoint(&name))
            .await?;
        Ok(Savepoint {
            tx,
            name,
            done: false,
        })
    }

    /// A savepoint nested inside this one.
    pub async fn savepoint(&mut self, name: &str) -> Result<Savepoint<'_>> {
        Savepoint::create(self.tx, name).await
    }

    /// `RELEASE SAVEPOINT`: keeps the work, which commits or rolls back with the transaction.
    pub async fn commit(mut self) -> Result<()> {
        let session = self.tx.session().await?;
        self.done = true;
        session
            .batch_execute(&control::release_savepoint(&self.name))
            .await
    }

    /// Undoes the work since the savepoint was created, and removes it.
    pub async fn rollback(mut self) -> Result<()> {
        self.done = true;
        // A deferred rollback to an inner savepoint is covered by this one.
        self.tx.clear_deferred_rollback();
        self.tx
            .raw_session()?
            .batch_execute(&control::rollback_to_savepoint(&self.name))
            .await
    }

    /// The savepoint's name, unquoted.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }
}

impl Deref for Savepoint<'_> {
    type Target = Transaction;

    fn deref(&self) -> &Transaction {
        self.tx
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.tx.defer_rollback_to(self.name.clone());
        }
    }
}
