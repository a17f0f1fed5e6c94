//! The query workloads: `find(..).one()` by an indexed column, keyset pages of 100, and a
//! stream of a million rows, each against the hand-written prepared statement.

use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use toolkit::{Filter, Repository};

use crate::alloc;
use crate::stats::Run;
use crate::workloads::{order, Bench, BenchUser, Outcome, Res, SEEDED_ROWS, SEQUENTIAL_OPS};

pub const STREAM_ROWS: usize = 1_000_000;
const PAGE: u64 = 100;

impl Bench {
    /// 2,000 lookups by email (indexed), interleaved in blocks of 100.
    pub(crate) async fn find_one(&self, raw_first: bool) -> Res<Outcome> {
        const BLOCK: usize = 100;
        let repo = Repository::<BenchUser>::new(&self.db);
        let c = BenchUser::columns();
        let seeded = usize::try_from(SEEDED_ROWS)?;
        let emails: Vec<String> = (0..SEQUENTIAL_OPS)
            .map(|n| format!("user{}@example.com", (n * 7_919) % seeded))
            .collect();
        let (mut raw_lat, mut kit_lat) = (Vec::new(), Vec::new());
        let (mut raw_total, mut kit_total) = (Duration::ZERO, Duration::ZERO);
        for (block, chunk) in emails.chunks(BLOCK).enumerate() {
            for side in order(if block % 2 == 0 {
                raw_first
            } else {
                !raw_first
            }) {
                let start = Instant::now();
                for email in chunk {
                    let t = Instant::now();
                    let user = if side {
                        self.raw.find_email(email).await?.ok_or("missing row")?
                    } else {
                        repo.find(c.email.eq(email)).one().await?
                    };
                    std::hint::black_box(user);
                    if side { &mut raw_lat } else { &mut kit_lat }.push(t.elapsed());
                }
                *if side { &mut raw_total } else { &mut kit_total } += start.elapsed();
            }
        }
        Ok(Outcome {
            name: "find_one",
            unit: "ops/s",
            raw_label: "",
            raw: Run::from_ops(raw_lat, raw_total),
            kit: Run::from_ops(kit_lat, kit_total),
            memory: None,
        })
    }

    /// Walks the 10,000 seeded rows in pages of 100 by id (100 pages per side), alternating
    /// sides every 10 pages.
    pub(crate) async fn page(&self, raw_first: bool) -> Res<Outcome> {
        let repo = Repository::<BenchUser>::new(&self.db);
        let c = BenchUser::columns();
        let (mut raw_lat, mut kit_lat) = (Vec::new(), Vec::new());
        let (mut raw_total, mut kit_total) = (Duration::ZERO, Duration::ZERO);
        let (mut raw_after, mut kit_cursor) = (0_i64, None);
        let pages = usize::try_from(SEEDED_ROWS)? / usize::try_from(PAGE)?;
        for block in 0..pages / 10 {
            for side in order(if block % 2 == 0 {
                raw_first
            } else {
                !raw_first
            }) {
                let start = Instant::now();
                for _ in 0..10 {
                    let t = Instant::now();
                    if side {
                        let (rows, next) =
                            self.raw.page_after(raw_after, i64::try_from(PAGE)?).await?;
                        std::hint::black_box(rows);
                        raw_after = next.unwrap_or(i64::MAX);
                        raw_lat.push(t.elapsed());
                    } else {
                        let page = repo
                            .find(Filter::all())
                            .order_by(c.id.asc())
                            .page(kit_cursor.as_ref(), PAGE)
                            .await?;
                        kit_cursor = page.next;
                        std::hint::black_box(page.items);
                        kit_lat.push(t.elapsed());
                    }
                }
                *if side { &mut raw_total } else { &mut kit_total } += start.elapsed();
            }
        }
        // Both walked the whole table: the last page had no next one.
        assert!(raw_after == i64::MAX && kit_cursor.is_none());
        assert_eq!((raw_lat.len(), kit_lat.len()), (pages, pages));
        Ok(Outcome {
            name: "page_100",
            unit: "pages/s",
            raw_label: "",
            raw: Run::from_ops(raw_lat, raw_total),
            kit: Run::from_ops(kit_lat, kit_total),
            memory: None,
        })
    }

    /// A million rows streamed and mapped one by one; peak heap of each side.
    pub(crate) async fn stream(&self, raw_first: bool) -> Res<Outcome> {
        self.reset(STREAM_ROWS).await?;
        let repo = Repository::<BenchUser>::new(&self.db);
        let (mut raw, mut kit) = (Run::default(), Run::default());
        let (mut raw_mem, mut kit_mem) = (0, 0);
        for side in order(raw_first) {
            let base = alloc::reset_peak();
            let start = Instant::now();
            let rows = if side {
                self.raw.stream_all().await?
            } else {
                let mut n = 0;
                let mut stream = std::pin::pin!(repo.find(Filter::all()).stream());
                while let Some(user) = stream.try_next().await? {
                    std::hint::black_box(user);
                    n += 1;
                }
                n
            };
            let took = start.elapsed();
            let peak = alloc::peak_since(base);
            assert_eq!(rows, STREAM_ROWS);
            if side {
                (raw, raw_mem) = (Run::from_rows(STREAM_ROWS, took), peak);
            } else {
                (kit, kit_mem) = (Run::from_rows(STREAM_ROWS, took), peak);
            }
        }
        Ok(Outcome {
            name: "stream",
            unit: "rows/s",
            raw_label: " vs query_raw",
            raw,
            kit,
            memory: Some((raw_mem, kit_mem)),
        })
    }
}
