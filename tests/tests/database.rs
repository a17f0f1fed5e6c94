//! `Database` and its pool against a real server (issue 2).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use toolkit::testing::{TestCluster, TestDatabase};
use toolkit::{Database, DatabaseSettings, Error, PoolErrorKind, RetryPolicy, SqlState};
use toolkit_tests::{backends_named, closed_port, fresh, fresh_db};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_query_cleanup_and_lazy_recreation() {
    let (_tdb, db) = fresh_db().await;
    assert!(!db.is_pool_active());
    db.init_db().await.unwrap();
    assert!(db.is_pool_active());
    {
        let conn = db.connection().await.unwrap();
        let row = conn
            .query_one("SELECT $1::int + 1", &[&41i32])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), 42);
    }
    assert!(db.check_pool_health().await);
    let old_pool = db.get_pool().await.unwrap();

    db.cleanup().await;
    assert!(!db.is_pool_active());
    let err = old_pool.get().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Pool {
                kind: PoolErrorKind::Closed,
                ..
            }
        ),
        "{err:?}"
    );

    // The next use creates a fresh pool by itself.
    let conn = db.connection().await.unwrap();
    assert_eq!(
        conn.query_one("SELECT 7", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        7
    );
    assert!(db.is_pool_active());
    drop(conn);
    db.cleanup().await;
    let pool = db.get_pool().await.unwrap();
    assert!(!pool.is_closed());
    assert!(db.is_pool_active());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_calls_create_one_pool() {
    let (tdb, settings) = fresh().await;
    let app = format!("one_pool_{}", std::process::id());
    let db = Database::new(DatabaseSettings {
        min_pool_size: 3,
        application_name: app.clone(),
        ..settings
    })
    .unwrap();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { db.get_pool().await.map(|_| ()) })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    // Two pools would have opened 2 x min_pool_size connections.
    assert_eq!(backends_named(&tdb, &app).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_callbacks_run_in_order() {
    let (_tdb, db) = fresh_db().await;
    let order = Arc::new(Mutex::new(Vec::new()));
    for i in 0..3 {
        let order = order.clone();
        db.register_init_callback(move |pool| {
            let order = order.clone();
            async move {
                let conn = pool.get().await?;
                conn.execute("CREATE TABLE IF NOT EXISTS seen (i int)", &[])
                    .await?;
                conn.execute("INSERT INTO seen VALUES ($1)", &[&i]).await?;
                order.lock().unwrap().push(i);
                Ok(())
            }
        })
        .await;
    }
    db.init_db().await.unwrap();
    assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
    let conn = db.connection().await.unwrap();
    let seen: Vec<i32> = conn
        .query("SELECT i FROM seen", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seen.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_init_callback_fails_init_and_leaves_no_pool() {
    let (_tdb, db) = fresh_db().await;
    let later_ran = Arc::new(Mutex::new(false));
    db.register_init_callback(|pool| async move {
        pool.get()
            .await?
            .execute("SELECT * FROM no_such_table", &[])
            .await?;
        Ok(())
    })
    .await;
    let flag = later_ran.clone();
    db.register_init_callback(move |_pool| {
        let flag = flag.clone();
        async move {
            *flag.lock().unwrap() = true;
            Ok(())
        }
    })
    .await;
    let err = db.init_db().await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE), "{err}");
    assert!(err.to_string().contains("no_such_table"), "{err}");
    assert!(!db.is_pool_active());
    assert!(!*later_ran.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_applies_to_every_pooled_connection() {
    let (_tdb, settings) = fresh().await;
    let limited = Database::new(DatabaseSettings {
        statement_timeout: Some(Duration::from_secs(1)),
        ..settings.clone()
    })
    .unwrap();
    let conn = limited.connection().await.unwrap();
    let started = Instant::now();
    let err = Error::from(conn.simple_query("SELECT pg_sleep(3)").await.unwrap_err());
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");
    assert!(err.is_timeout());
    assert!(started.elapsed() < Duration::from_millis(2500));

    let unlimited = Database::new(settings).unwrap();
    let conn = unlimited.connection().await.unwrap();
    conn.simple_query("SELECT pg_sleep(3)").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_exhaustion_times_out_then_recovers() {
    let (_tdb, settings) = fresh().await;
    let timeout = Duration::from_millis(700);
    let db = Database::new(DatabaseSettings {
        max_pool_size: 1,
        min_pool_size: 1,
        pool_timeout: timeout,
        ..settings
    })
    .unwrap();
    let held = db.connection().await.unwrap();
    let started = Instant::now();
    let err = db.connection().await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(
            err,
            Error::Pool {
                kind: PoolErrorKind::Timeout,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_timeout());
    assert!(
        waited >= timeout - Duration::from_millis(50) && waited < timeout * 3,
        "{waited:?}"
    );
    drop(held);
    let conn = db.connection().await.unwrap();
    conn.simple_query("SELECT 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_tasks_share_four_connections() {
    let (_tdb, settings) = fresh().await;
    let db = Database::new(DatabaseSettings {
        max_pool_size: 4,
        min_pool_size: 1,
        ..settings
    })
    .unwrap();
    let tasks: Vec<_> = (0..200i32)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let conn = db.connection().await?;
                let row = conn.query_one("SELECT $1::int * 2", &[&i]).await?;
                Ok::<i32, Error>(row.get(0))
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(task.await.unwrap().unwrap(), i32::try_from(i).unwrap() * 2);
    }
    let open = db.get_pool().await.unwrap().state().connections;
    assert!(open <= 4, "{open} connections open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_closed_port_gives_connection_error_after_all_attempts() {
    let settings = DatabaseSettings {
        host: "127.0.0.1".into(),
        port: closed_port(),
        connect_retry: RetryPolicy {
            attempts: 3,
            initial_delay: Duration::from_millis(50),
            factor: 2.0,
            max_delay: Duration::from_secs(1),
        },
        ..DatabaseSettings::default()
    };
    let db = Database::new(settings).unwrap();
    let started = Instant::now();
    let err = db.ping_postgres().await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    assert!(err.is_connection_lost());
    let source = std::error::Error::source(&err).expect("source");
    assert!(
        source.downcast_ref::<tokio_postgres::Error>().is_some(),
        "{source:?}"
    );
    let message = err.to_string();
    assert!(message.contains("after 3 attempt(s)"), "{message}");
    assert!(
        message.to_lowercase().contains("connection refused"),
        "{message}"
    );
    // Waits drawn under 50 ms and 100 ms between the three attempts (full jitter; its bounds
    // are pinned by the unit tests of `RetryPolicy`).
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    // init_db goes through the same ping.
    assert!(matches!(
        db.init_db().await.unwrap_err(),
        Error::Connection { .. }
    ));
    assert!(!db.is_pool_active());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_timeout_carries_the_real_connect_error() {
    let settings = DatabaseSettings {
        host: "127.0.0.1".into(),
        port: closed_port(),
        min_pool_size: 0,
        pool_timeout: Duration::from_millis(800),
        ..DatabaseSettings::default()
    };
    let db = Database::new(settings).unwrap();
    let started = Instant::now();
    let err = db.connection().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(
            err,
            Error::Pool {
                kind: PoolErrorKind::Timeout,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .to_lowercase()
            .contains("connection refused"),
        "{err}"
    );
    let source = std::error::Error::source(&err).expect("source");
    assert!(
        source.to_string().contains("error connecting to server"),
        "{source}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_names_the_authentication_failure() {
    let cluster =
        tokio::task::spawn_blocking(|| TestCluster::builder().password("right-pass").start())
            .await
            .unwrap()
            .unwrap();
    let good = Database::new(DatabaseSettings {
        min_pool_size: 1,
        ..cluster.settings()
    })
    .unwrap();
    good.connection()
        .await
        .unwrap()
        .simple_query("SELECT 1")
        .await
        .unwrap();

    let wrong = DatabaseSettings {
        password: "wrong-pass".into(),
        min_pool_size: 1,
        pool_timeout: Duration::from_secs(2),
        connection_timeout: Duration::from_secs(2),
        connect_retry: RetryPolicy::fast(2),
        ..cluster.settings()
    };
    let db = Database::new(wrong).unwrap();
    let started = Instant::now();
    let err = db.ping_postgres().await.unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    assert!(
        err.to_string().contains("password authentication failed"),
        "{err}"
    );
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD));

    let err = db.connection().await.unwrap_err();
    assert!(matches!(err, Error::Pool { .. }), "{err:?}");
    assert!(
        err.to_string().contains("password authentication failed"),
        "{err}"
    );
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(!format!("{err:?}{err}").contains("wrong-pass"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_turns_false_when_the_server_stops() {
    let cluster = tokio::task::spawn_blocking(TestCluster::start)
        .await
        .unwrap()
        .unwrap();
    let tdb = TestDatabase::create_in(&cluster).await.unwrap();
    let db = Database::new(DatabaseSettings {
        connection_timeout: Duration::from_secs(2),
        pool_timeout: Duration::from_secs(2),
        ..tdb.settings()
    })
    .unwrap();
    db.init_db().await.unwrap();
    assert!(db.check_pool_health().await);

    let cluster = Arc::new(cluster);
    let stopper = cluster.clone();
    tokio::task::spawn_blocking(move || stopper.stop())
        .await
        .unwrap()
        .unwrap();
    let started = Instant::now();
    assert!(!db.check_pool_health().await);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    let starter = cluster.clone();
    tokio::task::spawn_blocking(move || starter.start_again())
        .await
        .unwrap()
        .unwrap();
    // The pool replaces its dead connections without being rebuilt.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !db.check_pool_health().await {
        assert!(Instant::now() < deadline, "pool did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_settings_are_rejected_before_any_io() {
    // Port 1 would refuse or hang; validation must answer first.
    let base = DatabaseSettings {
        host: "127.0.0.1".into(),
        port: 1,
        ..DatabaseSettings::default()
    };
    let cases = [
        (
            DatabaseSettings {
                host: String::new(),
                ..base.clone()
            },
            "host",
        ),
        (
            DatabaseSettings {
                min_pool_size: 9,
                max_pool_size: 3,
                ..base.clone()
            },
            "min_pool_size",
        ),
        (
            DatabaseSettings {
                max_pool_size: 0,
                min_pool_size: 0,
                ..base.clone()
            },
            "max_pool_size",
        ),
    ];
    for (settings, field) in cases {
        match Database::new(settings) {
            Err(Error::InvalidSettings { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected InvalidSettings for {field}, got {other:?}"),
        }
    }
    match DatabaseSettings::from_url("postgres://user@host:port/db") {
        Err(Error::InvalidSettings { field: "url", .. }) => {}
        other => panic!("expected InvalidSettings for url, got {other:?}"),
    }
}
