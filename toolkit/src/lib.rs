//! PostgreSQL for async Rust services on tokio: a pool-backed [`Database`], safe transactions,
//! `#[derive(Entity)]` repositories with typed queries, and a safe SQL builder ([`sql`]), built
//! on tokio-postgres and bb8. SQL is never built from unquoted names or inlined values, and
//! every failure is one typed [`Error`] that says what went wrong.
//!
//! ```no_run
//! use toolkit::{Database, DatabaseSettings, Entity, Repository};
//!
//! #[derive(Debug, Clone, Entity)]
//! #[entity(table = "users")]
//! struct User {
//!     #[entity(primary_key, generated)] // assigned by the database, read back
//!     id: i64,
//!     email: String,
//!     age: Option<i32>,                  // NULL <-> None
//! }
//!
//! # async fn demo() -> toolkit::Result<()> {
//! // DATABASE_URL, else libpq's PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE, ...
//! let db = Database::new(DatabaseSettings::from_env()?)?; // validated; no I/O yet
//! db.init_db().await?;                                   // ping with retry, open the pool
//!
//! let users = Repository::<User>::new(&db);
//! let ada = users
//!     .create(&User { id: 0, email: "ada@example.com".into(), age: Some(36) })
//!     .await?;
//! let c = User::columns();
//! let page = users.find(c.age.ge(18)).order_by(c.email.asc()).page(None, 50).await?;
//! let next: Option<String> = page.next.map(|cursor| cursor.to_string()); // for the next request
//! users.update(ada.id, UserPatch { age: Some(None), ..Default::default() }).await?;
//!
//! let tx = db.transaction().await?; // dropped without commit: rolled back
//! Repository::<User>::new(&tx).delete(ada.id).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```
//!
//! # Where to start
//!
//! - [`DatabaseSettings`]: the pool's sizes and timeouts, from fields, a URL or the environment;
//!   TLS ([`SslMode`]), several hosts and failover ([`TargetSessionAttrs`]), and
//!   [`StatementMode::Unnamed`] for PgBouncer's transaction pooling.
//! - [`Database`]: the pool, init callbacks, [`connection`](Database::connection),
//!   [`transaction`](Database::transaction),
//!   [`run_in_transaction`](Database::run_in_transaction) (retried on serialization failures),
//!   [`check_schema`](Database::check_schema), which compares an entity with its live table,
//!   and read replicas with read-your-writes ([`session`](Database::session),
//!   [`primary`](Database::primary), [`replica`](Database::replica)).
//! - [`Entity`] (derived) and [`Repository`]: create, bulk create, get, update with a patch,
//!   save, delete, upsert; [`Find`] for queries by column, keyset [`Page`]s with a [`Cursor`],
//!   and streams.
//! - [`Transaction`], [`Savepoint`], [`TransactionManager`].
//! - [`Error`]: one enum, with accessors such as [`code`](Error::code),
//!   [`is_not_found`](Error::is_not_found) and
//!   [`is_connection_lost`](Error::is_connection_lost), so callers never match on message text.
//! - `toolkit::testing` (feature `testing`): a throwaway cluster and a fresh database per test.
//!
//! # `#[derive(Entity)]`
//!
//! On the struct, `#[entity(table = "...", schema = "...")]` names the table (default: the
//! struct's name in snake case; no schema: the `search_path` decides), and `crate = "..."` the
//! path of this crate when a dependency renames it. On a field:
//!
//! | attribute | meaning |
//! |---|---|
//! | `primary_key` | the key (exactly one field) |
//! | `generated` | filled by the database (identity, default, generated column): never written, read back after each write |
//! | `column = "name"` | the column's name when it differs from the field's |
//! | `json` | stored as `json`/`jsonb` through serde |
//! | `skip` | not stored; `Default` when read |
//! | `version` | optimistic locking: writes check and bump it, a stale one is [`Error::Conflict`] |
//! | `soft_delete` | an `Option<DateTime<Utc>>` that `delete` stamps; reads skip stamped rows |
//!
//! The derive also generates `<Name>Patch` (an `Option` per writable field, for
//! [`Repository::update`]) and `<Name>Columns` (typed column handles, from `Name::columns()`,
//! for [`Repository::find`]). A mistake in the attributes is a compile error at the offending
//! token.
//!
//! # Features
//!
//! | feature | default | adds |
//! |---|---|---|
//! | `tls` | yes | TLS through rustls with the ring provider (no OpenSSL): `ssl_mode` `require`, `verify-ca` and `verify-full`, client certificates. Without it `prefer` connects without TLS and the modes that need TLS are refused as [`Error::InvalidSettings`]. |
//! | `chrono` | yes | chrono's types for `date`, `time`, `timestamp` and `timestamptz` columns |
//! | `uuid` | yes | `uuid::Uuid` for `uuid` columns |
//! | `rust_decimal` | no | `rust_decimal::Decimal` for `numeric` columns |
//! | `testing` | no | the `toolkit::testing` module; needs the PostgreSQL server binaries where no `DATABASE_URL` is set |
//!
//! The repository's README tours every part with longer examples, and its `examples/` directory
//! has programs to run, among them a small REST service on axum.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

pub use toolkit_core::*;
/// Derives [`Entity`](trait@Entity) for a struct with named fields; see the crate docs.
pub use toolkit_derive::Entity;

/// Embeds a directory of migrations at compile time; see [`migrate`].
///
/// ```no_run
/// # async fn demo(db: toolkit::Database) -> toolkit::Result<()> {
/// static MIGRATIONS: std::sync::LazyLock<toolkit::migrate::Migrator> =
///     std::sync::LazyLock::new(|| toolkit::embed_migrations!("tests/migrations"));
/// MIGRATIONS.run(&db).await?;
/// # Ok(()) }
/// ```
pub use toolkit_derive::embed_migrations;

/// An async test on a database of its own; see [`testing`] (feature `testing`).
#[cfg(feature = "testing")]
pub use toolkit_derive::test;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
