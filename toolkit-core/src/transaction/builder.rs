//! Isolation level, read only and deferrable, rendered into one `BEGIN` statement.

use crate::observe::OpSpan;
use crate::{Database, Result, Transaction};

/// Transaction isolation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IsolationLevel {
    /// The server's default (normally read committed).
    #[default]
    Default,
    /// `READ COMMITTED`.
    ReadCommitted,
    /// `REPEATABLE READ`.
    RepeatableRead,
    /// `SERIALIZABLE`.
    Serializable,
}

/// Options of a transaction; start it with [`begin`](TransactionBuilder::begin).
///
/// ```no_run
/// # async fn demo(db: toolkit_core::Database) -> toolkit_core::Result<()> {
/// use toolkit_core::IsolationLevel;
/// let tx = db.build_transaction().isolation_level(IsolationLevel::Serializable).read_only(true).begin().await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a transaction builder does nothing until `begin` is called"]
pub struct TransactionBuilder {
    db: Database,
    isolation: IsolationLevel,
    read_only: Option<bool>,
    deferrable: Option<bool>,
}

impl TransactionBuilder {
    pub(crate) fn new(db: Database) -> Self {
        TransactionBuilder {
            db,
            isolation: IsolationLevel::Default,
            read_only: None,
            deferrable: None,
        }
    }

    /// Sets the isolation level.
    pub fn isolation_level(mut self, level: IsolationLevel) -> Self {
        self.isolation = level;
        self
    }

    /// `READ ONLY` (true) or `READ WRITE` (false).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = Some(read_only);
        self
    }

    /// `DEFERRABLE` (only meaningful for serializable read-only transactions).
    pub fn deferrable(mut self, deferrable: bool) -> Self {
        self.deferrable = Some(deferrable);
        self
    }

    /// Checks out a connection and sends `BEGIN` with these options.
    pub async fn begin(self) -> Result<Transaction> {
        let span = OpSpan::transaction();
        let conn = match self.db.connection().await {
            Ok(conn) => conn,
            Err(err) => {
                span.record_error(&err);
                return Err(err);
            }
        };
        Transaction::begin(conn, &self.statement(), span).await
    }

    /// The `BEGIN` statement, composed only of fixed keywords.
    pub(crate) fn statement(&self) -> String {
        let mut sql = String::from("BEGIN");
        sql.push_str(match self.isolation {
            IsolationLevel::Default => "",
            IsolationLevel::ReadCommitted => " ISOLATION LEVEL READ COMMITTED",
            IsolationLevel::RepeatableRead => " ISOLATION LEVEL REPEATABLE READ",
            IsolationLevel::Serializable => " ISOLATION LEVEL SERIALIZABLE",
        });
        sql.push_str(match self.read_only {
            None => "",
            Some(true) => " READ ONLY",
            Some(false) => " READ WRITE",
        });
        sql.push_str(match self.deferrable {
            None => "",
            Some(true) => " DEFERRABLE",
            Some(false) => " NOT DEFERRABLE",
        });
        sql.push_str(&self.db.settings().begin_suffix());
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DatabaseSettings;

    #[test]
    fn begin_statements() {
        let db = Database::new(DatabaseSettings::default()).unwrap();
        let b = || TransactionBuilder::new(db.clone());
        assert_eq!(b().statement(), "BEGIN");
        assert_eq!(
            b().isolation_level(IsolationLevel::Serializable)
                .read_only(true)
                .deferrable(true)
                .statement(),
            "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE"
        );
        assert_eq!(
            b().isolation_level(IsolationLevel::RepeatableRead)
                .read_only(false)
                .statement(),
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ WRITE"
        );
        assert_eq!(
            b().isolation_level(IsolationLevel::ReadCommitted)
                .statement(),
            "BEGIN ISOLATION LEVEL READ COMMITTED"
        );
    }
}
