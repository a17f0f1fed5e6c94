//! `create_bulk`: one atomic `INSERT` whatever the size, by the fastest correct route.

use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::TryStreamExt;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::ToSql;

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
        // Temporary table, COPY, INSERT, DROP: nothing else may run on the connection between.
        let handle = executor.acquire_exclusive().await?;
        // A cancelled call would leave the temporary table in the session: until the DROP is
        // confirmed the connection is in doubt, and discarded if it comes back that way.
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

/// Binary COPY into a temporary table, then one `INSERT ... SELECT ... RETURNING`: the final
/// insert is a single statement, so it is all or nothing in or out of a transaction. Rows come
/// back in input order because the temporary table is read in the order COPY wrote it.
async fn copy_insert<E: Entity>(
    handle: &Handle<'_>,
    sql: &EntitySql,
    values: &[E],
) -> Result<Vec<E>> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let meta = E::META;
    let temp = quote_ident(&format!(
        "toolkit_bulk_{}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))?;
    let insert_list = insert_list(meta, &sql.insert_columns)?;
    let all: Vec<usize> = (0..meta.columns.len()).collect();
    let all_list = self::insert_list(meta, &all)?;
    let client = handle.client();
    let create = format!(
        "CREATE TEMPORARY TABLE pg_temp.{temp} AS SELECT {insert_list} FROM {table} WITH NO DATA",
        table = sql.table
    );
    client.batch_execute(&create).await?;
    let outcome = async {
        copy_rows(handle, &format!("pg_temp.{temp}"), &insert_list, sql, values).await?;
        let insert = format!(
            "INSERT INTO {table} ({insert_list}) SELECT {insert_list} FROM pg_temp.{temp} RETURNING {all_list}",
            table = sql.table
        );
        let mut stream = pin!(client.query_raw(&insert, std::iter::empty::<&(dyn ToSql + Sync)>()).await?);
        let mut stored = Vec::with_capacity(values.len());
        while let Some(row) = stream.try_next().await? {
            stored.push(E::from_row(&row)?);
        }
        Ok::<_, Error>(stored)
    }
    .await;
    // Inside a failed transaction the DROP fails too; the transaction's end removes nothing,
    // but the table lives only as long as the session and holds no rows that were committed.
    let dropped = client
        .batch_execute(&format!("DROP TABLE IF EXISTS pg_temp.{temp}"))
        .await;
    let rows = outcome?;
    dropped?;
    Ok(rows)
}

/// Streams `values` by binary COPY into `target` (a quoted table name), the columns of
/// `insert_list`; returns the rows written. COPY is one statement: all rows or none.
async fn copy_rows<E: Entity>(
    handle: &Handle<'_>,
    target: &str,
    insert_list: &str,
    sql: &EntitySql,
    values: &[E],
) -> Result<u64> {
    let client = handle.client();
    // The binary format needs each column's exact type, including enums and domains.
    let types: Vec<_> = client
        .prepare(&format!("SELECT {insert_list} FROM {target} LIMIT 0"))
        .await?
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    let sink = client
        .copy_in(&format!(
            "COPY {target} ({insert_list}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &types));
    let mut row: Vec<Param<'_>> = Vec::with_capacity(sql.insert_columns.len());
    for value in values {
        row.clear();
        for &index in &sql.insert_columns {
            row.push(value.param(index)?);
        }
        let bound: Vec<&(dyn ToSql + Sync)> = refs(&row);
        writer.as_mut().write(&bound).await?;
    }
    Ok(writer.finish().await?)
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
        .deadline(copy_rows(&handle, &sql.table, &insert_list, sql, values))
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
