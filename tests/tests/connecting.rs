//! Where the pool connects: Unix-domain sockets, several hosts with `target_session_attrs`,
//! and the same from URLs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use toolkit::testing::TestCluster;
use toolkit::{Database, DatabaseSettings, Error, TargetSessionAttrs};
use toolkit_tests::closed_port;

const TEST_DEADLINE: Duration = Duration::from_secs(60);

/// `inet_server_addr()` is NULL on a Unix-socket connection.
async fn over_socket(db: &Database) -> bool {
    db.connection()
        .await
        .unwrap()
        .query_one("SELECT inet_server_addr() IS NULL", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_directory_as_host() {
    tokio::time::timeout(TEST_DEADLINE, async {
        // /tmp is writable by the server's user whoever runs the test; the socket's name
        // carries the cluster's port, so clusters do not collide.
        let cluster = tokio::task::spawn_blocking(|| {
            TestCluster::builder()
                .setting("unix_socket_directories", "/tmp")
                .start()
        })
        .await
        .unwrap()
        .unwrap();
        let db = Database::new(DatabaseSettings {
            host: "/tmp".into(),
            min_pool_size: 1,
            ..cluster.settings()
        })
        .unwrap();
        assert!(over_socket(&db).await, "connected over TCP, not the socket");

        let url = format!("postgres://postgres@%2Ftmp:{}/postgres", cluster.port());
        let from_url = DatabaseSettings::from_url(&url).unwrap();
        assert_eq!(from_url.host, "/tmp");
        let db = Database::new(DatabaseSettings {
            min_pool_size: 1,
            ..from_url
        })
        .unwrap();
        assert!(over_socket(&db).await);
        db.cleanup().await;
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_host_that_accepts_serves_the_pool() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let cluster = tokio::task::spawn_blocking(TestCluster::start)
            .await
            .unwrap()
            .unwrap();
        let dead = closed_port();
        let port = cluster.port();
        for attrs in [TargetSessionAttrs::Any, TargetSessionAttrs::ReadWrite] {
            let db = Database::new(DatabaseSettings {
                host: format!("127.0.0.1:{dead},127.0.0.1:{port}"),
                target_session_attrs: attrs,
                min_pool_size: 1,
                connection_timeout: Duration::from_secs(2),
                ..cluster.settings()
            })
            .unwrap();
            db.init_db().await.unwrap();
            let served: i32 = db
                .connection()
                .await
                .unwrap()
                .query_one("SELECT inet_server_port()", &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(served, i32::from(port));
            db.cleanup().await;
        }

        // The same list from a URL, libpq's way.
        let url = format!(
            "postgres://postgres@127.0.0.1:{dead},127.0.0.1:{port}/postgres?target_session_attrs=read-write"
        );
        let settings = DatabaseSettings::from_url(&url).unwrap();
        assert_eq!(settings.host, format!("127.0.0.1:{dead},127.0.0.1:{port}"));
        assert_eq!(settings.target_session_attrs, TargetSessionAttrs::ReadWrite);
        let db = Database::new(DatabaseSettings { min_pool_size: 1, ..settings }).unwrap();
        assert!(db.check_pool_health().await);
        db.cleanup().await;

        // No host accepts: the error names the last cause.
        let db = Database::new(DatabaseSettings {
            host: format!("127.0.0.1:{dead},127.0.0.1:{}", closed_port()),
            connect_retry: toolkit::RetryPolicy::fast(1),
            ..cluster.settings()
        })
        .unwrap();
        let err = db.ping_postgres().await.unwrap_err();
        assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    })
    .await
    .expect("test deadline");
}

#[test]
fn host_lists_are_validated_before_any_io() {
    for bad in ["a,,b", "db:99999", "db:0", ","] {
        let err = Database::new(DatabaseSettings {
            host: bad.into(),
            ..DatabaseSettings::default()
        })
        .unwrap_err();
        assert!(
            matches!(err, Error::InvalidSettings { field: "host", .. }),
            "{bad}: {err:?}"
        );
    }
    for good in [
        "db1,db2:5433",
        "/var/run/postgresql",
        "[::1]:5432,localhost",
    ] {
        Database::new(DatabaseSettings {
            host: good.into(),
            ..DatabaseSettings::default()
        })
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_options_reach_the_server() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let cluster = tokio::task::spawn_blocking(TestCluster::start)
            .await
            .unwrap()
            .unwrap();
        // libpq's `options`, percent-encoded in the URL; a `-c` of its own wins over the
        // field's.
        let url = format!(
            "postgres://postgres@127.0.0.1:{}/postgres?options=-c%20search_path%3Dapp%2Cpublic%20-c%20statement_timeout%3D4s",
            cluster.port()
        );
        let db = Database::new(DatabaseSettings {
            statement_timeout: Some(Duration::from_secs(9)),
            min_pool_size: 1,
            ..DatabaseSettings::from_url(&url).unwrap()
        })
        .unwrap();
        let conn = db.connection().await.unwrap();
        let shown = |name: &'static str| {
            let conn = &conn;
            async move {
                conn.query_one(&format!("SHOW {name}"), &[])
                    .await
                    .unwrap()
                    .get::<_, String>(0)
            }
        };
        assert_eq!(shown("search_path").await, "app,public");
        assert_eq!(shown("statement_timeout").await, "4s");
        drop(conn);
        db.cleanup().await;
    })
    .await
    .expect("test deadline");
}
