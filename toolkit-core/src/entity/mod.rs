//! What `#[derive(Entity)]` implements: table metadata, row mapping by position and parameter
//! binding. The repository runtime builds every statement from [`EntityMeta`] once per process.

mod decode;
mod param;
#[doc(hidden)]
pub mod private;
mod statements;

use std::fmt;

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::Result;

pub use param::{JsonParam, Param};
pub use statements::EntitySql;

/// One stored column of an entity, in field order.
#[derive(Debug)]
pub struct Column {
    /// Column name in the database (unquoted; validated at compile time).
    pub name: &'static str,
    /// Rust field name, used in error messages.
    pub field: &'static str,
    /// Assigned by the database (identity, serial, default): omitted from INSERT and from
    /// updates, read back through `RETURNING`.
    pub generated: bool,
    /// Stored as JSON/JSONB through serde.
    pub json: bool,
}

/// Table metadata of an entity.
#[derive(Debug)]
pub struct EntityMeta {
    /// Schema, when the table is not on the search path.
    pub schema: Option<&'static str>,
    /// Table name (unquoted; validated at compile time).
    pub table: &'static str,
    /// Stored columns in field order; rows are read in this order.
    pub columns: &'static [Column],
    /// Index of the primary-key column in `columns`.
    pub key: usize,
}

impl EntityMeta {
    /// The table name as it appears in error messages: `schema.table` or `table`.
    pub fn display_name(&self) -> String {
        match self.schema {
            Some(schema) => format!("{schema}.{}", self.table),
            None => self.table.to_owned(),
        }
    }
}

/// A struct stored as one row of one table. Implement it with `#[derive(Entity)]`.
pub trait Entity: Sized + Send + Sync + 'static {
    /// The primary key's type.
    type Id: ToSql + Sync + Send + fmt::Debug + 'static;
    /// The generated `<Name>Patch` type: one `Option` per updatable column.
    type Patch: Default + Send + Sync;

    /// Table and columns.
    const META: &'static EntityMeta;

    /// Every statement of this entity, rendered once per process.
    fn sql() -> Result<&'static EntitySql>;

    /// The primary key of this value.
    fn id(&self) -> &Self::Id;

    /// Builds a value from a row whose columns are `META.columns`, in that order.
    fn from_row(row: &Row) -> Result<Self>;

    /// The parameter for column `index` of `META.columns` (JSON columns serialise here, so a
    /// value that cannot be serialised is reported naming its field).
    fn param(&self, index: usize) -> Result<Param<'_>>;

    /// The parameter for column `index` when the patch sets it; `None` when it leaves it alone.
    fn patch_param(patch: &Self::Patch, index: usize) -> Option<Result<Param<'_>>>;
}
