//! The client query API on a transaction, each call preceded by any deferred savepoint rollback.

use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, SimpleQueryMessage, Statement, ToStatement};

use super::Transaction;
use crate::Result;

impl Transaction {
    /// Like [`tokio_postgres::Client::execute`]: runs a statement, returns the rows affected.
    pub async fn execute<T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<u64>
    where
        T: ?Sized + ToStatement,
    {
        Ok(self.client().await?.execute(statement, params).await?)
    }

    /// Like [`tokio_postgres::Client::query`].
    pub async fn query<T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>>
    where
        T: ?Sized + ToStatement,
    {
        Ok(self.client().await?.query(statement, params).await?)
    }

    /// Like [`tokio_postgres::Client::query_one`]: exactly one row or an error.
    pub async fn query_one<T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<Row>
    where
        T: ?Sized + ToStatement,
    {
        Ok(self.client().await?.query_one(statement, params).await?)
    }

    /// Like [`tokio_postgres::Client::query_opt`]: zero or one row.
    pub async fn query_opt<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>>
    where
        T: ?Sized + ToStatement,
    {
        Ok(self.client().await?.query_opt(statement, params).await?)
    }

    /// Like [`tokio_postgres::Client::prepare`].
    pub async fn prepare(&self, query: &str) -> Result<Statement> {
        Ok(self.client().await?.prepare(query).await?)
    }

    /// Like [`tokio_postgres::Client::batch_execute`]: several statements, no parameters.
    pub async fn batch_execute(&self, query: &str) -> Result<()> {
        Ok(self.client().await?.batch_execute(query).await?)
    }

    /// Like [`tokio_postgres::Client::simple_query`].
    pub async fn simple_query(&self, query: &str) -> Result<Vec<SimpleQueryMessage>> {
        Ok(self.client().await?.simple_query(query).await?)
    }
}
