//! Binary COPY of entities into a table.
//!
//! The driver's `BinaryCopyInWriter` hands the connection a 4 KiB message at a time, and each
//! hand-over is a wake-up of the connection task: for 100,000 rows that ping-pong, not the
//! encoding or the server, bounds the COPY. Rows are encoded here into much larger messages.

use std::pin::pin;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::SinkExt;
use tokio_postgres::types::{IsNull, Type};

use super::bind::Bound;
use super::statements::EntitySql;
use crate::entity::Entity;
use crate::pool::Session;
use crate::sql::{control, TableRef};
use crate::{Error, Result};

/// Large enough that hand-overs cost nothing next to encoding, small enough to stay in cache.
const MESSAGE_BYTES: usize = 256 * 1024;

const MAGIC: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// The exact types of `columns` of `target`, which the binary format needs (enums and domains
/// included).
pub(super) async fn column_types(
    session: &Session<'_>,
    target: TableRef<'_>,
    columns: &[&str],
) -> Result<Vec<Type>> {
    let describe = control::describe_columns(target, columns)?;
    Ok(session
        .describe(&describe)
        .await?
        .columns
        .iter()
        .map(|(_, ty)| ty.clone())
        .collect())
}

/// Streams `values` by binary COPY into `target`, the insert columns of `sql` (of types
/// `types`); returns the rows written. COPY is one statement: all rows or none.
pub(super) async fn copy_rows<E: Entity>(
    session: &Session<'_>,
    target: TableRef<'_>,
    types: &[Type],
    sql: &EntitySql,
    values: &[E],
) -> Result<u64> {
    let table = E::META.display_name();
    let fields = i16::try_from(types.len()).map_err(|_| {
        Error::invalid_data(
            table.as_str(),
            "",
            "more than 32,767 columns for COPY",
            None,
        )
    })?;
    let statement = control::copy_in_binary(target, &sql.insert_names)?;
    let client = session.client();
    let mut sink = pin!(client.copy_in::<_, Bytes>(&statement).await?);
    let mut buf = BytesMut::with_capacity(MESSAGE_BYTES + MESSAGE_BYTES / 4);
    buf.put_slice(MAGIC);
    buf.put_i32(0); // flags
    buf.put_i32(0); // header extension length
    for value in values {
        buf.put_i16(fields);
        for (&index, ty) in sql.insert_columns.iter().zip(types) {
            let param = Bound::field(value, index)?;
            let start = buf.len();
            buf.put_i32(0); // length, patched below
            let length = match param
                .encode(ty, &mut buf)
                .map_err(|cause| Error::from_encoding(&table, cause))?
            {
                IsNull::Yes => -1,
                IsNull::No => i32::try_from(buf.len() - start - 4).map_err(|_| {
                    let field = E::META.columns.get(index).map_or("", |c| c.field);
                    Error::invalid_data(table.as_str(), field, "value larger than 2 GiB", None)
                })?,
            };
            buf[start..start + 4].copy_from_slice(&length.to_be_bytes());
        }
        if buf.len() >= MESSAGE_BYTES {
            sink.send(buf.split().freeze()).await?;
        }
    }
    buf.put_i16(-1); // trailer
    sink.send(buf.split().freeze()).await?;
    Ok(sink.as_mut().finish().await?)
}
