//! Failover (issue 13, "Connecting in production"): a primary and a streaming standby behind one
//! host list with `target_session_attrs=read-write`. Writers keep inserting while the primary is
//! stopped and the standby promoted: calls fail only during the outage, with connection-lost
//! errors (or a pool timeout that ran out just as the new primary came up), then succeed on the
//! new primary through the same `Database`, and every acknowledged write is on it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use toolkit::testing::TestCluster;
use toolkit::{
    Database, DatabaseSettings, Entity, Error, PoolErrorKind, Repository, RetryPolicy,
    TargetSessionAttrs,
};

const TEST_DEADLINE: Duration = Duration::from_secs(150);
/// Writers, half on a `Database` from fields, half on one from the URL.
const WRITERS: i64 = 8;
/// Writes of one writer, at most (the run is bounded by time first).
const MAX_WRITES: i64 = 100_000;
/// Load before the primary is stopped.
const WARM_UP: Duration = Duration::from_millis(1500);
/// Between the primary being down and the promotion: the time a failover manager takes to
/// decide. Writers meanwhile find no server that accepts writes; longer than `POOL_TIMEOUT`, so
/// checkouts run out of time during the outage and not only statements on closed connections
/// fail.
const DECISION: Duration = Duration::from_secs(3);
/// Load after the promotion.
const AFTER_PROMOTE: Duration = Duration::from_secs(5);
/// Every write that starts this long after the promotion must succeed: a checkout that began
/// during the outage waits at most `POOL_TIMEOUT`, and bb8 retries a failed connect after at
/// most `POOL_TIMEOUT / 2`.
const RECOVERY: Duration = Duration::from_secs(3);
/// Short, so a write during the outage fails in seconds, not the default 30 s, and the writers
/// keep trying.
const POOL_TIMEOUT: Duration = Duration::from_secs(2);
/// No server here is slow to answer; a connect that takes longer is a bug to see.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// No single write may take longer (checkout + statement + slack for a loaded 2-core machine);
/// reaching it is a hang and fails the test.
const WRITE_DEADLINE: Duration = Duration::from_secs(15);

/// One row per write, keyed by an id the writer chooses, so an acknowledged write can be looked
/// up on the new primary.
#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "writes")]
struct Write {
    #[entity(primary_key)]
    id: i64,
    writer: i64,
}

const WRITES: &str = "CREATE TABLE writes (id bigint PRIMARY KEY, writer bigint NOT NULL)";

/// Why a write failed, as its caller can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The statement was on a connection the shutdown closed: it may or may not have committed.
    Lost,
    /// No checkout within `POOL_TIMEOUT`, the last connect having failed: no server accepted
    /// a read-write connection.
    NoServer,
    /// No checkout within `POOL_TIMEOUT` although the last connect succeeded: a checkout that
    /// began during the outage and ran out of time just after the promotion, while the first
    /// new connections served other callers and the pool's other connects were still waiting
    /// out bb8's retry delay. The error names no cause ("all N in use"), so it is not
    /// connection-lost; it is a timeout.
    Recovering,
    /// The pool gave up on a connect before `POOL_TIMEOUT`.
    Connect,
}

/// Sorts an error of a write; panics on anything a failover should not cause.
fn classify(err: &Error) -> Failure {
    match err {
        Error::Pool {
            kind: PoolErrorKind::Timeout,
            source: None,
            ..
        } => Failure::Recovering,
        Error::Pool {
            kind: PoolErrorKind::Timeout,
            ..
        } if err.is_connection_lost() => Failure::NoServer,
        // A statement whose connection went under it.
        Error::Connection { message, .. } if message.starts_with("connection lost") => {
            Failure::Lost
        }
        Error::Connection { .. } => Failure::Connect,
        _ => panic!("a write failed with an error a failover should not cause: {err:?}"),
    }
}

#[derive(Debug)]
struct Record {
    id: i64,
    started: Instant,
    ended: Instant,
    outcome: Result<(), (Failure, String)>,
}

/// One writer: inserts rows with ids `writer * MAX_WRITES + n` until the time `stop` holds.
async fn writer(
    db: Database,
    writer: i64,
    stop: tokio::sync::watch::Receiver<Instant>,
) -> Vec<Record> {
    let repo = Repository::<Write>::new(&db);
    let mut records = Vec::new();
    for n in 0..MAX_WRITES {
        if Instant::now() >= *stop.borrow() {
            break;
        }
        let id = writer * MAX_WRITES + n;
        let started = Instant::now();
        let done = tokio::time::timeout(WRITE_DEADLINE, repo.create(&Write { id, writer }))
            .await
            .unwrap_or_else(|_| panic!("write {id} hung past {WRITE_DEADLINE:?}"));
        let outcome = match done {
            Ok(row) => {
                assert_eq!(row, Write { id, writer });
                Ok(())
            }
            Err(err) => Err((classify(&err), format!("{err}"))),
        };
        let failed = outcome.is_err();
        records.push(Record {
            id,
            started,
            ended: Instant::now(),
            outcome,
        });
        if failed {
            // Should a failure ever come back at once, the writer must not spin on it.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    records
}

/// `(pg_is_in_recovery(), inet_server_port())` of the server a pooled connection reaches.
async fn served_by(db: &Database) -> (bool, i32) {
    let conn = db.connection().await.unwrap();
    let row = conn
        .query_one("SELECT pg_is_in_recovery(), inet_server_port()", &[])
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// Polls until the primary has a standby streaming from it; a standby not yet streaming when
/// the primary stops would miss writes for reasons that are not the toolkit's.
async fn wait_for_streaming(primary: &Database) {
    let started = Instant::now();
    loop {
        let streaming: i64 = primary
            .connection()
            .await
            .unwrap()
            .query_one(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if streaming == 1 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the standby did not start streaming within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Settings every failover pool of this test shares; see the constants for why.
fn pool_settings(base: DatabaseSettings, app: &str) -> DatabaseSettings {
    DatabaseSettings {
        application_name: app.into(),
        min_pool_size: 2,
        max_pool_size: 4,
        pool_timeout: POOL_TIMEOUT,
        connection_timeout: CONNECTION_TIMEOUT,
        // Kept forever: the pool must follow the failover because the old primary's
        // connections fail, not because a lifetime happens to replace them.
        max_lifetime: None,
        connect_retry: RetryPolicy::fast(3),
        ..base
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_primary_stop_and_standby_promotion() {
    tokio::time::timeout(TEST_DEADLINE, failover())
        .await
        .expect("test deadline");
}

async fn failover() {
    let primary = tokio::task::spawn_blocking(TestCluster::start)
        .await
        .unwrap()
        .expect("start the primary");
    let admin = Database::new(DatabaseSettings {
        min_pool_size: 1,
        ..primary.settings()
    })
    .unwrap();
    admin
        .connection()
        .await
        .unwrap()
        .batch_execute(WRITES)
        .await
        .unwrap();
    // Replication is asynchronous and the test clusters run `synchronous_commit = off`: a write
    // is acknowledged before any standby has it. That loses nothing here because the primary
    // is stopped cleanly (`pg_ctl stop -m fast`): before it exits, its walsender sends all WAL
    // to the connected standby and waits for the standby to confirm it, which this test checks
    // (hundreds of writes are acknowledged in the last 100 ms before the stop). A primary that
    // crashes could lose its last writes; only `synchronous_standby_names` with
    // `synchronous_commit = on` would keep them then.
    let primary = Arc::new(primary);
    let source = primary.clone();
    let standby = tokio::task::spawn_blocking(move || source.standby())
        .await
        .unwrap()
        .expect("start the standby");
    let standby = Arc::new(standby);
    wait_for_streaming(&admin).await;
    admin.cleanup().await;
    let (p1, p2) = (primary.port(), standby.port());

    // The standby answers, read-only; `ReadWrite` skips it even when it is listed first.
    for (attrs, expected) in [
        (TargetSessionAttrs::Any, (true, i32::from(p2))),
        (TargetSessionAttrs::ReadWrite, (false, i32::from(p1))),
    ] {
        let db = Database::new(DatabaseSettings {
            host: format!("127.0.0.1:{p2},127.0.0.1:{p1}"),
            target_session_attrs: attrs,
            min_pool_size: 1,
            ..primary.settings()
        })
        .unwrap();
        assert_eq!(served_by(&db).await, expected, "{attrs:?}");
        db.cleanup().await;
    }

    // The same target from fields and from a URL; each serves half the writers.
    let from_fields = DatabaseSettings {
        host: format!("127.0.0.1:{p1},127.0.0.1:{p2}"),
        target_session_attrs: TargetSessionAttrs::ReadWrite,
        ..primary.settings()
    };
    let url = format!(
        "postgres://postgres@127.0.0.1:{p1},127.0.0.1:{p2}/postgres?target_session_attrs=read-write"
    );
    let from_url = DatabaseSettings::from_url(&url).unwrap();
    assert_eq!(from_url.host, from_fields.host);
    assert_eq!(from_url.target_session_attrs, TargetSessionAttrs::ReadWrite);
    let dbs = [
        Database::new(pool_settings(from_fields, "failover_fields")).unwrap(),
        Database::new(pool_settings(from_url, "failover_url")).unwrap(),
    ];
    for db in &dbs {
        db.init_db().await.unwrap();
        assert_eq!(served_by(db).await, (false, i32::from(p1)));
    }

    let began = Instant::now();
    // Generous: moved to `AFTER_PROMOTE` past the promotion once it is done.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(began + Duration::from_secs(90));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let db = dbs[usize::from(w >= WRITERS / 2)].clone();
            tokio::spawn(writer(db, w, stop_rx.clone()))
        })
        .collect();

    tokio::time::sleep(WARM_UP).await;
    let down_at = Instant::now();
    let stopping = primary.clone();
    tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .unwrap()
        .expect("pg_ctl stop -m fast");
    let stopped_at = Instant::now();
    tokio::time::sleep(DECISION).await;
    let promoting = standby.clone();
    tokio::task::spawn_blocking(move || promoting.promote())
        .await
        .unwrap()
        .expect("pg_ctl promote");
    let promoted_at = Instant::now();
    stop_tx.send_replace(promoted_at + AFTER_PROMOTE);

    let mut records = Vec::new();
    for writer in writers {
        records.append(&mut writer.await.expect("no writer panics"));
    }

    // The outage as the writers saw it.
    let failed: Vec<&Record> = records.iter().filter(|r| r.outcome.is_err()).collect();
    let acked: Vec<&Record> = records.iter().filter(|r| r.outcome.is_ok()).collect();
    let count = |kind: Failure| {
        failed
            .iter()
            .filter(|r| matches!(r.outcome, Err((k, _)) if k == kind))
            .count()
    };
    let since = |at: Instant| move |t: Instant| t.saturating_duration_since(at);
    let last_failure = failed.iter().map(|r| r.ended).max();
    let first_after = acked
        .iter()
        .filter(|r| r.started >= stopped_at)
        .map(|r| r.ended)
        .min();
    let last_before = acked
        .iter()
        .filter(|r| r.ended <= down_at)
        .map(|r| r.ended)
        .max();
    let mut ends: Vec<Instant> = acked.iter().map(|r| r.ended).collect();
    ends.sort();
    let longest_gap = ends
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .max()
        .unwrap_or_default();
    eprintln!(
        "stop took {:?}, promote {:?}; {} writes, {} acknowledged, {} failed \
         ({} lost connection, {} no server within the pool timeout, {} pool timeout while \
         recovering, {} connect)",
        stopped_at - down_at,
        promoted_at - stopped_at - DECISION,
        records.len(),
        acked.len(),
        failed.len(),
        count(Failure::Lost),
        count(Failure::NoServer),
        count(Failure::Recovering),
        count(Failure::Connect),
    );
    eprintln!(
        "acknowledged writes: last before the stop {:?} before it, first after it {:?} after \
         the promotion; longest gap between acknowledgements {longest_gap:?}; last failure \
         ended {:?} after the promotion",
        last_before.map(|t| down_at - t),
        first_after.map(since(promoted_at)),
        last_failure.map(since(promoted_at)),
    );
    let mut messages: Vec<String> = failed
        .iter()
        .filter_map(|r| r.outcome.as_ref().err())
        .map(|(kind, m)| format!("{kind:?}: {}", m.chars().take(200).collect::<String>()))
        .collect();
    messages.sort();
    messages.dedup();
    for message in messages.iter().take(10) {
        eprintln!("  {message}");
    }

    assert!(!failed.is_empty(), "the failover must have hit someone");
    for record in &failed {
        assert!(
            record.ended >= down_at,
            "a write failed before the primary was stopped: {record:?}"
        );
        if let Err((Failure::Recovering, _)) = record.outcome {
            // Only a connect to the promoted standby can have succeeded during the outage.
            assert!(
                record.ended >= promoted_at,
                "a pool timeout without a connect error before the promotion: {record:?}"
            );
        }
        assert!(
            record.started < promoted_at + RECOVERY,
            "a write started {:?} after the promotion still failed: {record:?}",
            record.started.saturating_duration_since(promoted_at)
        );
    }
    let late = records
        .iter()
        .filter(|r| r.started >= promoted_at + RECOVERY)
        .count();
    assert!(late > 50, "too few writes after recovery to judge: {late}");

    // Both pools now reach the promoted standby, read-write, without being recreated.
    for db in &dbs {
        assert!(db.is_pool_active());
        assert_eq!(served_by(db).await, (false, i32::from(p2)));
    }

    // No acknowledged write is lost: every one is on the new primary.
    let stored: HashSet<i64> = dbs[0]
        .connection()
        .await
        .unwrap()
        .query("SELECT id FROM writes", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let missing: Vec<i64> = acked
        .iter()
        .map(|r| r.id)
        .filter(|id| !stored.contains(id))
        .collect();
    let in_doubt_stored = failed
        .iter()
        .filter(|r| matches!(r.outcome, Err((Failure::Lost, _))) && stored.contains(&r.id))
        .count();
    let acked_last_100ms = acked
        .iter()
        .filter(|r| r.ended <= down_at && down_at - r.ended < Duration::from_millis(100))
        .count();
    eprintln!(
        "{} rows on the new primary; {acked_last_100ms} writes acknowledged in the last 100 ms \
         before the stop; {in_doubt_stored} writes whose connection was lost are stored anyway",
        stored.len()
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged writes are missing on the promoted standby, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    // Nothing stored that no writer sent: the audit's set is the writers' ids.
    let sent: HashSet<i64> = records.iter().map(|r| r.id).collect();
    assert!(stored.is_subset(&sent), "rows no writer wrote");

    for db in &dbs {
        db.cleanup().await;
    }
}

/// A standby of a cluster with password authentication logs in to its primary with the same
/// password (pg_basebackup writes it into `primary_conninfo`), and serves it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_of_a_password_cluster_streams_and_promotes() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let primary = tokio::task::spawn_blocking(|| {
            TestCluster::builder().password("s3cret 'quoted'").start()
        })
        .await
        .unwrap()
        .expect("start the primary");
        let primary = Arc::new(primary);
        let source = primary.clone();
        let standby = tokio::task::spawn_blocking(move || source.standby())
            .await
            .unwrap()
            .expect("start the standby");
        let admin = Database::new(DatabaseSettings {
            min_pool_size: 1,
            ..primary.settings()
        })
        .unwrap();
        wait_for_streaming(&admin).await;
        admin
            .connection()
            .await
            .unwrap()
            .batch_execute(WRITES)
            .await
            .unwrap();

        let standby = Arc::new(standby);
        let on_standby = Database::new(DatabaseSettings {
            min_pool_size: 1,
            ..standby.settings()
        })
        .unwrap();
        assert_eq!(
            served_by(&on_standby).await,
            (true, i32::from(standby.port()))
        );
        on_standby.cleanup().await;

        let stopping = primary.clone();
        tokio::task::spawn_blocking(move || stopping.stop())
            .await
            .unwrap()
            .unwrap();
        let promoting = standby.clone();
        tokio::task::spawn_blocking(move || promoting.promote())
            .await
            .unwrap()
            .unwrap();
        // The table created on the primary after the copy came over the stream.
        let promoted = Database::new(standby.settings()).unwrap();
        assert_eq!(
            served_by(&promoted).await,
            (false, i32::from(standby.port()))
        );
        let written = Repository::<Write>::new(&promoted)
            .create(&Write { id: 1, writer: 0 })
            .await
            .unwrap();
        assert_eq!(written.id, 1);
        promoted.cleanup().await;
    })
    .await
    .expect("test deadline");
}
