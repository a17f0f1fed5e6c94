//! Test support: a fresh database per test on a real PostgreSQL server.
//!
//! Enabled by the `testing` feature. [`TestDatabase::create`] hands each test its own empty
//! database: on the server of `DATABASE_URL` when that is set, otherwise on a throwaway cluster
//! that this test binary starts once (initdb + pg_ctl in a temp dir, a free loopback port) and
//! that is removed when the binary exits. Tests that stop, restart or otherwise break a server
//! start a [`TestCluster`] of their own.
//!
//! ```no_run
//! # async fn demo() -> toolkit::Result<()> {
//! let test_db = toolkit::testing::TestDatabase::create().await?;
//! let db = test_db.database()?;
//! let conn = db.connection().await?;
//! conn.batch_execute("CREATE TABLE t (id int)").await?;
//! # Ok(()) }
//! ```
//!
//! # `#[toolkit::test]`
//!
//! The attribute makes an async test (on a multi-threaded runtime of its own, two workers)
//! that receives a [`Database`](toolkit_core::Database) on a database of its own:
//!
//! ```no_run
//! use toolkit::Database;
//!
//! #[toolkit::test(migrations = "tests/migrations", fixtures("tests/fixtures/users.sql"))]
//! async fn finds_ada(db: Database) -> toolkit::Result<()> {
//!     let row = db.connection().await?.query_one("SELECT count(*) FROM users", &[]).await?;
//!     assert_eq!(row.get::<_, i64>(0), 1);
//!     Ok(())
//! }
//! ```
//!
//! - `migrations = "dir"`: the test's database is a copy (`CREATE DATABASE .. TEMPLATE`) of a
//!   template that has every migration of `dir` applied (see [`migrate`](toolkit_core::migrate)).
//!   The template is made once per test binary and directory; tests running meanwhile wait for
//!   it. It is named after the migrations' checksum, so test binaries with other migrations
//!   never share one, binaries with the same ones wait for each other (an advisory lock) and
//!   then share it, and on a `DATABASE_URL` server the next run reuses it. Without the key the
//!   database is empty.
//! - `fixtures("a.sql", ...)`: SQL files run, in order, on the test's database before the body
//!   (embedded at compile time).
//! - Paths are relative to the directory of the crate's `Cargo.toml`. A missing directory or
//!   file, a misnamed migration, an unknown key, a function that is not `async` or does not take
//!   exactly one parameter are compile errors.
//! - The body may return `()` or a `Result`; an `Err` fails the test like a panic.
//! - Afterwards the database is dropped (its pool closed first, so the drop waits for nobody),
//!   unless the test failed and the environment variable [`KEEP_ENV`]
//!   (`TOOLKIT_KEEP_TEST_DB=1`) is set: then it is kept, and the test's output says where
//!   (`postgres://user@host:port/name`) and how to remove it. On the throwaway cluster, the
//!   cluster is then left running after the binary exits, and the output says how to stop it.
//!
//! # Where it runs
//!
//! With `DATABASE_URL` set, anywhere a connection to that server can be made. The throwaway
//! cluster needs a Unix, not Windows (`/bin/sh`, `initdb`, `pg_ctl`, Unix permissions), and
//! nothing Linux-only: its watchdog learns that the test process is gone when the pipe on its
//! stdin closes, and the effective uid comes from `geteuid` (rustix). As root, where `initdb`
//! refuses to run, the server runs as the `postgres` user looked up in `/etc/passwd`. Tested
//! on Linux.
//!
//! With `TOOLKIT_TEST_TLS=1` the throwaway cluster takes TLS connections only (certificates
//! made for it, plain TCP rejected by `pg_hba.conf`) and its settings use `ssl_mode`
//! verify-full, so a whole test suite runs over TLS.
//!
//! Needs the PostgreSQL server binaries (`apt-get install postgresql` on Debian/Ubuntu) unless
//! `DATABASE_URL` points at a server where the user may `CREATE DATABASE`.

mod cluster;
mod database;
mod harness;
mod template;
mod tls;

pub use cluster::{TestCluster, TestClusterBuilder};
pub use database::TestDatabase;
pub use harness::KEEP_ENV;
pub use tls::{CertifiedKey, TestCertificates};

/// What `#[toolkit::test]` expands to reaches the harness only through here; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use super::harness::{run, Outcome, Spec};
}

use toolkit_core::{DatabaseSettings, Error, Result};

/// Settings for the server of `DATABASE_URL` when it is set; otherwise a throwaway cluster is
/// started and returned beside its settings. Keep the cluster alive while you use the settings:
/// dropping it stops and removes it.
///
/// ```no_run
/// # async fn demo() -> toolkit::Result<()> {
/// let (settings, _cluster) = toolkit::testing::server_from_env().await?;
/// let db = toolkit::Database::new(settings)?;
/// # Ok(()) }
/// ```
pub async fn server_from_env() -> Result<(DatabaseSettings, Option<TestCluster>)> {
    if let Some(settings) = env_settings()? {
        return Ok((settings, None));
    }
    let cluster = tokio::task::spawn_blocking(throwaway_cluster)
        .await
        .map_err(|e| Error::NotAvailable {
            message: format!("starting a throwaway cluster panicked: {e}"),
        })?
        .map_err(|e| Error::NotAvailable {
            message: format!("cannot start a throwaway PostgreSQL cluster: {e}"),
        })?;
    Ok((cluster.settings(), Some(cluster)))
}

/// The settings of `DATABASE_URL`, when it is set and not empty.
fn env_settings() -> Result<Option<DatabaseSettings>> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => DatabaseSettings::from_url(&url).map(Some),
        _ => Ok(None),
    }
}

/// The cluster a test gets when `DATABASE_URL` is unset: plain, or TLS-only when
/// `TOOLKIT_TEST_TLS` asks for it.
fn throwaway_cluster() -> std::io::Result<TestCluster> {
    let tls = std::env::var("TOOLKIT_TEST_TLS").is_ok_and(|v| !v.is_empty() && v != "0");
    if !tls {
        return TestCluster::start();
    }
    let certs = TestCertificates::generate()?;
    TestCluster::builder()
        .tls(&certs)
        .hba("hostssl all all 127.0.0.1/32 trust")
        .hba("hostnossl all all 127.0.0.1/32 reject")
        .start()
}
