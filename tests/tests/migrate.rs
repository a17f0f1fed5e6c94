//! Migrations against a real server (issue 15): order, records and checksums, two processes at
//! once, an edited file, a failing file, missing files, files that end their transaction,
//! cancellation, init callbacks, embedded migrations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use toolkit::migrate::{Migrator, Report};
use toolkit::{Database, DatabaseSettings, Error, SqlState, StatementMode};
use toolkit_tests::{assert_clean, fresh_db};

/// A migrations directory with these files.
fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, sql) in files {
        std::fs::write(dir.path().join(name), sql).unwrap();
    }
    dir
}

/// Each migration leaves a row in `effects`, so a migration that ran twice shows.
const COUNTED: &[(&str, &str)] = &[
    (
        "0001_effects.sql",
        "CREATE TABLE effects (version int NOT NULL); INSERT INTO effects VALUES (1);",
    ),
    (
        "0002_slow.sql",
        "SELECT pg_sleep(0.3); INSERT INTO effects VALUES (2);",
    ),
    ("0003_third.sql", "INSERT INTO effects VALUES (3);"),
];

fn versions(report: &Report) -> Vec<i64> {
    report.applied.iter().map(|a| a.version).collect()
}

/// `version -> times its effect is present`.
async fn effects(db: &Database) -> BTreeMap<i32, i64> {
    db.connection()
        .await
        .unwrap()
        .query(
            "SELECT version, count(*) FROM effects GROUP BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// `(version, name, checksum)` of every record.
async fn records(db: &Database) -> Vec<(i64, String, String)> {
    db.connection()
        .await
        .unwrap()
        .query(
            "SELECT version, name, checksum FROM toolkit_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_in_order_once_with_checksums() {
    let (_tdb, db) = fresh_db().await;
    let dir = dir_with(COUNTED);
    let migrator = Migrator::from_dir(dir.path()).unwrap();
    let report = migrator.run(&db).await.unwrap();
    assert_eq!(versions(&report), [1, 2, 3]);
    assert_eq!(report.applied[1].name, "slow");
    assert!(report.applied[1].duration >= Duration::from_millis(300));
    assert!(report.missing.is_empty());

    let expected: Vec<_> = migrator
        .migrations()
        .iter()
        .map(|m| (m.version(), m.name().to_owned(), m.checksum().to_owned()))
        .collect();
    assert_eq!(records(&db).await, expected);
    let row = db
        .connection()
        .await
        .unwrap()
        .query_one(
            "SELECT execution_ms, applied_at <= now() FROM toolkit_migrations WHERE version = 2",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, i64>(0) >= 300);
    assert!(row.get::<_, bool>(1));

    let again = migrator.run(&db).await.unwrap();
    assert!(again.applied.is_empty(), "{again:?}");
    assert_eq!(effects(&db).await, BTreeMap::from([(1, 1), (2, 1), (3, 1)]));
    assert_clean(&db).await;
}

/// The child side of [`two_processes_apply_each_file_once`]: migrates the database the parent
/// names in the environment and prints what it applied. Does nothing in a normal test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_migrator() {
    let Ok(dir) = std::env::var("TOOLKIT_CHILD_MIGRATIONS") else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap();
    let settings = DatabaseSettings {
        host: var("TOOLKIT_CHILD_HOST"),
        port: var("TOOLKIT_CHILD_PORT").parse().unwrap(),
        user: var("TOOLKIT_CHILD_USER"),
        password: var("TOOLKIT_CHILD_PASSWORD"),
        dbname: var("TOOLKIT_CHILD_DBNAME"),
        ssl_mode: var("TOOLKIT_CHILD_SSLMODE").parse().unwrap(),
        ssl_root_cert: std::env::var_os("TOOLKIT_CHILD_SSLROOTCERT").map(Into::into),
        ..DatabaseSettings::default()
    };
    let db = Database::new(settings).unwrap();
    let report = Migrator::from_dir(dir).unwrap().run(&db).await.unwrap();
    let applied: Vec<String> = versions(&report).iter().map(i64::to_string).collect();
    println!("TOOLKIT_CHILD_APPLIED=[{}]", applied.join(","));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_apply_each_file_once() {
    let (tdb, db) = fresh_db().await;
    let dir = dir_with(COUNTED);
    let settings = tdb.settings();
    let children: Vec<_> = (0..3)
        .map(|_| {
            let mut cmd = Command::new(std::env::current_exe().unwrap());
            cmd.args([
                "--exact",
                "child_migrator",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("TOOLKIT_CHILD_MIGRATIONS", dir.path())
            .env("TOOLKIT_CHILD_HOST", &settings.host)
            .env("TOOLKIT_CHILD_PORT", settings.port.to_string())
            .env("TOOLKIT_CHILD_USER", &settings.user)
            .env("TOOLKIT_CHILD_PASSWORD", &settings.password)
            .env("TOOLKIT_CHILD_DBNAME", &settings.dbname)
            .env("TOOLKIT_CHILD_SSLMODE", settings.ssl_mode.to_string());
            if let Some(root) = &settings.ssl_root_cert {
                cmd.env("TOOLKIT_CHILD_SSLROOTCERT", root);
            }
            cmd.spawn_output()
        })
        .collect();
    // Two more migrators in this process, on databases of their own, race the children.
    let local = |_| {
        let settings = tdb.settings();
        let path = dir.path().to_owned();
        tokio::spawn(async move {
            let db = Database::new(settings).unwrap();
            versions(&Migrator::from_dir(path).unwrap().run(&db).await.unwrap())
        })
    };
    let locals: Vec<_> = (0..2).map(local).collect();

    let mut applied: Vec<i64> = Vec::new();
    let mut each = Vec::new();
    for child in children {
        let output = child.await.unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "child failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("TOOLKIT_CHILD_APPLIED=").map(|(_, list)| list))
            .unwrap_or_else(|| panic!("no report from the child: {stdout}"));
        let list = line.trim().trim_matches(['[', ']']);
        let child: Vec<i64> = list
            .split(',')
            .filter(|v| !v.is_empty())
            .map(|v| v.parse().unwrap())
            .collect();
        applied.extend(&child);
        each.push(child);
    }
    for local in locals {
        let local = local.await.unwrap();
        applied.extend(&local);
        each.push(local);
    }
    applied.sort_unstable();
    assert_eq!(
        applied,
        [1, 2, 3],
        "each file applied by exactly one migrator (3 processes, then 2 in this one): {each:?}"
    );
    println!("applied by each migrator: {each:?}");
    assert_eq!(effects(&db).await, BTreeMap::from([(1, 1), (2, 1), (3, 1)]));
    assert_eq!(records(&db).await.len(), 3);
}

/// Spawns a command and collects its output on a blocking thread.
trait SpawnOutput {
    fn spawn_output(self) -> tokio::task::JoinHandle<std::process::Output>;
}

impl SpawnOutput for Command {
    fn spawn_output(mut self) -> tokio::task::JoinHandle<std::process::Output> {
        tokio::task::spawn_blocking(move || self.output().unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_file_is_refused() {
    let (_tdb, db) = fresh_db().await;
    let dir = dir_with(&[
        ("0001_a.sql", "CREATE TABLE a\n(id int);"),
        ("0002_b.sql", "CREATE TABLE b (id int);"),
    ]);
    Migrator::from_dir(dir.path())
        .unwrap()
        .run(&db)
        .await
        .unwrap();

    std::fs::write(dir.path().join("0002_b.sql"), "CREATE TABLE b (id bigint);").unwrap();
    std::fs::write(dir.path().join("0003_c.sql"), "CREATE TABLE c (id int);").unwrap();
    let err = Migrator::from_dir(dir.path())
        .unwrap()
        .run(&db)
        .await
        .unwrap_err();
    match &err {
        Error::Migration { file, version, .. } => {
            assert_eq!((file.as_str(), *version), ("0002_b.sql", Some(2)));
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.starts_with("migration 0002_b.sql: was edited after it was applied"),
        "{text}"
    );
    assert_eq!(
        records(&db).await.len(),
        2,
        "nothing after the edited file is applied"
    );

    // Line endings converted by a checkout are not an edit.
    std::fs::write(dir.path().join("0002_b.sql"), "CREATE TABLE b (id int);").unwrap();
    std::fs::write(dir.path().join("0001_a.sql"), "CREATE TABLE a\r\n(id int);").unwrap();
    std::fs::remove_file(dir.path().join("0003_c.sql")).unwrap();
    let report = Migrator::from_dir(dir.path())
        .unwrap()
        .run(&db)
        .await
        .unwrap();
    assert!(report.applied.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_file_leaves_the_earlier_ones_applied_and_is_not_recorded() {
    let (_tdb, db) = fresh_db().await;
    let dir = dir_with(&[
        ("0001_a.sql", "CREATE TABLE a (id int);"),
        ("0002_b.sql", "CREATE TABLE b (id int);"),
        (
            "0003_broken.sql",
            "CREATE TABLE c (id int);\nCREAT TABLE d (id int);",
        ),
        ("0004_e.sql", "CREATE TABLE e (id int);"),
    ]);
    let err = Migrator::from_dir(dir.path())
        .unwrap()
        .run(&db)
        .await
        .unwrap_err();
    match &err {
        Error::Migration { file, version, .. } => {
            assert_eq!((file.as_str(), *version), ("0003_broken.sql", Some(3)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.code(), Some(&SqlState::SYNTAX_ERROR), "{err}");
    assert!(err.to_string().contains("CREAT"), "{err}");
    let recorded: Vec<i64> = records(&db).await.iter().map(|r| r.0).collect();
    assert_eq!(recorded, [1, 2]);
    let tables: Vec<String> = db
        .connection()
        .await
        .unwrap()
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' \
             AND tablename <> 'toolkit_migrations' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        tables,
        ["a", "b"],
        "the failed file's first statement is rolled back too"
    );

    std::fs::write(
        dir.path().join("0003_broken.sql"),
        "CREATE TABLE c (id int);",
    )
    .unwrap();
    let report = Migrator::from_dir(dir.path())
        .unwrap()
        .run(&db)
        .await
        .unwrap();
    assert_eq!(versions(&report), [3, 4]);
    assert_clean(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_files_are_reported_and_gaps_refused() {
    let (_tdb, db) = fresh_db().await;
    let all = [
        ("0001_a.sql", "CREATE TABLE a (id int);"),
        ("0002_b.sql", "CREATE TABLE b (id int);"),
        ("0003_c.sql", "CREATE TABLE c (id int);"),
    ];
    Migrator::from_files(all).unwrap().run(&db).await.unwrap();
    let report = Migrator::from_files([all[0], all[2]])
        .unwrap()
        .run(&db)
        .await
        .unwrap();
    assert!(report.applied.is_empty());
    assert_eq!(report.missing.len(), 1);
    assert_eq!(
        (report.missing[0].version, report.missing[0].name.as_str()),
        (2, "b")
    );

    let (_tdb2, db2) = fresh_db().await;
    Migrator::from_files([all[0], all[2]])
        .unwrap()
        .run(&db2)
        .await
        .unwrap();
    let err = Migrator::from_files(all)
        .unwrap()
        .run(&db2)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Migration { file, version: Some(2), .. } if file == "0002_b.sql"),
        "{err}"
    );
    assert!(err.to_string().contains("out of order"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_ends_its_transaction_is_not_recorded() {
    let (_tdb, db) = fresh_db().await;
    let migrator = Migrator::from_files([
        ("0001_a.sql", "CREATE TABLE a (id int);"),
        ("0002_commits.sql", "CREATE TABLE b (id int); COMMIT;"),
    ])
    .unwrap();
    let err = migrator.run(&db).await.unwrap_err();
    assert!(
        matches!(&err, Error::Migration { file, .. } if file == "0002_commits.sql"),
        "{err}"
    );
    assert!(err.to_string().contains("COMMIT or ROLLBACK"), "{err}");
    assert_eq!(records(&db).await.len(), 1);
    assert_clean(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_holds_no_lock_and_leaves_the_pool_clean() {
    let (tdb, _) = fresh_db().await;
    let db = Database::new(DatabaseSettings {
        max_pool_size: 1,
        ..tdb.settings()
    })
    .unwrap();
    let migrator = Migrator::from_files([
        ("0001_a.sql", "CREATE TABLE a (id int);"),
        (
            "0002_slow.sql",
            "SELECT pg_sleep(2); CREATE TABLE b (id int);",
        ),
    ])
    .unwrap();
    let cancelled = tokio::time::timeout(Duration::from_millis(500), migrator.run(&db)).await;
    assert!(cancelled.is_err(), "the run was cut short");
    assert_clean(&db).await;
    // Another migrator gets the lock at once: nobody kept it.
    let other = Database::new(tdb.settings()).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), migrator.run(&other))
        .await
        .expect("the lock is free")
        .unwrap();
    assert_eq!(versions(&report), [2]);
}

static SHOP: std::sync::LazyLock<Migrator> =
    std::sync::LazyLock::new(|| toolkit::embed_migrations!("migrations/shop"));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_and_read_at_run_time_agree_and_run_from_an_init_callback() {
    let from_dir =
        Migrator::from_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/shop")).unwrap();
    assert_eq!(SHOP.checksum(), from_dir.checksum());
    let files: Vec<&str> = SHOP.migrations().iter().map(|m| m.file()).collect();
    assert_eq!(
        files,
        [
            "0001_customers.sql",
            "0002_orders.sql",
            "V3__currencies.sql"
        ]
    );

    let (_tdb, db) = fresh_db().await;
    db.register_init_callback(|pool| async move { SHOP.run(&pool).await.map(drop) })
        .await;
    db.init_db().await.unwrap();
    let n: i64 = db
        .connection()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM currencies", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_table_and_unnamed_statements() {
    let (tdb, _) = fresh_db().await;
    let db = Database::new(DatabaseSettings {
        statement_mode: StatementMode::Unnamed,
        ..tdb.settings()
    })
    .unwrap();
    let a = Migrator::from_files([("1_a.sql", "CREATE TABLE a (id int);")]).unwrap();
    let b = Migrator::from_files([("1_b.sql", "CREATE TABLE b (id int);")])
        .unwrap()
        .with_table("billing_migrations")
        .unwrap();
    assert_eq!(versions(&a.run(&db).await.unwrap()), [1]);
    assert_eq!(
        versions(&b.run(&db).await.unwrap()),
        [1],
        "a table of its own"
    );
    assert!(a.run(&db).await.unwrap().applied.is_empty());
}

#[test]
fn misnamed_files_name_the_file() {
    let dir = dir_with(&[("0001_a.sql", ""), ("create_b.sql", ""), ("README.md", "")]);
    let err = Migrator::from_dir(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::Migration { file, .. } if file == "create_b.sql"),
        "{err}"
    );
    let missing = Migrator::from_dir("no/such/dir").unwrap_err();
    assert!(missing.to_string().contains("no/such/dir"), "{missing}");
}
