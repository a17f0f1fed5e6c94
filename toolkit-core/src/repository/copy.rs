//! Binary COPY of entities into a table.
//!
//! The driver's `BinaryCopyInWriter` hands the connection a 4 KiB message at a time, and each
//! hand-over is a wake-up of the connection task: for 100,000 rows that ping-pong, not the
//! encoding or the server, bounds the COPY. Rows are encoded here into much larger messages.

use std::pin::pin;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::SinkExt;
use tokio_postgres::types::{IsNull, ToSql, Type};
use tokio_postgres::Client;

use crate::entity::{Entity, EntitySql};
use crate::{Error, Result};

/// Large enough that hand-overs cost nothing next to encoding, small enough to stay in cache.
const MESSAGE_BYTES: usize = 256 * 1024;

const MAGIC: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// The exact types of `columns` of `target`, which the binary format needs (enums and domains
/// included).
pub(super) async fn column_types(
    client: &Client,
    target: &str,
    columns: &str,
) -> Result<Vec<Type>> {
    Ok(client
        .prepare(&format!("SELECT {columns} FROM {target} LIMIT 0"))
        .await?
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect())
}

/// Streams `values` by binary COPY into `target` (a quoted table name), the columns of
/// `insert_list` (of types `types`); returns the rows written. COPY is one statement: all rows
/// or none.
pub(super) async fn copy_rows<E: Entity>(
    client: &Client,
    target: &str,
    insert_list: &str,
    types: &[Type],
    sql: &EntitySql,
    values: &[E],
) -> Result<u64> {
    let fields = i16::try_from(types.len()).map_err(|_| too_wide::<E>())?;
    let mut sink = pin!(
        client
            .copy_in::<_, Bytes>(&format!(
                "COPY {target} ({insert_list}) FROM STDIN (FORMAT binary)"
            ))
            .await?
    );
    let mut buf = BytesMut::with_capacity(MESSAGE_BYTES + MESSAGE_BYTES / 4);
    buf.put_slice(MAGIC);
    buf.put_i32(0); // flags
    buf.put_i32(0); // header extension length
    for value in values {
        buf.put_i16(fields);
        for (&index, ty) in sql.insert_columns.iter().zip(types) {
            let param = value.param(index)?;
            let start = buf.len();
            buf.put_i32(0); // length, patched below
            let length = match param
                .to_sql_checked(ty, &mut buf)
                .map_err(|source| encode_error::<E>(index, source))?
            {
                IsNull::Yes => -1,
                IsNull::No => i32::try_from(buf.len() - start - 4)
                    .map_err(|_| encode_error::<E>(index, "value larger than 2 GiB".into()))?,
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

/// A value the driver refused to encode, named by its field.
fn encode_error<E: Entity>(
    index: usize,
    source: Box<dyn std::error::Error + Sync + Send>,
) -> Error {
    let column = &E::META.columns[index];
    Error::InvalidData {
        table: E::META.display_name(),
        field: column.field.to_owned(),
        message: format!(
            "cannot encode column \"{}\" for COPY: {source}",
            column.name
        ),
        source: Some(source),
    }
}

fn too_wide<E: Entity>() -> Error {
    Error::InvalidData {
        table: E::META.display_name(),
        field: String::new(),
        message: "more than 32,767 columns for COPY".into(),
        source: None,
    }
}
