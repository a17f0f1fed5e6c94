//! Schema check: an entity compared with the live catalog at startup, so drift between the code
//! and the database is found at deploy time, all of it in one error, before a request fails.

mod catalog;
mod mismatch;
#[cfg(test)]
mod tests;

use crate::entity::{Entity, EntityMeta};
use crate::repository::base_type;
use crate::{Database, Error, ExecutorRef, Pool, Result};
use catalog::Relation;
pub(crate) use mismatch::Listed;
pub use mismatch::{MismatchKind, SchemaMismatch};

impl Database {
    /// Compares entity `E` with its live table and reports every difference at once, as one
    /// [`Error::SchemaMismatch`] naming table, column and field for each: a missing table
    /// (then nothing else is checked) or column, a column type the field cannot read, a column
    /// that allows NULL behind a field that is not an `Option`, an `#[entity(generated)]` field
    /// whose column has no default, identity or generation expression, a `GENERATED ALWAYS`
    /// column behind a field that is written, and a `NOT NULL` column without a default that
    /// no field maps.
    ///
    /// The table is looked up as the repository's statements reach it: in the entity's schema,
    /// or on the connection's `search_path`; a view, materialized view or foreign table counts
    /// (the catalog does not record whether a view's column can hold NULL, so that is not
    /// checked for views).
    ///
    /// Types are compared as reading a row compares them: the field type's `FromSql::accepts`
    /// is asked with the type the driver builds for the column (a domain replaced by its base
    /// type; enums with their labels, composites with their fields, arrays of any of these).
    /// It reads only the catalog: no table is locked or scanned.
    ///
    /// ```no_run
    /// # use toolkit_core as toolkit;
    /// # async fn demo<User: toolkit::Entity>(db: toolkit::Database) -> toolkit::Result<()> {
    /// // At startup, after migrations: fail the deploy rather than the first request.
    /// db.check_schema::<User>().await?;
    /// # Ok(()) }
    /// ```
    pub async fn check_schema<E: Entity>(&self) -> Result<()> {
        check(ExecutorRef::Database(self), E::META).await
    }
}

impl Pool {
    /// [`Database::check_schema`] on this pool, e.g. in an init callback
    /// ([`Database::register_init_callback`]) so that `init_db` fails on a mismatch.
    pub async fn check_schema<E: Entity>(&self) -> Result<()> {
        check(ExecutorRef::Pool(self), E::META).await
    }
}

async fn check(executor: ExecutorRef<'_>, meta: &'static EntityMeta) -> Result<()> {
    // Up to two statements: a connection of its own, not one lent to a single statement.
    let session = executor.acquire_exclusive().await?;
    let live = catalog::relation(&session, meta).await?;
    let mismatches = compare(meta, live.as_ref());
    if mismatches.is_empty() {
        return Ok(());
    }
    Err(Error::SchemaMismatch {
        table: meta.display_name(),
        mismatches,
    })
}

/// Every difference between `meta` and the live table (`None`: no table), in the order
/// [`Error::SchemaMismatch`] documents.
fn compare(meta: &EntityMeta, live: Option<&Relation>) -> Vec<SchemaMismatch> {
    let table = meta.display_name();
    let Some(Relation {
        columns: live,
        records_not_null,
    }) = live
    else {
        return vec![SchemaMismatch {
            table,
            column: None,
            field: None,
            kind: MismatchKind::MissingTable,
        }];
    };
    let mut mismatches = Vec::new();
    for column in meta.columns {
        let mut report = |kind| {
            mismatches.push(SchemaMismatch {
                table: table.clone(),
                column: Some(column.name.to_owned()),
                field: Some(column.field.to_owned()),
                kind,
            });
        };
        let Some(found) = live.iter().find(|c| c.name == column.name) else {
            report(MismatchKind::MissingColumn);
            continue;
        };
        if let Some(ty) = &found.ty {
            // The server describes a domain column in a result as its base type.
            let read_as = base_type(ty);
            if !(column.accepts)(read_as) {
                let column_type = if read_as == ty {
                    ty.to_string()
                } else {
                    format!("{read_as} (domain {ty})")
                };
                report(MismatchKind::WrongType { column_type });
            }
        }
        if *records_not_null && !found.not_null && !column.nullable {
            report(MismatchKind::Nullable);
        }
        if column.generated && !found.fills_itself() {
            report(MismatchKind::NoDefault);
        }
        if !column.generated && found.generated_always() {
            report(MismatchKind::GeneratedAlways);
        }
    }
    for found in live {
        let mapped = meta.columns.iter().any(|c| c.name == found.name);
        if !mapped && found.not_null && !found.fills_itself() {
            mismatches.push(SchemaMismatch {
                table: table.clone(),
                column: Some(found.name.clone()),
                field: None,
                kind: MismatchKind::UnmappedRequired,
            });
        }
    }
    mismatches
}
