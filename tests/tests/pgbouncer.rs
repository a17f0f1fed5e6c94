//! Through PgBouncer in transaction pooling mode (Debian's `pgbouncer`, started by the test):
//! `StatementMode::Unnamed` serves repository calls, bulk inserts, queries, transactions and
//! savepoints from 32 tasks with zero failures, with fewer server connections than pooled
//! client connections, while another client leaves named statements on the server
//! connections.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use toolkit::{Database, DatabaseSettings, Entity, Repository, StatementMode};
use toolkit_tests::fresh;
use toolkit_tests::pgbouncer::PgBouncer;

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "orders")]
struct Order {
    #[entity(primary_key, generated)]
    id: i64,
    task: i32,
    item: String,
    qty: i32,
}

const ORDERS: &str = "CREATE TABLE orders (
    id bigserial PRIMARY KEY, task int NOT NULL, item text NOT NULL, qty int NOT NULL
)";

const TASKS: i32 = 32;
const ROUNDS: i32 = 6;

fn order(task: i32, n: i32) -> Order {
    Order {
        id: 0,
        task,
        item: format!("item {task}/{n}"),
        qty: n,
    }
}

/// One task's mixed workload; returns the rows it committed.
async fn workload(db: Database, task: i32) -> toolkit::Result<i64> {
    let repo = Repository::<Order>::new(&db);
    let c = Order::columns();
    let mut committed = 0;
    for round in 0..ROUNDS {
        let created = repo.create(&order(task, round)).await?;
        assert_eq!(repo.get_by_id(created.id).await?, created);
        let patch = OrderPatch {
            qty: Some(round + 100),
            ..Default::default()
        };
        repo.update(created.id, patch).await?;
        let found = repo.find(c.item.eq(created.item.clone())).one().await?;
        assert_eq!(found.qty, round + 100);
        let bulk: Vec<Order> = (0..10)
            .map(|n| order(task, 1_000 + round * 10 + n))
            .collect();
        assert_eq!(repo.create_bulk(&bulk).await?.len(), 10);
        committed += 11;
        if task % 8 == 1 && round == 0 {
            // A COPY: the driver prepares it by name, so it runs in a transaction of its own.
            let many: Vec<Order> = (0..500).map(|n| order(task, 50_000 + n)).collect();
            assert_eq!(repo.insert_many(&many).await?, 500);
            committed += 500;
        }
        if task % 8 == 0 && round == 0 {
            let bulk: Vec<Order> = (0..1_000).map(|n| order(task, 10_000 + n)).collect();
            assert_eq!(repo.create_bulk(&bulk).await?.len(), 1_000);
            committed += 1_000;
        }
        // A transaction with a savepoint rolled back and one released.
        let mut tx = db.transaction().await?;
        Repository::<Order>::new(&tx)
            .create(&order(task, 20_000 + round))
            .await?;
        {
            let sp = tx.savepoint("undone").await?;
            Repository::<Order>::new(&sp)
                .create(&order(task, 30_000 + round))
                .await?;
            sp.rollback().await?;
        }
        {
            let sp = tx.savepoint("kept").await?;
            sp.execute(
                "INSERT INTO orders (task, item, qty) VALUES ($1, $2, $3)",
                &[&task, &format!("kept {task}/{round}"), &0_i32],
            )
            .await?;
            sp.commit().await?;
        }
        tx.commit().await?;
        committed += 2;
        db.run_in_transaction(async move |tx| {
            Repository::<Order>::new(&*tx)
                .create(&order(task, 40_000 + round))
                .await?;
            tx.execute(
                "UPDATE orders SET qty = qty + 1 WHERE task = $1 AND qty = $2",
                &[&task, &round],
            )
            .await?;
            Ok(())
        })
        .await?;
        committed += 1;
    }
    Ok(committed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_mode_through_pgbouncer_transaction_pooling() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let (_tdb, settings) = fresh().await;
        let direct = Database::new(settings.clone()).unwrap();
        direct
            .connection()
            .await
            .unwrap()
            .batch_execute(ORDERS)
            .await
            .unwrap();
        let upstream = settings.port;
        let bouncer = tokio::task::spawn_blocking(move || PgBouncer::start(upstream, 4))
            .await
            .unwrap()
            .expect("start pgbouncer");
        let db = Database::new(DatabaseSettings {
            port: bouncer.port(),
            statement_mode: StatementMode::Unnamed,
            min_pool_size: 2,
            max_pool_size: 8,
            pool_timeout: Duration::from_secs(30),
            ..settings.clone()
        })
        .unwrap();

        // Another client of the same PgBouncer leaves named statements on whichever server
        // connection its Parse lands on, the way a prepared-statement client does.
        let stop = Arc::new(AtomicBool::new(false));
        let left_behind = Arc::new(AtomicUsize::new(0));
        let polluter = {
            let (stop, left_behind) = (stop.clone(), left_behind.clone());
            let url = format!(
                "host=127.0.0.1 port={} user=postgres dbname={}",
                bouncer.port(),
                settings.dbname
            );
            tokio::spawn(async move {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                let mut kept = Vec::new();
                for k in 0..2_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    // Errors are expected here (its own statements vanish under it); only
                    // what it leaves behind matters.
                    if let Ok(statement) = client
                        .prepare(&format!("DELETE FROM orders WHERE qty = -{k}"))
                        .await
                    {
                        kept.push(statement);
                        left_behind.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                std::mem::forget(kept); // never closed: they stay on the server connections
            })
        };

        let tasks: Vec<_> = (0..TASKS)
            .map(|task| tokio::spawn(workload(db.clone(), task)))
            .collect();
        let mut committed = 0;
        let mut failures = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(n) => committed += n,
                Err(err) => failures.push(err.to_string()),
            }
        }
        stop.store(true, Ordering::Relaxed);
        polluter.await.unwrap();
        assert!(
            failures.is_empty(),
            "{} failures: {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
        assert!(
            left_behind.load(Ordering::Relaxed) > 0,
            "the other client left nothing behind"
        );

        // Every committed row is there, nothing else (no call of ours deleted anything).
        let rows: i64 = direct
            .connection()
            .await
            .unwrap()
            .query_one("SELECT count(*) FROM orders", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, committed);
        db.cleanup().await;
    })
    .await
    .expect("test deadline");
}
