//! `INSERT`, with multi-row `VALUES`, `ON CONFLICT` and `RETURNING`.

use super::clause::Returning;
use super::ident::TableRef;
use super::writer::{Writer, PARAM_WIDTH};
use super::Query;
use crate::Result;

/// An `INSERT` into one table.
///
/// Each of [`rows`](Insert::rows) rows takes one placeholder per column, numbered row by row.
/// Building fails when there are no columns (unless [`default_values`](Insert::default_values) is
/// asked for), when `rows` is zero, or when the statement would exceed
/// [`MAX_PARAMS`](super::MAX_PARAMS) placeholders.
///
/// ```
/// use toolkit_core::sql::Insert;
///
/// let q = Insert::into("users")
///     .columns(&["email", "name"])
///     .rows(2)
///     .on_conflict_do_update(&["email"], &["name"])
///     .returning(&["id"])
///     .build()?;
/// assert_eq!(
///     q.sql(),
///     r#"INSERT INTO "users" ("email", "name") VALUES ($1, $2), ($3, $4) ON CONFLICT ("email") DO UPDATE SET "name" = EXCLUDED."name" RETURNING "id""#
/// );
/// assert_eq!(q.param_count(), 4);
/// # Ok::<(), toolkit_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Insert<'a> {
    table: TableRef<'a>,
    columns: Vec<&'a str>,
    rows: usize,
    default_values: bool,
    conflict: Option<Conflict<'a>>,
    returning: Returning<'a>,
}

#[derive(Debug, Clone)]
enum Conflict<'a> {
    Nothing {
        target: Vec<&'a str>,
    },
    Update {
        target: Vec<&'a str>,
        set: Vec<&'a str>,
    },
}

impl<'a> Insert<'a> {
    /// Inserts into `table`, one row by default.
    pub fn into(table: impl Into<TableRef<'a>>) -> Self {
        Insert {
            table: table.into(),
            columns: Vec::new(),
            rows: 1,
            default_values: false,
            conflict: None,
            returning: Returning::Nothing,
        }
    }

    /// Appends columns to insert.
    pub fn columns(mut self, columns: &[&'a str]) -> Self {
        self.columns.extend_from_slice(columns);
        self
    }

    /// Appends one column to insert.
    pub fn column(mut self, column: &'a str) -> Self {
        self.columns.push(column);
        self
    }

    /// How many rows the `VALUES` list holds (default 1).
    pub fn rows(mut self, rows: usize) -> Self {
        self.rows = rows;
        self
    }

    /// `DEFAULT VALUES` instead of a column list, for a row whose columns all have defaults
    /// (e.g. only a generated key). Building fails if columns are given too.
    pub fn default_values(mut self) -> Self {
        self.default_values = true;
        self
    }

    /// `ON CONFLICT (target) DO NOTHING`; with an empty target, any conflict is ignored.
    pub fn on_conflict_do_nothing(mut self, target: &[&'a str]) -> Self {
        self.conflict = Some(Conflict::Nothing {
            target: target.to_vec(),
        });
        self
    }

    /// `ON CONFLICT (target) DO UPDATE SET "c" = EXCLUDED."c"` for each column of `set`: an
    /// upsert taking the new row's values. Both lists must be non-empty.
    pub fn on_conflict_do_update(mut self, target: &[&'a str], set: &[&'a str]) -> Self {
        self.conflict = Some(Conflict::Update {
            target: target.to_vec(),
            set: set.to_vec(),
        });
        self
    }

    /// `RETURNING` these columns of the inserted rows.
    pub fn returning(mut self, columns: &[&'a str]) -> Self {
        self.returning = Returning::Columns(columns.to_vec());
        self
    }

    /// `RETURNING *`.
    pub fn returning_all(mut self) -> Self {
        self.returning = Returning::All;
        self
    }

    /// Renders the `INSERT`.
    pub fn build(&self) -> Result<Query> {
        // A zero-capacity writer does not allocate; it only carries the table for errors.
        let params = self.check_shape(&Writer::new(self.table, 0))?;
        let names: usize = self.columns.iter().map(|c| c.len() + 4).sum();
        let conflict = match &self.conflict {
            None => 0,
            Some(Conflict::Nothing { target }) => {
                32 + target.iter().map(|c| c.len() + 4).sum::<usize>()
            }
            Some(Conflict::Update { target, set }) => {
                48 + target.iter().map(|c| c.len() + 4).sum::<usize>()
                    + set.iter().map(|c| c.len() * 2 + 16).sum::<usize>()
            }
        };
        let capacity = 40
            + self.table.quoted_len()
            + names
            + params * PARAM_WIDTH
            + self.rows * 4
            + conflict
            + self.returning.estimate();
        let mut w = Writer::new(self.table, capacity);

        w.push("INSERT INTO ");
        w.table()?;
        if self.default_values {
            w.push(" DEFAULT VALUES");
        } else {
            w.push(" (");
            w.idents(&self.columns)?;
            w.push(") VALUES ");
            w.value_rows(self.columns.len(), self.rows)?;
        }
        self.render_conflict(&mut w)?;
        self.returning.render(&mut w)?;
        Ok(w.finish())
    }

    /// Checks everything that does not depend on rendering; returns the placeholder count.
    fn check_shape(&self, w: &Writer<'_>) -> Result<usize> {
        if self.default_values {
            if !self.columns.is_empty() {
                return Err(w.invalid("columns", "DEFAULT VALUES takes no columns"));
            }
            if self.rows != 1 {
                return Err(w.invalid("rows", "DEFAULT VALUES inserts exactly one row"));
            }
            return Ok(0);
        }
        if self.columns.is_empty() {
            return Err(w.invalid(
                "columns",
                "an INSERT needs at least one column (use default_values for a row of defaults)",
            ));
        }
        if self.rows == 0 {
            return Err(w.invalid("rows", "an INSERT needs at least one row"));
        }
        let params = self.columns.len().checked_mul(self.rows);
        w.check_param_budget(params)?;
        Ok(params.unwrap_or(0))
    }

    fn render_conflict(&self, w: &mut Writer<'_>) -> Result<()> {
        match &self.conflict {
            None => Ok(()),
            Some(Conflict::Nothing { target }) => {
                w.push(" ON CONFLICT");
                if !target.is_empty() {
                    w.push(" (");
                    w.idents(target)?;
                    w.push(")");
                }
                w.push(" DO NOTHING");
                Ok(())
            }
            Some(Conflict::Update { target, set }) => {
                if target.is_empty() {
                    return Err(
                        w.invalid("on_conflict", "DO UPDATE needs the conflict target columns")
                    );
                }
                if set.is_empty() {
                    return Err(
                        w.invalid("on_conflict", "DO UPDATE needs at least one column to set")
                    );
                }
                w.push(" ON CONFLICT (");
                w.idents(target)?;
                w.push(") DO UPDATE SET ");
                for (i, column) in set.iter().enumerate() {
                    if i > 0 {
                        w.push(", ");
                    }
                    w.ident(column)?;
                    w.push(" = EXCLUDED.");
                    w.ident(column)?;
                }
                Ok(())
            }
        }
    }
}
