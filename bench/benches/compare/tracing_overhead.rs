//! `BENCH_ONLY=tracing`: point operations three ways in one run, interleaved in blocks so a
//! slow moment of the machine hits all alike: raw tokio-postgres, the toolkit with no
//! subscriber, and the toolkit under a subscriber that records every span (set for its
//! blocks only, on this thread, which runs the sequential workload).
//!
//! Once a subscriber has existed in the process, each callsite asks the current one whether
//! it is interested instead of remembering "never", so the no-subscriber blocks here cost a
//! little more than in a process that never had one (the default run, which measures that).

use std::time::{Duration, Instant};

use toolkit::Repository;

use crate::stats::Run;
use crate::workloads::{user, Bench, BenchUser, Ids, Outcome, Res, SEEDED_ROWS, SEQUENTIAL_OPS};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    Raw,
    Quiet,
    Recorded,
}

impl Bench {
    pub(crate) async fn tracing_overhead(&self, raw_first: bool) -> Res<Vec<Outcome>> {
        let mut out = Vec::new();
        self.reset(0).await?;
        out.extend(self.three_ways("insert_one", raw_first).await?);
        self.reset(usize::try_from(SEEDED_ROWS)?).await?;
        out.extend(self.three_ways("get_by_id", raw_first).await?);
        Ok(out)
    }

    async fn three_ways(&self, name: &'static str, raw_first: bool) -> Res<Vec<Outcome>> {
        const BLOCK: usize = 100;
        let recording = crate::subscriber::recording();
        let repo = Repository::<BenchUser>::new(&self.db);
        let users: Vec<BenchUser> = (0..SEQUENTIAL_OPS).map(user).collect();
        let mut ids = Ids(0x9E37_79B9_7F4A_7C15);
        let plan: Vec<i64> = (0..SEQUENTIAL_OPS).map(|_| ids.next(SEEDED_ROWS)).collect();
        let sides = [Side::Raw, Side::Quiet, Side::Recorded];
        let mut latencies: [Vec<Duration>; 3] = Default::default();
        let mut totals = [Duration::ZERO; 3];
        for (block, chunk) in plan.chunks(BLOCK).enumerate() {
            // Each side goes first, second and third equally often.
            let rotation = block + usize::from(!raw_first);
            for turn in 0..3 {
                let index = (rotation + turn) % 3;
                let side = sides[index];
                let _scope =
                    (side == Side::Recorded).then(|| tracing::dispatcher::set_default(&recording));
                let start = Instant::now();
                for (offset, &id) in chunk.iter().enumerate() {
                    let n = block * BLOCK + offset;
                    let t = Instant::now();
                    let row = match (name, side) {
                        ("insert_one", Side::Raw) => self.raw.insert(&users[n]).await?,
                        ("insert_one", _) => repo.create(&users[n]).await?,
                        (_, Side::Raw) => self.raw.get(id).await?,
                        (_, _) => repo.get_by_id(id).await?,
                    };
                    std::hint::black_box(row);
                    latencies[index].push(t.elapsed());
                }
                totals[index] += start.elapsed();
            }
        }
        let [raw, quiet, recorded] = latencies;
        let raw = Run::from_ops(raw, totals[0]);
        Ok(vec![
            Outcome {
                name,
                unit: "ops/s",
                raw_label: ", no subscriber",
                raw: raw.clone(),
                kit: Run::from_ops(quiet, totals[1]),
                memory: None,
            },
            Outcome {
                name,
                unit: "ops/s",
                raw_label: ", recording",
                raw,
                kit: Run::from_ops(recorded, totals[2]),
                memory: None,
            },
        ])
    }
}
