//! Runtime of the `toolkit` crate: settings, `Database` and its pool, errors, transactions,
//! the safe SQL builder and the repository runtime. Depend on `toolkit`, not on this crate.
#![deny(missing_docs)]

mod database;
mod error;
mod pool;
mod retry;
mod settings;
pub mod sql;
mod transaction;

pub use database::Database;
pub use error::{BoxError, Error, PoolErrorKind, Result};
pub use pool::{Connection, Pool};
pub use retry::RetryPolicy;
pub use settings::DatabaseSettings;
pub use transaction::{
    DataManager, IsolationLevel, Savepoint, SchemaManager, Transaction, TransactionBuilder,
    TransactionManager,
};

pub use tokio_postgres;
pub use tokio_postgres::error::SqlState;
