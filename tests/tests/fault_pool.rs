//! Fault suite, the pool under pressure (issue 7, scenarios 7-9): 1,000 waiters on four
//! connections, 1,000 checkouts and transactions cancelled at random points, result streams
//! dropped after the first row.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_common;

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use fault_common::{item, items_db, pids_of, unique_app, wait_until, Item, Rng};
use futures_util::future::join_all;
use futures_util::TryStreamExt;
use toolkit::{Database, DatabaseSettings, Error, PoolErrorKind, Repository};

/// Every test must end within this, even when the pool deadlocks.
const TEST_DEADLINE: Duration = Duration::from_secs(90);

/// Scenario 7: 1,000 concurrent waiters on a 4-connection pool with a 300 ms `pool_timeout`.
/// Each either succeeds or gets `Error::Pool { kind: Timeout }`, nothing deadlocks, the pool
/// is healthy afterwards, and the server never sees more than 4 connections of the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_waiters_on_four_connections() {
    tokio::time::timeout(TEST_DEADLINE, async {
        const MAX: u32 = 4;
        const WAITERS: usize = 1000;
        let pool_timeout = Duration::from_millis(300);
        let tdb = items_db().await;
        let app = unique_app("exhaustion");
        let db = Database::new(DatabaseSettings {
            application_name: app.clone(),
            min_pool_size: 2,
            max_pool_size: MAX,
            pool_timeout,
            ..tdb.settings()
        })
        .unwrap();
        db.init_db().await.unwrap();
        let pool = db.get_pool().await.unwrap();

        // Samples the server's view and the pool's all through the run.
        let stop = Arc::new(AtomicBool::new(false));
        let (max_server, max_pool) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let sampler = {
            let (stop, max_server, max_pool, pool, app) = (
                stop.clone(),
                max_server.clone(),
                max_pool.clone(),
                pool.clone(),
                app.clone(),
            );
            let admin = tdb.connect().await.unwrap();
            tokio::spawn(async move {
                let mut samples = 0u32;
                while !stop.load(Ordering::Acquire) {
                    let n = u32::try_from(pids_of(&admin, &app).await.len()).unwrap();
                    max_server.fetch_max(n, Ordering::AcqRel);
                    max_pool.fetch_max(pool.state().connections, Ordering::AcqRel);
                    samples += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                samples
            })
        };

        let started = Instant::now();
        let waiters: Vec<_> = (0..WAITERS)
            .map(|n| {
                let db = db.clone();
                tokio::spawn(async move {
                    let begun = Instant::now();
                    let outcome = if n % 2 == 0 {
                        // Holds its connection for 10 ms of server time.
                        match db.connection().await {
                            Ok(conn) => conn
                                .simple_query("SELECT pg_sleep(0.01)")
                                .await
                                .map(drop)
                                .map_err(Error::from),
                            Err(err) => Err(err),
                        }
                    } else {
                        Repository::<Item>::new(&db)
                            .create(&item(format!("waiter-{n}"), 1))
                            .await
                            .map(drop)
                    };
                    (outcome, begun.elapsed())
                })
            })
            .collect();
        let (mut ok, mut timed_out) = (0, 0);
        for waiter in waiters {
            let (outcome, waited) = waiter.await.expect("no waiter panics");
            match outcome {
                Ok(()) => ok += 1,
                Err(Error::Pool {
                    kind: PoolErrorKind::Timeout,
                    ..
                }) => {
                    assert!(waited >= pool_timeout, "timed out early: {waited:?}");
                    timed_out += 1;
                }
                Err(err) => panic!("neither success nor a pool timeout: {err:?}"),
            }
        }
        let took = started.elapsed();
        stop.store(true, Ordering::Release);
        let samples = sampler.await.unwrap();
        eprintln!(
            "{WAITERS} waiters: {ok} served, {timed_out} pool timeouts in {took:?}; \
             max {} server connections, {} pool connections over {samples} samples",
            max_server.load(Ordering::Acquire),
            max_pool.load(Ordering::Acquire)
        );
        assert_eq!(ok + timed_out, WAITERS);
        assert!(ok >= 4 && timed_out > 0, "{ok} ok, {timed_out} timeouts");
        assert!(samples > 5, "too few samples: {samples}");
        assert!(max_server.load(Ordering::Acquire) <= MAX);
        assert!(max_pool.load(Ordering::Acquire) <= MAX);

        // Healthy afterwards: all four connections can be held at once, quickly.
        assert!(db.check_pool_health().await);
        let conns = join_all((0..MAX).map(|_| db.connection())).await;
        for conn in &conns {
            conn.as_ref()
                .unwrap()
                .simple_query("SELECT 1")
                .await
                .unwrap();
        }
        drop(conns);
        let repo = Repository::<Item>::new(&db);
        let n = repo.count().await.unwrap();
        assert!(n > 0 && n <= i64::try_from(WAITERS / 2).unwrap(), "{n}");
    })
    .await
    .expect("test deadline");
}

/// Polls `fut` up to `n` times with a waker that does nothing, yielding to the runtime between
/// polls, then drops it. `Some` when it completed.
async fn poll_n_times<F: Future>(fut: F, n: u64) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..n {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Some(out);
        }
        tokio::task::yield_now().await;
    }
    None
}

/// One random use of the pool, cancelled at a random point (or not at all).
async fn cancelled_use(db: &Database, rng: &mut Rng, n: usize) -> bool {
    let work = {
        let db = db.clone();
        let kind = rng.below(4);
        async move {
            match kind {
                0 => {
                    let conn = db.connection().await?;
                    conn.simple_query("SELECT 1").await?;
                }
                1 => {
                    let tx = db.transaction().await?;
                    tx.execute(
                        "INSERT INTO items (tag, value, payload) VALUES ($1, 1, '')",
                        &[&format!("cancel-{n}")],
                    )
                    .await?;
                    tx.commit().await?;
                }
                2 => {
                    let _tx = db.transaction().await?;
                }
                _ => {
                    Repository::<Item>::new(&db)
                        .create(&item(format!("cancel-{n}"), 2))
                        .await?;
                }
            }
            Ok::<_, Error>(())
        }
    };
    let outcome = match rng.below(3) {
        0 => poll_n_times(work, rng.below(40)).await,
        1 => tokio::time::timeout(Duration::from_micros(rng.below(4000)), work)
            .await
            .ok(),
        _ => Some(work.await),
    };
    match outcome {
        Some(Ok(())) => true,
        Some(Err(err)) => panic!("a use that ran to completion failed: {err:?}"),
        None => false,
    }
}

/// Scenario 8: 1,000 `connection()` / `transaction()` / repository futures cancelled at random
/// poll points, 20 at a time on a 3-connection pool: no slot leaks (the pool settles with
/// every connection idle and at most 3 open), every slot can be checked out again at once, and
/// no connection carries a leftover transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_cancelled_checkouts_leak_no_slot() {
    tokio::time::timeout(TEST_DEADLINE, async {
        const MAX: u32 = 3;
        let tdb = items_db().await;
        let app = unique_app("cancel_storm");
        let db = Database::new(DatabaseSettings {
            application_name: app.clone(),
            min_pool_size: 1,
            max_pool_size: MAX,
            pool_timeout: Duration::from_secs(5),
            ..tdb.settings()
        })
        .unwrap();
        db.init_db().await.unwrap();
        let mut rng = Rng::new(0);
        let started = Instant::now();
        let mut completed = 0;
        for batch in 0..50 {
            let mut rngs: Vec<Rng> = (0..20).map(|_| Rng::seeded(rng.next_u64())).collect();
            let outcomes = join_all(
                rngs.iter_mut()
                    .enumerate()
                    .map(|(i, rng)| cancelled_use(&db, rng, batch * 20 + i)),
            )
            .await;
            completed += outcomes.into_iter().filter(|done| *done).count();
        }
        let took = started.elapsed();

        let pool = db.get_pool().await.unwrap();
        wait_until(Duration::from_secs(15), "every connection back in the pool", || async {
            let toolkit::PoolState { connections: open, idle, .. } = pool.state();
            open <= MAX && idle == open
        })
        .await;
        let toolkit::PoolState { connections: open, idle, .. } = pool.state();
        eprintln!("1000 uses, {completed} completed, in {took:?}; pool settled at {open} open / {idle} idle");
        assert!(completed > 0 && completed < 1000, "{completed} of 1000 completed");

        // Every slot is free: MAX checkouts at once, each within pool_timeout, none inside a
        // leftover transaction.
        let started = Instant::now();
        let conns = join_all((0..MAX).map(|_| db.connection())).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        for conn in &conns {
            let conn = conn.as_ref().expect("a free slot");
            // One simple-protocol message starts a transaction only if none is open.
            let fresh = toolkit_tests::first_value(conn, "SELECT now() = statement_timestamp()").await;
            assert_eq!(fresh, "t", "a connection came back inside an open transaction");
        }
        drop(conns);
        let admin = tdb.connect().await.unwrap();
        assert!(pids_of(&admin, &app).await.len() <= usize::try_from(MAX).unwrap());
        let idle_in_tx: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
                &[&app],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(idle_in_tx, 0);
    })
    .await
    .expect("test deadline");
}

/// Scenario 9: a result stream (or a large query, or a `get_all`) dropped after its first row:
/// the next checkout of that same connection does not hang and gets its own, correct answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_result_streams_do_not_block_the_next_checkout() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let tdb = items_db().await;
        let admin = tdb.connect().await.unwrap();
        admin
            .batch_execute(
                "INSERT INTO items (tag, value, payload) \
                 SELECT 'row-' || g, g, repeat('z', 50) FROM generate_series(1, 50000) g",
            )
            .await
            .unwrap();
        let db = Database::new(DatabaseSettings {
            application_name: unique_app("dropped_stream"),
            min_pool_size: 1,
            max_pool_size: 1,
            pool_timeout: Duration::from_secs(20),
            ..tdb.settings()
        })
        .unwrap();
        db.init_db().await.unwrap();
        let next_answer = |what: &'static str| {
            let db = db.clone();
            async move {
                let started = Instant::now();
                let conn = db.connection().await.unwrap();
                let n: i64 = conn
                    .query_one("SELECT count(*) FROM items WHERE value > $1", &[&49_990i64])
                    .await
                    .unwrap()
                    .get(0);
                assert_eq!(n, 10, "{what}: the next query got someone else's rows");
                let took = started.elapsed();
                eprintln!("{what}: next checkout answered in {took:?}");
                assert!(took < Duration::from_secs(10), "{what}: {took:?}");
            }
        };

        // A row stream dropped after its first row.
        {
            let conn = db.connection().await.unwrap();
            let stream = conn
                .query_raw("SELECT * FROM items ORDER BY id", std::iter::empty::<i32>())
                .await
                .unwrap();
            let mut stream = pin!(stream);
            let first = stream.try_next().await.unwrap().unwrap();
            assert_eq!(first.get::<_, i64>("value"), 1);
        }
        next_answer("row stream").await;

        // A large query future dropped while its rows arrive (half a million rows).
        {
            let conn = db.connection().await.unwrap();
            let big = conn.query(
                "SELECT g, repeat('w', 40) FROM generate_series(1, 500000) g",
                &[],
            );
            assert!(tokio::time::timeout(Duration::from_millis(20), big)
                .await
                .is_err());
        }
        next_answer("large query").await;

        // A repository get_all (about 350 ms for 50k rows here) dropped while rows arrive.
        {
            let repo = Repository::<Item>::new(&db);
            let dropped = tokio::time::timeout(Duration::from_millis(50), repo.get_all()).await;
            assert!(
                dropped.is_err(),
                "get_all of 50k rows finished within 50 ms"
            );
        }
        next_answer("get_all").await;

        // A stream dropped inside a transaction, which is then committed.
        {
            let tx = db.transaction().await.unwrap();
            {
                let client = tx.client().await.unwrap();
                let stream = client
                    .query_raw("SELECT * FROM items", std::iter::empty::<i32>())
                    .await
                    .unwrap();
                let mut stream = pin!(stream);
                stream.try_next().await.unwrap().unwrap();
            }
            tx.execute(
                "INSERT INTO items (tag, value, payload) VALUES ('tx', 0, '')",
                &[],
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
        next_answer("stream in a transaction").await;
        let n: i64 = admin
            .query_one("SELECT count(*) FROM items WHERE tag = 'tx'", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1);
    })
    .await
    .expect("test deadline");
}
