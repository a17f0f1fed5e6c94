//! What a test's database costs with 20 migrations: a copy of a migrated template (what
//! `#[toolkit::test(migrations = ..)]` does) against running the migrations again for each
//! test (what `#[sqlx::test]` does), and what dropping it costs before and after closing the
//! test's pool first. Ignored in normal runs; run it with
//! `cargo test -p toolkit-tests --release --test template_cost -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use toolkit::migrate::Migrator;
use toolkit::testing::__private::{run, Spec};
use toolkit::testing::TestDatabase;
use toolkit::{Database, DatabaseSettings};

const RUNS: usize = 20;

/// Twenty migrations of the kind a service has: tables with keys, constraints and indexes,
/// a view, a function and trigger, seed rows.
fn twenty_migrations() -> &'static str {
    let dir = tempfile::tempdir().unwrap().keep();
    for i in 1..=20 {
        let sql = match i % 4 {
            0 => format!(
                "CREATE VIEW v{i} AS SELECT id, name FROM t{prev} WHERE name <> '';\n\
                 INSERT INTO t{prev} (name) SELECT 'seed ' || g FROM generate_series(1, 50) g;",
                prev = i - 1
            ),
            1 => format!(
                "CREATE TABLE t{i} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                 name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), \
                 payload jsonb NOT NULL DEFAULT '{{}}', CHECK (length(name) < 200));\n\
                 CREATE INDEX t{i}_name ON t{i} (name);"
            ),
            2 => format!(
                "CREATE TABLE t{i} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                 parent bigint NOT NULL REFERENCES t{prev} (id), name text NOT NULL UNIQUE);\n\
                 CREATE INDEX t{i}_parent ON t{i} (parent);",
                prev = i - 1
            ),
            _ => format!(
                "CREATE FUNCTION touch{i}() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN NEW.name := trim(NEW.name); RETURN NEW; END $$;\n\
                 CREATE TABLE t{i} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                 name text NOT NULL, amount numeric(12, 2) NOT NULL DEFAULT 0);\n\
                 CREATE TRIGGER t{i}_touch BEFORE INSERT ON t{i} FOR EACH ROW \
                 EXECUTE FUNCTION touch{i}();"
            ),
        };
        std::fs::write(dir.join(format!("{i:04}_step_{i}.sql")), sql).unwrap();
    }
    Box::leak(dir.display().to_string().into_boxed_str())
}

/// Median and 90th percentile, in milliseconds.
fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "median {:7.1} ms   p90 {:7.1} ms",
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() * 9 / 10])
    )
}

/// One test's body: a query, so the pool has connected, as in a real test.
async fn touch(db: Database) {
    let conn = db.connection().await.unwrap();
    conn.query_one("SELECT count(*) FROM t1", &[])
        .await
        .unwrap();
}

fn time(spec: Spec, migrate: Option<&'static str>) -> Duration {
    let started = Instant::now();
    run(spec, |db: Database| async move {
        if let Some(dir) = migrate {
            Migrator::from_dir(dir).unwrap().run(&db).await.unwrap();
        }
        touch(db).await;
    });
    started.elapsed()
}

#[test]
#[ignore = "a measurement: run it on purpose, with --nocapture"]
fn per_test_cost_with_20_migrations() {
    let dir = twenty_migrations();
    let cloned = Spec {
        test: "template_cost::cloned",
        migrations: Some(dir),
        fixtures: &[],
    };
    let bare = Spec {
        test: "template_cost::migrated",
        migrations: None,
        fixtures: &[],
    };
    // The first test of a binary also makes the template (and starts the cluster).
    let first = time(bare, Some(dir));
    let with_template = time(cloned, None);
    println!("first test of the binary (starts the throwaway cluster): {first:?}");
    println!("first test with migrations (makes the template too): {with_template:?}");

    // Interleaved, so that load from elsewhere on the machine weighs on both alike.
    let (mut clone, mut again) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        clone.push(time(cloned, None));
        again.push(time(bare, Some(dir)));
    }
    println!("per test, whole test (runtime, database, pool, one query, drop), {RUNS} runs:");
    println!("  copy of the migrated template:   {}", summary(clone));
    println!("  migrations run again per test:   {}", summary(again));
    let migrations: Vec<_> = (0..RUNS)
        .map(|_| {
            let took = std::sync::Mutex::new(Duration::ZERO);
            let took_ref = &took;
            run(bare, |db: Database| async move {
                let migrator = Migrator::from_dir(dir).unwrap();
                let started = Instant::now();
                migrator.run(&db).await.unwrap();
                *took_ref.lock().unwrap() = started.elapsed();
            });
            took.into_inner().unwrap()
        })
        .collect();
    println!("  of which the 20 migrations:      {}", summary(migrations));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(steps(dir));
    std::fs::remove_dir_all(dir).unwrap();
}

/// The steps on their own: creating a database, and dropping one whose pool had connected.
async fn steps(dir: &'static str) {
    let probe = TestDatabase::create().await.unwrap();
    let admin = DatabaseSettings {
        dbname: match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => DatabaseSettings::from_url(&url).unwrap().dbname,
            _ => "postgres".into(),
        },
        ..probe.settings()
    };
    probe.remove().await.unwrap();
    let client = admin.connect().await.unwrap();
    let template = format!(
        "toolkit_template_{}",
        &Migrator::from_dir(dir).unwrap().checksum()[..16]
    );
    let create = |sql: String| {
        let client = &client;
        async move {
            let mut samples = Vec::new();
            for i in 0..RUNS {
                let name = format!("toolkit_cost_{}_{i}", std::process::id());
                let started = Instant::now();
                client
                    .batch_execute(&sql.replace("{name}", &name))
                    .await
                    .unwrap();
                samples.push(started.elapsed());
                client
                    .batch_execute(&format!("DROP DATABASE {name}"))
                    .await
                    .unwrap();
            }
            summary(samples)
        }
    };
    println!("CREATE DATABASE alone, {RUNS} runs:");
    let from_zero = create("CREATE DATABASE {name} TEMPLATE template0".into()).await;
    println!("  TEMPLATE template0 (no migrations):   {from_zero}");
    let wal = create(format!(
        "CREATE DATABASE {{name}} TEMPLATE {template} STRATEGY WAL_LOG"
    ))
    .await;
    println!("  TEMPLATE <migrated> STRATEGY WAL_LOG:  {wal}");
    let copy = create(format!(
        "CREATE DATABASE {{name}} TEMPLATE {template} STRATEGY FILE_COPY"
    ))
    .await;
    println!("  TEMPLATE <migrated> STRATEGY FILE_COPY: {copy}");

    let mut forced = Vec::new();
    let mut closed = Vec::new();
    for _ in 0..RUNS {
        // Before: the test's pool is dropped, and the database dropped at once WITH (FORCE),
        // which finds its sessions still open and waits for them in 100 ms steps.
        let tdb = TestDatabase::create().await.unwrap();
        let db = tdb.database().unwrap();
        touch_empty(&db).await;
        drop(db);
        let name = toolkit::sql::quote_ident(tdb.name()).unwrap();
        let started = Instant::now();
        client
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await
            .unwrap();
        forced.push(started.elapsed());
        // Its own drop, on a `DATABASE_URL` server, finds nothing left to drop.
        drop(tdb);

        // After: the pool closed first, sessions ended and polled, then the DROP.
        let tdb = TestDatabase::create().await.unwrap();
        let db = tdb.database().unwrap();
        touch_empty(&db).await;
        db.cleanup().await;
        let started = Instant::now();
        tdb.remove().await.unwrap();
        closed.push(started.elapsed());
    }
    println!("dropping a test database whose pool had connected, {RUNS} runs:");
    println!(
        "  pool dropped, DROP .. WITH (FORCE) at once: {}",
        summary(forced)
    );
    println!(
        "  pool closed, sessions polled, then DROP:    {}",
        summary(closed)
    );
}

async fn touch_empty(db: &Database) {
    db.connection()
        .await
        .unwrap()
        .query_one("SELECT 1", &[])
        .await
        .unwrap();
}
