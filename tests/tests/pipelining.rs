//! `pipeline_depth`: single statements share busy connections; transactions never do, and
//! nothing queues behind a statement that has stalled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use toolkit::{Database, DatabaseSettings, Entity, Repository};
use toolkit_tests::fresh;

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "counters")]
struct Counter {
    #[entity(primary_key)]
    id: i32,
    hits: i64,
}

async fn pipelined_db(max: u32) -> (toolkit::testing::TestDatabase, Database) {
    let (tdb, settings) = fresh().await;
    let db = Database::new(DatabaseSettings {
        max_pool_size: max,
        min_pool_size: max,
        // The default: pipelining is on.
        pool_timeout: Duration::from_secs(20),
        ..settings
    })
    .unwrap();
    db.connection()
        .await
        .unwrap()
        .batch_execute("CREATE TABLE counters (id int PRIMARY KEY, hits bigint NOT NULL)")
        .await
        .unwrap();
    (tdb, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturated_pool_pipelines_and_every_answer_is_right() {
    let (_tdb, db) = pipelined_db(2).await;
    let repo = Repository::<Counter>::new(&db);
    let rows: Vec<Counter> = (0..64)
        .map(|id| Counter {
            id,
            hits: i64::from(id) * 10,
        })
        .collect();
    repo.create_bulk(&rows).await.unwrap();

    let tasks: Vec<_> = (0..64i32)
        .map(|id| {
            let db = db.clone();
            tokio::spawn(async move {
                let repo = Repository::<Counter>::new(&db);
                for round in 0..25i64 {
                    let row = repo.get_by_id(id).await?;
                    assert_eq!(row.id, id, "an answer went to the wrong caller");
                    let updated = repo
                        .update(
                            id,
                            CounterPatch {
                                hits: Some(row.hits + 1),
                            },
                        )
                        .await?;
                    assert_eq!(updated.hits, i64::from(id) * 10 + round + 1);
                }
                Ok::<_, toolkit::Error>(())
            })
        })
        .collect();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("no hang")
            .unwrap()
            .unwrap();
    }
    let pool = db.get_pool().await.unwrap();
    let open = pool.state().connections;
    assert!(open <= 2, "{open} connections for max_pool_size 2");
    assert!(
        pool.pipelined_statements() > 0,
        "64 tasks on 2 connections never pipelined"
    );
    for counter in repo.get_all().await.unwrap() {
        assert_eq!(counter.hits, i64::from(counter.id) * 10 + 25);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_never_shares_its_connection() {
    let (_tdb, db) = pipelined_db(2).await;
    let tx = db.transaction().await.unwrap();
    Repository::<Counter>::new(&tx)
        .create(&Counter { id: 1, hits: 1 })
        .await
        .unwrap();

    // One connection is left; forty statements share it, pipelined, and none of them may
    // land on the transaction's connection and see its uncommitted row.
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { Repository::<Counter>::new(&db).count().await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), 0);
    }
    tx.commit().await.unwrap();
    assert_eq!(Repository::<Counter>::new(&db).count().await.unwrap(), 1);
    assert!(
        db.get_pool().await.unwrap().pipelined_statements() > 0,
        "the forty never shared"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_do_not_queue_behind_a_stalled_one() {
    let (tdb, db) = pipelined_db(2).await;
    let repo = Repository::<Counter>::new(&db);
    repo.create_bulk(&[Counter { id: 1, hits: 0 }, Counter { id: 2, hits: 0 }])
        .await
        .unwrap();

    // Another session holds row 1, so an update of it stalls on a lent connection.
    let mut locker = tdb.connect().await.unwrap();
    let lock = locker.transaction().await.unwrap();
    lock.execute("SELECT 1 FROM counters WHERE id = 1 FOR UPDATE", &[])
        .await
        .unwrap();
    let stalled = {
        let db = db.clone();
        tokio::spawn(async move {
            let patch = CounterPatch { hits: Some(7) };
            Repository::<Counter>::new(&db).update(1, patch).await
        })
    };
    let observer = tdb.connect().await.unwrap();
    let waiting = || async {
        let row = observer
            .query_one(
                // Only this test's database: other tests run in parallel on the same cluster.
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND datname = current_database()",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0)
    };
    for _ in 0..500 {
        if waiting().await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(waiting().await, 1, "the update never waited for the lock");
    // Well past the pool's 5 ms stall limit, however quickly the wait was seen.
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The pool is saturated: the other connection is held here, then freed. The reads must
    // wait for it rather than join the stalled connection, or they would hang until the lock
    // goes, which happens only after they finish.
    let held = db.connection().await.unwrap();
    let reads: Vec<_> = (0..10)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { Repository::<Counter>::new(&db).get_by_id(2).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(held);
    for read in reads {
        let row = tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("a read queued behind the stalled update")
            .unwrap()
            .unwrap();
        assert_eq!(row, Counter { id: 2, hits: 0 });
    }
    assert!(
        !stalled.is_finished(),
        "the update did not wait for the lock"
    );

    lock.commit().await.unwrap();
    let updated = tokio::time::timeout(Duration::from_secs(10), stalled)
        .await
        .expect("the update finishes once the lock is gone")
        .unwrap()
        .unwrap();
    assert_eq!(updated, Counter { id: 1, hits: 7 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_connection_fails_each_statement_pipelined_on_it_once() {
    let (tdb, db) = pipelined_db(1).await;
    let repo = Repository::<Counter>::new(&db);
    repo.create(&Counter { id: 1, hits: 0 }).await.unwrap();

    let mut locker = tdb.connect().await.unwrap();
    let lock = locker.transaction().await.unwrap();
    lock.execute("SELECT 1 FROM counters WHERE id = 1 FOR UPDATE", &[])
        .await
        .unwrap();
    let killer = async {
        let observer = tdb.connect().await.unwrap();
        for _ in 0..500 {
            let killed = observer
                .query_one(
                    // Only this test's database: a cluster-wide kill would end the
                    // lock-waiting backends of other tests running in parallel.
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE wait_event_type = 'Lock' AND datname = current_database()",
                    &[],
                )
                .await
                .unwrap()
                .get::<_, i64>(0);
            if killed > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no statement ever waited for the lock");
    };
    // Polled together: the second joins the connection the first was just lent.
    let patch = || CounterPatch { hits: Some(1) };
    let (first, second, ()) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(repo.update(1, patch()), repo.update(1, patch()), killer)
    })
    .await
    .expect("the kill ends both statements");
    assert_eq!(db.get_pool().await.unwrap().pipelined_statements(), 1);
    for outcome in [first, second] {
        let err = outcome.unwrap_err();
        assert!(err.is_connection_lost(), "{err:?}");
    }

    lock.rollback().await.unwrap();
    let updated = repo.update(1, patch()).await.unwrap();
    assert_eq!(updated, Counter { id: 1, hits: 1 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_depth_zero_is_rejected() {
    let (_tdb, settings) = fresh().await;
    let err = Database::new(DatabaseSettings {
        pipeline_depth: 0,
        ..settings
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            toolkit::Error::InvalidSettings {
                field: "pipeline_depth",
                ..
            }
        ),
        "{err:?}"
    );
}
