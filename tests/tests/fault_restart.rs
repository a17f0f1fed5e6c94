//! Fault suite, server restart (issue 7, scenario 3): `pg_ctl restart -m fast` while 16 tasks
//! run mixed repository operations; every outcome is recorded and audited against the table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fault_common::{
    create_pair, item, own_cluster, unique_app, Expected, Item, ItemPatch, Rng, ITEMS,
};
use toolkit::testing::TestDatabase;
use toolkit::{Database, DatabaseSettings, Error, Repository, RetryPolicy};

const TASKS: u64 = 16;
/// Operations of one task, at most (the run is bounded by time first).
const MAX_OPS: usize = 20_000;
/// Load before the restart.
const WARM_UP: Duration = Duration::from_millis(1500);
/// Load after the server is back.
const AFTER_UP: Duration = Duration::from_secs(4);
/// Every operation must succeed when it starts this long after the server is back.
const RECOVERY: Duration = Duration::from_secs(3);
const POOL_TIMEOUT: Duration = Duration::from_secs(2);
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// No single operation may take longer than this (checkout + statements + slack for a loaded
/// 2-core machine); reaching it is a hang and fails the test.
const OP_DEADLINE: Duration = Duration::from_secs(12);

/// How an operation ended, as its caller saw it.
#[derive(Debug, Clone)]
enum Outcome {
    Committed,
    /// Failed before anything reached the server (no connection): certainly not applied.
    FailedClean(String),
    /// The connection was lost or the deadline passed after the statement may have been sent
    /// (e.g. during the commit): the server may or may not have applied it.
    FailedAmbiguous(String),
}

impl Outcome {
    /// What a row the failed create was writing may now hold: nothing, or (when the failure
    /// came after the statement may have reached the server) also the value written.
    fn states_of_a_failed_create(&self, value: i64) -> Vec<Option<i64>> {
        match self {
            Outcome::FailedAmbiguous(_) => vec![None, Some(value)],
            _ => vec![None],
        }
    }
}

/// Sorts an error of an operation during the restart; panics on an unclassified one.
fn classify(err: &Error) -> Outcome {
    let text = format!("{err}");
    match err {
        // No checkout, no connect: nothing was sent.
        Error::Pool { .. } | Error::Connection { .. } => {
            assert!(
                err.is_timeout() || err.is_connection_lost(),
                "pool error not classified: {err:?}"
            );
            Outcome::FailedClean(text)
        }
        Error::Timeout { .. } => Outcome::FailedAmbiguous(text),
        _ if err.is_connection_lost() => Outcome::FailedAmbiguous(text),
        _ => panic!("unclassified error during the restart: {err:?}"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Create,
    CreatePair,
    Update,
    Delete,
    Get,
    Count,
}

#[derive(Debug)]
struct Record {
    kind: Kind,
    started: Instant,
    took: Duration,
    outcome: Outcome,
}

/// One task: random operations on its own tags until the time `stop` holds (it moves once the
/// restart is done).
async fn worker(
    db: Database,
    task: u64,
    stop: tokio::sync::watch::Receiver<Instant>,
) -> (Vec<Record>, Expected) {
    let mut rng = Rng::new(task);
    let repo = Repository::<Item>::new(&db);
    let mut records = Vec::new();
    let mut model = Expected::default();
    // Rows this task knows for certain: (id, tag, value).
    let mut known: Vec<(i64, String, i64)> = Vec::new();
    let mut next = 0u64;
    while Instant::now() < *stop.borrow() && records.len() < MAX_OPS {
        next += 1;
        let value = i64::try_from(next).unwrap();
        let roll = rng.below(100);
        let kind = match roll {
            0..=34 => Kind::Create,
            35..=44 => Kind::CreatePair,
            45..=64 if !known.is_empty() => Kind::Update,
            65..=74 if !known.is_empty() => Kind::Delete,
            75..=89 if !known.is_empty() => Kind::Get,
            _ => Kind::Count,
        };
        let started = Instant::now();
        let outcome = match kind {
            Kind::Create => {
                let tag = format!("t{task}-{next}");
                let done = bounded(repo.create(&item(&tag, value))).await;
                match done {
                    Ok(row) => {
                        assert_eq!((row.tag.as_str(), row.value), (tag.as_str(), value));
                        model.set(&tag, vec![Some(value)]);
                        known.push((row.id, tag, value));
                        Outcome::Committed
                    }
                    Err(err) => {
                        let outcome = classify(&err);
                        let states = outcome.states_of_a_failed_create(value);
                        model.set(&tag, states);
                        outcome
                    }
                }
            }
            Kind::CreatePair => {
                let (a, b) = (format!("t{task}-{next}a"), format!("t{task}-{next}b"));
                let done = bounded(create_pair(&db, &a, &b, value)).await;
                model.pairs.push((a.clone(), b.clone()));
                match done {
                    Ok((id_a, id_b)) => {
                        model.set(&a, vec![Some(value)]);
                        model.set(&b, vec![Some(value)]);
                        known.push((id_a, a, value));
                        known.push((id_b, b, value));
                        Outcome::Committed
                    }
                    Err(err) => {
                        let outcome = classify(&err);
                        let states = outcome.states_of_a_failed_create(value);
                        model.set(&a, states.clone());
                        model.set(&b, states);
                        outcome
                    }
                }
            }
            Kind::Update | Kind::Delete => {
                let at = match kind {
                    Kind::Delete => pick_deletable(&mut rng, &known),
                    _ => Some(rng.index(known.len())),
                };
                let Some(at) = at else {
                    continue;
                };
                let (id, tag, old) = known[at].clone();
                let done = if kind == Kind::Update {
                    bounded(repo.update(
                        id,
                        ItemPatch {
                            value: Some(value),
                            ..Default::default()
                        },
                    ))
                    .await
                    .map(|row| Some(row.value))
                } else {
                    bounded(repo.delete(id)).await.map(|()| None)
                };
                let new = (kind == Kind::Update).then_some(value);
                match done {
                    Ok(stored) => {
                        assert_eq!(stored, new);
                        model.set(&tag, vec![new]);
                        match new {
                            Some(v) => known[at].2 = v,
                            None => {
                                known.swap_remove(at);
                            }
                        }
                        Outcome::Committed
                    }
                    Err(err) => {
                        assert!(
                            !err.is_not_found(),
                            "row {id} ({tag}) was reported committed, now it is missing: {err:?}"
                        );
                        let outcome = classify(&err);
                        if let Outcome::FailedAmbiguous(_) = outcome {
                            // Unknown now: never touched again, audited as either state.
                            model.set(&tag, vec![Some(old)]);
                            model.widen(&tag, new);
                            known.swap_remove(at);
                        }
                        outcome
                    }
                }
            }
            Kind::Get => {
                let (id, tag, value) = known[rng.index(known.len())].clone();
                match bounded(repo.get_by_id(id)).await {
                    Ok(row) => {
                        assert_eq!((row.tag, row.value), (tag, value), "read back");
                        Outcome::Committed
                    }
                    Err(err) => {
                        assert!(!err.is_not_found(), "committed row {id} missing: {err:?}");
                        classify(&err)
                    }
                }
            }
            Kind::Count => match bounded(repo.count()).await {
                Ok(_) => Outcome::Committed,
                Err(err) => classify(&err),
            },
        };
        records.push(Record {
            kind,
            started,
            took: started.elapsed(),
            outcome,
        });
    }
    (records, model)
}

/// A random row that may be deleted: not one of a transaction's pair (tags ending in `a`/`b`),
/// whose audit checks both rows are present or both absent.
fn pick_deletable(rng: &mut Rng, known: &[(i64, String, i64)]) -> Option<usize> {
    let singles: Vec<usize> = (0..known.len())
        .filter(|&i| known[i].1.ends_with(|c: char| c.is_ascii_digit()))
        .collect();
    (!singles.is_empty()).then(|| singles[rng.index(singles.len())])
}

/// Runs one operation under the outer deadline; reaching it fails the test (a hang).
async fn bounded<T>(
    operation: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(OP_DEADLINE, operation).await {
        Ok(outcome) => outcome,
        Err(_) => panic!("an operation hung past {OP_DEADLINE:?}"),
    }
}

/// Scenario 3: the server restarts under load. In-flight operations fail with classified
/// errors, none hangs past its deadline, nothing panics, success is back to 100% within
/// `RECOVERY` of the server being up, and the audit finds every committed write and nothing
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_under_load_loses_nothing_committed() {
    let cluster = Arc::new(own_cluster().await);
    let tdb = TestDatabase::create_in(&cluster).await.unwrap();
    tdb.connect()
        .await
        .unwrap()
        .batch_execute(ITEMS)
        .await
        .unwrap();
    let app = unique_app("restart");
    let db = Database::new(DatabaseSettings {
        application_name: app,
        min_pool_size: 4,
        max_pool_size: 8,
        pool_timeout: POOL_TIMEOUT,
        connection_timeout: Duration::from_secs(1),
        query_timeout: Some(QUERY_TIMEOUT),
        connect_retry: RetryPolicy::fast(3),
        ..tdb.settings()
    })
    .unwrap();
    db.init_db().await.unwrap();

    let began = Instant::now();
    // Generous: the workers stop on their own once the server has been up for AFTER_UP.
    let provisional_stop = began + WARM_UP + Duration::from_secs(60);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(provisional_stop);
    let workers: Vec<_> = (0..TASKS)
        .map(|task| tokio::spawn(worker(db.clone(), task, stop_rx.clone())))
        .collect();

    tokio::time::sleep(WARM_UP).await;
    let down_at = Instant::now();
    let restarter = cluster.clone();
    tokio::task::spawn_blocking(move || restarter.restart())
        .await
        .unwrap()
        .expect("pg_ctl restart");
    let up_at = Instant::now();
    stop_tx.send_replace(up_at + AFTER_UP);
    eprintln!(
        "restart took {:?} (down at {:?}, up at {:?})",
        up_at - down_at,
        down_at - began,
        up_at - began
    );

    let mut records = Vec::new();
    let mut model = Expected::default();
    for worker in workers {
        let (mut part, part_model) = worker.await.expect("no worker panics");
        records.append(&mut part);
        model.merge(part_model);
    }

    // Failures: only around the restart, all classified (checked in `classify`).
    let failed: Vec<&Record> = records
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Committed))
        .collect();
    let slowest = records.iter().map(|r| r.took).max().unwrap_or_default();
    let last_failure = failed
        .iter()
        .map(|r| r.started + r.took)
        .max()
        .map(|end| end.saturating_duration_since(up_at));
    eprintln!(
        "{} operations, {} failed ({} ambiguous), slowest {slowest:?}, last failure ended {last_failure:?} after the server was up",
        records.len(),
        failed.len(),
        failed
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::FailedAmbiguous(_)))
            .count()
    );
    for kind in [
        Kind::Create,
        Kind::CreatePair,
        Kind::Update,
        Kind::Delete,
        Kind::Get,
        Kind::Count,
    ] {
        let total = records.iter().filter(|r| r.kind == kind).count();
        let bad = failed.iter().filter(|r| r.kind == kind).count();
        eprintln!("  {kind:?}: {total} ops, {bad} failed");
    }
    let mut messages: Vec<String> = failed
        .iter()
        .map(|r| match &r.outcome {
            Outcome::FailedClean(m) => {
                format!("clean: {}", m.chars().take(150).collect::<String>())
            }
            Outcome::FailedAmbiguous(m) => {
                format!("in doubt: {}", m.chars().take(150).collect::<String>())
            }
            Outcome::Committed => String::new(),
        })
        .collect();
    messages.sort();
    messages.dedup();
    for message in messages.iter().take(8) {
        eprintln!("  {message}");
    }
    assert!(!failed.is_empty(), "the restart must have hit someone");
    for record in &failed {
        assert!(
            record.started + record.took >= down_at,
            "a failure before the restart: {record:?}"
        );
        assert!(
            record.started < up_at + RECOVERY,
            "an operation started {:?} after the server was up still failed: {record:?}",
            record.started.saturating_duration_since(up_at)
        );
    }
    let late = records
        .iter()
        .filter(|r| r.started >= up_at + RECOVERY)
        .count();
    assert!(
        late > 100,
        "too few operations after recovery to judge: {late}"
    );

    // The audit, on a fresh admin connection to the restarted server.
    let admin = tdb.connect().await.unwrap();
    let (exact, ambiguous, _) = model.audit(&admin).await;
    eprintln!("audit: {exact} tags exact, {ambiguous} ambiguous (in doubt at a failure)");
    assert!(db.check_pool_health().await);
}
