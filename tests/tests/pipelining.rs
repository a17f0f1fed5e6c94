//! `pipeline_depth`: single statements share busy connections; transactions never do.
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
        pipeline_depth: 2,
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
    let (open, _) = pool.state();
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
