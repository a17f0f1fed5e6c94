//! Fault suite, killed backends (issue 7, scenarios 1 and 2): `pg_terminate_backend` on every
//! pooled connection, idle or busy, and in the middle of a transaction.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_common;

use std::time::{Duration, Instant};

use fault_common::{
    backend_pid, item, items_db, pids_of, terminate_all, unique_app, wait_until, Item, ItemPatch,
};
use futures_util::future::join_all;
use toolkit::{Database, DatabaseSettings, Error, Repository};

const POOL: u32 = 4;
/// Every test must end within this even when the pool is poisoned.
const TEST_DEADLINE: Duration = Duration::from_secs(60);

fn settings_for(tdb: &toolkit::testing::TestDatabase, app: &str, size: u32) -> DatabaseSettings {
    DatabaseSettings {
        application_name: app.into(),
        min_pool_size: size,
        max_pool_size: size,
        pool_timeout: Duration::from_secs(10),
        connection_timeout: Duration::from_secs(5),
        ..tdb.settings()
    }
}

/// Holds `n` checkouts at once, so the pool opens `n` connections; returns their backend pids.
async fn warm(db: &Database, n: u32) -> Vec<i32> {
    let conns = join_all((0..n).map(|_| db.connection())).await;
    let mut pids = Vec::new();
    for conn in &conns {
        let conn = conn.as_ref().expect("warm checkout");
        pids.push(
            conn.query_one("SELECT pg_backend_pid()", &[])
                .await
                .unwrap()
                .get(0),
        );
    }
    pids.sort_unstable();
    pids
}

/// One operation of the mix run after the kill: a repository write, a repository read, or a
/// raw query reporting the backend it ran on.
async fn operation(db: &Database, n: usize) -> Result<Option<i32>, Error> {
    let repo = Repository::<Item>::new(db);
    match n % 3 {
        0 => repo
            .create(&item(format!("after-kill-{n}"), 1))
            .await
            .map(|_| None),
        1 => repo.count().await.map(|_| None),
        _ => {
            let conn = db.connection().await?;
            let row = conn.query_one("SELECT pg_backend_pid()", &[]).await?;
            Ok(Some(row.get(0)))
        }
    }
}

/// Scenario 1: every pooled connection is terminated; the next operations succeed on fresh
/// connections, and at most one error per killed connection reaches a caller, classified as
/// connection lost. Done twice: with the connections idle, then while each runs a statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_pool_connections_are_replaced() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let tdb = items_db().await;
        let app = unique_app("kill_all");
        let db = Database::new(settings_for(&tdb, &app, POOL)).unwrap();
        db.init_db().await.unwrap();
        let admin = tdb.connect().await.unwrap();

        // Idle connections killed.
        let warm_pids = warm(&db, POOL).await;
        assert_eq!(pids_of(&admin, &app).await, warm_pids);
        let killed = terminate_all(&admin, &app).await;
        assert_eq!(killed.len(), usize::try_from(POOL).unwrap());
        let mut errors = Vec::new();
        let mut seen = Vec::new();
        for round in 0..10 {
            // Four at a time, so every pooled connection is taken by someone.
            let outcomes = join_all((0..4).map(|i| operation(&db, round * 4 + i))).await;
            for outcome in outcomes {
                match outcome {
                    Ok(pid) => seen.extend(pid),
                    Err(err) => {
                        assert!(round < 2, "error after recovery: {err:?}");
                        errors.push(err);
                    }
                }
            }
        }
        assert!(
            errors.len() <= killed.len(),
            "{} errors for {} killed connections: {errors:?}",
            errors.len(),
            killed.len()
        );
        for err in &errors {
            assert!(err.is_connection_lost(), "unclassified: {err:?}");
        }
        assert!(!seen.is_empty());
        assert!(
            seen.iter().all(|pid| !killed.contains(pid)),
            "a killed backend served a request: {seen:?} vs {killed:?}"
        );
        let open = db.get_pool().await.unwrap().state().connections;
        assert!(open <= POOL, "{open} open");
        eprintln!("idle kill: {} error(s) reached callers", errors.len());

        // Busy connections killed: four repository updates wait on a row lock the admin holds,
        // each on its own pooled connection. Each caller gets exactly one error, classified;
        // every operation after it succeeds (no dead connection is handed out again).
        let row = Repository::<Item>::new(&db).create(&item("locked", 0)).await.unwrap();
        // Its own client: inside a transaction, pg_stat_activity is a snapshot.
        let locker = tdb.connect().await.unwrap();
        locker
            .batch_execute(&format!("BEGIN; SELECT * FROM items WHERE id = {} FOR UPDATE", row.id))
            .await
            .unwrap();
        let repo = Repository::<Item>::new(&db);
        let busy = join_all((0..POOL).map(|n| {
            repo.update(
                row.id,
                ItemPatch {
                    value: Some(i64::from(n)),
                    ..Default::default()
                },
            )
        }));
        let killer = async {
            wait_until(Duration::from_secs(10), "4 backends waiting on the lock", || async {
                admin
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity \
                         WHERE application_name = $1 AND wait_event_type = 'Lock'",
                        &[&app],
                    )
                    .await
                    .unwrap()
                    .get::<_, i64>(0)
                    == i64::from(POOL)
            })
            .await;
            terminate_all(&admin, &app).await
        };
        let started = Instant::now();
        let (outcomes, killed) = tokio::join!(busy, killer);
        assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
        assert_eq!(killed.len(), usize::try_from(POOL).unwrap());
        for outcome in outcomes {
            let err = outcome.expect_err("a killed statement cannot succeed");
            assert!(err.is_connection_lost(), "unclassified: {err:?}");
            assert!(!err.is_retryable() && !err.is_timeout(), "{err:?}");
        }
        // At once (the dead sockets may not even be closed yet); none of these touch the row.
        for n in 0..12 {
            if let Err(err) = operation(&db, n).await {
                panic!("operation {n} after the busy kill: a second error for a killed connection: {err:?}");
            }
        }
        locker.batch_execute("ROLLBACK").await.unwrap();
        assert_eq!(Repository::<Item>::new(&db).get_by_id(row.id).await.unwrap().value, 0);
        let fresh = pids_of(&admin, &app).await;
        assert!(fresh.iter().all(|pid| !killed.contains(pid)), "{fresh:?}");
        assert!(fresh.len() <= usize::try_from(POOL).unwrap());
    })
    .await
    .expect("test deadline");
}

/// Scenario 2: the backend is terminated in the middle of a transaction. The caller gets a
/// connection-lost error (on its next statement, and on commit), the server rolled back
/// everything, and the connection is discarded: the next checkout is a new backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_terminated_mid_transaction_rolls_back_and_is_discarded() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let tdb = items_db().await;
        let app = unique_app("kill_tx");
        let db = Database::new(settings_for(&tdb, &app, 1)).unwrap();
        db.init_db().await.unwrap();
        let admin = tdb.connect().await.unwrap();
        let count_tag = |prefix: &'static str| {
            let admin = &admin;
            async move {
                admin
                    .query_one(
                        "SELECT count(*) FROM items WHERE tag LIKE $1",
                        &[&format!("{prefix}%")],
                    )
                    .await
                    .unwrap()
                    .get::<_, i64>(0)
            }
        };

        // Killed between statements: the next statement and the commit both fail.
        let tx = db.transaction().await.unwrap();
        let repo = Repository::<Item>::new(&tx);
        repo.create(&item("between-1", 1)).await.unwrap();
        repo.create(&item("between-2", 2)).await.unwrap();
        let pid: i32 = tx
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(terminate_all(&admin, &app).await, vec![pid]);
        let err = repo.create(&item("between-3", 3)).await.unwrap_err();
        assert!(err.is_connection_lost(), "{err:?}");
        let err = tx.commit().await.unwrap_err();
        assert!(err.is_connection_lost(), "{err:?}");
        assert_eq!(count_tag("between-").await, 0, "nothing half-committed");
        let next = backend_pid(&db).await;
        assert_ne!(next, pid, "the dead connection was reused");

        // Killed while a statement of the transaction runs: that statement fails at once.
        let tx = db.transaction().await.unwrap();
        Repository::<Item>::new(&tx)
            .create(&item("during-1", 1))
            .await
            .unwrap();
        let pid: i32 = tx
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        let started = Instant::now();
        let (outcome, _) = tokio::join!(tx.execute("SELECT pg_sleep(30)", &[]), async {
            wait_until(Duration::from_secs(10), "the sleeping statement", || async {
                admin
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND query LIKE 'SELECT pg_sleep%'",
                        &[&pid],
                    )
                    .await
                    .unwrap()
                    .get::<_, i64>(0)
                    == 1
            })
            .await;
            terminate_all(&admin, &app).await
        });
        let err = outcome.unwrap_err();
        assert!(err.is_connection_lost(), "{err:?}");
        // The API's error table: a lost connection is `Error::Connection`, and the server's
        // reason stays reachable.
        assert!(
            matches!(&err, Error::Connection { message, .. } if message.starts_with("connection lost")),
            "{err:?}"
        );
        assert!(
            err.code().is_none_or(|code| *code == toolkit::SqlState::ADMIN_SHUTDOWN),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(15));
        assert!(tx.rollback().await.is_err(), "rollback on a dead connection");
        assert_eq!(count_tag("during-").await, 0);
        assert_ne!(backend_pid(&db).await, pid);

        // Killed inside `run_in_transaction`: the error is not retryable, so the body ran once
        // and its writes are gone.
        let mut attempts = 0;
        let app_for_body = app.clone();
        let outcome = db
            .run_in_transaction(async |tx| {
                attempts += 1;
                Repository::<Item>::new(&*tx)
                    .create(&item("closure-1", 1))
                    .await?;
                let pid: i32 = tx.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
                let killer = tdb.connect().await?;
                killer
                    .execute("SELECT pg_terminate_backend($1)", &[&pid])
                    .await?;
                wait_until(Duration::from_secs(10), "the backend to exit", || async {
                    !pids_of(&killer, &app_for_body).await.contains(&pid)
                })
                .await;
                Repository::<Item>::new(&*tx)
                    .create(&item("closure-2", 2))
                    .await?;
                Ok(())
            })
            .await;
        let err = outcome.unwrap_err();
        assert!(err.is_connection_lost(), "{err:?}");
        assert_eq!(attempts, 1, "a lost connection is not retried");
        assert_eq!(count_tag("closure-").await, 0);

        // The pool is whole: one connection, working, on a live backend.
        let repo = Repository::<Item>::new(&db);
        assert_eq!(repo.count().await.unwrap(), 0);
        let open = db.get_pool().await.unwrap().state().connections;
        assert!(open <= 1);
    })
    .await
    .expect("test deadline");
}
