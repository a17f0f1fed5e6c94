//! One run of a [`Migrator`]: a transaction per migration, each taking the advisory lock,
//! reading the records, checking them against the files, and applying the next migration.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{Applied, Migration, Migrator, Report};
use crate::error::DisplayChain;
use crate::settings::begin_suffix;
use crate::sql::control::MigrationSql;
use crate::sql::Ident;
use crate::{Error, Pool, Result, Transaction};

/// A migration as its record says it was applied.
#[derive(Debug, Clone)]
pub(super) struct Record {
    pub(super) version: i64,
    pub(super) name: String,
    pub(super) checksum: String,
    pub(super) execution_ms: i64,
}

/// What to do next, decided from the files and the records.
#[derive(Debug)]
pub(super) enum Step<'m> {
    /// Nothing is pending; these records have no file.
    Done { missing: Vec<Applied> },
    /// Apply this migration next.
    Apply(&'m Migration),
}

pub(super) async fn run(migrator: &Migrator, pool: &Pool) -> Result<Report> {
    let table = migrator.table()?;
    let sql = MigrationSql::new(&table);
    let key = lock_key(&table);
    let mut applied = Vec::new();
    loop {
        let tx = begin(pool).await?;
        // Its own statement, before the records are read: under READ COMMITTED each statement
        // sees what was committed before it started, so the read after the wait sees the
        // records of whoever held the lock.
        let xid: i64 = tx.query_one(&sql.lock, &[&key]).await?.get(0);
        if tx
            .query_one(&sql.exists, &[&table.quoted()])
            .await?
            .get::<_, Option<String>>(0)
            .is_none()
        {
            tx.batch_execute(&sql.create).await?;
        }
        let records = tx
            .query(&sql.records, &[])
            .await?
            .iter()
            .map(|row| Record {
                version: row.get(0),
                name: row.get(1),
                checksum: row.get(2),
                execution_ms: row.get(3),
            })
            .collect::<Vec<_>>();
        match plan(migrator.migrations(), &records)? {
            Step::Done { missing } => {
                tx.commit().await?;
                return Ok(Report { applied, missing });
            }
            Step::Apply(migration) => {
                let duration = apply(tx, &sql, migration, xid).await?;
                applied.push(Applied {
                    version: migration.version(),
                    name: migration.name().to_owned(),
                    duration,
                });
            }
        }
    }
}

/// Runs `migration` and records it in `tx`, then commits; any failure names the file.
async fn apply(
    tx: Transaction,
    sql: &MigrationSql,
    migration: &Migration,
    xid: i64,
) -> Result<Duration> {
    let failed = |message: String, source: Option<Error>| Error::Migration {
        file: migration.file().to_owned(),
        version: Some(migration.version()),
        message,
        source: source.map(|e| Box::new(e) as crate::BoxError),
    };
    let started = Instant::now();
    if let Err(err) = tx.batch_execute(migration.sql()).await {
        return Err(failed(format!("failed: {}", DisplayChain(&err)), Some(err)));
    }
    let duration = started.elapsed();
    let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    // Recorded only while still inside the transaction the lock was taken in: a file that
    // committed or rolled back on its own would otherwise be recorded without (all of) its
    // changes, or outside the lock.
    let recorded = tx
        .query_opt(
            &sql.record,
            &[
                &migration.version(),
                &migration.name(),
                &migration.checksum(),
                &ms,
                &xid,
            ],
        )
        .await
        .map_err(|err| {
            failed(
                format!("cannot be recorded: {}", DisplayChain(&err)),
                Some(err),
            )
        })?;
    if recorded.is_none() {
        return Err(failed(
            "ended the transaction it runs in (a COMMIT or ROLLBACK in the file?): what it did \
             before that may be committed, and it is not recorded; migration files must not \
             control transactions"
                .into(),
            None,
        ));
    }
    tx.commit().await.map_err(|err| {
        failed(
            format!("failed at commit: {}", DisplayChain(&err)),
            Some(err),
        )
    })?;
    Ok(duration)
}

/// `BEGIN ISOLATION LEVEL READ COMMITTED` on a connection of its own: stated, because a
/// server default of REPEATABLE READ would read the records as of before the lock wait.
async fn begin(pool: &Pool) -> Result<Transaction> {
    let conn = pool.get().await?;
    let suffix = begin_suffix(conn.pg().limits.idle_in_transaction_local);
    Transaction::begin(
        conn,
        &format!("BEGIN ISOLATION LEVEL READ COMMITTED{suffix}"),
        crate::observe::OpSpan::transaction(),
    )
    .await
}

/// Checks every record against the files, then picks the first migration not recorded.
pub(super) fn plan<'m>(migrations: &'m [Migration], records: &[Record]) -> Result<Step<'m>> {
    let mut missing = Vec::new();
    for record in records {
        match migrations.iter().find(|m| m.version() == record.version) {
            Some(m) if m.checksum() != record.checksum => {
                return Err(Error::Migration {
                    file: m.file().to_owned(),
                    version: Some(m.version()),
                    message: format!(
                        "was edited after it was applied: applied with checksum {}, the file \
                         now has {}; revert the edit and add a new migration instead",
                        record.checksum,
                        m.checksum()
                    ),
                    source: None,
                });
            }
            Some(_) => {}
            None => missing.push(Applied {
                version: record.version,
                name: record.name.clone(),
                duration: Duration::from_millis(u64::try_from(record.execution_ms).unwrap_or(0)),
            }),
        }
    }
    let newest = records.iter().map(|r| r.version).max();
    let pending = migrations
        .iter()
        .find(|m| !records.iter().any(|r| r.version == m.version()));
    match (pending, newest) {
        (None, _) => Ok(Step::Done { missing }),
        (Some(m), Some(newest)) if m.version() < newest => Err(Error::Migration {
            file: m.file().to_owned(),
            version: Some(m.version()),
            message: format!(
                "is not applied, but version {newest} already is: applying it now would run it \
                 out of order; give it a version above {newest}"
            ),
            source: None,
        }),
        (Some(m), _) => Ok(Step::Apply(m)),
    }
}

/// The advisory lock of one record table: the first 8 bytes of SHA-256 over a fixed prefix
/// and the table name, so that migrators with different tables do not wait for each other and
/// the key is unlikely to meet an application's own advisory locks.
pub(super) fn lock_key(table: &Ident) -> i64 {
    let digest = Sha256::new()
        .chain_update(b"toolkit migrations\0")
        .chain_update(table.as_str().as_bytes())
        .finalize();
    let mut key = [0u8; 8];
    key.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(key)
}
