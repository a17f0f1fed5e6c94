//! `#[toolkit::test]` (issue 15): a fresh copy of a migrated template per test, fixtures, and a
//! failed test's database kept when `TOOLKIT_KEEP_TEST_DB` asks for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use toolkit::migrate::Migrator;
use toolkit::{Database, DatabaseSettings};

async fn count(db: &Database, sql: &str) -> i64 {
    db.connection()
        .await
        .unwrap()
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

#[toolkit::test(migrations = "migrations/shop")]
async fn gets_a_copy_of_the_migrated_template(db: Database) {
    assert_eq!(count(&db, "SELECT count(*) FROM currencies").await, 2);
    assert_eq!(
        count(&db, "SELECT count(*) FROM toolkit_migrations").await,
        3
    );
    assert_eq!(count(&db, "SELECT count(*) FROM customers").await, 0);
    let conn = db.connection().await.unwrap();
    let row = conn
        .query_one(
            "SELECT current_database()::text, datistemplate FROM pg_database \
             WHERE datname = current_database()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, String>(0).starts_with("toolkit_test_"));
    assert!(!row.get::<_, bool>(1));
    let templates = conn
        .query_one(
            "SELECT count(*) FROM pg_database \
             WHERE datname LIKE 'toolkit\\_template\\_%' AND datistemplate AND NOT datallowconn",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert!(templates >= 1);
    // Already migrated: running the same migrations again does nothing.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/shop");
    let report = Migrator::from_dir(dir).unwrap().run(&db).await.unwrap();
    assert!(report.applied.is_empty());
}

#[toolkit::test(
    migrations = "migrations/shop",
    fixtures("fixtures/customers.sql", "fixtures/orders.sql")
)]
async fn fixtures_apply_in_order(db: Database) -> toolkit::Result<()> {
    let conn = db.connection().await?;
    let row = conn
        .query_one(
            "SELECT c.name, o.total_cents FROM orders o JOIN customers c ON c.id = o.customer_id",
            &[],
        )
        .await?;
    assert_eq!(row.get::<_, String>(0), "ada");
    assert_eq!(row.get::<_, i64>(1), 1000);
    Ok(())
}

/// Each of these inserts the same unique name: they would collide on a shared database.
#[toolkit::test(migrations = "migrations/shop", fixtures("fixtures/customers.sql"))]
async fn each_test_owns_its_database_a(db: Database) {
    insert_solo(&db).await;
}

#[toolkit::test(migrations = "migrations/shop", fixtures("fixtures/customers.sql"))]
async fn each_test_owns_its_database_b(mut db: Database) {
    db = db.clone();
    insert_solo(&db).await;
}

async fn insert_solo(db: &Database) {
    let conn = db.connection().await.unwrap();
    conn.execute("INSERT INTO customers (name) VALUES ('solo')", &[])
        .await
        .unwrap();
    assert_eq!(count(db, "SELECT count(*) FROM customers").await, 3);
}

#[toolkit::test]
async fn without_migrations_the_database_is_empty(db: Database) {
    let tables = count(
        &db,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
    )
    .await;
    assert_eq!(tables, 0);
}

/// Child side of [`a_failed_tests_database_is_kept_when_asked`]: fails only when asked to.
#[toolkit::test(migrations = "migrations/shop", fixtures("fixtures/customers.sql"))]
async fn child_fails_by_panicking(db: Database) {
    if std::env::var_os("TOOLKIT_ATTR_CHILD").is_none() {
        return;
    }
    leave_evidence(&db).await;
    panic!("deliberate failure");
}

/// Child side of [`a_failed_tests_database_is_kept_when_asked`]: fails only when asked to.
#[toolkit::test(migrations = "migrations/shop")]
async fn child_fails_by_returning_err(db: Database) -> Result<(), String> {
    if std::env::var_os("TOOLKIT_ATTR_CHILD").is_none() {
        return Ok(());
    }
    leave_evidence(&db).await;
    Err("deliberate failure".into())
}

async fn leave_evidence(db: &Database) {
    db.connection()
        .await
        .unwrap()
        .execute("INSERT INTO customers (name) VALUES ('evidence')", &[])
        .await
        .unwrap();
}

/// Runs one child test of this binary with `keep` set or not; returns its whole output.
fn run_child(test: &str, keep: bool) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--test-threads=1"])
        .env("TOOLKIT_ATTR_CHILD", "1");
    if keep {
        cmd.env(toolkit::testing::KEEP_ENV, "1");
    } else {
        cmd.env_remove(toolkit::testing::KEEP_ENV);
    }
    let output = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "the child test must fail: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_tests_database_is_kept_when_asked() {
    for test in ["child_fails_by_panicking", "child_fails_by_returning_err"] {
        let output = tokio::task::spawn_blocking(move || run_child(test, true))
            .await
            .unwrap();
        // "<test>: kept its database postgres://user@host:port/name (drop it with: ...)"
        let line = output
            .lines()
            .find(|l| l.contains(": kept its database "))
            .unwrap_or_else(|| panic!("no kept database reported: {output}"));
        let url = line
            .split_once("kept its database ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap();
        let kept = DatabaseSettings::from_url(url).unwrap();
        let settings = match std::env::var("DATABASE_URL") {
            Ok(env) if !env.is_empty() => DatabaseSettings {
                dbname: kept.dbname.clone(),
                ..DatabaseSettings::from_url(&env).unwrap()
            },
            _ => kept.clone(),
        };
        let client = settings.connect().await.unwrap();
        let evidence: i64 = client
            .query_one(
                "SELECT count(*) FROM customers WHERE name = 'evidence'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            evidence, 1,
            "{test}: the failed test's rows are there to inspect"
        );
        drop(client);
        clean_up(line, &settings).await;
    }

    // Without the variable, nothing is kept.
    let output = tokio::task::spawn_blocking(|| run_child("child_fails_by_panicking", false))
        .await
        .unwrap();
    assert!(!output.contains("kept its database"), "{output}");
}

/// Drops a kept database, or stops the kept throwaway cluster the child left running.
async fn clean_up(line: &str, settings: &DatabaseSettings) {
    if let Some((_, stop)) = line.split_once("stop it with: ") {
        let status = Command::new("/bin/sh")
            .arg("-c")
            .arg(stop)
            .output()
            .unwrap();
        assert!(status.status.success(), "{stop}: {status:?}");
        return;
    }
    let admin = DatabaseSettings {
        dbname: DatabaseSettings::from_url(&std::env::var("DATABASE_URL").unwrap())
            .unwrap()
            .dbname,
        ..settings.clone()
    };
    let quoted = toolkit::sql::quote_ident(&settings.dbname).unwrap();
    admin
        .connect()
        .await
        .unwrap()
        .batch_execute(&format!("DROP DATABASE {quoted} WITH (FORCE)"))
        .await
        .unwrap();
}

/// Two directories with the same migrations share one template, and making it at the same
/// time from two threads (as two test binaries would) is serialised by the template's lock.
#[test]
fn the_same_migrations_make_one_template_even_when_made_at_once() {
    use toolkit::testing::__private::{run, Spec};
    let table = format!("t_{}_{}", std::process::id(), line!());
    let dirs: Vec<&'static str> = (0..2)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap().keep();
            let sql = format!("CREATE TABLE {table} (id int); SELECT pg_sleep(0.2);");
            std::fs::write(dir.join("0001_one.sql"), sql).unwrap();
            &*Box::leak(dir.display().to_string().into_boxed_str())
        })
        .collect();
    let checksum = Migrator::from_dir(dirs[0]).unwrap().checksum();
    assert_eq!(checksum, Migrator::from_dir(dirs[1]).unwrap().checksum());
    let threads: Vec<_> = dirs
        .iter()
        .map(|&dir| {
            let table = table.clone();
            std::thread::spawn(move || {
                let spec = Spec {
                    test: "test_attr::one_template",
                    migrations: Some(dir),
                    fixtures: &[],
                };
                run(spec, |db: Database| async move {
                    let sql = format!("SELECT count(*) FROM {table}");
                    assert_eq!(count(&db, &sql).await, 0);
                    Ok::<_, ()>(db.settings().clone())
                })
                .unwrap()
            })
        })
        .collect();
    let settings: Vec<DatabaseSettings> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for dir in &dirs {
        std::fs::remove_dir_all(dir).unwrap();
    }

    // One template by that name; removed again, so runs on a DATABASE_URL server do not pile
    // them up.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let admin = DatabaseSettings {
            dbname: match std::env::var("DATABASE_URL") {
                Ok(url) if !url.is_empty() => DatabaseSettings::from_url(&url).unwrap().dbname,
                _ => "postgres".into(),
            },
            ..settings[0].clone()
        };
        let client = admin.connect().await.unwrap();
        let name = format!("toolkit_template_{}", &checksum[..16]);
        let found: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname = $1 AND datistemplate",
                &[&name],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(found, 1);
        for sql in [
            format!("ALTER DATABASE {name} WITH IS_TEMPLATE false"),
            format!("DROP DATABASE {name}"),
        ] {
            client.batch_execute(&sql).await.unwrap();
        }
    });
}
