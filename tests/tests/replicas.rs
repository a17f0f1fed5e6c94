//! Read replicas against a primary and two streaming standbys the tests start
//! (`pg_basebackup -R`): routing, read-your-writes, a paused replica, stopped replicas, and
//! writes sent to a replica.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use toolkit::testing::TestCluster;
use toolkit::{Database, DatabaseSettings, Entity, Error, NodeStatus, Repository};

const TEST_DEADLINE: Duration = Duration::from_secs(150);
const PROBE: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "items")]
struct Item {
    #[entity(primary_key, generated)]
    id: i64,
    name: String,
}

struct Nodes {
    primary: TestCluster,
    replicas: Vec<TestCluster>,
}

/// A primary (committing synchronously, so a commit is flushed when it returns, as the
/// read-your-writes position assumes) with the `items` table, and two standbys streaming
/// from it.
async fn nodes() -> Nodes {
    tokio::task::spawn_blocking(|| {
        let primary = TestCluster::builder()
            .setting("synchronous_commit", "on")
            .start()
            .unwrap();
        let replicas = vec![primary.standby().unwrap(), primary.standby().unwrap()];
        Nodes { primary, replicas }
    })
    .await
    .unwrap()
}

impl Nodes {
    fn settings(&self) -> DatabaseSettings {
        DatabaseSettings {
            replicas: self
                .replicas
                .iter()
                .map(|r| format!("127.0.0.1:{}", r.port()))
                .collect(),
            replica_probe_interval: PROBE,
            min_pool_size: 1,
            max_pool_size: 8,
            pool_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(2),
            ..self.primary.settings()
        }
    }

    async fn database(&self) -> Database {
        let db = Database::new(self.settings()).unwrap();
        db.primary()
            .connection()
            .await
            .unwrap()
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS items (id bigserial PRIMARY KEY, name text NOT NULL)",
            )
            .await
            .unwrap();
        db
    }
}

fn reads(status: &[NodeStatus]) -> Vec<u64> {
    status.iter().map(|node| node.reads).collect()
}

/// Reads of replica `i` (0-based) since `before`.
fn replica_reads_since(db: &Database, before: &[u64], i: usize) -> u64 {
    reads(&db.node_status())[i + 1] - before[i + 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_and_read_your_writes() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let nodes = nodes().await;
        let db = nodes.database().await;

        // 1,000 write-then-read pairs through one handle: never stale.
        let handle = db.session();
        let repo = Repository::<Item>::new(&handle);
        let before = reads(&db.node_status());
        let started = Instant::now();
        for i in 0..1000 {
            let created = repo
                .create(&Item {
                    id: 0,
                    name: format!("item {i}"),
                })
                .await
                .unwrap();
            match repo.get_by_id(created.id).await {
                Ok(read) => assert_eq!(read, created),
                Err(err) => panic!("read {i} after its write was stale: {err}"),
            }
        }
        let after = reads(&db.node_status());
        let on_replicas = (after[1] - before[1]) + (after[2] - before[2]);
        let on_primary = after[0] - before[0];
        println!(
            "1,000 write-then-read pairs in {:?}: {on_replicas} reads on replicas, {on_primary} on the primary",
            started.elapsed()
        );
        assert_eq!(on_replicas + on_primary, 1000);
        assert!(on_replicas > 900, "replicas served only {on_replicas} of 1,000 reads");

        // Reads with no write before them go to the replicas, round robin, and wait for nothing.
        let reader = db.session();
        let repo = Repository::<Item>::new(&reader);
        let before = reads(&db.node_status());
        for id in 1..=200_i64 {
            assert_eq!(repo.get_by_id(id).await.unwrap().id, id);
        }
        assert_eq!(repo.count().await.unwrap(), 1000);
        let after = reads(&db.node_status());
        assert_eq!(after[0], before[0], "a read with no write before it reached the primary");
        let (first, second) = (after[1] - before[1], after[2] - before[2]);
        assert_eq!(first + second, 201);
        assert!(first >= 90 && second >= 90, "uneven: {first} and {second}");

        // A hand-written SELECT reads on a replica too; one that locks rows, or hides a
        // write in a WITH, goes to the primary (where it works) and is not a read there.
        let before = reads(&db.node_status());
        let some = repo
            .query_as("SELECT * FROM items WHERE id <= $1 ORDER BY id", &[&10_i64])
            .await
            .unwrap();
        assert_eq!(some.len(), 10);
        let after = reads(&db.node_status());
        assert_eq!((after[1] + after[2]) - (before[1] + before[2]), 1);
        assert_eq!(after[0], before[0]);
        let locked = repo
            .query_as("SELECT * FROM items WHERE id = $1 FOR UPDATE", &[&1_i64])
            .await
            .unwrap();
        assert_eq!(locked.len(), 1);
        let made = repo
            .query_as(
                "WITH made AS (INSERT INTO items (name) VALUES ('by query_as') RETURNING *) \
                 SELECT * FROM made",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(made.len(), 1);
        assert_eq!(reads(&db.node_status()), after, "a locking or writing query was a read");

        // The record travels in a token: a new handle waits for the writes it stands for.
        let writer = db.session();
        let written = Repository::<Item>::new(&writer)
            .create(&Item {
                id: 0,
                name: "carried".into(),
            })
            .await
            .unwrap();
        let token = writer.consistency_token().await.unwrap().expect("a write was made");
        let carried = db.with_consistency(token.to_string().parse().unwrap());
        assert_eq!(
            Repository::<Item>::new(&carried)
                .get_by_id(written.id)
                .await
                .unwrap(),
            written
        );
        assert_eq!(db.session().consistency_token().await.unwrap(), None);

        // A write sent to a replica on purpose fails as read-only; the primary takes it.
        let err = Repository::<Item>::new(&db.replica())
            .create(&Item {
                id: 0,
                name: "nope".into(),
            })
            .await
            .unwrap_err();
        assert!(err.is_read_only(), "{err:?}");
        let primary_reads = db.node_status()[0].reads;
        Repository::<Item>::new(&db.primary())
            .get_by_id(written.id)
            .await
            .unwrap();
        assert_eq!(db.node_status()[0].reads, primary_reads, "primary() reads are not fallbacks");

        // cleanup closes every pool, the replicas' too; the next reads open them again.
        db.cleanup().await;
        assert!(db.node_status().iter().all(|node| node.pool.is_none()));
        let before = reads(&db.node_status());
        let again = db.session();
        for id in 1..=10_i64 {
            Repository::<Item>::new(&again).get_by_id(id).await.unwrap();
        }
        let after = reads(&db.node_status());
        assert_eq!(after[0], before[0], "reads after cleanup fell back to the primary");
        assert_eq!((after[1] + after[2]) - (before[1] + before[2]), 10);
        assert!(Repository::<Item>::new(&db.replica()).count().await.unwrap() > 0);

        // Without replicas, replica() says so.
        let plain = Database::new(nodes.primary.settings()).unwrap();
        match Repository::<Item>::new(&plain.replica()).count().await {
            Err(Error::InvalidSettings { field, .. }) => assert_eq!(field, "replicas"),
            other => panic!("expected InvalidSettings for replicas, got {other:?}"),
        }
        db.cleanup().await;
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_replica_is_skipped_until_it_resumes() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let nodes = nodes().await;
        let db = nodes.database().await;
        let repo = Repository::<Item>::new(&db);
        repo.create(&Item {
            id: 0,
            name: "one".into(),
        })
        .await
        .unwrap();
        let paused = Database::new(DatabaseSettings {
            min_pool_size: 0,
            ..nodes.replicas[0].settings()
        })
        .unwrap();
        let pause = |sql: &'static str| {
            let paused = paused.clone();
            async move {
                paused
                    .connection()
                    .await
                    .unwrap()
                    .batch_execute(sql)
                    .await
                    .unwrap()
            }
        };
        pause("SELECT pg_wal_replay_pause()").await;

        // Within replica_wait plus a probe interval, reads leave it; reads after writes
        // never wait on it past replica_wait, and are never stale.
        tokio::time::sleep(PROBE * 3).await;
        let before = reads(&db.node_status());
        for i in 0..50 {
            let created = repo
                .create(&Item {
                    id: 0,
                    name: format!("while paused {i}"),
                })
                .await
                .unwrap();
            assert_eq!(repo.get_by_id(created.id).await.unwrap(), created);
            let _ = Repository::<Item>::new(&db.session())
                .count()
                .await
                .unwrap();
        }
        assert!(!db.node_status()[1].healthy);
        assert_eq!(
            replica_reads_since(&db, &before, 0),
            0,
            "the paused replica served reads"
        );
        assert!(replica_reads_since(&db, &before, 1) > 0);

        pause("SELECT pg_wal_replay_resume()").await;
        let resumed = Instant::now();
        let reader = db.session();
        let reader_repo = Repository::<Item>::new(&reader);
        let before = reads(&db.node_status());
        while replica_reads_since(&db, &before, 0) == 0 {
            assert!(
                resumed.elapsed() < Duration::from_secs(10),
                "the replica never came back"
            );
            reader_repo.count().await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "resumed replica served reads again after {:?}",
            resumed.elapsed()
        );
        paused.cleanup().await;
        db.cleanup().await;
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_replicas_under_load() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let nodes = nodes().await;
        let db = nodes.database().await;
        let repo = Repository::<Item>::new(&db);
        let rows: Vec<Item> = (0..100)
            .map(|i| Item {
                id: 0,
                name: format!("row {i}"),
            })
            .collect();
        repo.create_bulk(&rows).await.unwrap();
        // Let the replicas catch up and be probed, so reads with no write spread over both.
        tokio::time::sleep(PROBE * 3).await;

        let failures = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let phase_end = Arc::new(std::sync::Mutex::new(Instant::now() + Duration::from_secs(60)));
        let mut tasks = Vec::new();
        for t in 0..16_i64 {
            let db = db.session();
            let (failures, done, phase_end) = (failures.clone(), done.clone(), phase_end.clone());
            tasks.push(tokio::spawn(async move {
                let repo = Repository::<Item>::new(&db);
                for i in 0..100_000_i64 {
                    if Instant::now() >= *phase_end.lock().unwrap() {
                        break;
                    }
                    let outcome = match i % 3 {
                        0 => repo.get_by_id(1 + (t * 7 + i) % 100).await.map(drop),
                        1 => repo.count().await.map(drop),
                        _ => repo.exists(1 + i % 100).await.map(drop),
                    };
                    match outcome {
                        Ok(()) => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(err) => {
                            assert!(err.is_connection_lost(), "{err:?}");
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        let served = |db: &Database| reads(&db.node_status());
        tokio::time::sleep(Duration::from_millis(700)).await;
        let open_to_first = db.node_status()[1]
            .pool
            .map_or(0, |pool| u64::from(pool.connections));
        tokio::task::block_in_place(|| nodes.replicas[0].stop().unwrap());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let failed_one = failures.load(Ordering::Relaxed);
        let before = served(&db);
        tokio::time::sleep(Duration::from_millis(700)).await;
        let after = served(&db);
        println!(
            "first replica stopped with {open_to_first} connections open to it: {failed_one} reads failed; \
             then {} reads on the other replica, {} on the stopped one, {} on the primary",
            after[2] - before[2],
            after[1] - before[1],
            after[0] - before[0]
        );
        // The reads running on the replica's connections when it went were run again on
        // the primary, and later reads went elsewhere: none failed.
        assert_eq!(
            failed_one, 0,
            "{failed_one} reads failed with {open_to_first} connections open to the stopped replica"
        );
        assert_eq!(after[1], before[1], "reads still went to the stopped replica");
        assert!(after[2] > before[2], "the other replica stopped serving");

        let open_to_second = db.node_status()[2]
            .pool
            .map_or(0, |pool| u64::from(pool.connections));
        tokio::task::block_in_place(|| nodes.replicas[1].stop().unwrap());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let before = served(&db);
        tokio::time::sleep(Duration::from_millis(700)).await;
        let after = served(&db);
        *phase_end.lock().unwrap() = Instant::now();
        for task in tasks {
            task.await.unwrap();
        }
        let failed = failures.load(Ordering::Relaxed);
        println!(
            "both stopped: {} failed in all, {} reads on the primary meanwhile; {} reads done",
            failed,
            after[0] - before[0],
            done.load(Ordering::Relaxed)
        );
        assert_eq!(failed, 0, "reads failed with {open_to_second} connections open to the second");
        assert!(after[0] > before[0], "the primary did not take the reads");
        assert_eq!((after[1], after[2]), (before[1], before[2]));
        db.cleanup().await;
    })
    .await
    .expect("test deadline");
}
