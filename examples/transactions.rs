//! Transactions: commit and rollback, savepoints, isolation levels, `run_in_transaction` with
//! retry on serialization failures, and a managed transaction with a schema and test data.
//!
//! Uses the server of `DATABASE_URL` (or the `PG*` variables) when it is set; otherwise it
//! starts a throwaway PostgreSQL cluster (needs the server binaries, e.g.
//! `apt-get install postgresql`). It drops its tables at the end (and any left by an
//! interrupted run at the start), so it can run again and again.
//!
//! ```text
//! cargo run --example transactions
//! ```

use std::sync::atomic::{AtomicU32, Ordering};

use toolkit::{
    DataManager, Database, DatabaseSettings, IsolationLevel, Result, RetryPolicy, SchemaManager,
    Transaction,
};

#[path = "support/mod.rs"]
mod support;

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    // An application writes `let settings = DatabaseSettings::from_env()?;` here. The cluster,
    // when one was started, lives until the end of main: dropping it stops and removes it.
    let (settings, _cluster) = support::settings().await?;
    let db = Database::new(DatabaseSettings {
        min_pool_size: 1,
        max_pool_size: 4,
        ..settings
    })?;
    db.init_db().await?;
    db.connection()
        .await?
        .batch_execute(
            "DROP TABLE IF EXISTS example_accounts;
             CREATE TABLE example_accounts (id int PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL)",
        )
        .await?;

    // Commit, rollback, and a guard dropped without either (which rolls back).
    let tx = db.transaction().await?;
    tx.execute(
        "INSERT INTO example_accounts VALUES (1, 'ada', 100), (2, 'grace', 50)",
        &[],
    )
    .await?;
    tx.commit().await?;

    let tx = db.transaction().await?;
    tx.execute("UPDATE example_accounts SET balance = 0", &[])
        .await?;
    tx.rollback().await?;
    {
        let tx = db.transaction().await?;
        tx.execute("DELETE FROM example_accounts", &[]).await?;
        // Dropped here: the delete is rolled back before the connection is reused.
    }
    println!(
        "after commit, rollback and drop: {:?}",
        balances(&db).await?
    );

    // Savepoints keep the outer work when the inner work is undone.
    let mut tx = db.transaction().await?;
    tx.execute(
        "UPDATE example_accounts SET balance = balance - 10 WHERE id = 1",
        &[],
    )
    .await?;
    {
        let sp = tx.savepoint("bonus").await?;
        sp.execute(
            "UPDATE example_accounts SET balance = balance + 1000 WHERE id = 2",
            &[],
        )
        .await?;
        // Changed our mind: dropping `sp` (or `sp.rollback()`) undoes only the bonus.
    }
    tx.execute(
        "UPDATE example_accounts SET balance = balance + 10 WHERE id = 2",
        &[],
    )
    .await?;
    tx.commit().await?;
    println!(
        "after a transfer with an abandoned savepoint: {:?}",
        balances(&db).await?
    );

    // A statement error aborts the transaction; committing it then reports the error instead
    // of silently rolling back.
    let tx = db.transaction().await?;
    tx.execute(
        "UPDATE example_accounts SET balance = balance + 1 WHERE id = 1",
        &[],
    )
    .await?;
    if let Err(err) = tx.execute("SELECT 1 / 0", &[]).await {
        println!("statement failed: {err}");
    }
    if let Err(err) = tx.commit().await {
        println!(
            "commit refused: {err} (SQLSTATE {})",
            err.code().map_or("none", |c| c.code())
        );
    }

    // `run_in_transaction`: commit on Ok, roll back on Err or panic, rerun on 40001/40P01.
    let total: i64 = db
        .run_in_transaction(async |tx| {
            Ok(tx
                .query_one("SELECT sum(balance)::bigint FROM example_accounts", &[])
                .await?
                .get(0))
        })
        .await?;
    println!("total balance: {total}");

    // Two serializable transfers running at once: the server fails one with 40001, and `run`
    // reruns it under the retry policy.
    let attempts = std::sync::Arc::new(AtomicU32::new(0));
    let transfers: Vec<_> = [(1, 2, 5_i64), (2, 1, 7_i64)]
        .into_iter()
        .map(|(from, to, amount)| {
            let (db, attempts) = (db.clone(), attempts.clone());
            // `async move`: a closure handed to `tokio::spawn` must own what it captures.
            tokio::spawn(async move {
                db.build_transaction()
                    .isolation_level(IsolationLevel::Serializable)
                    .run(&RetryPolicy::fast(5), async move |tx| {
                        attempts.fetch_add(1, Ordering::Relaxed);
                        tx.execute(
                            "UPDATE example_accounts SET balance = balance - $2 WHERE id = $1",
                            &[&from, &amount],
                        )
                        .await?;
                        tx.execute(
                            "UPDATE example_accounts SET balance = balance + $2 WHERE id = $1",
                            &[&to, &amount],
                        )
                        .await?;
                        Ok(())
                    })
                    .await
            })
        })
        .collect();
    for transfer in transfers {
        transfer.await??;
    }
    println!(
        "two serializable transfers took {} attempt(s): {:?}",
        attempts.load(Ordering::Relaxed),
        balances(&db).await?
    );

    // A managed transaction: schema, data and body on one connection in one transaction; the
    // schema and data are gone afterwards, whatever the body did.
    let tm = db.get_transaction_manager().await?;
    let report = tm
        .managed_transaction(Some(&AuditSchema), Some(&AuditRows), async |tx| {
            let n: i64 = tx
                .query_one("SELECT count(*) FROM example_audit", &[])
                .await?
                .get(0);
            Ok(format!("the body saw {n} audit rows"))
        })
        .await?;
    let left: bool = db
        .connection()
        .await?
        .query_one("SELECT to_regclass('example_audit') IS NOT NULL", &[])
        .await?
        .get(0);
    println!("{report}; the audit table still exists afterwards: {left}");

    db.connection()
        .await?
        .batch_execute("DROP TABLE example_accounts")
        .await?;
    db.cleanup().await;
    println!("done");
    Ok(())
}

async fn balances(db: &Database) -> Result<Vec<(String, i64)>> {
    let rows = db
        .connection()
        .await?
        .query(
            "SELECT owner, balance FROM example_accounts ORDER BY id",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Creates and drops the table a managed transaction works on.
struct AuditSchema;

impl SchemaManager for AuditSchema {
    type Schema = ();

    async fn create_schema(&self, tx: &Transaction) -> Result<()> {
        tx.batch_execute("CREATE TABLE example_audit (id int PRIMARY KEY, note text NOT NULL)")
            .await
    }

    async fn drop_schema(&self, tx: &Transaction) -> Result<()> {
        tx.batch_execute("DROP TABLE example_audit").await
    }
}

/// Inserts the rows the body expects and removes them again.
struct AuditRows;

impl DataManager for AuditRows {
    type Data = u64;

    async fn setup_data(&self, tx: &Transaction) -> Result<u64> {
        tx.execute(
            "INSERT INTO example_audit VALUES (1, 'opened'), (2, 'checked')",
            &[],
        )
        .await
    }

    async fn cleanup_data(&self, tx: &Transaction) -> Result<()> {
        tx.execute("DELETE FROM example_audit", &[]).await?;
        Ok(())
    }
}
