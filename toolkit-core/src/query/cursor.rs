//! Keyset pages: a [`Cursor`] holds the last row's order-by values and key, as the server sent
//! them, and binds them back as parameters of the next page's query. It is opaque and
//! round-trips through a string; a string that was tampered with is `Error::InvalidData`,
//! never SQL.

use std::error::Error as StdError;
use std::fmt;
use std::str::FromStr;

use bytes::BytesMut;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};

use crate::{Error, Result};

/// One page of rows and the cursor of the next one (`None` after the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<E> {
    /// The rows of this page, in the query's order.
    pub items: Vec<E>,
    /// Where the next page starts; `None` when this page is the last.
    pub next: Option<Cursor>,
}

/// Where a page starts: the values of the previous page's last row. Opaque; round-trips through
/// [`Display`](fmt::Display) and [`FromStr`] (hex text, safe in URLs and cookies), with a
/// checksum so that an edited or truncated string is refused ([`Error::InvalidData`]); its
/// values are only ever bound as parameters of the same query shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// The ordering the cursor was made for: per order-by item (the key last), its column
    /// index, direction and NULLs placement (see `Find::page`).
    pub(crate) columns: Vec<u32>,
    pub(crate) values: Vec<RawValue>,
}

/// A column value as the server sent it (binary format), with its type's OID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RawValue {
    pub(crate) oid: u32,
    pub(crate) bytes: Option<Vec<u8>>,
}

impl<'a> FromSql<'a> for RawValue {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(RawValue {
            oid: ty.oid(),
            bytes: Some(raw.to_vec()),
        })
    }

    fn from_sql_null(ty: &Type) -> std::result::Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(RawValue {
            oid: ty.oid(),
            bytes: None,
        })
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

impl ToSql for RawValue {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        // The query checks the types before it runs; this is the last line of defence.
        if !crate::repository::same_format(ty, self.oid) {
            return Err(format!("cursor value of type OID {} bound to {ty}", self.oid).into());
        }
        match &self.bytes {
            Some(bytes) => {
                out.extend_from_slice(bytes);
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

const VERSION: u8 = 2;

/// 64-bit FNV-1a: a checksum against edits and truncation, stable across builds and
/// processes (so cursors survive a restart), not a secret.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = vec![VERSION];
        push_len(&mut bytes, self.columns.len());
        for column in &self.columns {
            bytes.extend_from_slice(&column.to_be_bytes());
        }
        push_len(&mut bytes, self.values.len());
        for value in &self.values {
            bytes.extend_from_slice(&value.oid.to_be_bytes());
            match &value.bytes {
                None => bytes.push(0),
                Some(raw) => {
                    bytes.push(1);
                    push_len(&mut bytes, raw.len());
                    bytes.extend_from_slice(raw);
                }
            }
        }
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum.to_be_bytes());
        for byte in bytes {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

fn push_len(bytes: &mut Vec<u8>, len: usize) {
    bytes.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
}

impl FromStr for Cursor {
    type Err = Error;

    fn from_str(text: &str) -> Result<Cursor> {
        let invalid = || {
            Error::invalid_data(
                "",
                "cursor",
                "not a cursor made by a page of this query",
                None,
            )
        };
        if !text.len().is_multiple_of(2) || text.len() > 2 * MAX_CURSOR_BYTES {
            return Err(invalid());
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(invalid)?;
        let Some(split) = bytes.len().checked_sub(8) else {
            return Err(invalid());
        };
        let (body, sum) = bytes.split_at(split);
        if sum != checksum(body).to_be_bytes() {
            return Err(invalid());
        }
        let mut reader = Reader(body);
        if reader.byte()? != VERSION {
            return Err(invalid());
        }
        let columns = (0..reader.len()?)
            .map(|_| reader.u32())
            .collect::<Result<Vec<_>>>()?;
        let values = (0..reader.len()?)
            .map(|_| {
                let oid = reader.u32()?;
                let bytes = match reader.byte()? {
                    0 => None,
                    1 => {
                        let len = reader.len()?;
                        Some(reader.take(len)?.to_vec())
                    }
                    _ => return Err(invalid()),
                };
                Ok(RawValue { oid, bytes })
            })
            .collect::<Result<Vec<_>>>()?;
        if !reader.0.is_empty() || columns.len() != values.len() {
            return Err(invalid());
        }
        Ok(Cursor { columns, values })
    }
}

/// Cursors are small (a few order-by values); anything larger is not one of ours.
const MAX_CURSOR_BYTES: usize = 64 * 1024;

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.0.len() < n {
            return Err(Error::invalid_data(
                "",
                "cursor",
                "the cursor is truncated",
                None,
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        let mut word = [0; 4];
        word.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(word))
    }

    fn len(&mut self) -> Result<usize> {
        let len = usize::try_from(self.u32()?).unwrap_or(usize::MAX);
        if len > MAX_CURSOR_BYTES {
            return Err(Error::invalid_data(
                "",
                "cursor",
                "the cursor is malformed",
                None,
            ));
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_string_and_rejects_tampering() {
        let cursor = Cursor {
            columns: vec![3, 0],
            values: vec![
                RawValue {
                    oid: 25,
                    bytes: Some(b"it's \"x\"".to_vec()),
                },
                RawValue {
                    oid: 20,
                    bytes: None,
                },
            ],
        };
        let text = cursor.to_string();
        assert!(text.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(text.parse::<Cursor>().unwrap(), cursor);
        for bad in [
            "",
            "zz",
            "0",
            &text[..text.len() - 2],
            &format!("{text}00"),
            "02",
        ] {
            let err = bad.parse::<Cursor>().unwrap_err();
            assert!(
                matches!(err, Error::InvalidData { ref field, .. } if field == "cursor"),
                "{bad}: {err}"
            );
        }
    }
}
