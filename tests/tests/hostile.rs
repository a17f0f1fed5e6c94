//! Hostile tests: each pins one defect found by review. They assert the correct behaviour, so
//! each fails until its defect is fixed. The comment on each test names the defect.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use toolkit::testing::TestDatabase;
use toolkit::{Database, DatabaseSettings, Entity, Error, Repository, SqlState};
use toolkit_tests::{assert_clean, backends_named, db_with};

/// Every test must finish well within this, even when a connection leaks.
const TEST_DEADLINE: Duration = Duration::from_secs(30);

async fn bounded<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_DEADLINE, body)
        .await
        .expect("test deadline")
}

async fn backend_pid(conn: &toolkit::Connection) -> i32 {
    conn.query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

/// A name no other test uses, for `application_name`.
fn unique_app(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

// ---------------------------------------------------------------------------------------------
// Defect 1: `query_timeout` does not bound statements sent through the query API of a
// `Transaction` (transaction/query.rs calls the client directly, outside `within_deadline`).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_timeout_bounds_transaction_statements() {
    bounded(async {
        let (_tdb, db) = db_with("", |s| DatabaseSettings {
            query_timeout: Some(Duration::from_millis(300)),
            ..s
        })
        .await;
        let mut failures = Vec::new();
        for method in ["execute", "query", "query_one", "query_opt"] {
            let tx = db.transaction().await.unwrap();
            let sql = "SELECT pg_sleep(5)";
            let call = async {
                match method {
                    "execute" => tx.execute(sql, &[]).await.map(drop),
                    "query" => tx.query(sql, &[]).await.map(drop),
                    "query_one" => tx.query_one(sql, &[]).await.map(drop),
                    _ => tx.query_opt(sql, &[]).await.map(drop),
                }
            };
            match tokio::time::timeout(Duration::from_secs(2), call).await {
                Ok(Err(Error::Timeout { .. })) => {}
                Ok(other) => failures.push(format!("Transaction::{method}: {other:?}")),
                Err(_) => failures.push(format!(
                    "Transaction::{method}: still running 2 s in (query_timeout is 300 ms)"
                )),
            }
            drop(tx);
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Defect 2: a connection abandoned after `query_timeout` inside a transaction is handed to the
// next borrower: commit/rollback/drop of the transaction clear the in-doubt mark the timeout set,
// and the server-side cancel sent for the old statement may then cancel the next borrower's.

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "locked")]
struct Locked {
    #[entity(primary_key)]
    id: i32,
    n: i32,
}

enum End {
    Rollback,
    Drop,
}

async fn abandoned_connection_is_not_reused(end: End) {
    bounded(async {
        let (tdb, db) = db_with(
            "CREATE TABLE locked (id int PRIMARY KEY, n int NOT NULL);
             INSERT INTO locked VALUES (1, 0);",
            |s| DatabaseSettings {
                max_pool_size: 1,
                min_pool_size: 1,
                query_timeout: Some(Duration::from_millis(300)),
                pool_timeout: Duration::from_secs(10),
                ..s
            },
        )
        .await;
        // Another session holds the row, so the update below waits past query_timeout.
        let holder = tdb.connect().await.unwrap();
        holder
            .batch_execute("BEGIN; SELECT 1 FROM locked WHERE id = 1 FOR UPDATE")
            .await
            .unwrap();

        let tx = db.transaction().await.unwrap();
        let abandoned: i32 = tx
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        let err = Repository::<Locked>::new(&tx)
            .update(1, LockedPatch { n: Some(1) })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        match end {
            End::Rollback => drop(tx.rollback().await),
            End::Drop => drop(tx),
        }

        let conn = db.connection().await.unwrap();
        let next = backend_pid(&conn).await;
        let slept = conn.execute("SELECT pg_sleep(0.5)", &[]).await;
        assert_ne!(
            next, abandoned,
            "the connection abandoned after query_timeout was handed to the next borrower \
             (whose pg_sleep(0.5) gave {slept:?})"
        );
        if let Err(err) = slept {
            panic!("the next borrower's statement failed: {err:?}");
        }
        drop(conn);
        holder.batch_execute("ROLLBACK").await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_abandoned_in_a_transaction_is_discarded_after_rollback() {
    abandoned_connection_is_not_reused(End::Rollback).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_abandoned_in_a_transaction_is_discarded_after_drop() {
    abandoned_connection_is_not_reused(End::Drop).await;
}

// ---------------------------------------------------------------------------------------------
// Defect 3: JSON nested deeper than serde_json's recursion limit (128) is written: `create`
// returns InvalidData (the RETURNING row cannot be decoded) but the row is committed, and every
// later `get_all` fails. It must be refused before anything is written.

/// A typed JSON value that nests as deep as it is built: `[[[...]]]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct Tree(Vec<Tree>);

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "docs")]
struct Doc {
    #[entity(primary_key, generated)]
    id: i64,
    body: serde_json::Value,
    #[entity(json)]
    tree: Tree,
}

const DEPTH: usize = 200;

fn deep_value() -> serde_json::Value {
    let mut value = serde_json::json!([]);
    for _ in 0..DEPTH {
        value = serde_json::Value::Array(vec![value]);
    }
    value
}

fn deep_tree() -> Tree {
    let mut tree = Tree::default();
    for _ in 0..DEPTH {
        tree = Tree(vec![tree]);
    }
    tree
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_deeper_than_the_decoder_accepts_is_refused_before_writing() {
    bounded(async {
        let (tdb, db) = db_with(
            "CREATE TABLE docs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                body jsonb NOT NULL, tree jsonb NOT NULL)",
            |s| s,
        )
        .await;
        let repo = Repository::<Doc>::new(&db);
        let cases = [
            (
                "body",
                Doc {
                    id: 0,
                    body: deep_value(),
                    tree: Tree::default(),
                },
            ),
            (
                "tree",
                Doc {
                    id: 0,
                    body: serde_json::json!({}),
                    tree: deep_tree(),
                },
            ),
        ];
        let admin = tdb.connect().await.unwrap();
        let mut failures = Vec::new();
        for (field, doc) in cases {
            let outcome = repo.create(&doc).await;
            let count = repo.count().await.unwrap();
            let all = repo.get_all().await.map(|rows| rows.len());
            match outcome {
                Err(Error::InvalidData { field: f, .. }) if f == field => {}
                other => failures.push(format!("{field}: create returned {other:?}")),
            }
            if count != 0 {
                failures.push(format!("{field}: the refused create wrote {count} row(s)"));
            }
            if !matches!(all, Ok(0)) {
                failures.push(format!("{field}: get_all afterwards: {all:?}"));
            }
            admin.batch_execute("DELETE FROM docs").await.unwrap();
        }
        assert!(
            failures.is_empty(),
            "JSON nested {DEPTH} deep:\n{}",
            failures.join("\n")
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Defect 4: a `Connection` whose backend died, dropped outside any runtime, panics ("there is no
// reactor running" or similar, bb8 spawns the replacement) and the pool never gets the slot back.

#[test]
fn dead_connection_dropped_outside_the_runtime_does_not_panic_or_leak_its_slot() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (tdb, db) = runtime.block_on(db_with("", |s| DatabaseSettings {
        max_pool_size: 1,
        min_pool_size: 1,
        pool_timeout: Duration::from_secs(3),
        ..s
    }));
    let conn = runtime.block_on(bounded(async {
        let conn = db.connection().await.unwrap();
        let pid = backend_pid(&conn).await;
        let admin = tdb.connect().await.unwrap();
        admin
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap();
        let started = Instant::now();
        // Until the driver has seen the socket close: the connection is dead, not just failing.
        while !conn.is_closed() {
            let _ = conn.simple_query("SELECT 1").await;
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the terminated backend's connection never closed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        conn
    }));
    assert!(tokio::runtime::Handle::try_current().is_err());
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(conn)));
    let checkout = runtime.block_on(async {
        let conn = tokio::time::timeout(Duration::from_secs(6), db.connection()).await;
        match conn {
            Ok(Ok(conn)) => Ok(first_value(&conn).await),
            Ok(Err(err)) => Err(format!("{err}")),
            Err(_) => Err("checkout hangs".to_owned()),
        }
    });
    assert!(
        dropped.is_ok(),
        "dropping a dead connection outside the runtime panicked; \
         the next checkout then gave {checkout:?}"
    );
    assert_eq!(
        checkout,
        Ok(1),
        "no working connection after the dead one was dropped"
    );
    drop(db);
    drop(tdb);
}

async fn first_value(conn: &toolkit::Connection) -> i32 {
    conn.query_one("SELECT 1", &[]).await.unwrap().get(0)
}

// ---------------------------------------------------------------------------------------------
// Defect 5: a `Transaction` dropped by the shutdown of the runtime holding it (a `Database` used
// from two runtimes) leaves the pool with no connection and every later checkout hangs.

#[test]
fn transaction_dropped_by_runtime_shutdown_does_not_strand_the_pool() {
    let runtime_a = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (tdb, db) = runtime_a.block_on(db_with("", |s| DatabaseSettings {
        max_pool_size: 1,
        min_pool_size: 1,
        pool_timeout: Duration::from_secs(3),
        ..s
    }));
    let (started, is_started) = tokio::sync::oneshot::channel();
    {
        let db = db.clone();
        runtime_a.spawn(async move {
            let tx = db.transaction().await.unwrap();
            tx.execute("SELECT 1", &[]).await.unwrap();
            started.send(()).unwrap();
            std::future::pending::<()>().await;
            drop(tx);
        });
    }
    runtime_a
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), is_started).await })
        .expect("the transaction began")
        .unwrap();
    // Shutdown drops the task, and the transaction in it.
    drop(runtime_a);

    let runtime_b = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime_b.block_on(async {
        let checkout = tokio::time::timeout(Duration::from_secs(6), db.connection())
            .await
            .expect("checkout on the second runtime hangs");
        let conn = checkout.expect("no connection after the first runtime shut down");
        assert_eq!(first_value(&conn).await, 1);
        drop(conn);
        assert_clean(&db).await;
    });
    drop(db);
    drop(tdb);
}

// ---------------------------------------------------------------------------------------------
// Defect 6: `Database::cleanup()` while a `Pool` handle is alive leaves the idle server
// connections open; and connections returned to a closed pool with min == max make it open
// new ones.

async fn wait_for_backends(tdb: &TestDatabase, app: &str, want: i64) -> i64 {
    let started = Instant::now();
    loop {
        let n = backends_named(tdb, app).await;
        if n == want || started.elapsed() > Duration::from_secs(5) {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_closes_idle_connections_while_a_pool_handle_lives() {
    bounded(async {
        let app = unique_app("hostile_cleanup_handle");
        let (tdb, db) = db_with("", |s| DatabaseSettings {
            min_pool_size: 3,
            max_pool_size: 3,
            application_name: app.clone(),
            ..s
        })
        .await;
        let pool = db.get_pool().await.unwrap();
        assert_eq!(wait_for_backends(&tdb, &app, 3).await, 3, "pool opened");
        db.cleanup().await;
        assert_eq!(
            wait_for_backends(&tdb, &app, 0).await,
            0,
            "idle connections of a cleaned-up pool stay open while a Pool handle lives"
        );
        drop(pool);
    })
    .await;
}

/// Backend pids with `application_name` `app` on the server of `tdb`.
async fn pids_named(tdb: &TestDatabase, app: &str) -> Vec<i32> {
    let client = tdb.connect().await.unwrap();
    client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_returned_after_cleanup_closes_and_opens_nothing() {
    bounded(async {
        let app = unique_app("hostile_cleanup_return");
        let (tdb, db) = db_with("", |s| DatabaseSettings {
            min_pool_size: 3,
            max_pool_size: 3,
            application_name: app.clone(),
            ..s
        })
        .await;
        // A handle kept by the application, e.g. one given to an init callback.
        let pool = db.get_pool().await.unwrap();
        let conn = pool.get().await.unwrap();
        assert_eq!(wait_for_backends(&tdb, &app, 3).await, 3, "pool opened");
        let before = pids_named(&tdb, &app).await;
        db.cleanup().await;
        drop(conn);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let opened: Vec<i32> = pids_named(&tdb, &app)
            .await
            .into_iter()
            .filter(|pid| !before.contains(pid))
            .collect();
        assert!(
            opened.is_empty(),
            "the closed pool opened new connections {opened:?} to replace a returned one"
        );
        assert_eq!(
            wait_for_backends(&tdb, &app, 0).await,
            0,
            "server connections of a cleaned-up pool are still open"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            backends_named(&tdb, &app).await,
            0,
            "a cleaned-up pool opened new connections"
        );
        drop(pool);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Defect 7: a DOMAIN-typed column fails on `create` and on `create_bulk` of up to 256 rows
// ("cannot convert between String and email"), though it works through COPY above 256.

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "contacts")]
struct Contact {
    #[entity(primary_key, generated)]
    id: i64,
    email: String,
    name: String,
}

fn contact(n: usize) -> Contact {
    Contact {
        id: 0,
        email: format!("c{n}@example.com"),
        name: format!("contact {n}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_typed_column_works_on_every_write_route() {
    bounded(async {
        let (tdb, db) = db_with(
            "CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%');
             CREATE TABLE contacts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                    email email NOT NULL UNIQUE, name text NOT NULL);",
            |s| s,
        )
        .await;
        let repo = Repository::<Contact>::new(&db);
        let mut failures = Vec::new();

        let mut check =
            |route: &str, outcome: Result<Vec<String>, Error>, want: &[String]| match outcome {
                Ok(emails) if emails == want => {}
                Ok(emails) => failures.push(format!("{route}: read back {emails:?}")),
                Err(e) => failures.push(format!("{route}: {e}")),
            };
        let emails = |rows: Vec<Contact>| rows.into_iter().map(|c| c.email).collect::<Vec<_>>();

        let one = contact(0);
        let created = repo.create(&one).await.map(|c| vec![c.email]);
        check("create", created, &[one.email]);
        let ten: Vec<Contact> = (1..=10).map(contact).collect();
        let created = repo.create_bulk(&ten).await.map(emails);
        check("create_bulk(10)", created, &emails(ten));
        let many: Vec<Contact> = (100..400).map(contact).collect();
        let created = repo.create_bulk(&many).await.map(emails);
        check("create_bulk(300)", created, &emails(many));

        // A row to update and save, written by plain SQL whatever happened above.
        let id: i64 = tdb
            .connect()
            .await
            .unwrap()
            .query_one(
                "INSERT INTO contacts (email, name) VALUES ('raw@example.com', 'raw') RETURNING id",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let patch = ContactPatch {
            email: Some("patched@example.com".into()),
            ..Default::default()
        };
        let updated = repo.update(id, patch).await.map(|c| vec![c.email]);
        check("update", updated, &["patched@example.com".into()]);
        let saved = Contact {
            id,
            email: "saved@example.com".into(),
            name: "saved".into(),
        };
        let stored = repo.save(&saved).await.map(|c| vec![c.email]);
        check("save", stored, &["saved@example.com".into()]);
        let read = repo.get_by_id(id).await.map(|c| vec![c.email]);
        check("get_by_id after save", read, &["saved@example.com".into()]);
        assert!(
            failures.is_empty(),
            "a String field on a DOMAIN column failed:\n{}",
            failures.join("\n")
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Defect 8: a field whose Rust type does not match its column (i64 on int4) is a bare
// `Error::Operation` on create/update/save/VALUES-bulk but `InvalidData` naming the field on
// COPY and on reads. Every write route must report `InvalidData` naming the field, and write
// nothing.

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "stock")]
struct Stock {
    #[entity(primary_key)]
    id: i32,
    qty: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistyped_field_is_invalid_data_naming_it_on_every_write_route() {
    bounded(async {
        let (tdb, db) = db_with(
            "CREATE TABLE stock (id int PRIMARY KEY, qty int4 NOT NULL)",
            |s| s,
        )
        .await;
        let repo = Repository::<Stock>::new(&db);
        let stock = |id: i32| Stock { id, qty: 5 };
        let describe = |route: &str, outcome: Result<String, Error>| match outcome {
            Err(Error::InvalidData { field, .. }) if field == "qty" => None,
            other => Some(format!("{route}: {other:?}")),
        };
        let mut failures = Vec::new();

        let few: Vec<Stock> = (1..=3).map(stock).collect();
        let many: Vec<Stock> = (1..=300).map(stock).collect();
        for (route, outcome) in [
            (
                "create",
                repo.create(&stock(1)).await.map(|s| format!("{s:?}")),
            ),
            (
                "create_bulk(3)",
                repo.create_bulk(&few)
                    .await
                    .map(|r| format!("{} rows", r.len())),
            ),
            (
                "create_bulk(300)",
                repo.create_bulk(&many)
                    .await
                    .map(|r| format!("{} rows", r.len())),
            ),
        ] {
            failures.extend(describe(route, outcome));
        }
        assert_eq!(repo.count().await.unwrap(), 0, "a failed insert wrote rows");

        tdb.connect()
            .await
            .unwrap()
            .batch_execute("INSERT INTO stock VALUES (1, 5)")
            .await
            .unwrap();
        let update = repo
            .update(1, StockPatch { qty: Some(7) })
            .await
            .map(|s| format!("{s:?}"));
        failures.extend(describe("update", update));
        let save = repo
            .save(&Stock { id: 1, qty: 9 })
            .await
            .map(|s| format!("{s:?}"));
        failures.extend(describe("save", save));
        assert!(
            failures.is_empty(),
            "expected InvalidData {{ field: \"qty\" }} on every route:\n{}",
            failures.join("\n")
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Defect 9: settings that cannot work pass validation: durations too long to add to an
// `Instant` (checkout then panics), an unbounded statement cache, NUL bytes in the connection
// strings. `Database::new` must reject each, naming the field, before any I/O.

#[test]
fn settings_that_cannot_work_are_rejected_naming_the_field() {
    let base = DatabaseSettings::default;
    let cases: Vec<(&str, DatabaseSettings)> = vec![
        (
            "pool_timeout",
            DatabaseSettings {
                pool_timeout: Duration::MAX,
                ..base()
            },
        ),
        (
            "connection_timeout",
            DatabaseSettings {
                connection_timeout: Duration::MAX,
                ..base()
            },
        ),
        (
            "query_timeout",
            DatabaseSettings {
                query_timeout: Some(Duration::MAX),
                ..base()
            },
        ),
        (
            "statement_cache_size",
            DatabaseSettings {
                statement_cache_size: usize::MAX,
                ..base()
            },
        ),
        (
            "host",
            DatabaseSettings {
                host: "local\0host".into(),
                ..base()
            },
        ),
        (
            "user",
            DatabaseSettings {
                user: "post\0gres".into(),
                ..base()
            },
        ),
        (
            "dbname",
            DatabaseSettings {
                dbname: "db\0name".into(),
                ..base()
            },
        ),
        (
            "password",
            DatabaseSettings {
                password: "pass\0word".into(),
                ..base()
            },
        ),
    ];
    let mut failures = Vec::new();
    for (want, settings) in cases {
        match Database::new(settings) {
            Err(Error::InvalidSettings { field, .. }) if field == want => {}
            Err(other) => failures.push(format!("{want}: wrong error {other:?}")),
            Ok(_) => failures.push(format!("{want}: accepted")),
        }
    }
    assert!(
        failures.is_empty(),
        "settings not rejected as InvalidSettings naming the field:\n{}",
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Defect 10: a `create_bulk` that fails on the COPY route (more than 256 rows) leaves the
// connection marked in doubt even after its ROLLBACK succeeded, so a healthy connection is
// discarded. The VALUES route must keep it too.

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "keyed")]
struct Keyed {
    #[entity(primary_key)]
    id: i32,
    label: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_bulk_insert_keeps_the_healthy_connection() {
    bounded(async {
        let (_tdb, db) = db_with(
            "CREATE TABLE keyed (id int PRIMARY KEY, label text NOT NULL)",
            |s| DatabaseSettings {
                max_pool_size: 1,
                min_pool_size: 1,
                ..s
            },
        )
        .await;
        let repo = Repository::<Keyed>::new(&db);
        let pid = backend_pid(&db.connection().await.unwrap()).await;
        let rows = |n: i32| -> Vec<Keyed> {
            (0..n)
                .chain([0]) // a duplicate key: unique violation
                .map(|id| Keyed {
                    id,
                    label: format!("k{id}"),
                })
                .collect()
        };
        for (route, values) in [("VALUES", rows(2)), ("COPY", rows(299))] {
            let err = repo.create_bulk(&values).await.unwrap_err();
            assert_eq!(
                err.code(),
                Some(&SqlState::UNIQUE_VIOLATION),
                "{route}: {err:?}"
            );
            let after = backend_pid(&db.connection().await.unwrap()).await;
            assert_eq!(
                after, pid,
                "a failed {route}-route create_bulk discarded a healthy connection"
            );
        }
        assert_eq!(repo.count().await.unwrap(), 0);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Review of the fix: the query methods of a `Transaction` now use the connection's statement
// cache. A cached statement the server rejects as stale (its table was altered) fails inside
// the transaction (which that failure aborted), but must be evicted, so the next transaction
// prepares it afresh instead of failing until the cache forgets it.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_cached_statement_fails_once_in_a_transaction_then_is_prepared_again() {
    bounded(async {
        let (_tdb, db) = db_with(
            "CREATE TABLE altered (id int); INSERT INTO altered VALUES (1)",
            |s| DatabaseSettings {
                min_pool_size: 1,
                max_pool_size: 1,
                ..s
            },
        )
        .await;
        let select = "SELECT * FROM altered";
        let tx = db.transaction().await.unwrap();
        assert_eq!(tx.query(select, &[]).await.unwrap()[0].len(), 1);
        tx.commit().await.unwrap();
        db.connection()
            .await
            .unwrap()
            .batch_execute("ALTER TABLE altered ADD COLUMN name text")
            .await
            .unwrap();

        let tx = db.transaction().await.unwrap();
        let err = tx.query(select, &[]).await.unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::FEATURE_NOT_SUPPORTED), "{err}");
        tx.rollback().await.unwrap();

        let tx = db.transaction().await.unwrap();
        let rows = tx.query(select, &[]).await.unwrap();
        assert_eq!(rows[0].len(), 2, "prepared again with the new column");
        tx.commit().await.unwrap();
    })
    .await;
}
