//! The helper functions of psycopg-toolkit's `PsycopgHelper`, one statement shape each.
//!
//! They render straight into one buffer; the builders cover everything beyond these shapes.

use super::ident::TableRef;
use super::writer::{Writer, PARAM_WIDTH};
use crate::Result;

/// Bytes a list of names takes once quoted and separated.
fn names_len(names: &[&str]) -> usize {
    names.iter().map(|n| n.len() + 4).sum()
}

/// `SELECT` of `columns` (all columns, `*`, when empty) from `table`, filtered by equality on each
/// of `where_keys` (`"k" = $n` joined with `AND`; no `WHERE` when empty).
///
/// ```
/// use toolkit_core::sql::build_select_query;
///
/// assert_eq!(
///     build_select_query("my users", &["id", "we\"ird"], &["a", "B"])?,
///     r#"SELECT "id", "we""ird" FROM "my users" WHERE "a" = $1 AND "B" = $2"#
/// );
/// assert_eq!(build_select_query("users", &[], &[])?, r#"SELECT * FROM "users""#);
/// # Ok::<(), toolkit_core::Error>(())
/// ```
pub fn build_select_query(table: &str, columns: &[&str], where_keys: &[&str]) -> Result<String> {
    let capacity = 24 + table.len() + names_len(columns) + names_len(where_keys) * 2;
    let mut w = Writer::new(TableRef::new(table), capacity);
    w.push("SELECT ");
    if columns.is_empty() {
        w.push("*");
    } else {
        w.idents(columns)?;
    }
    w.push(" FROM ");
    w.table()?;
    w.where_eq(where_keys)?;
    Ok(w.finish().into_sql())
}

/// `INSERT` of `batch_size` rows of `columns` into `table`, as one multi-row `VALUES` list with
/// placeholders numbered row by row.
///
/// Fails when `columns` is empty, `batch_size` is zero, or the statement would need more than
/// [`MAX_PARAMS`](super::MAX_PARAMS) placeholders.
///
/// ```
/// use toolkit_core::sql::build_insert_query;
///
/// assert_eq!(
///     build_insert_query("users", &["id", "name"], 2)?,
///     r#"INSERT INTO "users" ("id", "name") VALUES ($1, $2), ($3, $4)"#
/// );
/// assert!(build_insert_query("users", &[], 1).is_err());
/// assert!(build_insert_query("users", &["id"], 0).is_err());
/// # Ok::<(), toolkit_core::Error>(())
/// ```
pub fn build_insert_query(table: &str, columns: &[&str], batch_size: usize) -> Result<String> {
    let table = TableRef::new(table);
    // A zero-capacity writer does not allocate; it only carries the table for errors.
    let probe = Writer::new(table, 0);
    if columns.is_empty() {
        return Err(probe.invalid("columns", "an INSERT needs at least one column"));
    }
    if batch_size == 0 {
        return Err(probe.invalid("batch_size", "an INSERT needs at least one row"));
    }
    let params = columns.len().checked_mul(batch_size);
    probe.check_param_budget(params)?;
    let params = params.unwrap_or(0);
    let mut w = Writer::new(
        table,
        32 + table.quoted_len() + names_len(columns) + params * PARAM_WIDTH + batch_size * 4,
    );
    w.push("INSERT INTO ");
    w.table()?;
    w.push(" (");
    w.idents(columns)?;
    w.push(") VALUES ");
    w.value_rows(columns.len(), batch_size)?;
    Ok(w.finish().into_sql())
}

/// `UPDATE` of `set_columns` in `table` for the rows matching equality on every `where_keys`;
/// placeholders number the set columns first, then the keys.
///
/// Fails when either list is empty: an update of nothing is malformed, and an update of every row
/// must be asked for explicitly through [`Update::all_rows`](super::Update::all_rows).
///
/// ```
/// use toolkit_core::sql::build_update_query;
///
/// assert_eq!(
///     build_update_query("users", &["name", "age"], &["id"])?,
///     r#"UPDATE "users" SET "name" = $1, "age" = $2 WHERE "id" = $3"#
/// );
/// assert!(build_update_query("users", &[], &["id"]).is_err());
/// assert!(build_update_query("users", &["name"], &[]).is_err());
/// # Ok::<(), toolkit_core::Error>(())
/// ```
pub fn build_update_query(
    table: &str,
    set_columns: &[&str],
    where_keys: &[&str],
) -> Result<String> {
    let capacity = 24 + table.len() + (names_len(set_columns) + names_len(where_keys)) * 2;
    let mut w = Writer::new(TableRef::new(table), capacity);
    if set_columns.is_empty() {
        return Err(w.invalid("set_columns", "an UPDATE needs at least one column to set"));
    }
    if where_keys.is_empty() {
        return Err(w.invalid(
            "where_keys",
            "an UPDATE needs at least one key (use Update::all_rows to update every row)",
        ));
    }
    w.push("UPDATE ");
    w.table()?;
    w.push(" SET ");
    w.assignments(set_columns)?;
    w.where_eq(where_keys)?;
    Ok(w.finish().into_sql())
}

/// `DELETE` from `table` of the rows matching equality on every `where_keys`.
///
/// Fails when `where_keys` is empty: deleting every row must be asked for explicitly through
/// [`Delete::all_rows`](super::Delete::all_rows).
///
/// ```
/// use toolkit_core::sql::build_delete_query;
///
/// assert_eq!(
///     build_delete_query("users", &["id", "t"])?,
///     r#"DELETE FROM "users" WHERE "id" = $1 AND "t" = $2"#
/// );
/// assert!(build_delete_query("users", &[]).is_err());
/// # Ok::<(), toolkit_core::Error>(())
/// ```
pub fn build_delete_query(table: &str, where_keys: &[&str]) -> Result<String> {
    let capacity = 24 + table.len() + names_len(where_keys) * 2;
    let mut w = Writer::new(TableRef::new(table), capacity);
    if where_keys.is_empty() {
        return Err(w.invalid(
            "where_keys",
            "a DELETE needs at least one key (use Delete::all_rows to delete every row)",
        ));
    }
    w.push("DELETE FROM ");
    w.table()?;
    w.where_eq(where_keys)?;
    Ok(w.finish().into_sql())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn api_examples() {
        assert_eq!(
            build_select_query("my users", &["id", "we\"ird"], &["a", "B"]).unwrap(),
            r#"SELECT "id", "we""ird" FROM "my users" WHERE "a" = $1 AND "B" = $2"#
        );
        assert_eq!(
            build_select_query("users", &[], &[]).unwrap(),
            r#"SELECT * FROM "users""#
        );
        assert_eq!(
            build_insert_query("users", &["id", "name"], 2).unwrap(),
            r#"INSERT INTO "users" ("id", "name") VALUES ($1, $2), ($3, $4)"#
        );
        assert_eq!(
            build_update_query("users", &["name", "age"], &["id"]).unwrap(),
            r#"UPDATE "users" SET "name" = $1, "age" = $2 WHERE "id" = $3"#
        );
        assert_eq!(
            build_delete_query("users", &["id", "t"]).unwrap(),
            r#"DELETE FROM "users" WHERE "id" = $1 AND "t" = $2"#
        );
    }

    #[test]
    fn select_with_keys_but_no_columns() {
        assert_eq!(
            build_select_query("t", &[], &["id"]).unwrap(),
            r#"SELECT * FROM "t" WHERE "id" = $1"#
        );
    }

    #[test]
    fn insert_single_row() {
        assert_eq!(
            build_insert_query("t", &["a"], 1).unwrap(),
            r#"INSERT INTO "t" ("a") VALUES ($1)"#
        );
    }

    fn field_of(err: Error) -> String {
        match err {
            Error::InvalidData { field, .. } => field,
            other => panic!("expected InvalidData, got {other:?}"),
        }
    }

    #[test]
    fn empty_lists_are_errors_naming_the_argument() {
        assert_eq!(
            field_of(build_insert_query("t", &[], 1).unwrap_err()),
            "columns"
        );
        assert_eq!(
            field_of(build_insert_query("t", &["a"], 0).unwrap_err()),
            "batch_size"
        );
        assert_eq!(
            field_of(build_update_query("t", &[], &["id"]).unwrap_err()),
            "set_columns"
        );
        assert_eq!(
            field_of(build_update_query("t", &["a"], &[]).unwrap_err()),
            "where_keys"
        );
        assert_eq!(
            field_of(build_delete_query("t", &[]).unwrap_err()),
            "where_keys"
        );
        let err = build_insert_query("users", &[], 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid data for users.columns: an INSERT needs at least one column"
        );
    }

    #[test]
    fn invalid_identifiers_anywhere_are_rejected() {
        let long = "x".repeat(64);
        let cases: [Result<String>; 6] = [
            build_select_query("", &[], &[]),
            build_select_query("t", &["a\0"], &[]),
            build_select_query("t", &[], &[&long]),
            build_insert_query("t", &["ok", ""], 3),
            build_update_query("t", &["a"], &[""]),
            build_delete_query(&long, &["id"]),
        ];
        for case in cases {
            assert!(
                matches!(case, Err(Error::InvalidIdentifier { .. })),
                "{case:?}"
            );
        }
    }

    #[test]
    fn oversized_batches_fail_before_rendering() {
        assert!(build_insert_query("t", &["a", "b"], usize::MAX).is_err());
        assert!(build_insert_query("t", &["a"], 65_536).is_err());
        let max = build_insert_query("t", &["a"], 65_535).unwrap();
        assert!(max.ends_with("($65535)"));
    }
}
