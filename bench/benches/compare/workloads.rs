//! The workloads, each run on both sides from the same starting state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use toolkit::testing::TestDatabase;
use toolkit::{Database, DatabaseSettings, Entity, Repository};

use crate::alloc;
use crate::raw::Raw;
use crate::stats::Run;

pub const SEQUENTIAL_OPS: usize = 2_000;
pub const SEEDED_ROWS: i64 = 10_000;
pub const SELECT_ALL_ROWS: usize = 100_000;
pub const BULK_ROWS: usize = 100_000;
pub const CONCURRENT_TASKS: usize = 32;
pub const CONCURRENT_CONNECTIONS: u32 = 16;
pub const CONCURRENT_OPS: usize = 32_000;

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "bench_users")]
pub struct BenchUser {
    #[entity(primary_key, generated)]
    pub id: i64,
    pub name: String,
    pub email: String,
    pub age: Option<i32>,
    #[entity(generated)]
    pub active: bool,
    pub meta: serde_json::Value,
    pub tags: Vec<String>,
    #[entity(generated)]
    pub created_at: DateTime<Utc>,
}

pub const SCHEMA: &str = "DROP TABLE IF EXISTS bench_users;
CREATE TABLE bench_users (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL,
    age int,
    active bool NOT NULL DEFAULT true,
    meta jsonb,
    tags text[],
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bench_users_email ON bench_users (email)";

pub fn user(n: usize) -> BenchUser {
    BenchUser {
        id: 0,
        name: format!("user {n}"),
        email: format!("user{n}@example.com"),
        age: i32::try_from(n % 90).ok(),
        active: true,
        meta: serde_json::json!({ "n": n, "plan": "pro", "flags": [1, 2, 3] }),
        tags: vec!["alpha".into(), format!("t{}", n % 7)],
        created_at: DateTime::<Utc>::MIN_UTC,
    }
}

/// A small xorshift: reproducible ids without a dependency.
pub(crate) struct Ids(pub(crate) u64);

impl Ids {
    pub(crate) fn next(&mut self, max: i64) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let max = u64::try_from(max).unwrap_or(1).max(1);
        i64::try_from(self.0 % max).unwrap_or(0) + 1
    }
}

#[derive(Debug, Clone, Copy)]
enum Sequential {
    Insert,
    Get,
    Update,
}

pub struct Outcome {
    pub name: &'static str,
    pub unit: &'static str,
    pub raw_label: &'static str,
    pub raw: Run,
    pub kit: Run,
    pub memory: Option<(usize, usize)>,
}

pub struct Bench {
    admin: tokio_postgres::Client,
    pub(crate) raw: Raw,
    raw_clients: Vec<Arc<Raw>>,
    pub(crate) db: Database,
    /// The same pool settings with pipelining off (`pipeline_depth = 1`).
    unpipelined: Database,
    /// The same pool settings in `StatementMode::Unnamed` (what PgBouncer needs).
    unnamed: Database,
}

pub(crate) type Res<T> = Result<T, Box<dyn std::error::Error>>;

impl Bench {
    pub async fn new(tdb: &TestDatabase) -> Res<Bench> {
        let admin = tdb.connect().await?;
        admin.batch_execute(SCHEMA).await?;
        let raw = Raw::new(tdb.connect().await?).await?;
        let mut raw_clients = Vec::new();
        for _ in 0..CONCURRENT_CONNECTIONS {
            raw_clients.push(Arc::new(Raw::new(tdb.connect().await?).await?));
        }
        let db = Database::new(DatabaseSettings {
            min_pool_size: CONCURRENT_CONNECTIONS,
            max_pool_size: CONCURRENT_CONNECTIONS,
            ..tdb.settings()
        })?;
        db.init_db().await?;
        let unpipelined = Database::new(DatabaseSettings {
            pipeline_depth: 1,
            ..db.settings().clone()
        })?;
        unpipelined.init_db().await?;
        let unnamed = Database::new(DatabaseSettings {
            statement_mode: toolkit::StatementMode::Unnamed,
            ..db.settings().clone()
        })?;
        unnamed.init_db().await?;
        Ok(Bench {
            unpipelined,
            unnamed,
            admin,
            raw,
            raw_clients,
            db,
        })
    }

    pub(crate) async fn reset(&self, seed: usize) -> Res<()> {
        self.admin
            .batch_execute("TRUNCATE bench_users RESTART IDENTITY")
            .await?;
        if seed > 0 {
            let users: Vec<BenchUser> = (0..seed).map(user).collect();
            self.raw.copy_in(&users).await?;
        }
        self.admin
            .batch_execute("VACUUM ANALYZE bench_users")
            .await?;
        Ok(())
    }

    /// One pass over every workload (or those named in `BENCH_ONLY`, comma-separated).
    pub async fn pass(&mut self, raw_first: bool) -> Res<Vec<Outcome>> {
        let only = std::env::var("BENCH_ONLY").unwrap_or_default();
        let wanted = |name: &str| only.is_empty() || only.split(',').any(|w| w == name);
        let mut out = Vec::new();
        if wanted("insert_one") {
            self.reset(0).await?;
            out.push(
                self.sequential(Sequential::Insert, raw_first, &self.db, "")
                    .await?,
            );
        }
        if wanted("unnamed") {
            self.reset(0).await?;
            let unnamed = &self.unnamed;
            out.push(
                self.sequential(Sequential::Insert, raw_first, unnamed, " unnamed")
                    .await?,
            );
        }
        self.reset(usize::try_from(SEEDED_ROWS)?).await?;
        if wanted("get_by_id") {
            out.push(
                self.sequential(Sequential::Get, raw_first, &self.db, "")
                    .await?,
            );
        }
        if wanted("unnamed") {
            let unnamed = &self.unnamed;
            out.push(
                self.sequential(Sequential::Get, raw_first, unnamed, " unnamed")
                    .await?,
            );
            out.push(
                self.sequential(Sequential::Update, raw_first, unnamed, " unnamed")
                    .await?,
            );
        }
        if wanted("unnamed") {
            out.push(self.unnamed_floor(raw_first).await?);
        }
        if wanted("update_one") {
            out.push(
                self.sequential(Sequential::Update, raw_first, &self.db, "")
                    .await?,
            );
        }
        if wanted("get_by_id_concurrent") {
            out.push(
                self.get_by_id_concurrent(raw_first, &self.db, " 16 clients")
                    .await?,
            );
            out.push(
                self.get_by_id_concurrent(raw_first, &self.unpipelined, " depth 1")
                    .await?,
            );
        }
        if wanted("find_one") {
            out.push(self.find_one(raw_first).await?);
        }
        if wanted("page_100") {
            out.push(self.page(raw_first).await?);
        }
        if wanted("select_all") {
            out.push(self.select_all(raw_first).await?);
        }
        if wanted("stream") {
            out.push(self.stream(raw_first).await?);
        }
        if only.split(',').any(|w| w == "tracing") {
            out.extend(self.tracing_overhead(raw_first).await?);
        }
        if wanted("create_bulk") {
            out.extend(self.create_bulk().await?);
        }
        if only.split(',').any(|w| w == "bulk_phases") {
            self.reset(0).await?;
            let users: Vec<BenchUser> = (0..BULK_ROWS).map(user).collect();
            let [copy, insert, returning, decode] = self.raw.bulk_phases(&users).await?;
            eprintln!(
                "bulk phases, {BULK_ROWS} rows: COPY into temp {copy:?}; INSERT..SELECT {insert:?}; \
                 INSERT..SELECT..RETURNING (rows received) {returning:?}; decode {decode:?}"
            );
        }
        Ok(out)
    }

    /// The floor of `StatementMode::Unnamed`: raw tokio-postgres, the prepared read against
    /// the same read as one unnamed `query_typed` (the "toolkit" column), same client.
    async fn unnamed_floor(&self, prepared_first: bool) -> Res<Outcome> {
        const BLOCK: usize = 100;
        let mut ids = Ids(0x5851_F42D_4C95_7F2D);
        let (mut lat, mut total) = ([Vec::new(), Vec::new()], [Duration::ZERO; 2]);
        for block in 0..SEQUENTIAL_OPS / BLOCK {
            let first = usize::from((block % 2 == 0) != prepared_first);
            for side in [first, 1 - first] {
                let start = Instant::now();
                for _ in 0..BLOCK {
                    let id = ids.next(SEEDED_ROWS);
                    let t = Instant::now();
                    let row = match side {
                        0 => self.raw.get(id).await?,
                        _ => self
                            .raw
                            .get_unnamed(id)
                            .await?
                            .ok_or("a seeded row is missing")?,
                    };
                    std::hint::black_box(row);
                    lat[side].push(t.elapsed());
                }
                total[side] += start.elapsed();
            }
        }
        let [prepared, unnamed] = lat;
        Ok(Outcome {
            name: "get_by_id",
            unit: "ops/s",
            raw_label: " raw query_typed vs raw prepared",
            raw: Run::from_ops(prepared, total[0]),
            kit: Run::from_ops(unnamed, total[1]),
            memory: None,
        })
    }

    /// A sequential workload, interleaved in blocks of `BLOCK` operations so that a slow
    /// moment of the machine hits both sides alike (block order alternates too).
    async fn sequential(
        &self,
        kind: Sequential,
        raw_first: bool,
        db: &Database,
        label: &'static str,
    ) -> Res<Outcome> {
        const BLOCK: usize = 100;
        let repo = Repository::<BenchUser>::new(db);
        let users: Vec<BenchUser> = (0..SEQUENTIAL_OPS).map(user).collect();
        let mut ids = Ids(0x9E37_79B9_7F4A_7C15);
        let mut plan: Vec<(i64, i32)> = Vec::with_capacity(SEQUENTIAL_OPS);
        for n in 0..SEQUENTIAL_OPS {
            plan.push((ids.next(SEEDED_ROWS), i32::try_from(n % 50)?));
        }
        let (mut raw_lat, mut kit_lat) = (Vec::new(), Vec::new());
        let (mut raw_total, mut kit_total) = (Duration::ZERO, Duration::ZERO);
        for (block, chunk) in plan.chunks(BLOCK).enumerate() {
            let first = if block % 2 == 0 {
                raw_first
            } else {
                !raw_first
            };
            for side in [first, !first] {
                let start = Instant::now();
                for (offset, &(id, age)) in chunk.iter().enumerate() {
                    let n = block * BLOCK + offset;
                    let t = Instant::now();
                    let row = match (kind, side) {
                        (Sequential::Insert, true) => self.raw.insert(&users[n]).await?,
                        (Sequential::Insert, false) => repo.create(&users[n]).await?,
                        (Sequential::Get, true) => self.raw.get(id).await?,
                        (Sequential::Get, false) => repo.get_by_id(id).await?,
                        (Sequential::Update, true) => {
                            self.raw.update(id, &users[n].name, age).await?
                        }
                        (Sequential::Update, false) => {
                            let patch = BenchUserPatch {
                                name: Some(users[n].name.clone()),
                                age: Some(Some(age)),
                                ..Default::default()
                            };
                            repo.update(id, patch).await?
                        }
                    };
                    std::hint::black_box(row);
                    if side {
                        raw_lat.push(t.elapsed())
                    } else {
                        kit_lat.push(t.elapsed())
                    }
                }
                if side {
                    raw_total += start.elapsed()
                } else {
                    kit_total += start.elapsed()
                }
            }
        }
        let name = match kind {
            Sequential::Insert => "insert_one",
            Sequential::Get => "get_by_id",
            Sequential::Update => "update_one",
        };
        Ok(Outcome {
            name,
            unit: "ops/s",
            raw_label: label,
            raw: Run::from_ops(raw_lat, raw_total),
            kit: Run::from_ops(kit_lat, kit_total),
            memory: None,
        })
    }

    async fn get_by_id_concurrent(
        &self,
        raw_first: bool,
        db: &Database,
        raw_label: &'static str,
    ) -> Res<Outcome> {
        let mut raw = Run::default();
        let mut kit = Run::default();
        // BENCH_TASKS overrides the task count, e.g. 16 to compare without pipelining on the raw side.
        let tasks_n: usize = std::env::var("BENCH_TASKS")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(CONCURRENT_TASKS);
        let per_task = CONCURRENT_OPS / tasks_n;
        for side in order(raw_first) {
            let start = Instant::now();
            let mut tasks = Vec::new();
            for task in 0..tasks_n {
                let client = self.raw_clients[task % self.raw_clients.len()].clone();
                let db = db.clone();
                tasks.push(tokio::spawn(async move {
                    let mut ids = Ids(0x1234_5678 + u64::try_from(task).unwrap_or(0));
                    let repo = Repository::<BenchUser>::new(&db);
                    let mut lat = Vec::with_capacity(per_task);
                    for _ in 0..per_task {
                        let id = ids.next(SEEDED_ROWS);
                        let t = Instant::now();
                        let found = if side {
                            client.get(id).await.map_err(toolkit::Error::from)?
                        } else {
                            repo.get_by_id(id).await?
                        };
                        lat.push(t.elapsed());
                        std::hint::black_box(found);
                    }
                    Ok::<_, toolkit::Error>(lat)
                }));
            }
            let mut lat = Vec::with_capacity(CONCURRENT_OPS);
            for task in tasks {
                lat.extend(task.await??);
            }
            let run = Run::from_ops(lat, start.elapsed());
            if !side {
                let pool = db.get_pool().await?;
                eprintln!(
                    "  get_by_id_concurrent{raw_label}: {} statements pipelined so far",
                    pool.pipelined_statements()
                );
            }
            if side {
                raw = run
            } else {
                kit = run
            }
        }
        Ok(Outcome {
            name: "get_by_id_concurrent",
            unit: "ops/s",
            raw_label,
            raw,
            kit,
            memory: None,
        })
    }

    async fn select_all(&self, raw_first: bool) -> Res<Outcome> {
        self.reset(SELECT_ALL_ROWS).await?;
        let repo = Repository::<BenchUser>::new(&self.db);
        let (mut raw, mut kit) = (Run::default(), Run::default());
        let (mut raw_mem, mut kit_mem) = (0, 0);
        for side in order(raw_first) {
            let base = alloc::reset_peak();
            let start = Instant::now();
            let rows = if side {
                self.raw.select_all().await?
            } else {
                repo.get_all().await?
            };
            let took = start.elapsed();
            let peak = alloc::peak_since(base);
            assert_eq!(rows.len(), SELECT_ALL_ROWS);
            drop(rows);
            if side {
                raw = Run::from_rows(SELECT_ALL_ROWS, took);
                raw_mem = peak;
            } else {
                kit = Run::from_rows(SELECT_ALL_ROWS, took);
                kit_mem = peak;
            }
        }
        Ok(Outcome {
            name: "select_all",
            unit: "rows/s",
            raw_label: "",
            raw,
            kit,
            memory: Some((raw_mem, kit_mem)),
        })
    }

    async fn create_bulk(&self) -> Res<Vec<Outcome>> {
        let users: Vec<BenchUser> = (0..BULK_ROWS).map(user).collect();
        let repo = Repository::<BenchUser>::new(&self.db);

        self.reset(0).await?;
        let start = Instant::now();
        let stored = repo.create_bulk(&users).await?;
        let kit = Run::from_rows(BULK_ROWS, start.elapsed());
        assert_eq!(stored.len(), BULK_ROWS);
        assert_eq!(stored[BULK_ROWS - 1].email, users[BULK_ROWS - 1].email);
        drop(stored);

        self.reset(0).await?;
        let start = Instant::now();
        let copied = self.raw.copy_in(&users).await?;
        let copy = Run::from_rows(BULK_ROWS, start.elapsed());
        assert_eq!(usize::try_from(copied)?, BULK_ROWS);

        self.reset(0).await?;
        let start = Instant::now();
        let inserted = repo.insert_many(&users).await?;
        let many = Run::from_rows(BULK_ROWS, start.elapsed());
        assert_eq!(usize::try_from(inserted)?, BULK_ROWS);

        self.reset(0).await?;
        let start = Instant::now();
        let stored = self.raw.values_returning(&users).await?;
        let values = Run::from_rows(BULK_ROWS, start.elapsed());
        assert_eq!(stored.len(), BULK_ROWS);

        Ok(vec![
            Outcome {
                name: "insert_many",
                unit: "rows/s",
                raw_label: " vs COPY",
                raw: copy.clone(),
                kit: many,
                memory: None,
            },
            Outcome {
                name: "create_bulk",
                unit: "rows/s",
                raw_label: " vs COPY",
                raw: copy,
                kit: kit.clone(),
                memory: None,
            },
            Outcome {
                name: "create_bulk",
                unit: "rows/s",
                raw_label: " vs VALUES",
                raw: values,
                kit,
                memory: None,
            },
        ])
    }
}

/// Which side runs first: `true` is raw.
pub(crate) fn order(raw_first: bool) -> [bool; 2] {
    [raw_first, !raw_first]
}
