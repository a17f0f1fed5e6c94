//! What a schema check reports: one [`SchemaMismatch`] per difference between an entity and its
//! table, all of them in one [`Error::SchemaMismatch`](crate::Error::SchemaMismatch).

use std::fmt;

/// One way a table differs from the entity that maps it, found by
/// [`Database::check_schema`](crate::Database::check_schema).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchemaMismatch {
    /// The table as the entity names it, unquoted: `schema.table` when it has a schema.
    pub table: String,
    /// The column; `None` when the whole table is missing.
    pub column: Option<String>,
    /// The Rust field mapped to the column; `None` when the table is missing and for a column
    /// no field maps ([`MismatchKind::UnmappedRequired`]).
    pub field: Option<String>,
    /// What is wrong.
    pub kind: MismatchKind,
}

/// What is wrong in a [`SchemaMismatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MismatchKind {
    /// No table, view or foreign table of that name: in the entity's schema, or on the
    /// `search_path` when it names none. Nothing else is checked.
    MissingTable,
    /// The table has no column of that name.
    MissingColumn,
    /// The field's type cannot read the column's type: every read of a row would fail.
    WrongType {
        /// The column's type as a result describes it (a domain's base type), naming the
        /// domain when the column is declared with one.
        column_type: String,
    },
    /// The column allows NULL but the field is not an `Option`: reading a NULL would fail.
    /// Not reported for views and materialized views, whose columns the catalog never marks
    /// `NOT NULL`.
    Nullable,
    /// The field is `#[entity(generated)]`, so inserts leave the column out, but the column has
    /// no default, identity or generation expression: it would be NULL (or the insert fails).
    NoDefault,
    /// The column is `GENERATED ALWAYS` (identity or stored expression) but the field is not
    /// `#[entity(generated)]`: inserts and saves that write it fail.
    GeneratedAlways,
    /// A `NOT NULL` column without a default that no field maps: every insert fails.
    UnmappedRequired,
}

impl fmt::Display for SchemaMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = &self.table;
        match (&self.column, &self.field) {
            (Some(column), Some(field)) => write!(f, "{table}.{column} (field `{field}`): ")?,
            (Some(column), None) => write!(f, "{table}.{column}: ")?,
            (None, _) => write!(f, "{table}: ")?,
        }
        match &self.kind {
            MismatchKind::MissingTable => f.write_str("no such table"),
            MismatchKind::MissingColumn => f.write_str("no such column"),
            MismatchKind::WrongType { column_type } => {
                write!(f, "the field cannot read the column's type {column_type}")
            }
            MismatchKind::Nullable => {
                f.write_str("the column allows NULL but the field is not an Option")
            }
            MismatchKind::NoDefault => f.write_str(
                "the field is generated but the column has no default, identity or generation \
                 expression",
            ),
            MismatchKind::GeneratedAlways => f.write_str(
                "the column is GENERATED ALWAYS but the field is written; mark it \
                 #[entity(generated)]",
            ),
            MismatchKind::UnmappedRequired => f.write_str(
                "NOT NULL without a default and no field maps it, so every insert fails",
            ),
        }
    }
}

/// The mismatches of an error message, one after the other.
pub(crate) struct Listed<'a>(pub(crate) &'a [SchemaMismatch]);

impl fmt::Display for Listed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, mismatch) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{mismatch}")?;
        }
        Ok(())
    }
}
