//! Clauses shared by several statements: `ORDER BY` direction, `LIMIT`/`OFFSET`, `RETURNING`.

use std::fmt::Write as _;

use super::writer::Writer;
use crate::Result;

/// Sort direction of an `ORDER BY` item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Order {
    /// Ascending (`ASC`), the SQL default.
    #[default]
    Asc,
    /// Descending (`DESC`).
    Desc,
}

/// Where NULLs sort in an `ORDER BY` item; without one, PostgreSQL puts them last ascending
/// and first descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Nulls {
    /// `NULLS FIRST`.
    First,
    /// `NULLS LAST`.
    Last,
}

impl Nulls {
    pub(crate) fn keyword(self) -> &'static str {
        match self {
            Nulls::First => " NULLS FIRST",
            Nulls::Last => " NULLS LAST",
        }
    }
}

impl Order {
    pub(crate) fn keyword(self) -> &'static str {
        match self {
            Order::Asc => " ASC",
            Order::Desc => " DESC",
        }
    }
}

/// A `LIMIT` or `OFFSET`: absent, an integer written into the text, or a placeholder.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) enum Bound {
    #[default]
    Absent,
    Value(u64),
    Param,
}

impl Bound {
    pub(crate) fn is_absent(self) -> bool {
        matches!(self, Bound::Absent)
    }

    /// Writes ` LIMIT 10` / ` OFFSET $3`; `field` names the bound in errors.
    pub(crate) fn render(
        self,
        w: &mut Writer<'_>,
        keyword: &'static str,
        field: &str,
    ) -> Result<()> {
        match self {
            Bound::Absent => Ok(()),
            Bound::Value(n) => {
                // The server takes a bigint; a larger value would fail there with a vaguer error.
                if i64::try_from(n).is_err() {
                    return Err(w.invalid(field, format!("{n} exceeds the largest bigint")));
                }
                w.push(keyword);
                let _ = write!(w.buf(), "{n}");
                Ok(())
            }
            Bound::Param => {
                w.push(keyword);
                w.param()
            }
        }
    }
}

/// What a statement's `RETURNING` clause returns.
#[derive(Debug, Clone, Default)]
pub(crate) enum Returning<'a> {
    #[default]
    Nothing,
    All,
    Columns(Vec<&'a str>),
}

impl Returning<'_> {
    pub(crate) fn estimate(&self) -> usize {
        match self {
            Returning::Nothing => 0,
            Returning::All => 12,
            Returning::Columns(cols) => 11 + cols.iter().map(|c| c.len() + 4).sum::<usize>(),
        }
    }

    pub(crate) fn render(&self, w: &mut Writer<'_>) -> Result<()> {
        match self {
            Returning::Nothing => Ok(()),
            Returning::All => {
                w.push(" RETURNING *");
                Ok(())
            }
            Returning::Columns(cols) if cols.is_empty() => Err(w.invalid(
                "returning",
                "RETURNING needs at least one column (use returning_all for *)",
            )),
            Returning::Columns(cols) => {
                w.push(" RETURNING ");
                w.idents(cols)
            }
        }
    }
}
