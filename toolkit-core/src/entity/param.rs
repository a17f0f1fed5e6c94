//! Statement parameters of an entity: borrowed values, or JSON serialised up front.

use std::error::Error as StdError;
use std::fmt;

use bytes::BufMut;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

/// One bound parameter.
#[derive(Debug)]
pub enum Param<'a> {
    /// A value the driver encodes itself.
    Ref(&'a (dyn ToSql + Sync)),
    /// A JSON document, already serialised.
    Json(JsonParam),
}

/// A serialised JSON document, or SQL `NULL` for `None`; binds to `json` and `jsonb`.
#[derive(Debug, Clone)]
pub struct JsonParam(pub Option<Vec<u8>>);

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Param::Ref(value) => value.to_sql_checked(ty, out),
            Param::Json(json) => json.to_sql_checked(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Each variant checks the real type in `to_sql_checked`.
        true
    }

    to_sql_checked!();
}

impl ToSql for JsonParam {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        let Some(bytes) = &self.0 else {
            return Ok(IsNull::Yes);
        };
        if *ty == Type::JSONB {
            // jsonb's binary format is a version byte followed by the text.
            out.put_u8(1);
        }
        out.put_slice(bytes);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON || *ty == Type::JSONB
    }

    to_sql_checked!();
}

impl fmt::Display for JsonParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(bytes) => f.write_str(&String::from_utf8_lossy(bytes)),
            None => f.write_str("NULL"),
        }
    }
}
