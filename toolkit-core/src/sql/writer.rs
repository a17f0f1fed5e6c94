//! The rendering buffer shared by the helper functions and the builders: one `String` grown in
//! place, plus the placeholder counter, so numbering always follows the SQL text.

use std::fmt::Write as _;

use super::ident::{check, push_quoted, TableRef};
use super::raw::RawSql;
use super::Query;
use crate::{Error, Result};

/// The most placeholders one statement can have: the wire protocol counts them in 16 bits.
pub const MAX_PARAMS: usize = 65_535;

/// Rough bytes per rendered placeholder with its separator (`$123, `), for capacity estimates.
pub(crate) const PARAM_WIDTH: usize = 6;

pub(crate) struct Writer<'t> {
    sql: String,
    params: usize,
    table: TableRef<'t>,
}

impl<'t> Writer<'t> {
    pub(crate) fn new(table: TableRef<'t>, capacity: usize) -> Self {
        Writer {
            sql: String::with_capacity(capacity),
            params: 0,
            table,
        }
    }

    /// Grows the buffer once the statement is known to be valid.
    pub(crate) fn reserve(&mut self, capacity: usize) {
        self.sql.reserve(capacity);
    }

    pub(crate) fn push(&mut self, sql: &'static str) {
        self.sql.push_str(sql);
    }

    /// The buffer itself, for formatted numbers.
    pub(crate) fn buf(&mut self) -> &mut String {
        &mut self.sql
    }

    pub(crate) fn ident(&mut self, name: &str) -> Result<()> {
        check(name)?;
        push_quoted(&mut self.sql, name);
        Ok(())
    }

    /// The statement's own table, schema-qualified when it has a schema.
    pub(crate) fn table(&mut self) -> Result<()> {
        if let Some(schema) = self.table.schema() {
            self.ident(schema)?;
            self.sql.push('.');
        }
        self.ident(self.table.name())
    }

    /// `"a", "b", "c"`.
    pub(crate) fn idents(&mut self, names: &[&str]) -> Result<()> {
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.ident(name)?;
        }
        Ok(())
    }

    pub(crate) fn param(&mut self) -> Result<()> {
        if self.params >= MAX_PARAMS {
            return Err(self.too_many_params());
        }
        self.params += 1;
        // Writing into a String cannot fail.
        let _ = write!(self.sql, "${}", self.params);
        Ok(())
    }

    pub(crate) fn raw(&mut self, raw: &RawSql) -> Result<()> {
        if let Some(problem) = raw.problem() {
            return Err(self.invalid("raw", format!("{problem}: {:?}", raw.as_str())));
        }
        self.sql.push_str(raw.as_str());
        Ok(())
    }

    /// `"a" = $1, "b" = $2`, as in `SET`.
    pub(crate) fn assignments(&mut self, columns: &[&str]) -> Result<()> {
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.ident(column)?;
            self.sql.push_str(" = ");
            self.param()?;
        }
        Ok(())
    }

    /// ` WHERE "a" = $1 AND "b" = $2`, or nothing for no keys.
    pub(crate) fn where_eq(&mut self, keys: &[&str]) -> Result<()> {
        for (i, key) in keys.iter().enumerate() {
            self.sql.push_str(if i == 0 { " WHERE " } else { " AND " });
            self.ident(key)?;
            self.sql.push_str(" = ");
            self.param()?;
        }
        Ok(())
    }

    /// `($1, $2), ($3, $4)` for `width` 2 and `rows` 2.
    pub(crate) fn value_rows(&mut self, width: usize, rows: usize) -> Result<()> {
        for row in 0..rows {
            self.sql.push_str(if row == 0 { "(" } else { ", (" });
            for col in 0..width {
                if col > 0 {
                    self.sql.push_str(", ");
                }
                self.param()?;
            }
            self.sql.push(')');
        }
        Ok(())
    }

    /// Rejects a statement needing more than [`MAX_PARAMS`] placeholders before anything is
    /// rendered, so an absurd batch size cannot make us allocate a huge string first.
    pub(crate) fn check_param_budget(&self, needed: Option<usize>) -> Result<()> {
        match needed {
            Some(n) if n <= MAX_PARAMS => Ok(()),
            _ => Err(self.too_many_params()),
        }
    }

    fn too_many_params(&self) -> Error {
        self.invalid(
            "parameters",
            format!(
                "the statement needs more than {MAX_PARAMS} placeholders, the protocol's limit"
            ),
        )
    }

    pub(crate) fn invalid(&self, field: &str, message: impl Into<String>) -> Error {
        Error::invalid_data(self.table.label(), field, message, None)
    }

    pub(crate) fn finish(self) -> Query {
        Query::new(self.sql, self.params)
    }
}
