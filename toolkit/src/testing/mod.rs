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
//! With `TOOLKIT_TEST_TLS=1` the throwaway cluster takes TLS connections only (certificates
//! made for it, plain TCP rejected by `pg_hba.conf`) and its settings use `ssl_mode`
//! verify-full, so a whole test suite runs over TLS.
//!
//! Needs the PostgreSQL server binaries (`apt-get install postgresql` on Debian/Ubuntu) unless
//! `DATABASE_URL` points at a server where the user may `CREATE DATABASE`.

mod cluster;
mod database;
mod tls;

pub use cluster::{TestCluster, TestClusterBuilder};
pub use database::TestDatabase;
pub use tls::{CertifiedKey, TestCertificates};

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
