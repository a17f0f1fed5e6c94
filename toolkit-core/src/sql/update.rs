//! `UPDATE ... SET ... WHERE ... RETURNING`.

use super::clause::Returning;
use super::condition::{and_into, render_where, Condition};
use super::ident::TableRef;
use super::raw::RawSql;
use super::writer::{Writer, PARAM_WIDTH};
use super::Query;
use crate::Result;

/// An `UPDATE` of one table.
///
/// Set columns take placeholders first, then the filter's values, in text order. Building fails
/// without a column to set, and without a filter unless [`all_rows`](Update::all_rows) says that
/// every row is meant.
///
/// ```
/// use toolkit_core::sql::{col, RawSql, Update};
///
/// let q = Update::table("users")
///     .set(&["name", "age"])
///     .set_raw("updated_at", RawSql::new("now()"))
///     .filter(col("id").eq())
///     .returning_all()
///     .build()?;
/// assert_eq!(
///     q.sql(),
///     r#"UPDATE "users" SET "name" = $1, "age" = $2, "updated_at" = now() WHERE "id" = $3 RETURNING *"#
/// );
/// assert!(Update::table("users").set(&["name"]).build().is_err());
/// # Ok::<(), toolkit_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Update<'a> {
    table: TableRef<'a>,
    set: Vec<(&'a str, Option<RawSql>)>,
    filter: Option<Condition<'a>>,
    all_rows: bool,
    returning: Returning<'a>,
}

impl<'a> Update<'a> {
    /// Updates `table`.
    pub fn table(table: impl Into<TableRef<'a>>) -> Self {
        Update {
            table: table.into(),
            set: Vec::new(),
            filter: None,
            all_rows: false,
            returning: Returning::Nothing,
        }
    }

    /// `"c" = $n` for each column.
    pub fn set(mut self, columns: &[&'a str]) -> Self {
        self.set.extend(columns.iter().map(|c| (*c, None)));
        self
    }

    /// `"column" = expression`, e.g. `now()` or `"version" + 1`; takes no parameter.
    pub fn set_raw(mut self, column: &'a str, expression: RawSql) -> Self {
        self.set.push((column, Some(expression)));
        self
    }

    /// Adds a `WHERE` condition, AND-ed with earlier ones.
    pub fn filter(mut self, condition: Condition<'a>) -> Self {
        and_into(&mut self.filter, condition);
        self
    }

    /// Allows building without a filter: the statement updates every row of the table.
    pub fn all_rows(mut self) -> Self {
        self.all_rows = true;
        self
    }

    /// `RETURNING` these columns of the updated rows.
    pub fn returning(mut self, columns: &[&'a str]) -> Self {
        self.returning = Returning::Columns(columns.to_vec());
        self
    }

    /// `RETURNING *`.
    pub fn returning_all(mut self) -> Self {
        self.returning = Returning::All;
        self
    }

    /// Renders the `UPDATE`.
    pub fn build(&self) -> Result<Query> {
        let set: usize = self
            .set
            .iter()
            .map(|(c, raw)| c.len() + 7 + raw.as_ref().map_or(PARAM_WIDTH, |r| r.as_str().len()))
            .sum();
        let filter = self.filter.as_ref().map_or(0, |f| f.estimate() + 7);
        let capacity = 24 + self.table.quoted_len() + set + filter + self.returning.estimate();
        let mut w = Writer::new(self.table, 0);
        if self.set.is_empty() {
            return Err(w.invalid("set", "an UPDATE needs at least one column to set"));
        }
        if self.filter.is_none() && !self.all_rows {
            return Err(w.invalid(
                "filter",
                "an UPDATE without a filter needs all_rows() to update every row",
            ));
        }
        w.reserve(capacity);
        w.push("UPDATE ");
        w.table()?;
        w.push(" SET ");
        for (i, (column, raw)) in self.set.iter().enumerate() {
            if i > 0 {
                w.push(", ");
            }
            w.ident(column)?;
            w.push(" = ");
            match raw {
                Some(expression) => w.raw(expression)?,
                None => w.param()?,
            }
        }
        render_where(&mut w, self.filter.as_ref())?;
        self.returning.render(&mut w)?;
        Ok(w.finish())
    }
}
