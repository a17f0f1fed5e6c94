//! No failure mode leaks a transaction into the pool (issue 5): futures of `BEGIN`, `COMMIT`,
//! `ROLLBACK` and whole transactions cancelled after every possible number of polls, aborted
//! tasks, panicking bodies, aborted transactions, and dead connections. Every test runs on a
//! one-connection pool so the next user always gets the connection the failure happened on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use toolkit_tests::assert_clean;

use toolkit::testing::TestDatabase;
use toolkit::{Database, DatabaseSettings, Error, SqlState, Transaction};

/// Every test must finish well within this, even when a connection leaks.
const TEST_DEADLINE: Duration = Duration::from_secs(40);

/// More polls than any of the futures under test needs; reaching it fails the test.
const MAX_POLLS: usize = 200;

async fn single_connection() -> (TestDatabase, Database) {
    let tdb = TestDatabase::create().await.expect("create test database");
    let db = Database::new(DatabaseSettings {
        max_pool_size: 1,
        min_pool_size: 1,
        pool_timeout: Duration::from_secs(5),
        ..tdb.settings()
    })
    .expect("valid settings");
    db.init_db().await.expect("init");
    db.connection()
        .await
        .unwrap()
        .batch_execute("CREATE TABLE items (round int NOT NULL, n int NOT NULL)")
        .await
        .unwrap();
    (tdb, db)
}

/// How long the driver gets to run between two polls of the future under test.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// Well under a local round trip: the future is dropped while its I/O is in flight, at
    /// several points of it.
    Fine,
    /// About a millisecond: the server has usually answered, unread, when it is dropped.
    Coarse,
}

impl Pace {
    async fn pause(self) {
        tokio::task::yield_now().await;
        match self {
            // The test body runs on the `block_on` thread, not on a worker: blocking it briefly
            // stalls nothing but the future under test, and is finer than tokio's 1 ms timer.
            Pace::Fine => std::thread::sleep(Duration::from_micros(20)),
            Pace::Coarse => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}

/// Polls `fut` exactly `n` times (fewer if it completes first) with a waker that does nothing,
/// letting the runtime progress between polls, then drops it. `Some` when it completed.
async fn poll_n_times<F: Future>(fut: F, n: usize, pace: Pace) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..n {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Some(out);
        }
        pace.pause().await;
    }
    None
}

/// Rows of `round` as seen outside any transaction.
async fn rows_of(db: &Database, round: i32) -> i64 {
    db.connection()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM items WHERE round = $1", &[&round])
        .await
        .unwrap()
        .get(0)
}

async fn insert_two(tx: &Transaction, round: i32) -> Result<(), Error> {
    tx.execute("INSERT INTO items (round, n) VALUES ($1, 1)", &[&round])
        .await?;
    tx.execute("INSERT INTO items (round, n) VALUES ($1, 2)", &[&round])
        .await?;
    Ok(())
}

/// What a test round did to the future under test.
#[derive(Debug, Default)]
struct Tally {
    rounds: usize,
    completed_after: Option<usize>,
    committed: usize,
    reused: usize,
}

/// Runs `round(db, round_number, n)` for n = 0, 1, ... until it reports completion, checking
/// after every round that the connection came back clean.
async fn every_poll_count<R>(db: &Database, mut round: R) -> Tally
where
    R: AsyncFnMut(&Database, i32, usize) -> (bool, Option<bool>),
{
    let mut tally = Tally::default();
    db.connection()
        .await
        .unwrap()
        .batch_execute("DELETE FROM items")
        .await
        .unwrap();
    let mut backend = assert_clean(db).await;
    for n in 0..=MAX_POLLS {
        let round_number = i32::try_from(n).unwrap();
        let (completed, committed) = round(db, round_number, n).await;
        tally.rounds += 1;
        let next = assert_clean(db).await;
        if next == backend {
            tally.reused += 1;
        }
        backend = next;
        // Two rows were written in one transaction: both or neither.
        let rows = rows_of(db, round_number).await;
        assert!(rows == 0 || rows == 2, "round {n}: {rows} of 2 rows");
        if let Some(expected) = committed {
            assert_eq!(rows == 2, expected, "round {n}: {rows} rows");
        }
        if rows == 2 {
            tally.committed += 1;
        }
        if completed {
            tally.completed_after = Some(n);
            return tally;
        }
    }
    panic!("the future did not complete within {MAX_POLLS} polls: {tally:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn begin_cancelled_after_any_number_of_polls() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        for pace in [Pace::Fine, Pace::Coarse] {
            let tally = every_poll_count(&db, async |db, _, n| {
                match poll_n_times(db.transaction(), n, pace).await {
                    Some(tx) => {
                        // Completed: dropping the open guard must not leak it either.
                        drop(tx.unwrap());
                        (true, Some(false))
                    }
                    None => (false, Some(false)),
                }
            })
            .await;
            println!("BEGIN, {pace:?}: {tally:?}");
        }
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_cancelled_after_any_number_of_polls() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        for pace in [Pace::Fine, Pace::Coarse] {
            let tally = every_poll_count(&db, async |db, round, n| {
                let tx = db.transaction().await.unwrap();
                insert_two(&tx, round).await.unwrap();
                match poll_n_times(tx.commit(), n, pace).await {
                    Some(outcome) => {
                        outcome.unwrap();
                        (true, Some(true))
                    }
                    // Not polled: never sent, so rolled back. Polled: it may have committed.
                    None => (false, (n == 0).then_some(false)),
                }
            })
            .await;
            println!("COMMIT, {pace:?}: {tally:?}");
            assert!(tally.committed >= 1);
        }
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_cancelled_after_any_number_of_polls() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        for pace in [Pace::Fine, Pace::Coarse] {
            let tally = every_poll_count(&db, async |db, round, n| {
                let tx = db.transaction().await.unwrap();
                insert_two(&tx, round).await.unwrap();
                match poll_n_times(tx.rollback(), n, pace).await {
                    Some(outcome) => {
                        outcome.unwrap();
                        (true, Some(false))
                    }
                    None => (false, Some(false)),
                }
            })
            .await;
            println!("ROLLBACK, {pace:?}: {tally:?}");
            assert_eq!(tally.committed, 0);
        }
    })
    .await
    .expect("test deadline");
}

/// The whole life of a transaction as one future, cut at every await point: checkout, `BEGIN`,
/// each statement (prepare and execute), `COMMIT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_transaction_cancelled_after_any_number_of_polls() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        for pace in [Pace::Fine, Pace::Coarse] {
            let tally = every_poll_count(&db, async |db, round, n| {
                let whole = async {
                    let tx = db.transaction().await?;
                    insert_two(&tx, round).await?;
                    tx.commit().await
                };
                match poll_n_times(whole, n, pace).await {
                    Some(outcome) => {
                        outcome.unwrap();
                        (true, Some(true))
                    }
                    None => (false, None),
                }
            })
            .await;
            println!("whole transaction, {pace:?}: {tally:?}");
            assert!(tally.rounds > 3);
        }
    })
    .await
    .expect("test deadline");
}

/// A savepoint future cut at any point leaves the outer transaction usable and clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savepoint_cancelled_after_any_number_of_polls() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        let tally = every_poll_count(&db, async |db, round, n| {
            let mut tx = db.transaction().await.unwrap();
            tx.execute("INSERT INTO items (round, n) VALUES ($1, 1)", &[&round])
                .await
                .unwrap();
            let inner = async {
                let sp = tx.savepoint("inner").await?;
                sp.execute("INSERT INTO items (round, n) VALUES ($1, 99)", &[&round])
                    .await?;
                sp.rollback().await
            };
            let completed = poll_n_times(inner, n, Pace::Fine).await.is_some();
            tx.execute("INSERT INTO items (round, n) VALUES ($1, 2)", &[&round])
                .await
                .unwrap();
            // Wherever the cut fell, row 99 is gone: never inserted, rolled back by the
            // savepoint, or by the deferred rollback of its dropped guard.
            let stray: i64 = tx
                .query_one(
                    "SELECT count(*) FROM items WHERE round = $1 AND n = 99",
                    &[&round],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(stray, 0, "round {n}");
            tx.commit().await.unwrap();
            (completed, Some(true))
        })
        .await;
        println!("savepoint: {tally:?}");
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_aborted_in_the_middle_of_a_query() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        let before = assert_clean(&db).await;
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let task = tokio::spawn({
            let db = db.clone();
            async move {
                let tx = db.transaction().await?;
                insert_two(&tx, 1).await?;
                let _ = started_tx.send(());
                tx.execute("SELECT pg_sleep(1)", &[]).await?;
                tx.commit().await
            }
        });
        started.await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        let t = Instant::now();
        let after = assert_clean(&db).await;
        println!(
            "clean connection after {:?} (backend {})",
            t.elapsed(),
            if after == before {
                "reused"
            } else {
                "replaced"
            }
        );
        assert_eq!(rows_of(&db, 1).await, 0);
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_in_run_in_transaction_rolls_back_and_propagates() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        let task = tokio::spawn({
            let db = db.clone();
            async move {
                db.run_in_transaction(async |tx| {
                    insert_two(tx, 1).await?;
                    let one: i32 = tx.query_one("SELECT 1", &[]).await?.get(0);
                    if one == 1 {
                        panic!("the body panics on purpose");
                    }
                    Ok(())
                })
                .await
            }
        });
        let err = task.await.unwrap_err();
        assert!(err.is_panic());
        let payload = err.into_panic();
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"the body panics on purpose")
        );
        assert_clean(&db).await;
        assert_eq!(rows_of(&db, 1).await, 0);
        // The pool still works, for transactions too.
        db.run_in_transaction(async |tx| insert_two(tx, 2).await)
            .await
            .unwrap();
        assert_eq!(rows_of(&db, 2).await, 2);
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_transactions_dropped_three_times_do_not_exhaust_the_pool() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        for round in 1..=3 {
            let t = Instant::now();
            let tx = db.transaction().await.unwrap();
            insert_two(&tx, round).await.unwrap();
            let err = tx.execute("SELECT 1 / 0", &[]).await.unwrap_err();
            assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO));
            let err = tx.execute("SELECT 1", &[]).await.unwrap_err();
            assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
            drop(tx);
            assert_clean(&db).await;
            assert_eq!(rows_of(&db, round).await, 0);
            assert!(
                t.elapsed() < Duration::from_secs(3),
                "round {round}: {:?}",
                t.elapsed()
            );
        }
    })
    .await
    .expect("test deadline");
}

/// A dropped guard's rollback succeeds on a healthy connection, which is then reused; when the
/// rollback cannot succeed (the backend is gone), the connection is discarded instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_guard_connection_is_reused_when_clean_and_discarded_when_not() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (tdb, db) = single_connection().await;
        let first = assert_clean(&db).await;
        let tx = db.transaction().await.unwrap();
        insert_two(&tx, 1).await.unwrap();
        drop(tx);
        assert_eq!(assert_clean(&db).await, first, "rolled back and reused");
        assert_eq!(rows_of(&db, 1).await, 0);

        // Committed and rolled back guards are reused as well.
        let tx = db.transaction().await.unwrap();
        tx.commit().await.unwrap();
        let tx = db.transaction().await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(assert_clean(&db).await, first);

        let tx = db.transaction().await.unwrap();
        insert_two(&tx, 2).await.unwrap();
        let admin = tdb.connect().await.unwrap();
        admin
            .execute("SELECT pg_terminate_backend($1)", &[&first])
            .await
            .unwrap();
        drop(tx);
        let replacement = assert_clean(&db).await;
        assert_ne!(replacement, first, "the dead connection was discarded");
        assert_eq!(rows_of(&db, 2).await, 0);
        db.run_in_transaction(async |tx| insert_two(tx, 3).await)
            .await
            .unwrap();
        assert_eq!(rows_of(&db, 3).await, 2);
    })
    .await
    .expect("test deadline");
}

/// A failed `COMMIT` (a deferred constraint) ends the transaction; the connection comes back
/// clean and the pool goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_commit_leaves_a_clean_connection() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        db.connection()
            .await
            .unwrap()
            .batch_execute(
                "CREATE TABLE once (id int, CONSTRAINT once_unique UNIQUE (id) DEFERRABLE INITIALLY DEFERRED)",
            )
            .await
            .unwrap();
        let tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO once VALUES (1), (1)", &[])
            .await
            .unwrap();
        let err = tx.commit().await.unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION), "{err}");
        assert_eq!(err.constraint(), Some("once_unique"));
        assert_clean(&db).await;
    })
    .await
    .expect("test deadline");
}

/// A guard dropped where no runtime is current (a sync caller of `block_on`) still gets its
/// rollback, on the runtime it was begun on; it must not panic.
#[test]
fn guard_dropped_outside_the_runtime() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (tdb, db) = runtime.block_on(single_connection());
    let before = runtime.block_on(assert_clean(&db));
    let tx = runtime.block_on(async {
        let tx = db.transaction().await.unwrap();
        insert_two(&tx, 1).await.unwrap();
        tx
    });
    assert!(tokio::runtime::Handle::try_current().is_err());
    drop(tx);
    runtime.block_on(async {
        let after = assert_clean(&db).await;
        assert_eq!(after, before, "rolled back and reused");
        assert_eq!(rows_of(&db, 1).await, 0);
    });

    // Dropped after its runtime is gone: nothing can run, and nothing may panic.
    let tx = runtime.block_on(db.transaction()).unwrap();
    drop(runtime);
    drop(tx);
    drop(db);
    drop(tdb);
}
