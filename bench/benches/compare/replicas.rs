//! `BENCH_ONLY=replicas`: what routing reads to a replica costs, against a `Database` connected
//! to that replica directly, on a primary and a `pg_basebackup` standby started here.
//!
//! - no write: point reads through a routed handle that never wrote (routing alone);
//! - after write: a create through the handle (not timed), then the read of that row (timed):
//!   the primary's flush position and the wait for the replica, against the same read on the
//!   direct replica `Database`, which may miss the row (counted).

use std::time::{Duration, Instant};

use toolkit::testing::TestCluster;
use toolkit::{Database, DatabaseSettings, Error, Repository};

use crate::stats::{fmt_dur, median, Run};
use crate::workloads::{user, BenchUser, SCHEMA, SEEDED_ROWS};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const READS: usize = 2_000;
const PAIRS: usize = 1_000;
const BLOCK: usize = 100;

pub async fn run(passes: usize) -> Res<()> {
    let (primary, replica) = tokio::task::spawn_blocking(|| -> std::io::Result<_> {
        // Committing synchronously, as PostgreSQL does by default: read-your-writes waits for
        // the flush position, which covers a commit once it returns only then.
        let primary = TestCluster::builder()
            .setting("synchronous_commit", "on")
            .start()?;
        let replica = primary.standby()?;
        Ok((primary, replica))
    })
    .await??;
    let pool = |s: DatabaseSettings| DatabaseSettings {
        min_pool_size: 4,
        max_pool_size: 4,
        ..s
    };
    let routed = Database::new(pool(DatabaseSettings {
        replicas: vec![format!("127.0.0.1:{}", replica.port())],
        ..primary.settings()
    }))?;
    let direct = Database::new(pool(replica.settings()))?;
    routed
        .primary()
        .connection()
        .await?
        .batch_execute(SCHEMA)
        .await?;
    let seed: Vec<BenchUser> = (0..usize::try_from(SEEDED_ROWS)?).map(user).collect();
    Repository::<BenchUser>::new(&routed.primary())
        .insert_many(&seed)
        .await?;
    let replica_repo = Repository::<BenchUser>::new(&direct);
    let started = Instant::now();
    while replica_repo.count().await? < SEEDED_ROWS {
        if started.elapsed() > Duration::from_secs(30) {
            return Err("the replica did not catch up with the seed rows".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (mut no_write, mut after_write) = (Vec::new(), Vec::new());
    let (mut routed_after, mut direct_after) = (Vec::new(), Vec::new());
    let mut stale = 0;
    for pass in 0..passes {
        eprintln!("replicas pass {}/{passes}", pass + 1);
        let (r, d) = reads(&routed.session(), &direct, pass % 2 == 0).await?;
        no_write.push(r.rate / d.rate);
        let (r, d, missed) = reads_after_writes(&routed, &direct, pass % 2 == 0).await?;
        after_write.push(r.rate / d.rate);
        stale += missed;
        routed_after.push(r);
        direct_after.push(d);
    }
    let routed_last = routed_after.last().cloned().unwrap_or_default();
    let direct_last = direct_after.last().cloned().unwrap_or_default();
    println!("\nreplicas ({passes} passes; ratio = routed / direct replica Database, median)");
    println!(
        "  get_by_id, no write before: ratio {:.3} (min-max {:.2}-{:.2})",
        median(&mut no_write.clone()),
        no_write.iter().copied().fold(f64::INFINITY, f64::min),
        no_write.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "  get_by_id right after a create: ratio {:.3}; p50/p99 routed {}/{}, direct {}/{}; \
         direct reads that missed the row just written: {stale} of {}",
        median(&mut after_write),
        fmt_dur(routed_last.percentile(0.5)),
        fmt_dur(routed_last.percentile(0.99)),
        fmt_dur(direct_last.percentile(0.5)),
        fmt_dur(direct_last.percentile(0.99)),
        PAIRS * passes,
    );
    routed.cleanup().await;
    direct.cleanup().await;
    Ok(())
}

/// Point reads by random id, alternating blocks between the routed handle and the direct one.
async fn reads(routed: &Database, direct: &Database, routed_first: bool) -> Res<(Run, Run)> {
    let sides = [
        Repository::<BenchUser>::new(routed),
        Repository::<BenchUser>::new(direct),
    ];
    let mut lat = [Vec::new(), Vec::new()];
    let mut total = [Duration::ZERO; 2];
    let mut id = 1_i64;
    for block in 0..READS / BLOCK {
        let first = usize::from((block % 2 == 0) != routed_first);
        for side in [first, 1 - first] {
            let start = Instant::now();
            for _ in 0..BLOCK {
                id = (id * 7919 + 13) % SEEDED_ROWS + 1;
                let t = Instant::now();
                sides[side].get_by_id(id).await?;
                lat[side].push(t.elapsed());
            }
            total[side] += start.elapsed();
        }
    }
    let [r, d] = lat;
    Ok((Run::from_ops(r, total[0]), Run::from_ops(d, total[1])))
}

/// A create through each side's writer (not timed), then the timed read of that row.
async fn reads_after_writes(
    routed: &Database,
    direct: &Database,
    routed_first: bool,
) -> Res<(Run, Run, usize)> {
    let handle = routed.session();
    let writers = [
        Repository::<BenchUser>::new(&handle),
        Repository::<BenchUser>::new(routed),
    ];
    let readers = [
        Repository::<BenchUser>::new(&handle),
        Repository::<BenchUser>::new(direct),
    ];
    let mut lat = [Vec::new(), Vec::new()];
    let mut missed = 0;
    for block in 0..PAIRS / BLOCK {
        let first = usize::from((block % 2 == 0) != routed_first);
        for side in [first, 1 - first] {
            for n in 0..BLOCK {
                let created = writers[side].create(&user(n)).await?;
                let t = Instant::now();
                match readers[side].get_by_id(created.id).await {
                    Ok(_) => {}
                    Err(Error::RecordNotFound { .. }) if side == 1 => missed += 1,
                    Err(err) => return Err(err.into()),
                }
                lat[side].push(t.elapsed());
            }
        }
    }
    let [r, d] = lat;
    let sum = |l: &[Duration]| l.iter().sum::<Duration>();
    let (rt, dt) = (sum(&r), sum(&d));
    Ok((Run::from_ops(r, rt), Run::from_ops(d, dt), missed))
}
