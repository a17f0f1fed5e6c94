//! `StatementMode::Unnamed`: no named prepared statement is ever left on a server connection,
//! so the toolkit works behind PgBouncer in transaction pooling mode, where consecutive
//! messages of one client may run on different server connections.
//!
//! Each statement is sent as one unnamed Parse/Bind/Describe/Execute/Sync (tokio-postgres'
//! `query_typed_raw`), which needs the parameter types up front. They are learned once per
//! pool and SQL text by preparing the statement and closing it again inside one transaction
//! (which pins one server connection behind a pooler). Outside a transaction that happens on a
//! short-lived connection of its own, ended by `DEALLOCATE ALL` (which also removes what the
//! driver prepared to look up domain and custom types), so it never interleaves with another
//! caller's statements. Inside the caller's transaction it happens there (a second server
//! connection could be waited for for ever by callers each holding one); a domain or custom
//! type learned there leaves the driver's lookup statement on that server connection.

use std::sync::{Arc, Mutex};

use lru::LruCache;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Statement};

use super::Session;
use crate::statement_cache::put_bounded;
use crate::{Error, Result};

/// What the server says about a statement: its parameter types and its result columns.
#[derive(Debug)]
pub(crate) struct Described {
    pub(crate) params: Vec<Type>,
    pub(crate) columns: Vec<(String, Type)>,
}

impl Described {
    pub(crate) fn of(statement: &Statement) -> Self {
        Described {
            params: statement.params().to_vec(),
            columns: statement
                .columns()
                .iter()
                .map(|c| (c.name().to_owned(), c.type_().clone()))
                .collect(),
        }
    }
}

/// Statements a pool has learned, by SQL text (per pool: type OIDs differ between databases).
pub(crate) struct Learned {
    entries: Mutex<LruCache<Box<str>, Arc<Described>>>,
    capacity: usize,
}

/// Distinct statements kept; an application has far fewer, so this only bounds a pathological
/// one that builds SQL text per call.
const LEARNED: usize = 4096;

impl Default for Learned {
    fn default() -> Self {
        Learned {
            entries: Mutex::new(LruCache::unbounded()),
            capacity: LEARNED,
        }
    }
}

impl Learned {
    fn get(&self, sql: &str) -> Option<Arc<Described>> {
        self.entries.lock().ok()?.get(sql).cloned()
    }

    fn put(&self, sql: &str, described: Arc<Described>) {
        if let Ok(mut entries) = self.entries.lock() {
            put_bounded(&mut entries, sql, described, self.capacity);
        }
    }
}

impl Session<'_> {
    /// True when statements must not be prepared by name (`StatementMode::Unnamed`).
    pub(crate) fn unnamed(&self) -> bool {
        self.connection()
            .is_some_and(|conn| conn.pg().limits.unnamed)
    }

    /// `params` paired with the types `sql` takes, learned once per pool: what an unnamed
    /// statement is sent with.
    pub(crate) async fn typed<'p>(
        &self,
        sql: &str,
        params: &[&'p (dyn ToSql + Sync)],
    ) -> Result<Vec<(&'p (dyn ToSql + Sync), Type)>> {
        let described = self.describe_here(sql).await?;
        if params.len() != described.params.len() {
            return Err(Error::invalid_data(
                "",
                "parameters",
                format!(
                    "the statement takes {} parameters, {} were given",
                    described.params.len(),
                    params.len()
                ),
                None,
            ));
        }
        Ok(params
            .iter()
            .copied()
            .zip(described.params.iter().cloned())
            .collect())
    }

    /// Parameter types and result columns of `sql`: from the connection's statement cache in
    /// `Prepared` mode, learned once per pool in `Unnamed` mode.
    pub(crate) async fn describe(&self, sql: &str) -> Result<Arc<Described>> {
        let outcome = self.describe_here(sql).await;
        self.or_on_primary(outcome, |primary| async move {
            primary.describe_here(sql).await
        })
        .await
    }

    async fn describe_here(&self, sql: &str) -> Result<Arc<Described>> {
        if !self.unnamed() {
            return Ok(Arc::new(Described::of(&self.prepare(sql).await?)));
        }
        let Some(conn) = self.connection() else {
            return Ok(Arc::new(Described::of(&self.client().prepare(sql).await?)));
        };
        let pool = &conn.pg().pool;
        if let Some(described) = pool.learned.get(sql) {
            return Ok(described);
        }
        let described = Arc::new(match self.is_in_transaction() {
            // In the caller's transaction, which pins its server connection: a connection of
            // our own would wait for a second server connection, and callers all holding one
            // each could wait for ever. A domain or custom type there leaves the driver's
            // lookup statement on that server connection (see the module documentation).
            true => learn(self.client(), sql, false).await?,
            // Else on a connection of its own, whatever the driver prepares there deallocated
            // before the connection goes.
            false => {
                let client = pool.open().await.map_err(|err| {
                    Error::connection(
                        "cannot open a connection to learn a statement's types",
                        err.into_source(),
                    )
                })?;
                learn(&client, sql, true).await?
            }
        });
        pool.learned.put(sql, described.clone());
        Ok(described)
    }
}

/// Prepares `sql` by name and closes it again, in a transaction of its own when `begin`.
async fn learn(client: &Client, sql: &str, begin: bool) -> Result<Described> {
    if begin {
        client.batch_execute("BEGIN").await?;
    }
    // Dropping the statement queues its Close before anything sent after it.
    let described = client
        .prepare(sql)
        .await
        .map(|statement| Described::of(&statement));
    if begin {
        let end = if described.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        client.batch_execute(end).await?;
    }
    Ok(described?)
}
