//! Transactions against a real server (issue 5): commit, rollback, savepoints, builder options,
//! `run_in_transaction` retries, the transaction managers and the idle-in-transaction backstop.
//! Cancellation, aborted tasks and panics are in `transaction_cancel.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use toolkit_tests::assert_clean;

use toolkit::testing::TestDatabase;
use toolkit::{
    DataManager, Database, DatabaseSettings, Error, IsolationLevel, Result, RetryPolicy,
    SchemaManager, SqlState, Transaction,
};

/// Every test must finish well within this, even when a connection leaks.
const TEST_DEADLINE: Duration = Duration::from_secs(30);

/// A database whose pool has exactly one connection, so every checkout reuses it.
async fn single_connection() -> (TestDatabase, Database) {
    pooled(1).await
}

async fn pooled(size: u32) -> (TestDatabase, Database) {
    let tdb = TestDatabase::create().await.expect("create test database");
    let db = Database::new(DatabaseSettings {
        max_pool_size: size,
        min_pool_size: 1,
        pool_timeout: Duration::from_secs(5),
        transaction_retry: RetryPolicy::fast(5),
        ..tdb.settings()
    })
    .expect("valid settings");
    (tdb, db)
}

async fn exec(db: &Database, sql: &str) {
    db.connection()
        .await
        .unwrap()
        .batch_execute(sql)
        .await
        .unwrap();
}

/// The ids in `items`, read through the pool (so outside any transaction under test).
async fn ids(db: &Database) -> Vec<i32> {
    db.connection()
        .await
        .unwrap()
        .query("SELECT id FROM items ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn with_items(db: &Database) {
    exec(db, "CREATE TABLE items (id int PRIMARY KEY)").await;
}

async fn insert(tx: &Transaction, id: i32) {
    tx.execute("INSERT INTO items (id) VALUES ($1)", &[&id])
        .await
        .unwrap();
}

fn code(err: &Error) -> Option<SqlState> {
    err.code().cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_persists_rollback_and_drop_discard() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        with_items(&db).await;

        let tx = db.transaction().await.unwrap();
        insert(&tx, 1).await;
        insert(&tx, 2).await;
        tx.commit().await.unwrap();
        assert_eq!(ids(&db).await, [1, 2]);

        let tx = db.transaction().await.unwrap();
        insert(&tx, 3).await;
        tx.rollback().await.unwrap();
        assert_eq!(ids(&db).await, [1, 2]);

        let tx = db.transaction().await.unwrap();
        insert(&tx, 4).await;
        drop(tx);
        assert_eq!(ids(&db).await, [1, 2]);
        assert_clean(&db).await;

        // The manager hands out the same guard.
        let tm = db.get_transaction_manager().await.unwrap();
        let tx = tm.transaction().await.unwrap();
        insert(&tx, 5).await;
        tx.commit().await.unwrap();
        assert_eq!(ids(&db).await, [1, 2, 5]);
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncommitted_work_is_invisible_to_other_connections() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = pooled(2).await;
        with_items(&db).await;
        let tx = db.transaction().await.unwrap();
        insert(&tx, 1).await;
        assert_eq!(ids(&db).await, Vec::<i32>::new());
        let inside: i64 = tx
            .query_one("SELECT count(*) FROM items", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(inside, 1);
        tx.commit().await.unwrap();
        assert_eq!(ids(&db).await, [1]);
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_of_an_aborted_transaction_is_an_error_not_a_silent_rollback() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        with_items(&db).await;
        let tx = db.transaction().await.unwrap();
        insert(&tx, 1).await;
        let err = tx.execute("SELECT 1 / 0", &[]).await.unwrap_err();
        assert_eq!(code(&err), Some(SqlState::DIVISION_BY_ZERO));
        // The server answers COMMIT of an aborted transaction with ROLLBACK; reporting that as
        // success would lose row 1 silently.
        let err = tx.commit().await.unwrap_err();
        assert_eq!(
            code(&err),
            Some(SqlState::IN_FAILED_SQL_TRANSACTION),
            "{err}"
        );
        assert_eq!(ids(&db).await, Vec::<i32>::new());
        assert_clean(&db).await;
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_savepoint_keeps_the_outer_work() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        with_items(&db).await;
        let mut tx = db.transaction().await.unwrap();
        insert(&tx, 1).await;
        let sp = tx.savepoint("risky").await.unwrap();
        assert_eq!(sp.name(), "risky");
        insert(&sp, 2).await;
        sp.rollback().await.unwrap();
        insert(&tx, 3).await;

        // Dropping a savepoint rolls back to it, even out of an aborted state.
        let sp = tx.savepoint("risky").await.unwrap();
        insert(&sp, 4).await;
        let err = sp.execute("SELECT 1 / 0", &[]).await.unwrap_err();
        assert_eq!(code(&err), Some(SqlState::DIVISION_BY_ZERO));
        drop(sp);
        insert(&tx, 5).await;

        // Committing a savepoint keeps its work.
        let sp = tx.savepoint("kept").await.unwrap();
        insert(&sp, 6).await;
        sp.commit().await.unwrap();

        tx.commit().await.unwrap();
        assert_eq!(ids(&db).await, [1, 3, 5, 6]);
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_levels_of_savepoints() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        with_items(&db).await;

        // Innermost dropped, the rest committed: only the innermost work is gone.
        let mut tx = db.transaction().await.unwrap();
        insert(&tx, 1).await;
        {
            let mut sp1 = tx.savepoint("one").await.unwrap();
            insert(&sp1, 2).await;
            {
                let mut sp2 = sp1.savepoint("two").await.unwrap();
                insert(&sp2, 3).await;
                {
                    let sp3 = sp2.savepoint("three").await.unwrap();
                    insert(&sp3, 4).await;
                }
                insert(&sp2, 5).await;
                sp2.commit().await.unwrap();
            }
            insert(&sp1, 6).await;
            sp1.commit().await.unwrap();
        }
        tx.commit().await.unwrap();
        assert_eq!(ids(&db).await, [1, 2, 3, 5, 6]);

        // Two inner levels dropped, the outer one committed.
        let mut tx = db.transaction().await.unwrap();
        insert(&tx, 10).await;
        {
            let mut sp1 = tx.savepoint("one").await.unwrap();
            insert(&sp1, 11).await;
            {
                let mut sp2 = sp1.savepoint("two").await.unwrap();
                insert(&sp2, 12).await;
                let sp3 = sp2.savepoint("three").await.unwrap();
                insert(&sp3, 13).await;
                drop(sp3);
            }
            sp1.commit().await.unwrap();
        }
        tx.commit().await.unwrap();
        assert_eq!(ids(&db).await, [1, 2, 3, 5, 6, 10, 11]);

        // Inner levels committed, then the outer savepoint dropped: all of it is undone.
        let mut tx = db.transaction().await.unwrap();
        insert(&tx, 20).await;
        {
            let mut sp1 = tx.savepoint("one").await.unwrap();
            insert(&sp1, 21).await;
            let mut sp2 = sp1.savepoint("two").await.unwrap();
            insert(&sp2, 22).await;
            let sp3 = sp2.savepoint("three").await.unwrap();
            insert(&sp3, 23).await;
            sp3.commit().await.unwrap();
            sp2.commit().await.unwrap();
        }
        insert(&tx, 24).await;
        tx.commit().await.unwrap();
        assert_eq!(ids(&db).await, [1, 2, 3, 5, 6, 10, 11, 20, 24]);

        // The middle level rolled back explicitly, with a dropped child pending.
        let mut tx = db.transaction().await.unwrap();
        {
            let mut sp1 = tx.savepoint("one").await.unwrap();
            insert(&sp1, 30).await;
            let mut sp2 = sp1.savepoint("two").await.unwrap();
            insert(&sp2, 31).await;
            drop(sp2.savepoint("three").await.unwrap());
            sp2.rollback().await.unwrap();
            insert(&sp1, 32).await;
            sp1.commit().await.unwrap();
        }
        tx.commit().await.unwrap();
        assert_eq!(ids(&db).await, [1, 2, 3, 5, 6, 10, 11, 20, 24, 30, 32]);
        assert_clean(&db).await;
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savepoint_names_are_validated_and_quoted() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        with_items(&db).await;
        let mut tx = db.transaction().await.unwrap();
        for bad in ["", "nul\0byte", &"x".repeat(200)] {
            let err = tx.savepoint(bad).await.unwrap_err();
            assert!(
                matches!(err, Error::InvalidIdentifier { .. }),
                "{bad:?}: {err:?}"
            );
        }
        // A name that would break out of an unquoted statement is just a name.
        let sp = tx.savepoint("we\"ird; ROLLBACK; --").await.unwrap();
        insert(&sp, 1).await;
        sp.rollback().await.unwrap();
        insert(&tx, 2).await;
        tx.commit().await.unwrap();
        assert_eq!(ids(&db).await, [2]);
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builder_sets_isolation_read_only_and_deferrable() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        with_items(&db).await;
        let show = async |tx: &Transaction, setting: &str| -> String {
            let rows = tx.simple_query(&format!("SHOW {setting}")).await.unwrap();
            rows.iter()
                .find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                    _ => None,
                })
                .unwrap()
        };

        let tx = db
            .build_transaction()
            .isolation_level(IsolationLevel::Serializable)
            .read_only(true)
            .deferrable(true)
            .begin()
            .await
            .unwrap();
        assert_eq!(show(&tx, "transaction_isolation").await, "serializable");
        assert_eq!(show(&tx, "transaction_read_only").await, "on");
        assert_eq!(show(&tx, "transaction_deferrable").await, "on");
        let err = tx
            .execute("INSERT INTO items (id) VALUES (1)", &[])
            .await
            .unwrap_err();
        assert_eq!(code(&err), Some(SqlState::READ_ONLY_SQL_TRANSACTION));
        drop(tx);

        let tm = db.get_transaction_manager().await.unwrap();
        let tx = tm
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(false)
            .begin()
            .await
            .unwrap();
        assert_eq!(show(&tx, "transaction_isolation").await, "repeatable read");
        assert_eq!(show(&tx, "transaction_read_only").await, "off");
        insert(&tx, 1).await;
        tx.commit().await.unwrap();

        let tx = db
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .begin()
            .await
            .unwrap();
        assert_eq!(show(&tx, "transaction_isolation").await, "read committed");
        tx.rollback().await.unwrap();
        assert_eq!(ids(&db).await, [1]);
        assert_clean(&db).await;
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_in_transaction_commits_on_ok_and_rolls_back_on_err() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        with_items(&db).await;
        let n: i64 = db
            .run_in_transaction(async |tx| {
                insert(tx, 1).await;
                Ok(tx
                    .query_one("SELECT count(*) FROM items", &[])
                    .await?
                    .get(0))
            })
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(ids(&db).await, [1]);

        let err = db
            .run_in_transaction(async |tx| {
                insert(tx, 2).await;
                Err::<(), _>(Error::NotAvailable {
                    message: "the body gave up".into(),
                })
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("the body gave up"), "{err}");
        assert_eq!(ids(&db).await, [1]);

        let tm = db.get_transaction_manager().await.unwrap();
        tm.run_in_transaction(async |tx| {
            insert(tx, 3).await;
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(ids(&db).await, [1, 3]);
        assert_clean(&db).await;
    })
    .await
    .expect("test deadline");
}

/// Two serializable transactions that each read the whole table, meet at a barrier, then insert:
/// a write skew the server must break by failing one of them with 40001.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serializable_conflict_is_retried_until_it_succeeds() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = pooled(2).await;
        exec(
            &db,
            "CREATE TABLE seen (writer int PRIMARY KEY, saw bigint NOT NULL)",
        )
        .await;

        // Without retry, the conflict is visible: one commits, the other gets 40001.
        let serializable = || {
            db.build_transaction()
                .isolation_level(IsolationLevel::Serializable)
                .begin()
        };
        let a = serializable().await.unwrap();
        let b = serializable().await.unwrap();
        let read = "SELECT count(*) FROM seen";
        let write = "INSERT INTO seen (writer, saw) VALUES ($1, $2)";
        let saw_a: i64 = a.query_one(read, &[]).await.unwrap().get(0);
        let saw_b: i64 = b.query_one(read, &[]).await.unwrap().get(0);
        a.execute(write, &[&1i32, &saw_a]).await.unwrap();
        let b_outcome = b.execute(write, &[&2i32, &saw_b]).await.err();
        a.commit().await.unwrap();
        let b_err = match b_outcome {
            Some(err) => {
                drop(b);
                err
            }
            None => b.commit().await.unwrap_err(),
        };
        assert_eq!(
            code(&b_err),
            Some(SqlState::T_R_SERIALIZATION_FAILURE),
            "{b_err}"
        );
        assert!(b_err.is_retryable());
        exec(&db, "DELETE FROM seen").await;

        // With retry, both succeed; the loser ran twice and saw the winner's row.
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let total = Arc::new(AtomicU32::new(0));
        let policy = RetryPolicy::fast(5);
        let writers: Vec<_> = (1..=2i32)
            .map(|writer| {
                let (db, barrier, total, policy) =
                    (db.clone(), barrier.clone(), total.clone(), policy.clone());
                tokio::spawn(async move {
                    let attempts = Arc::new(AtomicU32::new(0));
                    let counted = attempts.clone();
                    db.build_transaction()
                        .isolation_level(IsolationLevel::Serializable)
                        .run(&policy, async move |tx| {
                            // `move`: a closure that borrows its captures fails the `Send`
                            // check of `tokio::spawn` (rust-lang/rust#100013).
                            let attempt = counted.fetch_add(1, Ordering::SeqCst) + 1;
                            total.fetch_add(1, Ordering::SeqCst);
                            let saw: i64 =
                                tx.query_one("SELECT count(*) FROM seen", &[]).await?.get(0);
                            if attempt == 1 {
                                // Both first attempts read before either writes.
                                barrier.wait().await;
                            }
                            tx.execute(
                                "INSERT INTO seen (writer, saw) VALUES ($1, $2)",
                                &[&writer, &saw],
                            )
                            .await?;
                            Ok(())
                        })
                        .await
                        .unwrap();
                    (writer, attempts.load(Ordering::SeqCst))
                })
            })
            .collect();
        let mut per_writer = Vec::new();
        for writer in writers {
            per_writer.push(writer.await.unwrap());
        }
        per_writer.sort_by_key(|&(_, attempts)| attempts);
        assert_eq!(
            per_writer.iter().map(|&(_, a)| a).collect::<Vec<_>>(),
            [1, 2],
            "exactly one writer is retried, once"
        );
        assert_eq!(total.load(Ordering::SeqCst), 3);
        // Consistent with a serial order: the writer that needed no retry committed first and
        // saw nothing; the retried one saw its row.
        let conn = db.connection().await.unwrap();
        let rows = conn
            .query("SELECT writer, saw FROM seen ORDER BY saw", &[])
            .await
            .unwrap();
        let rows: Vec<(i32, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(rows, [(per_writer[0].0, 0), (per_writer[1].0, 1)]);
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_serialization_failures_and_deadlocks_are_retried_and_boundedly() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        with_items(&db).await;

        // A unique violation is the caller's problem: one attempt, nothing committed.
        let attempts = AtomicU32::new(0);
        let err = db
            .run_in_transaction(async |tx| {
                attempts.fetch_add(1, Ordering::SeqCst);
                insert(tx, 1).await;
                tx.execute("INSERT INTO items (id) VALUES (1)", &[]).await?;
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!(code(&err), Some(SqlState::UNIQUE_VIOLATION), "{err}");
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        assert_eq!(ids(&db).await, Vec::<i32>::new());

        // A body that always fails with 40001 / 40P01 runs exactly `attempts` times, and the
        // error of the last attempt is returned.
        for (sqlstate, expected, tries) in [
            ("40001", SqlState::T_R_SERIALIZATION_FAILURE, 3u32),
            ("40P01", SqlState::T_R_DEADLOCK_DETECTED, 2),
        ] {
            let attempts = AtomicU32::new(0);
            let policy = RetryPolicy::fast(tries);
            let err = db
                .build_transaction()
                .run(&policy, async |tx| {
                    let n = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                    insert(tx, 100).await;
                    tx.batch_execute(&format!(
                        "DO $$ BEGIN RAISE EXCEPTION 'attempt {n}' USING ERRCODE = '{sqlstate}'; END $$"
                    ))
                    .await?;
                    Ok(())
                })
                .await
                .unwrap_err();
            assert_eq!(code(&err), Some(expected), "{err}");
            assert_eq!(attempts.load(Ordering::SeqCst), tries);
            assert!(err.to_string().contains(&format!("attempt {tries}")), "{err}");
        }
        // The default policy of `run_in_transaction` is bounded too.
        let attempts = AtomicU32::new(0);
        let err = db
            .run_in_transaction(async |tx| {
                attempts.fetch_add(1, Ordering::SeqCst);
                tx.batch_execute(
                    "DO $$ BEGIN RAISE EXCEPTION 'always' USING ERRCODE = '40001'; END $$",
                )
                .await?;
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(
            attempts.load(Ordering::SeqCst),
            db.settings().transaction_retry.attempts
        );

        // A policy of one attempt does not retry at all.
        let attempts = AtomicU32::new(0);
        db.build_transaction()
            .run(&RetryPolicy::none(), async |tx| {
                attempts.fetch_add(1, Ordering::SeqCst);
                tx.batch_execute(
                    "DO $$ BEGIN RAISE EXCEPTION 'once' USING ERRCODE = '40001'; END $$",
                )
                .await?;
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        assert_eq!(ids(&db).await, Vec::<i32>::new());
        assert_clean(&db).await;
    })
    .await
    .expect("test deadline");
}

// ---------------------------------------------------------------------------------------------
// Managers

/// Creates the `managed` table and hands its name to the body.
struct ManagedTable;

impl SchemaManager for ManagedTable {
    type Schema = &'static str;

    async fn create_schema(&self, tx: &Transaction) -> Result<&'static str> {
        tx.batch_execute("CREATE TABLE managed (id int PRIMARY KEY, label text NOT NULL)")
            .await?;
        Ok("managed")
    }

    async fn drop_schema(&self, tx: &Transaction) -> Result<()> {
        tx.batch_execute("DROP TABLE managed").await
    }
}

/// A schema whose drop always fails.
struct UndroppableTable;

impl SchemaManager for UndroppableTable {
    type Schema = ();

    async fn create_schema(&self, tx: &Transaction) -> Result<()> {
        tx.batch_execute("CREATE TABLE undroppable (id int)").await
    }

    async fn drop_schema(&self, tx: &Transaction) -> Result<()> {
        tx.batch_execute("DROP TABLE no_such_table_at_all").await
    }
}

/// Inserts rows into `table` and removes them again.
struct Rows {
    table: &'static str,
}

impl DataManager for Rows {
    type Data = Vec<i32>;

    async fn setup_data(&self, tx: &Transaction) -> Result<Vec<i32>> {
        let rows = tx
            .query(
                &format!(
                    "INSERT INTO {} (id, label) VALUES (1, 'one'), (2, 'two') RETURNING id",
                    self.table
                ),
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn cleanup_data(&self, tx: &Transaction) -> Result<()> {
        tx.execute(
            &format!("DELETE FROM {} WHERE id IN (1, 2)", self.table),
            &[],
        )
        .await?;
        Ok(())
    }
}

async fn table_exists(db: &Database, name: &str) -> bool {
    db.connection()
        .await
        .unwrap()
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .unwrap()
        .get(0)
}

async fn count(db: &Database, table: &str) -> i64 {
    db.connection()
        .await
        .unwrap()
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

fn body_error() -> Error {
    Error::NotAvailable {
        message: "body failed on purpose".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_schema_body_sees_the_schema_which_is_gone_afterwards() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        with_items(&db).await;
        let tm = db.get_transaction_manager().await.unwrap();

        let seen = tm
            .with_schema(&ManagedTable, async |tx, table| {
                assert_eq!(*table, "managed");
                tx.execute("INSERT INTO managed VALUES (1, 'x')", &[])
                    .await?;
                // The body's other work commits with it.
                insert(tx, 1).await;
                let n: i64 = tx
                    .query_one("SELECT count(*) FROM managed", &[])
                    .await?
                    .get(0);
                Ok(n)
            })
            .await
            .unwrap();
        assert_eq!(seen, 1);
        assert!(!table_exists(&db, "managed").await);
        assert_eq!(ids(&db).await, [1]);

        // A failing body: its error is what the caller gets, the schema is gone, its work too.
        let err = tm
            .with_schema(&ManagedTable, async |tx, _| {
                insert(tx, 2).await;
                tx.execute("INSERT INTO managed VALUES (1, 'x'), (1, 'y')", &[])
                    .await?;
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!(code(&err), Some(SqlState::UNIQUE_VIOLATION), "{err}");
        assert!(!table_exists(&db, "managed").await);
        assert_eq!(ids(&db).await, [1]);

        let err = tm
            .with_schema(&ManagedTable, async |_, _| Err::<(), _>(body_error()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("on purpose"), "{err}");
        assert!(!table_exists(&db, "managed").await);

        // A cleanup failure after a successful body is returned, and nothing is committed.
        let err = tm
            .with_schema(&UndroppableTable, async |tx, ()| {
                insert(tx, 3).await;
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!(code(&err), Some(SqlState::UNDEFINED_TABLE), "{err}");
        assert!(!table_exists(&db, "undroppable").await);
        assert_eq!(ids(&db).await, [1]);

        // When both fail, the body's error wins.
        let err = tm
            .with_schema(&UndroppableTable, async |_, ()| Err::<(), _>(body_error()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("on purpose"), "{err}");
        assert_clean(&db).await;
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_test_data_body_sees_the_data_which_is_gone_afterwards() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        exec(
            &db,
            "CREATE TABLE fixtures (id int PRIMARY KEY, label text NOT NULL)",
        )
        .await;
        with_items(&db).await;
        let tm = db.get_transaction_manager().await.unwrap();
        let data = Rows { table: "fixtures" };

        let labels = tm
            .with_test_data(&data, async |tx, ids| {
                assert_eq!(ids, &[1, 2]);
                insert(tx, 7).await;
                let rows = tx
                    .query("SELECT label FROM fixtures ORDER BY id", &[])
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>())
            })
            .await
            .unwrap();
        assert_eq!(labels, ["one", "two"]);
        assert_eq!(count(&db, "fixtures").await, 0);
        assert_eq!(ids(&db).await, [7]);

        // A body failing with a statement error (transaction aborted) still gets its error
        // back, and the data is gone.
        let err = tm
            .with_test_data(&data, async |tx, _| {
                insert(tx, 8).await;
                tx.execute("SELECT 1 / 0", &[]).await?;
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!(code(&err), Some(SqlState::DIVISION_BY_ZERO), "{err}");
        assert_eq!(count(&db, "fixtures").await, 0);
        assert_eq!(ids(&db).await, [7]);
        assert_clean(&db).await;
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_transaction_runs_schema_data_and_body_on_one_transaction() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        with_items(&db).await;
        let tm = db.get_transaction_manager().await.unwrap();
        let data = Rows { table: "managed" };

        let (labels, backend_pids) = tm
            .managed_transaction(Some(&ManagedTable), Some(&data), async |tx| {
                insert(tx, 1).await;
                let rows = tx
                    .query("SELECT label FROM managed ORDER BY id", &[])
                    .await?;
                let pid: i32 = tx.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
                Ok((
                    rows.iter()
                        .map(|r| r.get::<_, String>(0))
                        .collect::<Vec<_>>(),
                    pid,
                ))
            })
            .await
            .unwrap();
        assert_eq!(labels, ["one", "two"]);
        assert!(backend_pids > 0);
        assert!(!table_exists(&db, "managed").await);
        assert_eq!(ids(&db).await, [1]);

        let err = tm
            .managed_transaction(Some(&ManagedTable), Some(&data), async |tx| {
                insert(tx, 2).await;
                Err::<(), _>(body_error())
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("on purpose"), "{err}");
        assert!(!table_exists(&db, "managed").await);
        assert_eq!(ids(&db).await, [1]);

        // Only one of the two managers, and neither.
        tm.managed_transaction(Some(&ManagedTable), None::<&Rows>, async |tx| {
            let n: i64 = tx
                .query_one("SELECT count(*) FROM managed", &[])
                .await?
                .get(0);
            assert_eq!(n, 0);
            Ok(())
        })
        .await
        .unwrap();
        tm.managed_transaction(None::<&ManagedTable>, None::<&Rows>, async |tx| {
            insert(tx, 3).await;
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(ids(&db).await, [1, 3]);

        // A cleanup failure after a successful body is returned; nothing is committed.
        let err = tm
            .managed_transaction(Some(&UndroppableTable), None::<&Rows>, async |tx| {
                insert(tx, 4).await;
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!(code(&err), Some(SqlState::UNDEFINED_TABLE), "{err}");
        assert!(!table_exists(&db, "undroppable").await);
        assert_eq!(ids(&db).await, [1, 3]);
        assert_clean(&db).await;
    })
    .await
    .expect("test deadline");
}

/// The body's error wins even when the rollback to the body's savepoint and the cleanup fail
/// after it (the body lost the connection); the pool replaces the dead connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_body_error_survives_a_lost_connection() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        let tm = db.get_transaction_manager().await.unwrap();
        let data = Rows { table: "managed" };
        let err = tm
            .managed_transaction(Some(&ManagedTable), Some(&data), async |tx| {
                tx.batch_execute("SELECT pg_terminate_backend(pg_backend_pid())")
                    .await?;
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!(code(&err), Some(SqlState::ADMIN_SHUTDOWN), "{err}");
        assert!(!table_exists(&db, "managed").await);
        assert_clean(&db).await;
    })
    .await
    .expect("test deadline");
}

/// A panicking body propagates; the transaction, with the schema and data, is rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_body_panic_rolls_everything_back() {
    use futures_util::FutureExt;
    use std::panic::AssertUnwindSafe;

    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = single_connection().await;
        with_items(&db).await;
        let tm = db.get_transaction_manager().await.unwrap();
        let data = Rows { table: "managed" };
        let caught = AssertUnwindSafe(tm.managed_transaction(
            Some(&ManagedTable),
            Some(&data),
            async |tx| {
                insert(tx, 1).await;
                let n: i64 = tx
                    .query_one("SELECT count(*) FROM managed", &[])
                    .await?
                    .get(0);
                if n == 2 {
                    panic!("managed body panics on purpose");
                }
                Ok(())
            },
        ))
        .catch_unwind()
        .await;
        assert!(caught.is_err());
        assert!(!table_exists(&db, "managed").await);
        assert_eq!(ids(&db).await, Vec::<i32>::new());
        assert_clean(&db).await;
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_in_transaction_timeout_is_applied_to_pooled_connections() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let tdb = TestDatabase::create().await.unwrap();
        let show = async |db: &Database| -> String {
            let conn = db.connection().await.unwrap();
            conn.query_one("SHOW idle_in_transaction_session_timeout", &[])
                .await
                .unwrap()
                .get(0)
        };
        let db = Database::new(DatabaseSettings {
            idle_in_transaction_timeout: Some(Duration::from_secs(7)),
            ..tdb.settings()
        })
        .unwrap();
        assert_eq!(show(&db).await, "7s");
        let db = Database::new(DatabaseSettings {
            idle_in_transaction_timeout: Some(Duration::from_millis(1500)),
            ..tdb.settings()
        })
        .unwrap();
        assert_eq!(show(&db).await, "1500ms");
        let db = Database::new(tdb.settings()).unwrap();
        let default = DatabaseSettings::default()
            .idle_in_transaction_timeout
            .unwrap();
        assert_eq!(show(&db).await, format!("{}min", default.as_secs() / 60));

        // The backstop works: a transaction left idle is ended by the server, and the pool
        // replaces the dead connection.
        let db = Database::new(DatabaseSettings {
            idle_in_transaction_timeout: Some(Duration::from_millis(200)),
            max_pool_size: 1,
            pool_timeout: Duration::from_secs(5),
            ..tdb.settings()
        })
        .unwrap();
        let tx = db.transaction().await.unwrap();
        tx.execute("SELECT 1", &[]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        // The server ends the session with FATAL 25P03 (idle_in_transaction_session_timeout):
        // the connection is gone, and retrying the statement on it cannot help.
        let err = tx.execute("SELECT 1", &[]).await.unwrap_err();
        assert!(err.is_connection_lost(), "{err:?}");
        assert!(!err.is_retryable(), "{err:?}");
        assert!(!err.is_timeout(), "{err:?}");
        drop(tx);
        assert_clean(&db).await;
    })
    .await
    .expect("test deadline");
}
