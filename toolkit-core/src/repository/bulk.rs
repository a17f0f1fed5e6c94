//! `create_bulk`: all or nothing whatever the size, by the fastest correct route; and
//! `insert_many`.

use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::{try_join, try_join_all, BoxFuture};
use futures_util::stream::FuturesOrdered;
use futures_util::FutureExt;
use futures_util::{StreamExt, TryStreamExt};
use tokio_postgres::types::{ToSql, Type};

use super::bind::{refs, Bound};
use super::copy::{column_types, copy_rows};
use super::executor::ExecutorRef;
use super::statements::{table_ref, EntitySql};
use crate::entity::Entity;
use crate::observe::Op;
use crate::pool::{InDoubt, Lease, Session};
use crate::sql::{control, Insert, TableRef, MAX_PARAMS};
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
    let sql = EntitySql::of::<E>()?;
    let per_row = sql.insert_columns.len();
    if per_row == 0 {
        return Err(Error::invalid_data(
            E::META.display_name(),
            "",
            "create_bulk needs at least one column that is not generated; use create",
            None,
        ));
    }
    if values.len() <= VALUES_MAX_ROWS && values.len() * per_row <= MAX_PARAMS {
        let session = executor.session(Op::insert::<E>()).await?;
        values_insert(&session, sql, values).await
    } else {
        // Temporary tables, COPY, INSERTs, COMMIT or DROP: nothing else may run between.
        let session = executor.session_exclusive(Op::insert::<E>()).await?;
        // A cancelled call would leave an open transaction or temporary tables in the session:
        // until the end is confirmed the connection is in doubt, and discarded if it comes back
        // that way. In the caller's transaction, the caller's guard covers it.
        let in_doubt = match session.is_in_transaction() {
            true => None,
            false => session.in_doubt(),
        };
        session
            .run(copy_insert(&session, in_doubt, sql, values))
            .await
    }
}

async fn values_insert<E: Entity>(
    session: &Session<'_>,
    sql: &EntitySql,
    values: &[E],
) -> Result<Vec<E>> {
    let statement = Insert::into(table_ref(E::META))
        .columns(&sql.insert_names)
        .rows(values.len())
        .returning(&sql.all_names)
        .build()?;
    let mut params: Vec<Bound<'_>> = Vec::with_capacity(values.len() * sql.insert_columns.len());
    for value in values {
        params.extend(Bound::fields(value, &sql.insert_columns)?);
    }
    session
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
///
/// `in_doubt` is settled once the server confirmed the end (`COMMIT`, `ROLLBACK` or the
/// tables' `DROP`), whether the insert succeeded or not: a failed insert leaves a clean
/// connection.
async fn copy_insert<E: Entity>(
    session: &Session<'_>,
    in_doubt: Option<InDoubt>,
    sql: &EntitySql,
    values: &[E],
) -> Result<Vec<E>> {
    let table = table_ref(E::META);
    // A borrowed connection or a plain client may be inside a transaction we cannot see:
    // there a single statement is the only all-or-nothing unit we can vouch for.
    let (begin, chunks) = match session.lease() {
        Lease::Owned(_) => (true, values.len() / MIN_CHUNK_ROWS),
        _ if session.is_in_transaction() => (false, values.len() / MIN_CHUNK_ROWS),
        _ if session.unnamed() => return Err(copy_outside_transaction::<E>()),
        _ => (false, 1),
    };
    let parts: Vec<&[E]> = values
        .chunks(values.len().div_ceil(chunks.clamp(1, MAX_CHUNKS)))
        .collect();
    let names: Vec<String> = parts.iter().map(|_| temp_name()).collect();
    let temps: Vec<TableRef<'_>> = names.iter().map(|n| control::temp_table(n)).collect();

    let mut setup = String::new();
    if begin {
        let idle = session
            .connection()
            .and_then(|c| c.pg().limits.idle_in_transaction_local);
        setup.push_str("BEGIN");
        setup.push_str(&crate::settings::begin_suffix(idle));
        setup.push(';');
    }
    for temp in &temps {
        // ON COMMIT DROP outside a transaction block would drop the table at once.
        setup.push_str(&control::create_temp_like(
            *temp,
            begin,
            &sql.insert_names,
            table,
        )?);
        setup.push(';');
    }
    // In `Unnamed` mode the column types are learned before BEGIN: learning needs a server
    // connection of its own, which callers each holding one could wait for for ever.
    let learned = match session.unnamed() {
        true => match column_types(session, table, &sql.insert_names).await {
            Ok(types) => Some(types),
            Err(err) => {
                // Nothing was sent on this connection yet.
                if let Some(in_doubt) = in_doubt {
                    in_doubt.settle();
                }
                return Err(err);
            }
        },
        false => None,
    };
    let outcome = async {
        // Inside the block: a failed setup still gets its `ROLLBACK`/`DROP` below.
        session.batch_execute(&setup).await?;
        let texts = temps
            .iter()
            .map(|temp| control::insert_select(table, &sql.insert_names, *temp, &sql.all_names))
            .collect::<Result<Vec<_>>>()?;
        // The temporary tables have the table's column types; described on the table, the
        // types are learned once (`Unnamed` mode) whatever the temporary tables are called.
        let client = session.client();
        let no_params = || std::iter::empty::<&(dyn ToSql + Sync)>();
        // Polling the set sends every insert at once; the answers are taken in order.
        let mut answers: FuturesOrdered<BoxFuture<'_, _>> = FuturesOrdered::new();
        let types = if let Some(types) = learned {
            for (part, temp) in parts.iter().zip(&temps) {
                copy_rows(session, *temp, &types, sql, part).await?;
            }
            // No parameters: each insert is one unnamed round trip.
            for text in &texts {
                let unnamed = std::iter::empty::<(&(dyn ToSql + Sync), Type)>();
                answers.push_back(client.query_typed_raw(text, unnamed).boxed());
            }
            types
        } else {
            // Prepared together with the COPY's column types: one round trip for all of them.
            let (types, inserts) =
                try_join(column_types(session, table, &sql.insert_names), async {
                    Ok(try_join_all(texts.iter().map(|text| client.prepare(text))).await?)
                })
                .await?;
            for (part, temp) in parts.iter().zip(&temps) {
                copy_rows(session, *temp, &types, sql, part).await?;
            }
            for insert in inserts {
                answers
                    .push_back(async move { client.query_raw(&insert, no_params()).await }.boxed());
            }
            types
        };
        drop(types);
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
        (false, _) => control::drop_tables(&temps)?,
    };
    let finished = session.batch_execute(&finish).await;
    if finished.is_ok() {
        if let Some(in_doubt) = in_doubt {
            in_doubt.settle();
        }
    }
    let rows = outcome?;
    finished?;
    Ok(rows)
}

/// Below this many rows per chunk, another temporary table and round trip cost more than the
/// overlap gains.
const MIN_CHUNK_ROWS: usize = 10_000;
/// Enough chunks that the client decodes all but the last while the server works.
const MAX_CHUNKS: usize = 8;

/// A fresh name for a temporary table of this session.
fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("toolkit_bulk_{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// `insert_many`: binary COPY straight into the table, returning only the count.
pub(super) async fn insert_many<E: Entity>(executor: ExecutorRef<'_>, values: &[E]) -> Result<u64> {
    if values.is_empty() {
        return Ok(0);
    }
    let sql = EntitySql::of::<E>()?;
    let table = table_ref(E::META);
    // COPY holds the connection in copy mode: nothing may be pipelined beside it.
    let session = executor.session_exclusive(Op::copy::<E>()).await?;
    // The driver prepares a COPY by name: in `Unnamed` mode that is only safe inside a
    // transaction, which pins one server connection behind a pooler until the statement is
    // closed.
    let own_transaction = session.unnamed() && !session.is_in_transaction();
    if own_transaction && !matches!(session.lease(), Lease::Owned(_)) {
        return Err(copy_outside_transaction::<E>());
    }
    session
        .run(async {
            // Learned before BEGIN: learning needs a server connection of its own.
            let types = column_types(&session, table, &sql.insert_names).await?;
            let in_doubt = own_transaction.then(|| session.in_doubt()).flatten();
            if own_transaction {
                session.batch_execute("BEGIN").await?;
            }
            let copied = copy_rows(&session, table, &types, sql, values).await;
            if own_transaction {
                let end = if copied.is_ok() { "COMMIT" } else { "ROLLBACK" };
                session.batch_execute(end).await?;
                if let Some(in_doubt) = in_doubt {
                    in_doubt.settle();
                }
            }
            copied
        })
        .await
}

/// A COPY on a borrowed connection in `Unnamed` mode: the toolkit cannot open a transaction
/// there (the caller may be inside one it cannot see), and without one the COPY's statement
/// could be left on a pooler's server connection.
fn copy_outside_transaction<E: Entity>() -> Error {
    Error::invalid_data(
        E::META.display_name(),
        "",
        "in StatementMode::Unnamed a COPY (insert_many, create_bulk above 256 rows) needs a \
         transaction: run it on a Database, a Pool or a Transaction, not a borrowed Connection",
        None,
    )
}
