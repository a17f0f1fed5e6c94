//! Fault suite, the soak (issue 7, scenario 13): 32 tasks of mixed create/update/delete (and
//! two-row transactions) for a bounded time, a third of them cancelled at random; the audit of
//! the table must match exactly what callers were told was committed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_common;

use std::future::Future;
use std::time::{Duration, Instant};

use fault_common::{
    create_pair, item, items_db, pids_of, unique_app, wait_until, Expected, Item, ItemPatch, Rng,
};
use toolkit::{Database, DatabaseSettings, Error, Repository};

const TASKS: u64 = 32;
const RUN_FOR: Duration = Duration::from_secs(8);
const MAX_OPS: u64 = 10_000;
/// Longer than any uncancelled operation may take on a loaded machine; reaching it is a hang.
const OP_DEADLINE: Duration = Duration::from_secs(30);

/// What a caller knows after one operation.
enum Told<T> {
    Committed(T),
    /// Cancelled by the caller (its future dropped): the outcome is unknown.
    Cancelled,
}

/// Runs `operation`, cancelled after a random 0-3 ms in about a third of the calls. An error
/// of an operation that was not cancelled fails the test: nothing else goes wrong here.
async fn maybe_cancelled<T>(
    rng: &mut Rng,
    operation: impl Future<Output = Result<T, Error>>,
) -> Told<T> {
    let outcome = if rng.chance(33) {
        match tokio::time::timeout(Duration::from_micros(rng.below(3000)), operation).await {
            Ok(outcome) => outcome,
            Err(_) => return Told::Cancelled,
        }
    } else {
        match tokio::time::timeout(OP_DEADLINE, operation).await {
            Ok(outcome) => outcome,
            Err(_) => panic!("an operation hung past {OP_DEADLINE:?}"),
        }
    };
    match outcome {
        Ok(value) => Told::Committed(value),
        Err(err) => panic!("an operation failed without any fault: {err:?}"),
    }
}

#[derive(Debug, Default)]
struct Ledger {
    expected: Expected,
    committed: u64,
    cancelled: u64,
}

impl Ledger {
    fn exact(&mut self, tag: &str, state: Option<i64>) {
        self.expected.set(tag, vec![state]);
        self.committed += 1;
    }

    fn maybe(&mut self, tag: &str, states: &[Option<i64>]) {
        for state in states {
            self.expected.widen(tag, *state);
        }
        self.cancelled += 1;
    }
}

/// One task: creates, updates, deletes, two-row transactions and reads on its own tags.
async fn worker(db: Database, task: u64, stop: Instant) -> Ledger {
    let mut rng = Rng::new(task);
    let repo = Repository::<Item>::new(&db);
    let mut ledger = Ledger::default();
    // Rows whose state this task knows for certain: (id, tag, value).
    let mut known: Vec<(i64, String, i64)> = Vec::new();
    let mut n = 0u64;
    while Instant::now() < stop && n < MAX_OPS {
        n += 1;
        let value = i64::try_from(n).unwrap();
        let roll = rng.below(100);
        if known.is_empty() || roll < 35 {
            let tag = format!("s{task}-{n}");
            match maybe_cancelled(&mut rng, repo.create(&item(&tag, value))).await {
                Told::Committed(row) => {
                    assert_eq!(row.value, value);
                    ledger.exact(&tag, Some(value));
                    known.push((row.id, tag, value));
                }
                Told::Cancelled => ledger.maybe(&tag, &[None, Some(value)]),
            }
        } else if roll < 45 {
            let (a, b) = (format!("s{task}-{n}a"), format!("s{task}-{n}b"));
            ledger.expected.pairs.push((a.clone(), b.clone()));
            let pair = create_pair(&db, &a, &b, value);
            match maybe_cancelled(&mut rng, pair).await {
                Told::Committed((id_a, id_b)) => {
                    ledger.exact(&a, Some(value));
                    ledger.exact(&b, Some(value));
                    known.push((id_a, a, value));
                    known.push((id_b, b, value));
                }
                Told::Cancelled => {
                    ledger.maybe(&a, &[None, Some(value)]);
                    ledger.maybe(&b, &[None, Some(value)]);
                }
            }
        } else if roll < 75 {
            let at = rng.index(known.len());
            let (id, tag, old) = known[at].clone();
            let patch = ItemPatch {
                value: Some(value),
                ..Default::default()
            };
            match maybe_cancelled(&mut rng, repo.update(id, patch)).await {
                Told::Committed(row) => {
                    assert_eq!(row.value, value);
                    ledger.exact(&tag, Some(value));
                    known[at].2 = value;
                }
                Told::Cancelled => {
                    ledger.maybe(&tag, &[Some(old), Some(value)]);
                    known.swap_remove(at);
                }
            }
        } else if roll < 90 {
            // Never one row of a transaction's pair: their audit is "both or neither".
            let singles: Vec<usize> = (0..known.len())
                .filter(|&i| known[i].1.ends_with(|c: char| c.is_ascii_digit()))
                .collect();
            if singles.is_empty() {
                continue;
            }
            let at = singles[rng.index(singles.len())];
            let (id, tag, old) = known.swap_remove(at);
            match maybe_cancelled(&mut rng, repo.delete(id)).await {
                Told::Committed(()) => ledger.exact(&tag, None),
                Told::Cancelled => ledger.maybe(&tag, &[Some(old), None]),
            }
        } else {
            // Reads of rows known for certain must agree with what the task was told.
            let (id, tag, value) = known[rng.index(known.len())].clone();
            if let Told::Committed(row) = maybe_cancelled(&mut rng, repo.get_by_id(id)).await {
                assert_eq!((row.tag, row.value), (tag, value));
            }
        }
    }
    ledger
}

/// Scenario 13: the audit after the soak matches exactly what callers were told: every
/// committed create, update and delete is in the table as reported, every cancelled operation
/// left one of its two possible states, every transaction is all or nothing, nothing is there
/// twice and nothing is there that nobody wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_random_cancellations_matches_the_audit() {
    let tdb = items_db().await;
    let app = unique_app("soak");
    let db = Database::new(DatabaseSettings {
        application_name: app.clone(),
        min_pool_size: 2,
        max_pool_size: 8,
        pool_timeout: Duration::from_secs(20),
        ..tdb.settings()
    })
    .unwrap();
    db.init_db().await.unwrap();
    let started = Instant::now();
    let stop = started + RUN_FOR;
    let workers: Vec<_> = (0..TASKS)
        .map(|task| tokio::spawn(worker(db.clone(), task, stop)))
        .collect();
    let mut ledger = Ledger::default();
    for worker in workers {
        let part = tokio::time::timeout(Duration::from_secs(60), worker)
            .await
            .expect("a soak task hung")
            .expect("no soak task panics");
        ledger.expected.merge(part.expected);
        ledger.committed += part.committed;
        ledger.cancelled += part.cancelled;
    }
    let took = started.elapsed();
    let pool = db.get_pool().await.unwrap();
    let open = pool.state().connections;
    assert!(open <= 8);
    // Statements of cancelled calls may still run on the server: close the pool and wait for
    // every backend of it to be gone before reading the table.
    db.cleanup().await;
    drop(pool);
    drop(db);
    let admin = tdb.connect().await.unwrap();
    wait_until(
        Duration::from_secs(20),
        "the pool's backends to exit",
        || async { pids_of(&admin, &app).await.is_empty() },
    )
    .await;

    let (exact, in_doubt, stored) = ledger.expected.audit(&admin).await;
    eprintln!(
        "soak: {TASKS} tasks for {took:?}: {} committed writes, {} cancelled; audit: {exact} tags exact, \
         {in_doubt} in doubt (cancelled last), {} rows stored",
        ledger.committed,
        ledger.cancelled,
        stored
    );
    assert!(exact > 1000, "too little work to judge: {exact}");
    assert!(
        ledger.cancelled > 100,
        "too few cancellations: {}",
        ledger.cancelled
    );
}
