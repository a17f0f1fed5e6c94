//! `SELECT`, with its `COUNT(*)` and `EXISTS` forms.

use super::clause::{Bound, Nulls, Order};
use super::condition::{and_into, render_where, Condition};
use super::ident::{check, TableRef};
use super::raw::RawSql;
use super::writer::Writer;
use super::Query;
use crate::Result;

/// A `SELECT` from one table.
///
/// Without columns it selects `*`. Filters added with [`filter`](Select::filter) are AND-ed.
/// `LIMIT` and `OFFSET` are either integers written into the text ([`limit`](Select::limit),
/// checked to fit a bigint) or placeholders ([`limit_param`](Select::limit_param)), which keep the
/// text, and so a prepared statement, the same across pages. Placeholders are numbered in text
/// order: filter values first, then the limit, then the offset.
///
/// ```
/// use toolkit_core::sql::{col, Order, Select, TableRef};
///
/// let q = Select::from(TableRef::qualified("app", "users"))
///     .columns(&["id", "name"])
///     .filter(col("age").ge())
///     .filter(col("deleted_at").is_null())
///     .order_by("name", Order::Asc)
///     .order_by("id", Order::Desc)
///     .limit(10)
///     .offset_param()
///     .build()?;
/// assert_eq!(
///     q.sql(),
///     r#"SELECT "id", "name" FROM "app"."users" WHERE "age" >= $1 AND "deleted_at" IS NULL ORDER BY "name" ASC, "id" DESC LIMIT 10 OFFSET $2"#
/// );
/// assert_eq!(q.param_count(), 2);
/// # Ok::<(), toolkit_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Select<'a> {
    table: TableRef<'a>,
    items: Vec<Item<'a>>,
    filter: Option<Condition<'a>>,
    order: Vec<(&'a str, Order, Option<Nulls>)>,
    limit: Bound,
    offset: Bound,
}

#[derive(Debug, Clone)]
enum Item<'a> {
    Column(&'a str),
    Raw(RawSql),
}

/// What the rendered `SELECT` list is.
#[derive(Clone, Copy)]
enum Projection {
    Items,
    One,
    Count,
}

impl<'a> Select<'a> {
    /// Selects from `table` (a name, or a [`TableRef`]/[`QualifiedName`](super::QualifiedName)
    /// for a schema-qualified one).
    pub fn from(table: impl Into<TableRef<'a>>) -> Self {
        Select {
            table: table.into(),
            items: Vec::new(),
            filter: None,
            order: Vec::new(),
            limit: Bound::Absent,
            offset: Bound::Absent,
        }
    }

    /// Appends columns to the select list.
    pub fn columns(mut self, columns: &[&'a str]) -> Self {
        self.items.extend(columns.iter().map(|c| Item::Column(c)));
        self
    }

    /// Appends one column to the select list.
    pub fn column(mut self, column: &'a str) -> Self {
        self.items.push(Item::Column(column));
        self
    }

    /// Appends an expression such as `count(*)` or `lower("email")` to the select list.
    pub fn column_raw(mut self, expression: RawSql) -> Self {
        self.items.push(Item::Raw(expression));
        self
    }

    /// Adds a `WHERE` condition, AND-ed with earlier ones.
    pub fn filter(mut self, condition: Condition<'a>) -> Self {
        and_into(&mut self.filter, condition);
        self
    }

    /// Appends an `ORDER BY` item.
    pub fn order_by(mut self, column: &'a str, order: Order) -> Self {
        self.order.push((column, order, None));
        self
    }

    /// Appends an `ORDER BY` item with `NULLS FIRST` or `NULLS LAST`.
    pub fn order_by_nulls(mut self, column: &'a str, order: Order, nulls: Nulls) -> Self {
        self.order.push((column, order, Some(nulls)));
        self
    }

    /// `LIMIT n`, written into the text.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Bound::Value(n);
        self
    }

    /// `LIMIT $k`, bound as an `i64` after the filter's values.
    pub fn limit_param(mut self) -> Self {
        self.limit = Bound::Param;
        self
    }

    /// `OFFSET n`, written into the text.
    pub fn offset(mut self, n: u64) -> Self {
        self.offset = Bound::Value(n);
        self
    }

    /// `OFFSET $k`, bound as an `i64` after the filter's and the limit's values.
    pub fn offset_param(mut self) -> Self {
        self.offset = Bound::Param;
        self
    }

    /// Renders the `SELECT`.
    pub fn build(&self) -> Result<Query> {
        let mut w = self.writer(0);
        self.render(&mut w, Projection::Items)?;
        Ok(w.finish())
    }

    /// Renders `SELECT COUNT(*)` of the rows this select would return (a bigint). Ordering is
    /// dropped since it cannot change the count; with a limit or offset the select becomes a
    /// subquery. Placeholders are numbered exactly as in [`build`](Select::build), so the same
    /// values bind.
    ///
    /// ```
    /// use toolkit_core::sql::{col, Select};
    ///
    /// let q = Select::from("users").filter(col("age").gt()).build_count()?;
    /// assert_eq!(q.sql(), r#"SELECT COUNT(*) FROM "users" WHERE "age" > $1"#);
    /// # Ok::<(), toolkit_core::Error>(())
    /// ```
    pub fn build_count(&self) -> Result<Query> {
        let mut w = self.writer(32);
        if self.limit.is_absent() && self.offset.is_absent() {
            self.render(&mut w, Projection::Count)?;
        } else {
            w.push("SELECT COUNT(*) FROM (");
            self.render(&mut w, Projection::One)?;
            w.push(") AS \"counted\"");
        }
        Ok(w.finish())
    }

    /// Renders `SELECT EXISTS (...)`: whether this select would return any row (a boolean).
    /// Placeholders are numbered exactly as in [`build`](Select::build).
    ///
    /// ```
    /// use toolkit_core::sql::{col, Select};
    ///
    /// let q = Select::from("users").filter(col("email").eq()).build_exists()?;
    /// assert_eq!(q.sql(), r#"SELECT EXISTS (SELECT 1 FROM "users" WHERE "email" = $1)"#);
    /// # Ok::<(), toolkit_core::Error>(())
    /// ```
    pub fn build_exists(&self) -> Result<Query> {
        let mut w = self.writer(20);
        w.push("SELECT EXISTS (");
        self.render(&mut w, Projection::One)?;
        w.push(")");
        Ok(w.finish())
    }

    fn writer(&self, extra: usize) -> Writer<'a> {
        let items: usize = self
            .items
            .iter()
            .map(|item| match item {
                Item::Column(c) => c.len() + 4,
                Item::Raw(r) => r.as_str().len() + 2,
            })
            .sum();
        let order: usize = self.order.iter().map(|(c, _, _)| c.len() + 20).sum();
        let filter = self.filter.as_ref().map_or(0, |f| f.estimate() + 7);
        let capacity = 48 + extra + self.table.quoted_len() + items + filter + order;
        Writer::new(self.table, capacity)
    }

    fn render(&self, w: &mut Writer<'_>, projection: Projection) -> Result<()> {
        w.push("SELECT ");
        match projection {
            Projection::Items if self.items.is_empty() => w.push("*"),
            Projection::Items => {
                for (i, item) in self.items.iter().enumerate() {
                    if i > 0 {
                        w.push(", ");
                    }
                    match item {
                        Item::Column(c) => w.ident(c)?,
                        Item::Raw(r) => w.raw(r)?,
                    }
                }
            }
            Projection::One => w.push("1"),
            Projection::Count => w.push("COUNT(*)"),
        }
        w.push(" FROM ");
        w.table()?;
        render_where(w, self.filter.as_ref())?;
        if matches!(projection, Projection::Items) {
            for (i, (column, order, nulls)) in self.order.iter().enumerate() {
                w.push(if i == 0 { " ORDER BY " } else { ", " });
                w.ident(column)?;
                w.push(order.keyword());
                if let Some(nulls) = nulls {
                    w.push(nulls.keyword());
                }
            }
        } else {
            // Not rendered, but a bad name must fail the same way in every form.
            for (column, _, _) in &self.order {
                check(column)?;
            }
        }
        self.limit.render(w, " LIMIT ", "limit")?;
        self.offset.render(w, " OFFSET ", "offset")
    }
}
