//! Where a repository runs its statements: a database (one checkout per call), a pooled
//! connection, a transaction or savepoint, or a plain driver client.

use std::pin::pin;
use std::sync::Arc;

use futures_util::TryStreamExt;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, RowStream, Statement};

use crate::statement_cache::StatementCache;
use crate::{Connection, Database, Error, Pool, Result, Savepoint, SqlState, Transaction};

/// Something a [`Repository`](crate::Repository) can run statements on.
pub trait Executor: Sync {
    /// The executor as the repository sees it.
    fn executor(&self) -> ExecutorRef<'_>;
}

/// A borrowed executor of any kind; see [`Executor`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum ExecutorRef<'a> {
    /// Checks out a pooled connection for each call.
    Database(&'a Database),
    /// Checks out a connection from this pool for each call.
    Pool(&'a Pool),
    /// A pooled connection (with its prepared-statement cache).
    Connection(&'a Connection),
    /// A transaction: statements see its uncommitted writes.
    Transaction(&'a Transaction),
    /// A plain driver client: no statement cache, statements prepared per call.
    Client(&'a Client),
}

impl Executor for Database {
    fn executor(&self) -> ExecutorRef<'_> {
        ExecutorRef::Database(self)
    }
}

impl Executor for Pool {
    fn executor(&self) -> ExecutorRef<'_> {
        ExecutorRef::Pool(self)
    }
}

impl Executor for Connection {
    fn executor(&self) -> ExecutorRef<'_> {
        ExecutorRef::Connection(self)
    }
}

impl Executor for Transaction {
    fn executor(&self) -> ExecutorRef<'_> {
        ExecutorRef::Transaction(self)
    }
}

impl Executor for Savepoint<'_> {
    fn executor(&self) -> ExecutorRef<'_> {
        ExecutorRef::Transaction(self)
    }
}

impl Executor for Client {
    fn executor(&self) -> ExecutorRef<'_> {
        ExecutorRef::Client(self)
    }
}

/// A connection ready for one repository call.
// Lives on the stack for one call; boxing the owned connection would cost an allocation per call.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Handle<'a> {
    Owned(Connection),
    /// A connection other single statements may be pipelined on (see `pool/lending.rs`).
    Shared(Arc<Connection>),
    Borrowed(&'a Connection),
    Transaction(&'a Connection),
    Client(&'a Client),
}

impl<'a> ExecutorRef<'a> {
    /// A connection for one statement: from a database or pool, possibly shared with other
    /// pipelined statements.
    pub(crate) async fn acquire(self) -> Result<Handle<'a>> {
        Ok(match self {
            ExecutorRef::Database(db) => {
                Handle::Shared(db.get_pool().await?.get_for_statement().await?)
            }
            ExecutorRef::Pool(pool) => Handle::Shared(pool.get_for_statement().await?),
            other => other.acquire_exclusive().await?,
        })
    }

    /// A connection no other statement runs on meanwhile, for work spanning several statements.
    pub(crate) async fn acquire_exclusive(self) -> Result<Handle<'a>> {
        Ok(match self {
            ExecutorRef::Database(db) => Handle::Owned(db.connection().await?),
            ExecutorRef::Pool(pool) => Handle::Owned(pool.get().await?),
            ExecutorRef::Connection(conn) => Handle::Borrowed(conn),
            ExecutorRef::Transaction(tx) => {
                // A savepoint dropped earlier must be rolled back before our statement runs.
                tx.client().await?;
                Handle::Transaction(tx.connection()?)
            }
            ExecutorRef::Client(client) => Handle::Client(client),
        })
    }
}

impl Handle<'_> {
    pub(crate) fn client(&self) -> &Client {
        match self {
            Handle::Owned(conn) => conn,
            Handle::Shared(conn) => conn,
            Handle::Borrowed(conn) | Handle::Transaction(conn) => conn,
            Handle::Client(client) => client,
        }
    }

    pub(crate) fn connection(&self) -> Option<&Connection> {
        match self {
            Handle::Owned(conn) => Some(conn),
            Handle::Shared(conn) => Some(conn),
            Handle::Borrowed(conn) | Handle::Transaction(conn) => Some(conn),
            Handle::Client(_) => None,
        }
    }

    /// True when the statements run inside a transaction block the caller controls.
    pub(crate) fn in_transaction(&self) -> bool {
        matches!(self, Handle::Transaction(_))
    }

    fn cache(&self) -> Option<&StatementCache> {
        self.connection().map(Connection::statements)
    }

    pub(crate) async fn prepare(&self, sql: &str) -> Result<Statement> {
        match self.cache() {
            Some(cache) => cache.prepare(self.client(), sql).await,
            None => Ok(self.client().prepare(sql).await?),
        }
    }

    /// Starts `sql` through the statement cache. A cached statement the server rejects as
    /// stale is prepared again and started once more (see `may_reprepare`).
    async fn start(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<RowStream> {
        let statement = self.prepare(sql).await?;
        match self
            .client()
            .query_raw(&statement, params.iter().copied())
            .await
        {
            Ok(stream) => Ok(stream),
            Err(err) if self.may_reprepare(&err, sql) => {
                let statement = self.prepare(sql).await?;
                Ok(self
                    .client()
                    .query_raw(&statement, params.iter().copied())
                    .await?)
            }
            Err(err) => Err(Error::from(err)),
        }
    }

    /// Runs `sql` under the query deadline and maps each row as it arrives, so decoding
    /// overlaps the server still sending (and no `Vec<Row>` is held beside the result).
    pub(crate) async fn query_map<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        mut map: impl FnMut(Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.deadline(async {
            let mut stream = pin!(self.start(sql, params).await?);
            let mut out = Vec::new();
            while let Some(row) = stream.try_next().await? {
                out.push(map(row)?);
            }
            Ok(out)
        })
        .await
    }

    /// Runs `sql` under the query deadline and returns its rows.
    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        self.query_map(sql, params, Ok).await
    }

    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        let mut rows = self.query(sql, params).await?;
        Ok(rows.pop())
    }

    pub(crate) async fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        self.query_opt(sql, params)
            .await?
            .ok_or_else(|| Error::InvalidData {
                table: String::new(),
                field: String::new(),
                message: format!("expected one row from {sql}, got none"),
                source: None,
            })
    }

    /// Runs `sql` under the query deadline and returns the number of rows it affected.
    pub(crate) async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        self.deadline(async {
            let mut stream = pin!(self.start(sql, params).await?);
            while stream.try_next().await?.is_some() {}
            Ok(stream.rows_affected().unwrap_or(0))
        })
        .await
    }

    /// A cached statement the server no longer accepts (its table was altered) is prepared
    /// again and run once more, unless we are inside a transaction, which the failure has
    /// already aborted.
    fn may_reprepare(&self, err: &tokio_postgres::Error, sql: &str) -> bool {
        if !is_stale_statement(err) || self.in_transaction() {
            return false;
        }
        if let Some(cache) = self.cache() {
            cache.evict(sql);
        }
        true
    }

    /// Runs `operation` under the connection's `query_timeout`, if it has one.
    pub(crate) async fn deadline<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match self {
            Handle::Shared(conn) => {
                let outcome = conn
                    .within_deadline(operation, Arc::strong_count(conn) == 1)
                    .await;
                conn.progress().touch();
                outcome
            }
            other => match other.connection() {
                Some(conn) => conn.within_deadline(operation, true).await,
                None => operation.await,
            },
        }
    }
}

/// "cached plan must not change result type" (0A000) or a statement the server lost (26000).
fn is_stale_statement(err: &tokio_postgres::Error) -> bool {
    match err.code() {
        Some(code) if *code == SqlState::INVALID_SQL_STATEMENT_NAME => true,
        Some(code) if *code == SqlState::FEATURE_NOT_SUPPORTED => err
            .as_db_error()
            .is_some_and(|db| db.message().contains("cached plan")),
        _ => false,
    }
}
