//! Runtime of the `toolkit` crate: settings, `Database` and its pool, errors, transactions,
//! the safe SQL builder and the repository runtime. Depend on `toolkit`, not on this crate.
#![deny(missing_docs)]

mod database;
pub mod entity;
mod error;
pub mod migrate;
mod observe;
mod pool;
mod query;
mod replicas;
mod repository;
mod retry;
mod schema_check;
mod settings;
pub mod sql;
mod statement_cache;
mod transaction;

pub use database::Database;
pub use entity::Entity;

/// What `#[derive(Entity)]` expands to reaches the runtime only through here; not a public API.
#[doc(hidden)]
pub use entity::private as __private;
pub use error::{BoxError, DisplayChain, Error, PoolErrorKind, Result};
pub use pool::{AsStatement, Connection, Pool, PoolState, PoolStatus};
pub use query::{Col, Cursor, Filter, IntoValue, OrderBy, Page};
pub use replicas::{ConsistencyToken, NodeStatus};
pub use repository::{Executor, ExecutorRef, Find, Repository};
pub use retry::RetryPolicy;
pub use schema_check::{MismatchKind, SchemaMismatch};
pub use settings::{DatabaseSettings, SslMode, StatementMode, TargetSessionAttrs};
pub use transaction::{
    DataManager, IsolationLevel, Savepoint, SchemaManager, Transaction, TransactionBuilder,
    TransactionManager,
};

pub use tokio_postgres;
pub use tokio_postgres::error::SqlState;
