//! Spans and events (the `tracing` feature), named and attributed after OpenTelemetry's
//! database conventions. Everything the rest of the crate calls is here, in two versions of
//! the same API: `on.rs` with `tracing`, `off.rs` empty, so that without the feature no call
//! site needs a `cfg` and nothing is left in the binary.
//!
//! What is never recorded: parameter values, and error messages (a server message can quote a
//! value: `Key (email)=(...) already exists`). Errors are recorded as `error.type`, the SQLSTATE
//! or a fixed name ([`error_type`]); the SQL text only when `trace_query_text` says so.

#[cfg(feature = "tracing")]
mod on;
#[cfg(feature = "tracing")]
pub(crate) use on::*;

#[cfg(not(feature = "tracing"))]
mod off;
#[cfg(not(feature = "tracing"))]
pub(crate) use off::*;

use tokio_postgres::config::Host;

use crate::entity::{Entity, EntityMeta};
use crate::error::CONNECTION_LOST;
use crate::{DatabaseSettings, Error, PoolErrorKind};

/// The `tracing` target of every span and event: filter with `toolkit=debug`.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) const TARGET: &str = "toolkit";

/// What a repository call does, as `db.operation.name` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) enum Operation {
    Select,
    Insert,
    Update,
    Delete,
    Copy,
}

impl Operation {
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn name(self) -> &'static str {
        match self {
            Operation::Select => "SELECT",
            Operation::Insert => "INSERT",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Copy => "COPY",
        }
    }
}

/// One operation a span is made for: a repository call on an entity's table, or SQL text a
/// caller wrote (whose operation is its first keyword, when that is a known one).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) struct Op<'a> {
    operation: Option<Operation>,
    table: Option<&'static EntityMeta>,
    text: Option<&'a str>,
}

impl Op<'_> {
    /// `operation` on `E`'s table.
    pub(crate) fn on<E: Entity>(operation: Operation) -> Op<'static> {
        Op {
            operation: Some(operation),
            table: Some(E::META),
            text: None,
        }
    }

    pub(crate) fn select<E: Entity>() -> Op<'static> {
        Op::on::<E>(Operation::Select)
    }

    pub(crate) fn insert<E: Entity>() -> Op<'static> {
        Op::on::<E>(Operation::Insert)
    }

    pub(crate) fn update<E: Entity>() -> Op<'static> {
        Op::on::<E>(Operation::Update)
    }

    pub(crate) fn delete<E: Entity>() -> Op<'static> {
        Op::on::<E>(Operation::Delete)
    }

    /// What `delete` does: an `UPDATE` that stamps the row when the entity soft-deletes.
    pub(crate) fn soft_delete<E: Entity>() -> Op<'static> {
        match E::META.soft_delete {
            Some(_) => Op::update::<E>(),
            None => Op::delete::<E>(),
        }
    }

    pub(crate) fn copy<E: Entity>() -> Op<'static> {
        Op::on::<E>(Operation::Copy)
    }

    /// Where a `Database` may send it: a `SELECT` may go to a replica, and so may a caller's
    /// SQL that only reads (`reads_only`); anything else, to the primary.
    pub(crate) fn intent(&self) -> crate::repository::Intent {
        match (self.operation, self.text) {
            (Some(Operation::Select), _) => crate::repository::Intent::Read,
            (None, Some(text)) if reads_only(text) => crate::repository::Intent::Read,
            _ => crate::repository::Intent::Write,
        }
    }
}

impl<'a> Op<'a> {
    /// SQL text a caller wrote (`None`: a statement they prepared).
    pub(crate) fn sql(text: Option<&'a str>) -> Op<'a> {
        Op {
            operation: None,
            table: None,
            text,
        }
    }

    /// `db.operation.name`: known for repository calls; for a caller's SQL, its first keyword
    /// when that is a command name (never for several statements in one text).
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn operation_name(&self) -> Option<&'static str> {
        match (self.operation, self.text) {
            (Some(operation), _) => Some(operation.name()),
            (None, Some(text)) => first_keyword(text),
            (None, None) => None,
        }
    }
}

/// `schema.table` or `table`, written without allocating.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) struct Table(pub(crate) &'static EntityMeta);

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.schema {
            Some(schema) => write!(f, "{schema}.{}", self.0.table),
            None => f.write_str(self.0.table),
        }
    }
}

/// The OpenTelemetry span name: `{db.operation.name} {db.collection.name}`, or the operation.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) struct SpanName {
    pub(crate) operation: &'static str,
    pub(crate) table: Option<&'static EntityMeta>,
}

impl std::fmt::Display for SpanName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.operation)?;
        match self.table {
            Some(table) => write!(f, " {}", Table(table)),
            None => Ok(()),
        }
    }
}

/// Command names a statement may start with; a closed list keeps the attribute's cardinality
/// bounded whatever text callers send.
const KEYWORDS: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "MERGE",
    "COPY",
    "VALUES",
    "TABLE",
    "CALL",
    "DO",
    "CREATE",
    "ALTER",
    "DROP",
    "TRUNCATE",
    "GRANT",
    "REVOKE",
    "COMMENT",
    "LOCK",
    "SET",
    "SHOW",
    "RESET",
    "BEGIN",
    "START",
    "COMMIT",
    "END",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "PREPARE",
    "EXECUTE",
    "DEALLOCATE",
    "DISCARD",
    "LISTEN",
    "NOTIFY",
    "UNLISTEN",
    "VACUUM",
    "ANALYZE",
    "EXPLAIN",
    "REFRESH",
    "REINDEX",
    "CLUSTER",
];

/// A caller's SQL a replica can run: one `SELECT` without a locking clause (`FOR UPDATE`,
/// `FOR NO KEY UPDATE`, `FOR SHARE`, `FOR KEY SHARE`, which a standby refuses) and without
/// `INTO` (which creates a table). The words are looked for anywhere, string literals and
/// comments included, so what is in doubt goes to the primary; so does `WITH`, which may hide
/// an `INSERT`. A `SELECT` calling a function that writes still reaches a replica, and fails
/// there as read-only.
fn reads_only(text: &str) -> bool {
    if first_keyword(text) != Some("SELECT") {
        return false;
    }
    let words = || {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
    };
    let is = |word: &str, keyword: &str| word.eq_ignore_ascii_case(keyword);
    !words()
        .zip(words().skip(1).map(Some).chain([None]))
        .any(|(word, next)| {
            is(word, "INTO")
                || (is(word, "FOR")
                    && next.is_some_and(|next| {
                        ["UPDATE", "NO", "SHARE", "KEY"]
                            .iter()
                            .any(|lock| is(next, lock))
                    }))
        })
}

/// The statement's first word, upper-cased, when it is a command name and the text holds one
/// statement. `WITH` is not one: the operation is what follows the common table expressions.
fn first_keyword(text: &str) -> Option<&'static str> {
    let text = text.trim();
    if text.trim_end_matches(';').contains(';') {
        return None;
    }
    let word = text
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .filter(|w| !w.is_empty())?;
    KEYWORDS
        .iter()
        .find(|keyword| keyword.eq_ignore_ascii_case(word))
        .copied()
}

/// `error.type` of a failed operation: the SQLSTATE when the server reported one (`23505`),
/// else a fixed name per kind of failure. Never a message, which may quote a value.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn error_type(err: &Error) -> &str {
    if let Some(code) = err.code() {
        return code.code();
    }
    match err {
        Error::Connection { message, .. } if message.starts_with(CONNECTION_LOST) => {
            "connection_lost"
        }
        Error::Connection { .. } => "connection",
        Error::Pool { kind, .. } => match kind {
            PoolErrorKind::Timeout => "pool_timeout",
            PoolErrorKind::Create => "pool_create",
            PoolErrorKind::Closed => "pool_closed",
        },
        Error::NotAvailable { .. } => "not_available",
        Error::RecordNotFound { .. } => "not_found",
        Error::Conflict { .. } => "conflict",
        Error::InvalidData { .. } => "invalid_data",
        Error::Operation { .. } => "driver",
        Error::Timeout { .. } => "timeout",
        Error::InvalidSettings { .. } => "invalid_settings",
        Error::SchemaMismatch { .. } => "schema_mismatch",
        Error::Migration { .. } => "migration",
        Error::InvalidIdentifier { .. } => "invalid_identifier",
    }
}

/// Where a pool's connections go: `db.namespace`, `server.address`, `server.port`.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) struct Endpoint {
    pub(crate) namespace: String,
    /// The host (or socket directory); with several hosts the list as configured, since the
    /// driver does not say which of them a connection reached.
    pub(crate) address: String,
    /// `None` with several hosts of different ports.
    pub(crate) port: Option<u16>,
}

impl Endpoint {
    pub(crate) fn of(settings: &DatabaseSettings) -> Self {
        let config = settings.pg_config();
        let names: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|host| match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.to_string_lossy().into_owned(),
            })
            .collect();
        let ports = config.get_ports();
        let same = ports.windows(2).all(|pair| pair[0] == pair[1]);
        Endpoint {
            namespace: settings.dbname.clone(),
            address: names.join(","),
            port: ports.first().copied().filter(|_| same),
        }
    }
}

/// What the settings say about tracing, kept by the pool.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) struct Observe {
    pub(crate) endpoint: Endpoint,
    pub(crate) slow_statement: Option<std::time::Duration>,
    pub(crate) query_text: bool,
}

impl Observe {
    pub(crate) fn of(settings: &DatabaseSettings) -> Self {
        Observe {
            endpoint: Endpoint::of(settings),
            slow_statement: settings.slow_statement_threshold,
            query_text: settings.trace_query_text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_selects_read() {
        for text in [
            "SELECT * FROM users WHERE age > $1",
            "  select id, name from t order by id limit 10;",
            "SELECT 'for sharing' FROM t",
            "SELECT update_count FROM t",
        ] {
            assert!(reads_only(text), "{text}");
        }
        for text in [
            "SELECT * FROM t WHERE id = $1 FOR UPDATE",
            "select * from t for no key update skip locked",
            "SELECT * FROM t FOR SHARE",
            "SELECT * FROM t for key share",
            "SELECT * INTO copy FROM t",
            "WITH n AS (INSERT INTO t DEFAULT VALUES RETURNING *) SELECT * FROM n",
            "INSERT INTO t DEFAULT VALUES RETURNING *",
            "SELECT 1; DELETE FROM t",
            "-- reads\nSELECT 1",
        ] {
            assert!(!reads_only(text), "{text}");
        }
    }

    #[test]
    fn first_keywords() {
        assert_eq!(first_keyword("  select 1"), Some("SELECT"));
        assert_eq!(first_keyword("INSERT INTO t VALUES ($1);"), Some("INSERT"));
        assert_eq!(first_keyword("Update t set a = 1"), Some("UPDATE"));
        assert_eq!(first_keyword("WITH x AS (SELECT 1) SELECT * FROM x"), None);
        assert_eq!(first_keyword("SELECT 1; SELECT 2"), None);
        assert_eq!(first_keyword("frobnicate"), None);
        assert_eq!(first_keyword(""), None);
        assert_eq!(first_keyword("-- comment\nSELECT 1"), None);
    }

    #[test]
    fn endpoints() {
        let one = DatabaseSettings {
            host: "db.local".into(),
            port: 6432,
            dbname: "app".into(),
            ..DatabaseSettings::default()
        };
        let e = Endpoint::of(&one);
        assert_eq!(
            (e.namespace.as_str(), e.address.as_str(), e.port),
            ("app", "db.local", Some(6432))
        );
        let own_port = DatabaseSettings {
            host: "db1:5433".into(),
            ..one.clone()
        };
        assert_eq!(Endpoint::of(&own_port).port, Some(5433));
        let several = DatabaseSettings {
            host: "db1,db2:5433".into(),
            ..one.clone()
        };
        let e = Endpoint::of(&several);
        assert_eq!((e.address.as_str(), e.port), ("db1,db2", None));
        let same = DatabaseSettings {
            host: "db1,db2".into(),
            ..one
        };
        assert_eq!(Endpoint::of(&same).port, Some(6432));
    }
}
