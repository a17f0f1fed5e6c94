//! Binding an entity's fields as statement parameters: domains are encoded as their base type,
//! JSON too deep to read back and text with a NUL byte are refused before anything is sent,
//! and a value that does not fit its column names the field ([`Error::InvalidData`](crate::Error)) on every route, statements and COPY alike.

use std::error::Error as StdError;

use bytes::BytesMut;
use tokio_postgres::types::{IsNull, Kind, ToSql, Type};

use crate::entity::private::Param;
use crate::entity::{json_depth, MAX_JSON_DEPTH};
use crate::entity::{Entity, EntityMeta};
use crate::error::FieldMismatch;
use crate::Result;

/// One parameter bound to column `index` of `meta`.
#[derive(Debug)]
pub(crate) struct Bound<'v> {
    param: Param<'v>,
    meta: &'static EntityMeta,
    index: usize,
}

impl<'v> Bound<'v> {
    /// Column `index` of `value`.
    pub(crate) fn field<E: Entity>(value: &'v E, index: usize) -> Result<Self> {
        Ok(Bound {
            param: value.param(index)?,
            meta: E::META,
            index,
        })
    }

    /// The columns `columns` of `value`, in that order.
    pub(crate) fn fields<E: Entity>(value: &'v E, columns: &[usize]) -> Result<Vec<Self>> {
        columns.iter().map(|&i| Bound::field(value, i)).collect()
    }

    /// A parameter already made for column `index` (a patch's).
    pub(crate) fn param<E: Entity>(param: Param<'v>, index: usize) -> Self {
        Bound {
            param,
            meta: E::META,
            index,
        }
    }

    /// The primary key `id`.
    pub(crate) fn key<E: Entity>(id: &'v E::Id) -> Self {
        Bound {
            param: Param::Ref(id),
            meta: E::META,
            index: E::META.key,
        }
    }

    /// Encodes the value for a column of type `ty`; the error names the field.
    pub(crate) fn encode(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        // A domain's binary format is its base type's; the driver only knows the latter.
        let base = base_type(ty);
        let start = out.len();
        let encoded = self
            .param
            .to_sql_checked(base, out)
            .map_err(|source| self.mismatch(ty, source))?;
        if is_text(base) && out[start..].contains(&0) {
            // The server refuses it (22021) after the statement was sent; said here, it names
            // the field and nothing is sent.
            return Err(self.mismatch(ty, "text cannot contain a NUL byte".into()));
        }
        if (*base == Type::JSON || *base == Type::JSONB)
            && json_depth(&out[start..]) > MAX_JSON_DEPTH
        {
            let too_deep = format!(
                "the JSON document is nested deeper than {MAX_JSON_DEPTH} levels and could not \
                 be read back; nothing was written"
            );
            return Err(self.mismatch(ty, too_deep.into()));
        }
        Ok(encoded)
    }

    /// A [`FieldMismatch`], boxed as the driver carries encoding errors.
    fn mismatch(
        &self,
        ty: &Type,
        source: Box<dyn StdError + Sync + Send>,
    ) -> Box<dyn StdError + Sync + Send> {
        let column = self.meta.columns.get(self.index);
        Box::new(FieldMismatch {
            table: self.meta.display_name(),
            field: column.map_or("", |c| c.field),
            column: column.map_or("", |c| c.name),
            ty: ty.to_string(),
            source,
        })
    }
}

impl ToSql for Bound<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        self.encode(ty, out)
    }

    fn accepts(_: &Type) -> bool {
        // `encode` checks the real type, naming the field when it does not fit.
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// Scalar text types: their binary format is the bytes of the text, the same for all four.
pub(crate) const TEXT_TYPES: [Type; 4] = [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME];

/// A scalar text type (in arrays, length words hold zero bytes; the server still refuses a NUL
/// there).
fn is_text(ty: &Type) -> bool {
    TEXT_TYPES.contains(ty)
}

pub(crate) fn base_type(ty: &Type) -> &Type {
    match ty.kind() {
        Kind::Domain(inner) => base_type(inner),
        _ => ty,
    }
}

/// The columns of `columns` that `patch` sets, and their parameters. A patch that sets none
/// is [`Error::InvalidData`](crate::Error): nothing is sent.
pub(crate) fn patched<'p, E: Entity>(
    patch: &'p E::Patch,
    columns: &[usize],
) -> Result<(Vec<usize>, Vec<Bound<'p>>)> {
    let mut set = Vec::new();
    let mut params = Vec::new();
    for &index in columns {
        if let Some(param) = E::patch_param(patch, index) {
            set.push(index);
            params.push(Bound::param::<E>(param?, index));
        }
    }
    if params.is_empty() {
        return Err(crate::Error::invalid_data(
            E::META.display_name(),
            "patch",
            "the patch sets no column; nothing to update",
            None,
        ));
    }
    Ok((set, params))
}

/// The parameters as the driver takes them.
pub(crate) fn refs<'p>(params: &'p [Bound<'_>]) -> Vec<&'p (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}
