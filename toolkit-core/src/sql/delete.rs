//! `DELETE FROM ... WHERE ... RETURNING`.

use super::clause::Returning;
use super::condition::{and_into, render_where, Condition};
use super::ident::TableRef;
use super::writer::Writer;
use super::Query;
use crate::Result;

/// A `DELETE` from one table.
///
/// Building fails without a filter unless [`all_rows`](Delete::all_rows) says that every row is
/// meant.
///
/// ```
/// use toolkit_core::sql::{col, Delete};
///
/// let q = Delete::from("sessions").filter(col("expires_at").lt()).returning(&["id"]).build()?;
/// assert_eq!(q.sql(), r#"DELETE FROM "sessions" WHERE "expires_at" < $1 RETURNING "id""#);
/// assert_eq!(Delete::from("sessions").all_rows().build()?.sql(), r#"DELETE FROM "sessions""#);
/// assert!(Delete::from("sessions").build().is_err());
/// # Ok::<(), toolkit_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Delete<'a> {
    table: TableRef<'a>,
    filter: Option<Condition<'a>>,
    all_rows: bool,
    returning: Returning<'a>,
}

impl<'a> Delete<'a> {
    /// Deletes from `table`.
    pub fn from(table: impl Into<TableRef<'a>>) -> Self {
        Delete {
            table: table.into(),
            filter: None,
            all_rows: false,
            returning: Returning::Nothing,
        }
    }

    /// Adds a `WHERE` condition, AND-ed with earlier ones.
    pub fn filter(mut self, condition: Condition<'a>) -> Self {
        and_into(&mut self.filter, condition);
        self
    }

    /// Allows building without a filter: the statement deletes every row of the table.
    pub fn all_rows(mut self) -> Self {
        self.all_rows = true;
        self
    }

    /// `RETURNING` these columns of the deleted rows.
    pub fn returning(mut self, columns: &[&'a str]) -> Self {
        self.returning = Returning::Columns(columns.to_vec());
        self
    }

    /// `RETURNING *`.
    pub fn returning_all(mut self) -> Self {
        self.returning = Returning::All;
        self
    }

    /// Renders the `DELETE`.
    pub fn build(&self) -> Result<Query> {
        let filter = self.filter.as_ref().map_or(0, |f| f.estimate() + 7);
        let capacity = 16 + self.table.quoted_len() + filter + self.returning.estimate();
        let mut w = Writer::new(self.table, 0);
        if self.filter.is_none() && !self.all_rows {
            return Err(w.invalid(
                "filter",
                "a DELETE without a filter needs all_rows() to delete every row",
            ));
        }
        w.reserve(capacity);
        w.push("DELETE FROM ");
        w.table()?;
        render_where(&mut w, self.filter.as_ref())?;
        self.returning.render(&mut w)?;
        Ok(w.finish())
    }
}
