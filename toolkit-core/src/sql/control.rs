//! Statements the runtime sends besides queries: savepoints, and the temporary tables and COPY
//! of bulk inserts. Crate-private: they follow the same rules as the builders (every name
//! validated and quoted, no value ever in the text) but are not part of the public builder.

use super::ident::{check, push_quoted, Ident, TableRef};
use crate::Result;

/// `SAVEPOINT "name"`.
pub(crate) fn savepoint(name: &Ident) -> String {
    keyword_ident("SAVEPOINT ", name)
}

/// `RELEASE SAVEPOINT "name"`.
pub(crate) fn release_savepoint(name: &Ident) -> String {
    keyword_ident("RELEASE SAVEPOINT ", name)
}

/// `ROLLBACK TO SAVEPOINT "name"; RELEASE SAVEPOINT "name"`: undoes the work since the savepoint
/// and removes it, in one message.
pub(crate) fn rollback_to_savepoint(name: &Ident) -> String {
    let mut sql = keyword_ident("ROLLBACK TO SAVEPOINT ", name);
    sql.push_str("; ");
    sql.push_str(&release_savepoint(name));
    sql
}

/// `ROLLBACK TO SAVEPOINT "name"`, keeping the savepoint.
pub(crate) fn rollback_to_savepoint_keep(name: &Ident) -> String {
    keyword_ident("ROLLBACK TO SAVEPOINT ", name)
}

fn keyword_ident(keyword: &'static str, name: &Ident) -> String {
    let mut sql = String::with_capacity(keyword.len() + name.as_str().len() + 2);
    sql.push_str(keyword);
    name.push_quoted(&mut sql);
    sql
}

/// `"a", "b", "c"`.
pub(crate) fn column_list(columns: &[&str]) -> Result<String> {
    let mut sql = String::new();
    for (n, column) in columns.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        check(column)?;
        push_quoted(&mut sql, column);
    }
    Ok(sql)
}

/// `"schema"."table"` or `"table"`.
pub(crate) fn table_name(table: TableRef<'_>) -> Result<String> {
    let mut sql = String::new();
    if let Some(schema) = table.schema() {
        check(schema)?;
        push_quoted(&mut sql, schema);
        sql.push('.');
    }
    check(table.name())?;
    push_quoted(&mut sql, table.name());
    Ok(sql)
}

/// A table in `pg_temp`, the session's own schema.
pub(crate) fn temp_table(name: &str) -> TableRef<'_> {
    TableRef::qualified("pg_temp", name)
}

/// `CREATE TEMPORARY TABLE <temp> [ON COMMIT DROP] AS SELECT <columns> FROM <source> WITH NO
/// DATA`: an empty table with exactly the types (domains and enums included) of `columns`.
pub(crate) fn create_temp_like(
    temp: TableRef<'_>,
    on_commit_drop: bool,
    columns: &[&str],
    source: TableRef<'_>,
) -> Result<String> {
    let mut sql = String::from("CREATE TEMPORARY TABLE ");
    sql.push_str(&table_name(temp)?);
    if on_commit_drop {
        sql.push_str(" ON COMMIT DROP");
    }
    sql.push_str(" AS SELECT ");
    sql.push_str(&column_list(columns)?);
    sql.push_str(" FROM ");
    sql.push_str(&table_name(source)?);
    sql.push_str(" WITH NO DATA");
    Ok(sql)
}

/// `SELECT <columns> FROM <table> LIMIT 0`: prepared, it tells the exact column types.
pub(crate) fn describe_columns(table: TableRef<'_>, columns: &[&str]) -> Result<String> {
    Ok(format!(
        "SELECT {} FROM {} LIMIT 0",
        column_list(columns)?,
        table_name(table)?
    ))
}

/// `COPY <table> (<columns>) FROM STDIN (FORMAT binary)`.
pub(crate) fn copy_in_binary(table: TableRef<'_>, columns: &[&str]) -> Result<String> {
    Ok(format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        table_name(table)?,
        column_list(columns)?
    ))
}

/// `INSERT INTO <target> (<columns>) SELECT <columns> FROM <source> RETURNING <returning>`.
pub(crate) fn insert_select(
    target: TableRef<'_>,
    columns: &[&str],
    source: TableRef<'_>,
    returning: &[&str],
) -> Result<String> {
    let list = column_list(columns)?;
    Ok(format!(
        "INSERT INTO {} ({list}) SELECT {list} FROM {} RETURNING {}",
        table_name(target)?,
        table_name(source)?,
        column_list(returning)?
    ))
}

/// `SELECT <columns> FROM <table> WHERE <key> = ANY($1) [AND <live> IS NULL] ORDER BY
/// array_position($1, <key>)`: the rows of the keys in `$1`, in the order of the array.
pub(crate) fn select_by_keys(
    table: TableRef<'_>,
    columns: &[&str],
    key: &str,
    live: Option<&str>,
) -> Result<String> {
    let key = column_list(&[key])?;
    let live = match live {
        Some(column) => format!(" AND {} IS NULL", column_list(&[column])?),
        None => String::new(),
    };
    Ok(format!(
        "SELECT {} FROM {} WHERE {key} = ANY($1){live} ORDER BY array_position($1, {key})",
        column_list(columns)?,
        table_name(table)?
    ))
}

/// `DROP TABLE IF EXISTS <a>, <b>`.
pub(crate) fn drop_tables(tables: &[TableRef<'_>]) -> Result<String> {
    let mut sql = String::from("DROP TABLE IF EXISTS ");
    for (n, table) in tables.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&table_name(*table)?);
    }
    Ok(sql)
}

/// The statements of a migration run (`migrate/`), for its record table.
pub(crate) struct MigrationSql {
    /// Takes the run's transaction lock (`$1`, the key) and returns the transaction's id.
    pub(crate) lock: String,
    /// The record table as the `search_path` resolves it, or NULL when there is none (`$1`,
    /// its quoted name).
    pub(crate) exists: String,
    pub(crate) create: String,
    /// `version, name, checksum, execution_ms` of every record, by version.
    pub(crate) records: String,
    /// Inserts a record (`$1..$4`) only while still in transaction `$5`; returns a row if so.
    pub(crate) record: String,
}

impl MigrationSql {
    pub(crate) fn new(table: &Ident) -> MigrationSql {
        let table = table.quoted();
        MigrationSql {
            lock: "SELECT txid_current() FROM pg_advisory_xact_lock($1)".into(),
            exists: "SELECT to_regclass($1::text)::text".into(),
            create: format!(
                "CREATE TABLE {table} (version bigint PRIMARY KEY, name text NOT NULL, \
                 checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), \
                 execution_ms bigint NOT NULL)"
            ),
            records: format!(
                "SELECT version, name, checksum, execution_ms FROM {table} ORDER BY version"
            ),
            record: format!(
                "INSERT INTO {table} (version, name, checksum, execution_ms) \
                 SELECT $1::bigint, $2::text, $3::text, $4::bigint \
                 WHERE txid_current() = $5::bigint RETURNING version"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn savepoint_statements_quote_the_name() {
        let name = Ident::new("we\"ird").unwrap();
        assert_eq!(savepoint(&name), r#"SAVEPOINT "we""ird""#);
        assert_eq!(release_savepoint(&name), r#"RELEASE SAVEPOINT "we""ird""#);
        assert_eq!(
            rollback_to_savepoint(&name),
            r#"ROLLBACK TO SAVEPOINT "we""ird"; RELEASE SAVEPOINT "we""ird""#
        );
    }

    #[test]
    fn bulk_statements_quote_every_name() {
        let temp = temp_table("t1");
        let source = TableRef::qualified("app", "my table");
        assert_eq!(
            create_temp_like(temp, true, &["a", "b\"c"], source).unwrap(),
            r#"CREATE TEMPORARY TABLE "pg_temp"."t1" ON COMMIT DROP AS SELECT "a", "b""c" FROM "app"."my table" WITH NO DATA"#
        );
        assert_eq!(
            copy_in_binary(source, &["a"]).unwrap(),
            r#"COPY "app"."my table" ("a") FROM STDIN (FORMAT binary)"#
        );
        assert_eq!(
            insert_select(source, &["a"], temp, &["id", "a"]).unwrap(),
            r#"INSERT INTO "app"."my table" ("a") SELECT "a" FROM "pg_temp"."t1" RETURNING "id", "a""#
        );
        assert_eq!(
            drop_tables(&[temp, temp_table("t2")]).unwrap(),
            r#"DROP TABLE IF EXISTS "pg_temp"."t1", "pg_temp"."t2""#
        );
        assert!(column_list(&["ok", ""]).is_err());
    }
}
