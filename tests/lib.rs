//! Shared helpers of the integration and fault tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed setup should fail the test loudly

pub mod pgbouncer;
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

/// A database on a fresh test database with its settings adjusted, after running `schema` over
/// an admin connection (the pool stays unopened).
pub async fn db_with(
    schema: &str,
    adjust: impl FnOnce(DatabaseSettings) -> DatabaseSettings,
) -> (TestDatabase, Database) {
    let (tdb, settings) = fresh().await;
    let db = Database::new(adjust(settings)).unwrap();
    if !schema.is_empty() {
        tdb.connect()
            .await
            .unwrap()
            .batch_execute(schema)
            .await
            .unwrap();
    }
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

/// The first column of the first row of `sql`, run with the simple query protocol.
pub async fn first_value(conn: &toolkit::Connection, sql: &str) -> String {
    conn.simple_query(sql)
        .await
        .unwrap()
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap()
}

/// Panics unless the next pooled connection is outside any transaction, and returns its backend.
pub async fn assert_clean(db: &Database) -> i32 {
    let conn = tokio::time::timeout(Duration::from_secs(10), db.connection())
        .await
        .expect("checkout within 10 s")
        .unwrap();
    let first: i64 = conn
        .query_one("SELECT txid_current()", &[])
        .await
        .unwrap()
        .get(0);
    let second: i64 = conn
        .query_one("SELECT txid_current()", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(
        first, second,
        "the connection is inside a leftover transaction"
    );
    // One simple-protocol message: its statement starts the transaction only if none is open.
    let fresh = first_value(&conn, "SELECT now() = statement_timestamp()").await;
    assert_eq!(
        fresh, "t",
        "the connection is inside a leftover transaction"
    );
    conn.query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

/// The README's examples, compiled as doc tests of this crate: the README lies outside the
/// `toolkit` crate, which therefore cannot include it without breaking `cargo package`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExamples;
