//! Statement parameters of an entity: borrowed values, or JSON serialised up front.

use std::error::Error as StdError;
use std::fmt;

use bytes::BufMut;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

/// One bound parameter of an entity's field.
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

/// The deepest nesting of arrays and objects serde_json reads back (its recursion limit is 128
/// levels, the 128th failing); pinned by a test. A deeper document, once stored, would make
/// every read of its row fail, so it is refused before it is written.
pub(crate) const MAX_JSON_DEPTH: usize = 127;

/// How deeply arrays and objects nest in serialised JSON (text, or jsonb's version byte and
/// text): one pass, brackets inside strings ignored.
pub(crate) fn json_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn the_depth_limit_is_serde_jsons() {
        assert!(serde_json::from_str::<serde_json::Value>(&nested(MAX_JSON_DEPTH)).is_ok());
        assert!(serde_json::from_str::<serde_json::Value>(&nested(MAX_JSON_DEPTH + 1)).is_err());
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(json_depth(nested(5).as_bytes()), 5);
        assert_eq!(json_depth(br#"{"a":"[[[[\"[[","b":[1,{"c":2}]}"#), 3);
        assert_eq!(json_depth(b"12"), 0);
    }
}
