//! Shared helpers of the integration and fault tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed setup should fail the test loudly

pub mod proxy;

use std::time::Duration;

use toolkit::testing::TestDatabase;
use toolkit::{Database, DatabaseSettings};

/// A fresh database and settings for it, with short timeouts so failing tests fail fast.
pub async fn fresh() -> (TestDatabase, DatabaseSettings) {
    let tdb = TestDatabase::create().await.expect("create test database");
    let settings = DatabaseSettings {
        pool_timeout: Duration::from_secs(10),
        ..tdb.settings()
    };
    (tdb, settings)
}

/// A `Database` on a fresh test database; the `TestDatabase` must outlive it.
pub async fn fresh_db() -> (TestDatabase, Database) {
    let (tdb, settings) = fresh().await;
    let db = Database::new(settings).expect("valid settings");
    (tdb, db)
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Number of server backends whose `application_name` is `app`, counted on the server `tdb` lives on.
pub async fn backends_named(tdb: &TestDatabase, app: &str) -> i64 {
    let client = tdb.connect().await.expect("admin connect");
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .expect("count backends");
    row.get(0)
}
