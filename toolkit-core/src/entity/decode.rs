//! Reading columns and writing JSON parameters for derived entities, with errors that name the
//! table and field.

use std::error::Error as StdError;

use bytes::Buf;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::Row;

use super::param::{JsonParam, Param};
use super::EntityMeta;
use crate::{Error, Result};

fn field(meta: &EntityMeta, index: usize) -> String {
    meta.columns
        .get(index)
        .map_or_else(|| format!("#{index}"), |c| c.field.to_owned())
}

fn invalid(
    meta: &EntityMeta,
    index: usize,
    message: String,
    source: Option<crate::BoxError>,
) -> Error {
    Error::invalid_data(meta.display_name(), field(meta, index), message, source)
}

/// Reads field `index` (stored column `index` of `meta`) as `T` from row column `at[index]`; a
/// type mismatch or unexpected NULL names the field.
pub(crate) fn decode<'r, T: FromSql<'r>>(
    row: &'r Row,
    at: &[usize],
    index: usize,
    meta: &EntityMeta,
) -> Result<T> {
    let column = at
        .get(index)
        .copied()
        .ok_or_else(|| no_such_column(index, meta))?;
    row.try_get(column).map_err(|e| {
        let name = meta.columns.get(index).map_or("?", |c| c.name);
        let ty = row
            .columns()
            .get(column)
            .map(|c| c.type_().to_string())
            .unwrap_or_default();
        let message = match e.source() {
            Some(cause) => format!(
                "cannot read column {name:?} of type {ty} as {}: {cause}",
                std::any::type_name::<T>()
            ),
            None => format!(
                "cannot read column {name:?} of type {ty} as {}",
                std::any::type_name::<T>()
            ),
        };
        invalid(meta, index, message, Some(Box::new(e)))
    })
}

/// A field type the derive reads from a column: every `FromSql` type. Reading a row and the
/// schema check's `accepts` both go through this one trait, so a field type without `FromSql`
/// is reported once, not once per use.
#[diagnostic::on_unimplemented(
    message = "field type `{Self}` cannot be read from a column: it does not implement `FromSql`",
    label = "no `FromSql` for this field's type",
    note = "a type stored as JSON needs `#[entity(json)]` on its field"
)]
pub trait FromColumn<'r>: Sized {
    /// Reads the field; a type mismatch or unexpected NULL names the field.
    fn decode(row: &'r Row, at: &[usize], index: usize, meta: &EntityMeta) -> Result<Self>;

    /// Whether the field can read a column of type `ty`: `FromSql::accepts`.
    fn accepts(ty: &Type) -> bool;
}

impl<'r, T: FromSql<'r>> FromColumn<'r> for T {
    fn decode(row: &'r Row, at: &[usize], index: usize, meta: &EntityMeta) -> Result<Self> {
        decode(row, at, index, meta)
    }

    fn accepts(ty: &Type) -> bool {
        <T as FromSql<'r>>::accepts(ty)
    }
}

/// Whether a JSON field (typed or `Option`) can read a column of type `ty`: what
/// [`decode_json`] reads.
pub fn accepts_json(ty: &Type) -> bool {
    <RawJson<'_> as FromSql<'_>>::accepts(ty)
}

/// The raw text of a `json` or `jsonb` value.
struct RawJson<'a>(&'a [u8]);

impl<'a> FromSql<'a> for RawJson<'a> {
    fn from_sql(
        ty: &Type,
        mut raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn StdError + Sync + Send>> {
        if *ty == Type::JSONB {
            if raw.first() != Some(&1) {
                return Err("unsupported jsonb encoding version".into());
            }
            raw.advance(1);
        }
        Ok(RawJson(raw))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON || *ty == Type::JSONB
    }
}

/// Reads a JSON column into `T`; a document that does not fit `T` names the field.
pub fn decode_json<T: DeserializeOwned>(
    row: &Row,
    at: &[usize],
    index: usize,
    meta: &EntityMeta,
) -> Result<T> {
    let raw: RawJson<'_> = decode(row, at, index, meta)?;
    parse_json(raw.0, index, meta)
}

/// Reads a nullable JSON column: SQL NULL is `None`.
pub fn decode_json_opt<T: DeserializeOwned>(
    row: &Row,
    at: &[usize],
    index: usize,
    meta: &EntityMeta,
) -> Result<Option<T>> {
    let raw: Option<RawJson<'_>> = decode(row, at, index, meta)?;
    raw.map(|raw| parse_json(raw.0, index, meta)).transpose()
}

fn parse_json<T: DeserializeOwned>(raw: &[u8], index: usize, meta: &EntityMeta) -> Result<T> {
    serde_json::from_slice(raw).map_err(|e| {
        let message = format!(
            "stored JSON does not fit {}: {e}",
            std::any::type_name::<T>()
        );
        invalid(meta, index, message, Some(Box::new(e)))
    })
}

/// Serialises a JSON field into a parameter; failure names the field.
pub fn json_param<T: Serialize + ?Sized>(
    value: &T,
    index: usize,
    meta: &EntityMeta,
) -> Result<Param<'static>> {
    serde_json::to_vec(value)
        .map(|bytes| Param::Json(JsonParam(Some(bytes))))
        .map_err(|e| {
            invalid(
                meta,
                index,
                format!("cannot serialise to JSON: {e}"),
                Some(Box::new(e)),
            )
        })
}

/// Serialises a nullable JSON field: `None` binds SQL NULL, not the JSON `null`.
pub fn json_param_opt<T: Serialize>(
    value: Option<&T>,
    index: usize,
    meta: &EntityMeta,
) -> Result<Param<'static>> {
    match value {
        Some(value) => json_param(value, index, meta),
        None => Ok(Param::Json(JsonParam(None))),
    }
}

/// The error for a column index the entity does not have (a derive bug, never user input).
pub fn no_such_column(index: usize, meta: &EntityMeta) -> Error {
    invalid(
        meta,
        index,
        format!("the entity has no column #{index}"),
        None,
    )
}
