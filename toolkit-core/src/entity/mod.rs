//! What `#[derive(Entity)]` implements: table metadata, row mapping by position and parameter
//! binding. The repository renders every statement from [`EntityMeta`] once per process.
//!
//! [`EntityMeta`] and [`ColumnMeta`] are public for code that inspects entities (schema
//! checks, admin tools); the rest of what the derive generates is reached only through the
//! hidden `__private` path and is not an API.

mod decode;
mod param;
#[doc(hidden)]
pub mod private;

use std::any::Any;
use std::fmt;
use std::sync::OnceLock;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;

use crate::{Error, Result};

pub(crate) use param::{json_depth, MAX_JSON_DEPTH};

/// One stored column of an entity, in field order.
#[derive(Debug)]
pub struct ColumnMeta {
    /// Column name in the database (unquoted; validated at compile time).
    pub name: &'static str,
    /// Rust field name, used in error messages.
    pub field: &'static str,
    /// Assigned by the database (identity, serial, default): omitted from INSERT and from
    /// updates, read back through `RETURNING`.
    pub generated: bool,
    /// Stored as JSON/JSONB through serde.
    pub json: bool,
    /// An `Option` field: the column may hold NULL (a non-`Option` field cannot read one).
    pub nullable: bool,
    /// Whether the field can read a column of this type: the field type's
    /// `FromSql::accepts` (for an `Option<T>` field, `T`'s), or `json`/`jsonb` for a JSON
    /// field. Asked with the type the server describes for the column in a result, where a
    /// domain is replaced by its base type. Schema checks use it
    /// ([`Database::check_schema`](crate::Database::check_schema)).
    pub accepts: fn(&Type) -> bool,
}

/// Table metadata of an entity.
#[derive(Debug)]
pub struct EntityMeta {
    /// Schema, when the table is not on the search path.
    pub schema: Option<&'static str>,
    /// Table name (unquoted; validated at compile time).
    pub table: &'static str,
    /// Stored columns in field order; rows are read in this order.
    pub columns: &'static [ColumnMeta],
    /// Index of the primary-key column in `columns`.
    pub key: usize,
    /// Index of the `#[entity(version)]` column (optimistic locking), if any.
    pub version: Option<usize>,
    /// Index of the `#[entity(soft_delete)]` column, if any.
    pub soft_delete: Option<usize>,
}

impl EntityMeta {
    /// The table name as it appears in error messages: `schema.table` or `table`, unquoted.
    pub fn display_name(&self) -> String {
        match self.schema {
            Some(schema) => format!("{schema}.{}", self.table),
            None => self.table.to_owned(),
        }
    }

    /// The primary-key column.
    pub fn key_column(&self) -> Result<&'static ColumnMeta> {
        self.columns.get(self.key).ok_or_else(|| {
            Error::invalid_data(
                self.display_name(),
                "",
                format!(
                    "key index {} is outside the {} columns",
                    self.key,
                    self.columns.len()
                ),
                None,
            )
        })
    }
}

/// Where the runtime keeps what it renders for one entity type (its statements), filled on
/// first use: one `static` per derived type, so no lookup happens per call.
#[doc(hidden)]
#[derive(Debug)]
pub struct StatementSlot(OnceLock<Box<dyn Any + Send + Sync>>);

impl StatementSlot {
    /// An empty slot, for the derive's `static`.
    #[allow(clippy::new_without_default)] // used in a `static`, where only `const fn` works
    pub const fn new() -> Self {
        StatementSlot(OnceLock::new())
    }

    /// The value of type `T` in the slot, made by `init` on first use; `None` if the slot
    /// holds another type (a slot is only ever filled by one caller, so it does not).
    pub(crate) fn get_or_init<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Option<&T> {
        self.0.get_or_init(|| Box::new(init())).downcast_ref()
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

    /// The primary key of this value.
    fn id(&self) -> &Self::Id;

    /// Storage for the statements the runtime renders for this entity.
    #[doc(hidden)]
    fn statement_slot() -> &'static StatementSlot;

    /// Builds a value from a row whose columns are `META.columns`, in that order: for the
    /// toolkit's own statements only (user SQL is mapped by name, `Repository::query_as`).
    #[doc(hidden)]
    fn from_row(row: &Row) -> Result<Self>;

    /// Builds a value from a row where stored column `i` of `META.columns` is row column
    /// `at[i]`.
    #[doc(hidden)]
    fn from_row_at(row: &Row, at: &[usize]) -> Result<Self>;

    /// The parameter for column `index` of `META.columns` (JSON columns serialise here, so a
    /// value that cannot be serialised is reported naming its field).
    #[doc(hidden)]
    fn param(&self, index: usize) -> Result<private::Param<'_>>;

    /// The parameter for column `index` when the patch sets it; `None` when it leaves it alone.
    #[doc(hidden)]
    fn patch_param(patch: &Self::Patch, index: usize) -> Option<Result<private::Param<'_>>>;
}
