//! Safe SQL building, the only way the toolkit itself writes SQL.
//!
//! Two rules make a statement safe whatever names it is given:
//!
//! - every table, schema and column name is validated ([`validate_ident`]: not empty, no NUL, at
//!   most 63 bytes) and double-quoted with embedded `"` doubled, so a name is always exactly one
//!   identifier token, never a keyword, an operator or the end of the statement;
//! - values never enter the SQL text: every value is a `$n` placeholder, numbered from `$1` in the
//!   order the placeholders appear in the text, and bound positionally by the caller.
//!
//! Hand-written SQL enters only through [`RawSql`], made from a `&'static str` or through the
//! explicit [`RawSql::new_unchecked`].
//!
//! There are two layers. The helper functions mirror psycopg-toolkit's `PsycopgHelper`:
//!
//! ```
//! use toolkit_core::sql;
//!
//! assert_eq!(
//!     sql::build_update_query("users", &["name", "age"], &["id"])?,
//!     r#"UPDATE "users" SET "name" = $1, "age" = $2 WHERE "id" = $3"#
//! );
//! # Ok::<(), toolkit_core::Error>(())
//! ```
//!
//! The builders ([`Select`], [`Insert`], [`Update`], [`Delete`]) cover schema-qualified tables,
//! conditions ([`col`], [`Condition`]), ordering, `LIMIT`/`OFFSET`, `RETURNING`, `ON CONFLICT`,
//! `COUNT(*)` and `EXISTS`, and return a [`Query`] with the text and the number of values to bind:
//!
//! ```
//! use toolkit_core::sql::{col, Order, Select};
//!
//! let q = Select::from("users")
//!     .columns(&["id", "name"])
//!     .filter(col("name").eq().or(col("email").eq()))
//!     .order_by("id", Order::Desc)
//!     .limit(1)
//!     .build()?;
//! assert_eq!(
//!     q.sql(),
//!     r#"SELECT "id", "name" FROM "users" WHERE "name" = $1 OR "email" = $2 ORDER BY "id" DESC LIMIT 1"#
//! );
//! assert_eq!(q.param_count(), 2);
//! # Ok::<(), toolkit_core::Error>(())
//! ```
//!
//! Rendering is deterministic (the same input always gives the same text) and writes into one
//! pre-sized `String`. Invalid input is reported as [`Error::InvalidIdentifier`](crate::Error) or
//! [`Error::InvalidData`](crate::Error) (naming the offending argument), never as malformed SQL.

mod clause;
mod condition;
pub(crate) mod control;
mod delete;
mod helpers;
mod ident;
mod insert;
mod query;
mod raw;
mod select;
mod update;
mod writer;

#[cfg(test)]
mod tests;

pub use clause::{Nulls, Order};
pub use condition::{col, Column, Condition};
pub use delete::Delete;
pub use helpers::{build_delete_query, build_insert_query, build_select_query, build_update_query};
pub use ident::{quote_ident, validate_ident, Ident, QualifiedName, TableRef, MAX_IDENT_LEN};
pub use insert::Insert;
pub use query::Query;
pub use raw::RawSql;
pub use select::Select;
pub use update::Update;
pub use writer::MAX_PARAMS;
