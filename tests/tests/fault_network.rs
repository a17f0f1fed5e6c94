//! Fault suite, the network through the fault-injecting proxy (issue 7, scenarios 4-6):
//! half-open connections, 200 ms latency, connections cut halfway through a large result or a
//! bulk upload.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_common;

use std::time::{Duration, Instant};

use fault_common::{
    backend_pid, item, items_db, pids_of, proxied, unique_app, wait_until, Item, ItemPatch,
};
use futures_util::future::join_all;
use toolkit::{Database, DatabaseSettings, Error, PoolErrorKind, Repository, SqlState};
use toolkit_tests::proxy::Mode;

/// Every test must end within this, whatever the proxy does.
const TEST_DEADLINE: Duration = Duration::from_secs(90);

fn assert_within(elapsed: Duration, low: Duration, high: Duration, what: &str) {
    assert!(
        elapsed >= low && elapsed <= high,
        "{what}: took {elapsed:?}, expected {low:?}..={high:?}"
    );
}

/// Scenario 4: the pool's connections go half-open (the proxy stops forwarding, closes
/// nothing). An operation fails with a timeout within `query_timeout`; the abandoned
/// connection is discarded, and the pool serves the next requests from new, healthy
/// connections (at most one timeout per dead connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connection_fails_within_deadline_and_is_replaced() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let tdb = items_db().await;
        let (proxy, settings) = proxied(&tdb).await;
        let app = unique_app("half_open");
        let query_timeout = Duration::from_secs(1);
        let db = Database::new(DatabaseSettings {
            application_name: app.clone(),
            min_pool_size: 2,
            max_pool_size: 2,
            query_timeout: Some(query_timeout),
            connection_timeout: Duration::from_secs(2),
            pool_timeout: Duration::from_secs(5),
            ..settings
        })
        .unwrap();
        db.init_db().await.unwrap();
        let repo = Repository::<Item>::new(&db);
        repo.create(&item("before", 1)).await.unwrap();
        // Both connections open and used (prepared statements cached on each).
        let conns = join_all((0..2).map(|_| db.connection())).await;
        let mut dead_pids = Vec::new();
        for conn in &conns {
            let conn = conn.as_ref().unwrap();
            assert_eq!(Repository::<Item>::new(conn).count().await.unwrap(), 1);
            dead_pids.push(
                conn.query_one("SELECT pg_backend_pid()", &[])
                    .await
                    .unwrap()
                    .get::<_, i32>(0),
            );
        }
        drop(conns);
        let accepted = proxy.accepted();

        // Only the connections open now go silent; new ones take a healthy path.
        proxy.set_live(Mode::Blackhole);
        let mut timeouts = 0;
        let mut served = 0;
        for _ in 0..10 {
            let started = Instant::now();
            match repo.count().await {
                Ok(n) => {
                    assert_eq!(n, 1);
                    served += 1;
                    assert_within(
                        started.elapsed(),
                        Duration::ZERO,
                        Duration::from_secs(3),
                        "a healthy request",
                    );
                    if served == 5 {
                        break;
                    }
                }
                Err(err) => {
                    assert_eq!(served, 0, "a timeout after the pool had recovered: {err:?}");
                    assert!(err.is_timeout(), "{err:?}");
                    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
                    assert_within(
                        started.elapsed(),
                        query_timeout,
                        query_timeout + Duration::from_secs(1),
                        "the half-open request",
                    );
                    timeouts += 1;
                }
            }
        }
        assert!(
            (1..=2).contains(&timeouts),
            "{timeouts} timeouts for 2 dead connections"
        );
        assert_eq!(served, 5);
        assert!(proxy.accepted() > accepted, "no new connection was opened");
        let pid = backend_pid(&db).await;
        assert!(
            !dead_pids.contains(&pid),
            "a half-open connection served a request"
        );
        let open = db.get_pool().await.unwrap().state().connections;
        assert!(open <= 2, "{open} open");
        eprintln!("half-open: {timeouts} timeout(s), then served from new connections");
    })
    .await
    .expect("test deadline");
}

/// Scenario 4, the statement already running when the network goes silent: the client gives
/// up after `query_timeout`, and the server-side cancel (sent on a new connection) stops the
/// statement, so it does not hold its lock until the server notices the dead peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_during_a_statement_cancels_it_on_the_server() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let tdb = items_db().await;
        let (proxy, settings) = proxied(&tdb).await;
        let app = unique_app("half_open_stmt");
        let query_timeout = Duration::from_secs(1);
        let db = Database::new(DatabaseSettings {
            application_name: app.clone(),
            min_pool_size: 1,
            max_pool_size: 1,
            query_timeout: Some(query_timeout),
            connection_timeout: Duration::from_secs(2),
            pool_timeout: Duration::from_secs(5),
            ..settings
        })
        .unwrap();
        db.init_db().await.unwrap();
        let repo = Repository::<Item>::new(&db);
        let row = repo.create(&item("locked", 1)).await.unwrap();
        let dead_pid = backend_pid(&db).await;

        // A second client holds the row lock, so the update waits on the server; the admin
        // watches (outside a transaction: inside one, pg_stat_activity is a snapshot).
        let admin = tdb.connect().await.unwrap();
        let locker = tdb.connect().await.unwrap();
        locker
            .batch_execute(&format!("BEGIN; SELECT * FROM items WHERE id = {} FOR UPDATE", row.id))
            .await
            .unwrap();
        let waiting = async {
            wait_until(Duration::from_secs(10), "the update to wait for the lock", || async {
                admin
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
                        &[&dead_pid],
                    )
                    .await
                    .unwrap()
                    .get::<_, i64>(0)
                    == 1
            })
            .await;
            proxy.set_live(Mode::Blackhole);
        };
        let started = Instant::now();
        let (outcome, ()) = tokio::join!(
            repo.update(row.id, ItemPatch { value: Some(2), ..Default::default() }),
            waiting
        );
        let err = outcome.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        assert_within(started.elapsed(), query_timeout, query_timeout + Duration::from_secs(2), "the update");
        // The cancel went through a new connection: the server stops waiting for the lock.
        wait_until(Duration::from_secs(5), "the server to cancel the abandoned update", || async {
            admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
                    &[&dead_pid],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
                == 0
        })
        .await;
        locker.batch_execute("ROLLBACK").await.unwrap();
        // The next request is served by a new connection, and the row was never updated.
        let fresh = repo.get_by_id(row.id).await.unwrap();
        assert_eq!(fresh.value, 1);
        assert_ne!(backend_pid(&db).await, dead_pid);
        assert!(pids_of(&admin, &app).await.len() <= 2);
    })
    .await
    .expect("test deadline");
}

/// Scenario 5a: 200 ms on every packet, both ways: every repository operation stays correct
/// (concurrent single-row CRUD, a COPY-path bulk insert, reads), just slower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_keeps_operations_correct() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let tdb = items_db().await;
        let (proxy, settings) = proxied(&tdb).await;
        proxy.set(Mode::Latency(Duration::from_millis(200)));
        let db = Database::new(DatabaseSettings {
            application_name: unique_app("latency"),
            min_pool_size: 1,
            max_pool_size: 5,
            connection_timeout: Duration::from_secs(10),
            pool_timeout: Duration::from_secs(30),
            ..settings
        })
        .unwrap();
        let started = Instant::now();
        db.init_db().await.unwrap();
        let connect = started.elapsed();
        let repo = Repository::<Item>::new(&db);
        let crud = join_all((0..4).map(|n| async move {
            let created = repo.create(&item(format!("slow-{n}"), n)).await.unwrap();
            assert_eq!(repo.get_by_id(created.id).await.unwrap(), created);
            let patch = ItemPatch {
                value: Some(n + 100),
                ..Default::default()
            };
            let updated = repo.update(created.id, patch).await.unwrap();
            assert_eq!(updated.value, n + 100);
            assert_eq!(repo.get_by_id(created.id).await.unwrap(), updated);
            repo.delete(created.id).await.unwrap();
            assert!(!repo.exists(created.id).await.unwrap());
            assert!(repo.get_by_id(created.id).await.unwrap_err().is_not_found());
        }));
        let bulk: Vec<Item> = (0..300).map(|n| item(format!("bulk-{n}"), n)).collect();
        let bulk_and_read = async {
            let stored = repo.create_bulk(&bulk).await.unwrap();
            assert_eq!(stored.len(), bulk.len());
            for (stored, wanted) in stored.iter().zip(&bulk) {
                assert_eq!((&stored.tag, stored.value), (&wanted.tag, wanted.value));
            }
            stored
        };
        let ops = Instant::now();
        let (_, stored) = tokio::join!(crud, bulk_and_read);
        let ops = ops.elapsed();
        let all = repo.get_all().await.unwrap();
        assert_eq!(all, stored, "get_all returns exactly the bulk, in order");
        assert_eq!(repo.count().await.unwrap(), 300);
        eprintln!("latency 200 ms: connect {connect:?}, concurrent CRUD + bulk {ops:?}");
        // The latency was real: a round trip is at least 400 ms.
        assert!(connect >= Duration::from_millis(400), "{connect:?}");
        assert!(ops >= Duration::from_millis(800), "{ops:?}");
    })
    .await
    .expect("test deadline");
}

/// Scenario 5b: a `connection_timeout` shorter than the (slow) handshake makes connecting fail
/// with a timeout, quickly, instead of waiting for the handshake to finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_connection_timeout_shorter_than_handshake() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let tdb = items_db().await;
        let (proxy, settings) = proxied(&tdb).await;
        proxy.set(Mode::Latency(Duration::from_millis(200)));
        let settings = DatabaseSettings {
            application_name: unique_app("latency_connect"),
            min_pool_size: 0,
            max_pool_size: 2,
            connection_timeout: Duration::from_millis(300),
            pool_timeout: Duration::from_millis(1500),
            connect_retry: toolkit::RetryPolicy::fast(2),
            ..settings
        };

        // Through the pool: a pool timeout carrying the connect timeout.
        let db = Database::new(settings.clone()).unwrap();
        let started = Instant::now();
        let err = db.connection().await.unwrap_err();
        let took = started.elapsed();
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
        assert!(err.is_timeout(), "{err:?}");
        assert!(err.to_string().contains("took longer than 300ms"), "{err}");
        assert_within(
            took,
            Duration::from_millis(1400),
            Duration::from_secs(4),
            "checkout",
        );

        // Pool creation (min_pool_size > 0) and the ping: errors whose cause is the timeout.
        let db = Database::new(DatabaseSettings {
            min_pool_size: 1,
            ..settings.clone()
        })
        .unwrap();
        let started = Instant::now();
        let err = db.create_pool().await.unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert_within(
            started.elapsed(),
            Duration::ZERO,
            Duration::from_secs(5),
            "pool creation",
        );
        let started = Instant::now();
        let err = db.ping_postgres().await.unwrap_err();
        assert!(matches!(err, Error::Connection { .. }), "{err:?}");
        assert!(err.is_timeout(), "{err:?}");
        assert_within(
            started.elapsed(),
            Duration::ZERO,
            Duration::from_secs(3),
            "ping",
        );

        // A connection_timeout longer than the handshake connects fine.
        let db = Database::new(DatabaseSettings {
            connection_timeout: Duration::from_secs(10),
            pool_timeout: Duration::from_secs(20),
            ..settings
        })
        .unwrap();
        db.ping_postgres().await.unwrap();
        assert_eq!(Repository::<Item>::new(&db).count().await.unwrap(), 0);
    })
    .await
    .expect("test deadline");
}

/// Scenario 5c: under latency, `statement_timeout` is the server's clock (the network delay does
/// not count), `pool_timeout` bounds the wait for a busy pool, and `query_timeout` bounds the
/// whole round trip on the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_statement_pool_and_query_timeouts() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let tdb = items_db().await;
        let (proxy, settings) = proxied(&tdb).await;
        let db = Database::new(DatabaseSettings {
            application_name: unique_app("latency_timeouts"),
            min_pool_size: 1,
            max_pool_size: 1,
            statement_timeout: Some(Duration::from_millis(300)),
            pool_timeout: Duration::from_millis(500),
            connection_timeout: Duration::from_secs(10),
            ..settings.clone()
        })
        .unwrap();
        db.init_db().await.unwrap();
        proxy.set(Mode::Latency(Duration::from_millis(200)));
        let conn = db.connection().await.unwrap();

        // 0.1 s of server time passes a 300 ms statement_timeout although the call takes longer.
        let started = Instant::now();
        conn.simple_query("SELECT pg_sleep(0.1)").await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        // 1 s of server time does not.
        let started = Instant::now();
        let err = Error::from(conn.simple_query("SELECT pg_sleep(1)").await.unwrap_err());
        assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
        assert!(err.is_timeout() && !err.is_connection_lost(), "{err:?}");
        assert_within(
            started.elapsed(),
            Duration::from_millis(300),
            Duration::from_secs(3),
            "statement timeout",
        );
        // The connection is fine afterwards.
        conn.simple_query("SELECT 1").await.unwrap();

        // The only connection is checked out: the next checkout waits pool_timeout, no longer.
        let started = Instant::now();
        let err = db.connection().await.unwrap_err();
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
        assert_within(
            started.elapsed(),
            Duration::from_millis(500),
            Duration::from_millis(1500),
            "pool timeout",
        );
        drop(conn);
        Repository::<Item>::new(&db).count().await.unwrap();

        // query_timeout shorter than a round trip: a client-side timeout, the connection
        // discarded, the next call (with a longer deadline) fine.
        let hasty = Database::new(DatabaseSettings {
            application_name: unique_app("latency_hasty"),
            min_pool_size: 1,
            max_pool_size: 1,
            query_timeout: Some(Duration::from_millis(250)),
            connection_timeout: Duration::from_secs(10),
            pool_timeout: Duration::from_secs(10),
            ..settings
        })
        .unwrap();
        hasty.init_db().await.unwrap();
        let started = Instant::now();
        let err = Repository::<Item>::new(&hasty).count().await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        assert_within(
            started.elapsed(),
            Duration::from_millis(250),
            Duration::from_secs(2),
            "query timeout",
        );
        proxy.set(Mode::Pass);
        assert_eq!(Repository::<Item>::new(&hasty).count().await.unwrap(), 0);
    })
    .await
    .expect("test deadline");
}

const BIG: i64 = 50_000;

/// Scenario 6a: the connection is cut halfway through a 50k-row `get_all`: an error, never a
/// partial `Vec`; in or out of a transaction. The pool recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cut_halfway_through_get_all() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let tdb = items_db().await;
        let admin = tdb.connect().await.unwrap();
        admin
            .execute(
                "INSERT INTO items (tag, value, payload) \
                 SELECT 'row-' || g, g, repeat('x', 20) FROM generate_series(1, $1::bigint) g",
                &[&BIG],
            )
            .await
            .unwrap();
        let (proxy, settings) = proxied(&tdb).await;
        let db = Database::new(DatabaseSettings {
            application_name: unique_app("cut_get_all"),
            min_pool_size: 1,
            max_pool_size: 2,
            pool_timeout: Duration::from_secs(10),
            ..settings
        })
        .unwrap();
        db.init_db().await.unwrap();
        let repo = Repository::<Item>::new(&db);
        let started = Instant::now();
        assert_eq!(repo.get_all().await.unwrap().len(), 50_000);
        let full = started.elapsed();

        // About 3.5 MB come back; cut after 1 MB.
        proxy.set(Mode::CloseAfter(1_000_000));
        let err = repo
            .get_all()
            .await
            .expect_err("a cut result cannot be complete");
        assert!(err.is_connection_lost(), "{err:?}");

        let tx = db.transaction().await.unwrap();
        let err = Repository::<Item>::new(&tx)
            .get_all()
            .await
            .expect_err("cut in a transaction");
        assert!(err.is_connection_lost(), "{err:?}");
        drop(tx);

        proxy.set(Mode::Pass);
        assert_eq!(repo.get_all().await.unwrap().len(), 50_000);
        eprintln!("get_all of 50k rows: {full:?}");
    })
    .await
    .expect("test deadline");
}

/// Scenario 6b: the connection is cut halfway through a 50k-row `create_bulk` (the COPY route):
/// during the upload, nothing is inserted; in a transaction, nothing is inserted; during the
/// `RETURNING` stream of the autocommit insert the caller gets an error and the table holds
/// all rows or none (the cut may land after the server committed: that outcome is in doubt,
/// as with any commit whose answer is lost), never a part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cut_halfway_through_create_bulk() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let tdb = items_db().await;
        let admin = tdb.connect().await.unwrap();
        let (proxy, settings) = proxied(&tdb).await;
        let db = Database::new(DatabaseSettings {
            application_name: unique_app("cut_bulk"),
            min_pool_size: 1,
            max_pool_size: 2,
            pool_timeout: Duration::from_secs(10),
            ..settings
        })
        .unwrap();
        db.init_db().await.unwrap();
        let repo = Repository::<Item>::new(&db);
        let rows = |prefix: &str| -> Vec<Item> {
            (0..BIG)
                .map(|n| Item {
                    payload: "y".repeat(20),
                    ..item(format!("{prefix}-{n}"), n)
                })
                .collect()
        };
        let stored = |prefix: &'static str| {
            let admin = &admin;
            async move {
                admin
                    .query_one(
                        "SELECT count(*) FROM items WHERE tag LIKE $1",
                        &[&format!("{prefix}-%")],
                    )
                    .await
                    .unwrap()
                    .get::<_, i64>(0)
            }
        };

        // Cut during the upload (about 2.5 MB of COPY data): nothing inserted.
        proxy.set(Mode::CloseAfterUpload(1_000_000));
        let started = Instant::now();
        let err = repo
            .create_bulk(&rows("upload"))
            .await
            .expect_err("cut upload");
        assert!(err.is_connection_lost(), "{err:?}");
        eprintln!("bulk cut during upload after {:?}", started.elapsed());
        assert_eq!(stored("upload").await, 0);

        // Cut during the RETURNING stream, inside a transaction: nothing inserted.
        proxy.set(Mode::Pass);
        let tx = db.transaction().await.unwrap();
        proxy.set(Mode::CloseAfter(500_000));
        let err = Repository::<Item>::new(&tx)
            .create_bulk(&rows("in-tx"))
            .await
            .expect_err("cut result in a transaction");
        assert!(err.is_connection_lost(), "{err:?}");
        assert!(tx.commit().await.is_err());
        assert_eq!(stored("in-tx").await, 0);

        // Cut during the RETURNING stream of the autocommit insert: all or nothing.
        proxy.set(Mode::CloseAfter(500_000));
        let err = repo
            .create_bulk(&rows("returning"))
            .await
            .expect_err("cut result");
        assert!(err.is_connection_lost(), "{err:?}");
        let n = stored("returning").await;
        assert!(n == 0 || n == BIG, "a partial bulk: {n} rows");
        eprintln!("bulk cut during RETURNING (autocommit): {n} rows stored (0 or all)");

        // The pool recovers; a bulk through the COPY route works again.
        proxy.set(Mode::Pass);
        let again: Vec<Item> = (0..300).map(|n| item(format!("after-{n}"), n)).collect();
        assert_eq!(repo.create_bulk(&again).await.unwrap().len(), 300);
        assert_eq!(stored("after").await, 300);
        assert_eq!(stored("upload").await + stored("in-tx").await, 0);
    })
    .await
    .expect("test deadline");
}
