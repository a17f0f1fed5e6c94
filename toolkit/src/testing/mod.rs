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
//! Needs the PostgreSQL server binaries (`apt-get install postgresql` on Debian/Ubuntu) unless
//! `DATABASE_URL` points at a server where the user may `CREATE DATABASE`.

mod cluster;
mod database;

pub use cluster::{TestCluster, TestClusterBuilder};
pub use database::TestDatabase;
