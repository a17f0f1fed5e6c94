//! `create_bulk`: all or nothing whatever the size, by the fastest correct route; and
//! `insert_many`.

use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::{try_join, try_join_all};
use futures_util::stream::FuturesOrdered;
use futures_util::{StreamExt, TryFutureExt, TryStreamExt};
use tokio_postgres::types::ToSql;

use super::copy::{column_types, copy_rows};
use super::executor::{ExecutorRef, Handle};
use super::refs;
use crate::entity::{Entity, EntityMeta, EntitySql, Param};
use crate::sql::{quote_ident, Insert, MAX_PARAMS};
use crate::{Error, Result};

/// Above this many rows a binary COPY beats a multi-row VALUES (measured by the benchmark: the
/// parse and bind cost of VALUES grows with the statement, COPY streams).
const VALUES_MAX_ROWS: usize = 256;

pub(super) async fn create_bulk<E: Entity>(
    executor: ExecutorRef<'_>,
    values: &[E],
) -> Result<Vec<E>> {
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let sql = E::sql()?;
    let per_row = sql.insert_columns.len();
    if per_row == 0 {
        return Err(Error::InvalidData {
            table: E::META.display_name(),
            field: String::new(),
            message: "create_bulk needs at least one column that is not generated; use create"
                .into(),
            source: None,
        });
    }
    if values.len() <= VALUES_MAX_ROWS && values.len() * per_row <= MAX_PARAMS {
        let handle = executor.acquire().await?;
        values_insert(&handle, sql, values).await
    } else {
        // Temporary tables, COPY, INSERTs, COMMIT or DROP: nothing else may run between.
        let handle = executor.acquire_exclusive().await?;
        // A cancelled call would leave an open transaction or temporary tables in the session:
        // until the end is confirmed the connection is in doubt, and discarded if it comes back
        // that way.
        let guarded = handle.connection().filter(|_| !handle.in_transaction());
        if let Some(conn) = guarded {
            conn.set_in_doubt(true);
        }
        let stored = handle.deadline(copy_insert(&handle, sql, values)).await?;
        if let Some(conn) = guarded {
            conn.set_in_doubt(false);
        }
        Ok(stored)
    }
}

async fn values_insert<E: Entity>(
    handle: &Handle<'_>,
    sql: &EntitySql,
    values: &[E],
) -> Result<Vec<E>> {
    let meta = E::META;
    let names: Vec<&str> = sql
        .insert_columns
        .iter()
        .map(|&i| meta.columns[i].name)
        .collect();
    let all: Vec<&str> = meta.columns.iter().map(|c| c.name).collect();
    let statement = Insert::into(meta.table_ref())
        .columns(&names)
        .rows(values.len())
        .returning(&all)
        .build()?;
    let mut params: Vec<Param<'_>> = Vec::with_capacity(values.len() * names.len());
    for value in values {
        for &index in &sql.insert_columns {
            params.push(value.param(index)?);
        }
    }
    handle
        .query_map(statement.sql(), &refs(&params), |row| E::from_row(&row))
        .await
}

/// Binary COPY into temporary tables, then `INSERT ... SELECT ... RETURNING` from each, all in
/// one transaction: all rows or none. Rows come back in input order because each temporary
/// table is read in the order COPY wrote it, and the tables in input order.
///
/// The server materialises an `INSERT`'s `RETURNING` rows before sending the first, so with one
/// statement the client decodes only after the server has finished, and the server then idles.
/// Where the call owns the transaction (a connection checked out for it, or the caller's
/// transaction) the rows go into up to [`MAX_CHUNKS`] tables and the inserts are pipelined:
/// the server runs the next while the client decodes the rows of the previous.
async fn copy_insert<E: Entity>(
    handle: &Handle<'_>,
    sql: &EntitySql,
    values: &[E],
) -> Result<Vec<E>> {
    let meta = E::META;
    // A borrowed connection or a plain client may be inside a transaction we cannot see:
    // there a single statement is the only all-or-nothing unit we can vouch for.
    let (begin, chunks) = match handle {
        Handle::Owned(_) => (true, values.len() / MIN_CHUNK_ROWS),
        Handle::Transaction(_) => (false, values.len() / MIN_CHUNK_ROWS),
        _ => (false, 1),
    };
    let parts: Vec<&[E]> = values
        .chunks(values.len().div_ceil(chunks.clamp(1, MAX_CHUNKS)))
        .collect();
    let temps = parts
        .iter()
        .map(|_| temp_table())
        .collect::<Result<Vec<_>>>()?;
    let insert_list = insert_list(meta, &sql.insert_columns)?;
    let all: Vec<usize> = (0..meta.columns.len()).collect();
    let all_list = self::insert_list(meta, &all)?;
    let client = handle.client();

    let mut setup = String::from(if begin { "BEGIN;" } else { "" });
    for temp in &temps {
        // ON COMMIT DROP outside a transaction block would drop the table at once.
        let on_commit = if begin { " ON COMMIT DROP" } else { "" };
        setup.push_str(&format!(
            "CREATE TEMPORARY TABLE {temp}{on_commit} AS SELECT {insert_list} FROM {table} WITH NO DATA;",
            table = sql.table
        ));
    }
    client.batch_execute(&setup).await?;
    let outcome = async {
        let texts: Vec<String> = temps
            .iter()
            .map(|temp| {
                format!(
                    "INSERT INTO {table} ({insert_list}) SELECT {insert_list} FROM {temp} RETURNING {all_list}",
                    table = sql.table
                )
            })
            .collect();
        // Prepared together with the COPY's column types: one round trip for all of them.
        let (types, inserts) = try_join(
            column_types(client, &temps[0], &insert_list),
            try_join_all(texts.iter().map(|text| client.prepare(text))).err_into(),
        )
        .await?;
        for (part, temp) in parts.iter().zip(&temps) {
            copy_rows(client, temp, &insert_list, &types, sql, part).await?;
        }
        // Polling the set sends every insert at once; the answers are taken in order.
        let mut answers: FuturesOrdered<_> = inserts
            .iter()
            .map(|insert| client.query_raw(insert, std::iter::empty::<&(dyn ToSql + Sync)>()))
            .collect();
        let mut stored = Vec::with_capacity(values.len());
        while let Some(answer) = answers.next().await {
            let mut rows = pin!(answer?);
            while let Some(row) = rows.try_next().await? {
                stored.push(E::from_row(&row)?);
            }
        }
        Ok::<_, Error>(stored)
    }
    .await;
    let finish = match (begin, outcome.is_ok()) {
        (true, true) => "COMMIT".to_owned(),
        (true, false) => "ROLLBACK".to_owned(),
        // Inside a failed transaction the DROP fails too; the tables then live as long as the
        // session, holding no committed rows.
        (false, _) => format!("DROP TABLE IF EXISTS {}", temps.join(", ")),
    };
    let finished = client.batch_execute(&finish).await;
    let rows = outcome?;
    finished?;
    Ok(rows)
}

/// Below this many rows per chunk, another temporary table and round trip cost more than the
/// overlap gains.
const MIN_CHUNK_ROWS: usize = 10_000;
/// Enough chunks that the client decodes all but the last while the server works.
const MAX_CHUNKS: usize = 8;

/// A fresh, quoted `pg_temp` table name.
fn temp_table() -> Result<String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = format!("toolkit_bulk_{}", COUNTER.fetch_add(1, Ordering::Relaxed));
    Ok(format!("pg_temp.{}", quote_ident(&name)?))
}

/// `insert_many`: binary COPY straight into the table, returning only the count.
pub(super) async fn insert_many<E: Entity>(executor: ExecutorRef<'_>, values: &[E]) -> Result<u64> {
    if values.is_empty() {
        return Ok(0);
    }
    let sql = E::sql()?;
    let insert_list = insert_list(E::META, &sql.insert_columns)?;
    // COPY holds the connection in copy mode: nothing may be pipelined beside it.
    let handle = executor.acquire_exclusive().await?;
    handle
        .deadline(async {
            let client = handle.client();
            let types = column_types(client, &sql.table, &insert_list).await?;
            copy_rows(client, &sql.table, &insert_list, &types, sql, values).await
        })
        .await
}

/// The quoted column list of `columns`, e.g. `"name", "email"`.
fn insert_list(meta: &EntityMeta, columns: &[usize]) -> Result<String> {
    let mut list = String::new();
    for (n, &index) in columns.iter().enumerate() {
        if n > 0 {
            list.push_str(", ");
        }
        list.push_str(&quote_ident(meta.columns[index].name)?);
    }
    Ok(list)
}
