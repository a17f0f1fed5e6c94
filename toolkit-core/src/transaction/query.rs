//! The client query API on a transaction: each call preceded by any deferred savepoint rollback
//! and sent through the connection's session (statement cache, `query_timeout`).

use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, SimpleQueryMessage, Statement};

use super::Transaction;
use crate::observe::Op;
use crate::pool::{text_of, AsStatement, Session};
use crate::Result;

impl Transaction {
    /// The session for one of the caller's statements, in a span of its own under the
    /// transaction's.
    async fn traced(&self, text: Option<&str>) -> Result<Session<'_>> {
        let session = self.session().await?;
        Ok(session.traced(Op::sql(text).span(Some(self.span()))))
    }

    /// Like [`tokio_postgres::Client::execute`]: runs a statement, returns the rows affected.
    pub async fn execute<S>(&self, statement: &S, params: &[&(dyn ToSql + Sync)]) -> Result<u64>
    where
        S: ?Sized + AsStatement,
    {
        self.traced(text_of(statement))
            .await?
            .execute(statement, params)
            .await
    }

    /// Like [`tokio_postgres::Client::query`].
    pub async fn query<S>(&self, statement: &S, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>>
    where
        S: ?Sized + AsStatement,
    {
        self.traced(text_of(statement))
            .await?
            .query(statement, params)
            .await
    }

    /// Like [`tokio_postgres::Client::query_one`]: exactly one row, else an error.
    pub async fn query_one<S>(&self, statement: &S, params: &[&(dyn ToSql + Sync)]) -> Result<Row>
    where
        S: ?Sized + AsStatement,
    {
        self.traced(text_of(statement))
            .await?
            .query_one(statement, params)
            .await
    }

    /// Like [`tokio_postgres::Client::query_opt`]: zero or one row; more is an error.
    pub async fn query_opt<S>(
        &self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>>
    where
        S: ?Sized + AsStatement,
    {
        self.traced(text_of(statement))
            .await?
            .query_opt(statement, params)
            .await
    }

    /// Like [`tokio_postgres::Client::prepare`], through the connection's statement cache.
    pub async fn prepare(&self, query: &str) -> Result<Statement> {
        self.traced(Some(query)).await?.prepare(query).await
    }

    /// Like [`tokio_postgres::Client::batch_execute`]: several statements, no parameters.
    pub async fn batch_execute(&self, query: &str) -> Result<()> {
        self.traced(Some(query)).await?.batch_execute(query).await
    }

    /// Like [`tokio_postgres::Client::simple_query`].
    pub async fn simple_query(&self, query: &str) -> Result<Vec<SimpleQueryMessage>> {
        self.traced(Some(query)).await?.simple_query(query).await
    }
}
