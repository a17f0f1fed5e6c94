//! The one error type of the toolkit, with accessors so callers never match on message text.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::error::SqlState;

use crate::schema_check::{Listed, SchemaMismatch};

/// A boxed lower-level error kept as the `source()` of an [`Error`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// `Result` with the toolkit's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong with the pool, for [`Error::Pool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolErrorKind {
    /// No connection became free (or could be opened) within `pool_timeout`.
    Timeout,
    /// Creating the pool failed, usually because its first connections could not be opened.
    Create,
    /// The pool was closed by [`Database::cleanup`](crate::Database::cleanup) while waiting.
    Closed,
}

/// Every failure the toolkit reports.
///
/// Variants mirror psycopg-toolkit's exception hierarchy. Every variant that wraps a lower error
/// exposes it through [`std::error::Error::source`] and [`Error::original_error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Cannot connect, the connection was lost, or connect retries were exhausted.
    #[error("connection error: {message}")]
    Connection {
        /// What failed, including the underlying cause.
        message: String,
        /// The last underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// Pool creation failed, the pool timed out, or it was closed.
    #[error("pool error: {message}")]
    Pool {
        /// What kind of pool failure this is.
        kind: PoolErrorKind,
        /// What failed; for a timeout caused by failing connects, the real connect error.
        message: String,
        /// The real cause when there is one (e.g. the last connect error behind a timeout).
        #[source]
        source: Option<BoxError>,
    },
    /// The database is not available (e.g. used after cleanup when re-creation is impossible).
    #[error("database not available: {message}")]
    NotAvailable {
        /// Why it is not available.
        message: String,
    },
    /// No row exists for the key (`get_by_id`, `update`, `delete`).
    #[error("no record in table {table} with key {key}")]
    RecordNotFound {
        /// The table name as written in the entity, unquoted: `schema.table` when it has a
        /// schema.
        table: String,
        /// The key that was looked up, as `Debug` text.
        key: String,
    },
    /// An `update` or `save` of a `#[entity(version)]` entity carried a version the stored row
    /// no longer has: someone else changed it first. Nothing was changed.
    #[error("conflict in table {table} on key {key}: the row was changed since it was read")]
    Conflict {
        /// The table name, unquoted: `schema.table` when it has a schema.
        table: String,
        /// The key of the row, as `Debug` text.
        key: String,
    },
    /// Data cannot be written or read as the entity describes it.
    #[error("invalid data for {table}.{field}: {message}")]
    InvalidData {
        /// The table involved, unquoted: `schema.table` when it has a schema.
        table: String,
        /// The Rust field at fault (or, for a statement the builder refused, its argument).
        field: String,
        /// What is wrong with it.
        message: String,
        /// The serializer's or driver's error.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other failed statement.
    #[error("{}", DisplayChain(.source))]
    Operation {
        /// The driver's error, with SQLSTATE and server message.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A client-side deadline expired before the server answered.
    #[error("{operation} did not finish within {after:?}")]
    Timeout {
        /// What was being waited for.
        operation: &'static str,
        /// The deadline that expired.
        after: Duration,
    },
    /// Settings that cannot work, rejected before any network I/O.
    #[error("invalid setting `{field}`: {message}")]
    InvalidSettings {
        /// The offending field (or URL part / environment variable).
        field: &'static str,
        /// Why it is rejected.
        message: String,
    },
    /// The live table does not match the entity that maps it: every difference
    /// [`Database::check_schema`](crate::Database::check_schema) found, at once.
    #[error("table {table} does not match its entity: {}", Listed(.mismatches))]
    SchemaMismatch {
        /// The table as the entity names it, unquoted: `schema.table` when it has a schema.
        table: String,
        /// Each difference, naming column and field: the table first, then the entity's
        /// columns in field order, then the table's other columns.
        mismatches: Vec<SchemaMismatch>,
    },
    /// A migration file could not be read or named, was edited after it was applied, would
    /// run out of order, or failed (see [`Migrator::run`](crate::migrate::Migrator::run)).
    #[error("migration {file}: {message}")]
    Migration {
        /// The file at fault, e.g. `0002_add_email.sql` (or the directory that cannot be read).
        file: String,
        /// Its version, when its name gave one.
        version: Option<i64>,
        /// What is wrong, with the server's error for a failed migration.
        message: String,
        /// The failed statement's error, or the I/O error.
        #[source]
        source: Option<BoxError>,
    },
    /// A table, column or savepoint name that cannot be quoted safely.
    #[error("invalid identifier {identifier:?}: {reason}")]
    InvalidIdentifier {
        /// The rejected input.
        identifier: String,
        /// Why it is rejected.
        reason: &'static str,
    },
}

/// Why one connection attempt failed: the driver's error, or our deadline on the whole
/// connect (the driver's own `connect_timeout` covers only the TCP connect, not startup and
/// authentication).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectFailure {
    #[error(transparent)]
    Driver(#[from] tokio_postgres::Error),
    /// Failed in TLS: a certificate refused, or TLS required of a server without it. Retrying
    /// cannot help, so callers that retry stop at once.
    #[error("{why}")]
    Tls {
        why: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("connecting (TCP, startup and authentication) took longer than {0:?}")]
    TimedOut(Duration),
    /// Every host was tried and none accepted the connection with the role
    /// `target_session_attrs` asks for (for example during a failover, before the standby
    /// is promoted).
    #[error("{}", no_host(*wanted, seen))]
    NoHostMatched {
        wanted: crate::TargetSessionAttrs,
        /// Each host and what it was, or why it could not be reached.
        seen: String,
        /// The last host's failure to connect, if one failed so: what `driver()` reports.
        last: Option<Box<ConnectFailure>>,
    },
    #[error("the pool is closed")]
    Closed,
}

impl ConnectFailure {
    /// As a `source()`: the driver's own error where there is one, so callers can downcast it.
    pub(crate) fn into_source(self) -> BoxError {
        match self {
            ConnectFailure::Driver(err) => Box::new(err),
            other => Box::new(other),
        }
    }

    /// Failed the same way at every attempt: the setup, not the moment, is wrong.
    pub(crate) fn is_permanent(&self) -> bool {
        matches!(self, ConnectFailure::Tls { .. })
    }

    /// The driver's error, wherever this failure keeps it.
    fn driver(&self) -> Option<&tokio_postgres::Error> {
        match self {
            ConnectFailure::Driver(err) | ConnectFailure::Tls { source: err, .. } => Some(err),
            ConnectFailure::NoHostMatched {
                last: Some(last), ..
            } => last.driver(),
            _ => None,
        }
    }
}

fn no_host(wanted: crate::TargetSessionAttrs, seen: &str) -> String {
    match wanted {
        crate::TargetSessionAttrs::Any => format!("no host accepted the connection: {seen}"),
        _ => format!("no host has the role target_session_attrs={wanted} asks for: {seen}"),
    }
}

impl Error {
    /// The underlying error this one wraps, if any (same as `source()`).
    pub fn original_error(&self) -> Option<&(dyn StdError + 'static)> {
        self.source()
    }

    /// The driver error behind this one, wherever in the chain it sits.
    pub fn as_postgres_error(&self) -> Option<&tokio_postgres::Error> {
        let mut cur: Option<&(dyn StdError + 'static)> = self.source();
        while let Some(err) = cur {
            if let Some(pg) = err.downcast_ref::<tokio_postgres::Error>() {
                return Some(pg);
            }
            if let Some(pg) = err
                .downcast_ref::<Arc<ConnectFailure>>()
                .and_then(|f| f.driver())
            {
                return Some(pg);
            }
            cur = err.source();
        }
        None
    }

    /// The server's SQLSTATE, when the server reported the failure.
    pub fn code(&self) -> Option<&SqlState> {
        self.as_postgres_error()
            .and_then(tokio_postgres::Error::code)
    }

    /// The name of the violated constraint, for unique, foreign-key, check and exclusion violations.
    pub fn constraint(&self) -> Option<&str> {
        self.as_postgres_error()
            .and_then(tokio_postgres::Error::as_db_error)
            .and_then(|db| db.constraint())
    }

    /// True when the statement wrote on a server that takes only reads: a replica (for example
    /// through [`Database::replica`](crate::Database::replica)) or a read-only transaction
    /// (SQLSTATE 25006).
    pub fn is_read_only(&self) -> bool {
        self.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION)
    }

    /// True for failures that succeed when the whole transaction is retried:
    /// serialization failure (40001) and deadlock (40P01).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.code(),
            Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
        )
    }

    /// True for [`Error::Conflict`]: an optimistic-locking version check failed.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }

    /// True for [`Error::RecordNotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::RecordNotFound { .. })
    }

    /// True when a deadline expired: pool wait, client-side deadline, connect timeout,
    /// `statement_timeout` (57014) or `lock_timeout` (55P03).
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Pool {
                kind: PoolErrorKind::Timeout,
                ..
            }
            | Error::Timeout { .. } => true,
            _ if self.connect_timed_out() => true,
            _ => {
                if let Some(code) = self.code() {
                    return *code == SqlState::QUERY_CANCELED
                        || *code == SqlState::LOCK_NOT_AVAILABLE;
                }
                self.as_postgres_error()
                    .is_some_and(|e| e.to_string().starts_with("timeout"))
            }
        }
    }

    /// True when the connection to the server is gone: closed socket, I/O failure, the backend
    /// terminated (57P01..57P03), the server ended an idle session or transaction (25P03,
    /// 57P05), or a connection-exception SQLSTATE (class 08).
    pub fn is_connection_lost(&self) -> bool {
        if matches!(self, Error::Connection { .. }) {
            return true;
        }
        self.as_postgres_error().is_some_and(lost_connection)
    }

    /// A connect attempt behind this error ran out of time.
    fn connect_timed_out(&self) -> bool {
        let mut cur: Option<&(dyn StdError + 'static)> = self.source();
        while let Some(err) = cur {
            let failure = err
                .downcast_ref::<ConnectFailure>()
                .or_else(|| err.downcast_ref::<Arc<ConnectFailure>>().map(|f| &**f));
            if matches!(failure, Some(ConnectFailure::TimedOut(_))) {
                return true;
            }
            cur = err.source();
        }
        false
    }

    pub(crate) fn connection(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Connection {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The one way an [`Error::InvalidData`] is made: always with its table and field.
    pub(crate) fn invalid_data(
        table: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
        source: Option<BoxError>,
    ) -> Self {
        Error::InvalidData {
            table: table.into(),
            field: field.into(),
            message: message.into(),
            source,
        }
    }

    pub(crate) fn settings(field: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidSettings {
            field,
            message: message.into(),
        }
    }
}

/// The driver's error says the connection is gone (see [`Error::is_connection_lost`]).
fn lost_connection(pg: &tokio_postgres::Error) -> bool {
    if pg.is_closed() {
        return true;
    }
    if let Some(code) = pg.code() {
        return code.code().starts_with("08")
            || *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
            || *code == SqlState::IDLE_SESSION_TIMEOUT
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW;
    }
    has_io_source(pg)
}

/// How the message of an [`Error::Connection`] for a connection lost under a statement
/// begins.
pub(crate) const CONNECTION_LOST: &str = "connection lost";

fn has_io_source(err: &tokio_postgres::Error) -> bool {
    let mut cur = err.source();
    while let Some(e) = cur {
        if e.is::<std::io::Error>() {
            return true;
        }
        cur = e.source();
    }
    false
}

impl From<tokio_postgres::Error> for Error {
    /// A value the driver could not encode for its column is the caller's data, not a failed
    /// statement: [`Error::InvalidData`] naming the field, when the value came from an entity.
    /// A connection that is gone (closed, I/O failure, the backend terminated) is
    /// [`Error::Connection`], whose source is still the driver's error (so `code()` works).
    fn from(source: tokio_postgres::Error) -> Self {
        let mismatch = source
            .source()
            .and_then(|cause| cause.downcast_ref::<FieldMismatch>());
        match mismatch {
            Some(mismatch) => Error::invalid_data(
                mismatch.table.clone(),
                mismatch.field,
                mismatch.to_string(),
                Some(Box::new(source)),
            ),
            None if lost_connection(&source) => Error::Connection {
                message: format!("{CONNECTION_LOST}: {}", DisplayChain(&source)),
                source: Some(Box::new(source)),
            },
            None => Error::Operation { source },
        }
    }
}

impl Error {
    /// An error raised while encoding a value ourselves (COPY): [`Error::InvalidData`] naming
    /// the field when it is a [`FieldMismatch`].
    pub(crate) fn from_encoding(table: &str, cause: BoxError) -> Error {
        match cause.downcast::<FieldMismatch>() {
            Ok(mismatch) => {
                let message = mismatch.to_string();
                Error::invalid_data(
                    mismatch.table.clone(),
                    mismatch.field,
                    message,
                    Some(mismatch),
                )
            }
            Err(cause) => Error::invalid_data(table, "", cause.to_string(), Some(cause)),
        }
    }
}

/// A field's value that does not fit its column's type, raised while encoding parameters.
#[derive(Debug, thiserror::Error)]
#[error("cannot write column \"{column}\" of type {ty}: {source}")]
pub(crate) struct FieldMismatch {
    pub(crate) table: String,
    pub(crate) field: &'static str,
    pub(crate) column: &'static str,
    pub(crate) ty: String,
    #[source]
    pub(crate) source: BoxError,
}

/// Displays an error followed by every cause in its `source()` chain, so the driver's terse
/// "db error" becomes "db error: ERROR: relation \"x\" does not exist".
///
/// ```
/// let err = std::io::Error::other("disk full");
/// assert_eq!(toolkit_core::DisplayChain(&err).to_string(), "disk full");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DisplayChain<'a>(pub &'a (dyn StdError + 'static));

impl fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cur = self.0.source();
        while let Some(err) = cur {
            write!(f, ": {err}")?;
            cur = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_table_and_key() {
        let err = Error::RecordNotFound {
            table: "\"users\"".into(),
            key: "42".into(),
        };
        assert!(err.is_not_found());
        assert_eq!(err.to_string(), "no record in table \"users\" with key 42");
        assert!(!err.is_retryable());
        assert!(!err.is_connection_lost());
    }

    #[test]
    fn settings_error_names_field() {
        let err = Error::settings("max_pool_size", "must be at least 1");
        assert_eq!(
            err.to_string(),
            "invalid setting `max_pool_size`: must be at least 1"
        );
    }

    #[test]
    fn pool_timeout_is_timeout() {
        let err = Error::Pool {
            kind: PoolErrorKind::Timeout,
            message: "x".into(),
            source: None,
        };
        assert!(err.is_timeout());
        let closed = Error::Pool {
            kind: PoolErrorKind::Closed,
            message: "x".into(),
            source: None,
        };
        assert!(!closed.is_timeout());
    }
}
