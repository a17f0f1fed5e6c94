//! `Pool::status()` (issue 15): connections open, idle and in use, waiters, and the counters
//! of connects, connect failures, checkout timeouts and discarded connections, each driven by
//! the event it counts; and the events that go with them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod trace_common;

use std::time::{Duration, Instant};

use toolkit::{DatabaseSettings, Error, PoolStatus};
use toolkit_tests::db_with;
use trace_common::Recorder;

/// Polls `status` until `done` holds, for at most 5 s.
async fn status_until(pool: &toolkit::Pool, done: impl Fn(&PoolStatus) -> bool) -> PoolStatus {
    let start = Instant::now();
    loop {
        let status = pool.status();
        if done(&status) || start.elapsed() > Duration::from_secs(5) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn connections_waiters_and_checkout_timeouts() {
    let (_tdb, db) = db_with("", |s| DatabaseSettings {
        min_pool_size: 1,
        max_pool_size: 1,
        pool_timeout: Duration::from_millis(300),
        ..s
    })
    .await;
    db.init_db().await.unwrap();
    let pool = db.get_pool().await.unwrap();
    let status = pool.status();
    assert_eq!((status.connections, status.idle, status.in_use), (1, 1, 0));
    assert_eq!(status.connects, 1);
    assert_eq!(
        (
            status.connect_failures,
            status.checkout_timeouts,
            status.discarded,
            status.waiters
        ),
        (0, 0, 0, 0)
    );

    let recorder = Recorder::default();
    let _guard = recorder.install();
    let held = pool.get().await.unwrap();
    let status = pool.status();
    assert_eq!((status.connections, status.idle, status.in_use), (1, 0, 1));

    // One waiter that gets the connection once it is given back.
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(drop) }
    });
    assert_eq!(status_until(&pool, |s| s.waiters == 1).await.waiters, 1);
    drop(held);
    waiter.await.unwrap().unwrap();
    assert_eq!(pool.status().waiters, 0);

    // One that times out.
    let held = pool.get().await.unwrap();
    let err = pool.get().await.unwrap_err();
    assert!(
        matches!(err, Error::Pool { .. }) && err.is_timeout(),
        "{err}"
    );
    drop(held);
    let status = pool.status();
    assert_eq!((status.checkout_timeouts, status.waiters), (1, 0));
    let timeouts: Vec<_> = recorder
        .events()
        .into_iter()
        .filter(|e| e.message().starts_with("timed out"))
        .collect();
    assert_eq!(timeouts.len(), 1, "{timeouts:#?}");
    assert_eq!(timeouts[0].level, tracing::Level::WARN);
    assert_eq!(timeouts[0].fields["waited"], "300ms");
    // `Pool::state` still says the same.
    let state = pool.state();
    assert_eq!((state.connections, state.idle), (1, 1));
}

#[tokio::test]
async fn a_connection_abandoned_after_query_timeout_is_discarded_and_counted() {
    let (_tdb, db) = db_with("", |s| DatabaseSettings {
        min_pool_size: 1,
        max_pool_size: 2,
        query_timeout: Some(Duration::from_millis(100)),
        ..s
    })
    .await;
    db.init_db().await.unwrap();
    let pool = db.get_pool().await.unwrap();
    let recorder = Recorder::default();
    let _guard = recorder.install();

    let tx = db.transaction().await.unwrap();
    let err = tx.execute("SELECT pg_sleep(2)", &[]).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    drop(tx);
    let status = status_until(&pool, |s| s.discarded == 1).await;
    assert_eq!(status.discarded, 1);
    let discards: Vec<_> = recorder
        .events()
        .into_iter()
        .filter(|e| e.message().starts_with("discarded"))
        .collect();
    assert_eq!(discards.len(), 1, "{discards:#?}");
    assert_eq!(discards[0].level, tracing::Level::WARN);
    assert!(
        discards[0].fields["reason"].contains("abandoned"),
        "{discards:?}"
    );
    // The pool replaces it.
    assert_eq!(status_until(&pool, |s| s.connects >= 2).await.connects, 2);
    db.connection().await.unwrap();
}

#[tokio::test]
async fn a_killed_backend_is_discarded_and_counted() {
    let (tdb, db) = db_with("", |s| DatabaseSettings {
        min_pool_size: 1,
        max_pool_size: 1,
        ..s
    })
    .await;
    db.init_db().await.unwrap();
    let pool = db.get_pool().await.unwrap();
    let conn = pool.get().await.unwrap();
    let pid: i32 = conn
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    tdb.connect()
        .await
        .unwrap()
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    // The driver sees the socket close shortly after.
    let start = Instant::now();
    while !conn.is_closed() && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(conn);
    assert_eq!(status_until(&pool, |s| s.discarded == 1).await.discarded, 1);
    db.connection().await.unwrap();
    assert_eq!(pool.status().connects, 2);
}

#[tokio::test]
async fn connect_failures_are_counted_and_reported() {
    let (tdb, db) = db_with("", |s| DatabaseSettings {
        min_pool_size: 0,
        max_pool_size: 1,
        pool_timeout: Duration::from_millis(500),
        ..s
    })
    .await;
    db.init_db().await.unwrap();
    let pool = db.get_pool().await.unwrap();
    // On another database: the server refuses to lock out the one a session is on.
    let admin = DatabaseSettings {
        dbname: "postgres".into(),
        ..tdb.settings()
    }
    .connect()
    .await
    .unwrap();
    let name = tdb.name().replace('"', "\"\"");
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"
        ))
        .await
        .unwrap();
    let recorder = Recorder::default();
    let _guard = recorder.install();
    let err = pool.get().await.unwrap_err();
    admin
        .batch_execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    assert!(err.is_timeout(), "{err}");
    let status = pool.status();
    assert!(status.connect_failures >= 1, "{status:?}");
    assert_eq!(status.checkout_timeouts, 1);
    let failures: Vec<_> = recorder
        .events()
        .into_iter()
        .filter(|e| e.message().starts_with("cannot open a pooled connection"))
        .collect();
    assert!(!failures.is_empty());
    assert_eq!(failures[0].level, tracing::Level::WARN);
    assert!(
        failures[0].fields["error"].contains("not currently accepting connections"),
        "{failures:?}"
    );
    pool.get().await.unwrap();
}
