//! `max_lifetime`: pooled connections are replaced once they are older, while idle or when they
//! come back, never while a caller holds them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use toolkit::{Database, DatabaseSettings, Error};
use toolkit_tests::fresh;

async fn pid(conn: &toolkit::Connection) -> i32 {
    conn.query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_replaced_after_max_lifetime_never_while_held() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let (_tdb, settings) = fresh().await;
        let db = Database::new(DatabaseSettings {
            min_pool_size: 1,
            max_pool_size: 1,
            max_lifetime: Some(Duration::from_secs(1)),
            ..settings
        })
        .unwrap();

        // Held past its lifetime: it keeps working for the caller who holds it.
        let conn = db.connection().await.unwrap();
        let first = pid(&conn).await;
        tokio::time::sleep(Duration::from_millis(1_300)).await;
        assert_eq!(pid(&conn).await, first, "replaced while held");
        drop(conn);

        // Given back expired: replaced.
        let conn = db.connection().await.unwrap();
        let second = pid(&conn).await;
        assert_ne!(second, first, "an expired connection was handed out again");
        drop(conn);

        // Expired while idle in the pool: replaced at the next checkout.
        tokio::time::sleep(Duration::from_millis(1_300)).await;
        let conn = db.connection().await.unwrap();
        let third = pid(&conn).await;
        assert_ne!(
            third, second,
            "an idle expired connection was handed out again"
        );
        drop(conn);

        // Before its lifetime is up, the same connection comes back.
        let conn = db.connection().await.unwrap();
        assert_eq!(pid(&conn).await, third);
    })
    .await
    .expect("test deadline");
}

#[test]
fn lifetimes_are_validated() {
    for (field, settings) in [
        (
            "max_lifetime",
            DatabaseSettings {
                max_lifetime: Some(Duration::ZERO),
                ..DatabaseSettings::default()
            },
        ),
        (
            "idle_timeout",
            DatabaseSettings {
                idle_timeout: Some(Duration::ZERO),
                ..DatabaseSettings::default()
            },
        ),
        (
            "max_lifetime",
            DatabaseSettings {
                max_lifetime: Some(Duration::MAX),
                ..DatabaseSettings::default()
            },
        ),
    ] {
        match Database::new(settings) {
            Err(Error::InvalidSettings { field: got, .. }) => assert_eq!(got, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    let defaults = DatabaseSettings::default();
    assert_eq!(defaults.max_lifetime, Some(Duration::from_secs(1800)));
    assert_eq!(defaults.idle_timeout, Some(Duration::from_secs(600)));
}
