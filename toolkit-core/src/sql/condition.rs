//! `WHERE` conditions: a small tree of comparisons against placeholders, rendered in text order.

use super::raw::RawSql;
use super::writer::Writer;
use crate::Result;

/// How deeply conditions may nest before rendering gives up.
const MAX_DEPTH: usize = 128;

/// Starts a condition on column `name`, e.g. `col("age").ge()` for `"age" >= $n`.
///
/// The name is validated when the statement is built.
pub fn col(name: &str) -> Column<'_> {
    Column { name }
}

/// A column about to be compared; see [`col`]. Each comparison takes its value from a placeholder.
#[derive(Debug, Clone, Copy)]
pub struct Column<'a> {
    name: &'a str,
}

impl<'a> Column<'a> {
    fn cmp(self, op: &'static str) -> Condition<'a> {
        Condition {
            node: Node::Compare {
                column: self.name,
                op,
            },
        }
    }

    /// `"col" = $n`.
    pub fn eq(self) -> Condition<'a> {
        self.cmp(" = ")
    }

    /// `"col" <> $n`.
    pub fn ne(self) -> Condition<'a> {
        self.cmp(" <> ")
    }

    /// `"col" < $n`.
    pub fn lt(self) -> Condition<'a> {
        self.cmp(" < ")
    }

    /// `"col" > $n`.
    pub fn gt(self) -> Condition<'a> {
        self.cmp(" > ")
    }

    /// `"col" <= $n`.
    pub fn le(self) -> Condition<'a> {
        self.cmp(" <= ")
    }

    /// `"col" >= $n`.
    pub fn ge(self) -> Condition<'a> {
        self.cmp(" >= ")
    }

    /// `"col" LIKE $n`: the value is a pattern (`%` any run, `_` one character).
    pub fn like(self) -> Condition<'a> {
        self.cmp(" LIKE ")
    }

    /// `"col" ILIKE $n`: `LIKE`, ignoring case.
    pub fn ilike(self) -> Condition<'a> {
        self.cmp(" ILIKE ")
    }

    /// `"col" IS NOT DISTINCT FROM $n`: equal, with NULL equal to NULL.
    pub fn not_distinct(self) -> Condition<'a> {
        self.cmp(" IS NOT DISTINCT FROM ")
    }

    /// `"col" = ANY($n)`: SQL's `IN` with the whole list bound as one array parameter (e.g. a
    /// `&[i64]`), so the statement text does not depend on the list's length.
    #[doc(alias = "in")]
    pub fn eq_any(self) -> Condition<'a> {
        Condition {
            node: Node::Array {
                column: self.name,
                op: " = ANY(",
            },
        }
    }

    /// `"col" <> ALL($n)`: SQL's `NOT IN` with the list bound as one array parameter.
    #[doc(alias = "not_in")]
    pub fn ne_all(self) -> Condition<'a> {
        Condition {
            node: Node::Array {
                column: self.name,
                op: " <> ALL(",
            },
        }
    }

    /// `"col" IS NULL`; takes no parameter.
    pub fn is_null(self) -> Condition<'a> {
        Condition {
            node: Node::Null {
                column: self.name,
                negated: false,
            },
        }
    }

    /// `"col" IS NOT NULL`; takes no parameter.
    pub fn is_not_null(self) -> Condition<'a> {
        Condition {
            node: Node::Null {
                column: self.name,
                negated: true,
            },
        }
    }
}

/// A boolean condition for `WHERE`, combined with [`and`](Condition::and),
/// [`or`](Condition::or), [`all`](Condition::all), [`any`](Condition::any) and
/// [`negate`](Condition::negate).
///
/// A group nested inside another group is parenthesised, so the rendered text always means what
/// the tree says. An empty [`all`](Condition::all) is `TRUE` and an empty
/// [`any`](Condition::any) is `FALSE`.
///
/// ```
/// use toolkit_core::sql::{col, Condition, Select};
///
/// let cond = col("org").eq().and(col("role").eq_any().or(col("deleted_at").is_null()));
/// let q = Select::from("users").filter(cond).build()?;
/// assert_eq!(
///     q.sql(),
///     r#"SELECT * FROM "users" WHERE "org" = $1 AND ("role" = ANY($2) OR "deleted_at" IS NULL)"#
/// );
/// assert_eq!(q.param_count(), 2);
/// # Ok::<(), toolkit_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Condition<'a> {
    node: Node<'a>,
}

#[derive(Debug, Clone)]
enum Node<'a> {
    Compare { column: &'a str, op: &'static str },
    Array { column: &'a str, op: &'static str },
    Null { column: &'a str, negated: bool },
    All(Vec<Condition<'a>>),
    Any(Vec<Condition<'a>>),
    Not(Box<Condition<'a>>),
    Raw(RawSql),
}

impl<'a> Condition<'a> {
    /// True when every condition holds (`a AND b AND ...`); `TRUE` when there are none.
    pub fn all(conditions: impl IntoIterator<Item = Condition<'a>>) -> Self {
        Condition {
            node: Node::All(conditions.into_iter().collect()),
        }
    }

    /// True when at least one condition holds (`a OR b OR ...`); `FALSE` when there are none.
    pub fn any(conditions: impl IntoIterator<Item = Condition<'a>>) -> Self {
        Condition {
            node: Node::Any(conditions.into_iter().collect()),
        }
    }

    /// `self AND other`; chains of `and` stay one flat group.
    pub fn and(self, other: Condition<'a>) -> Self {
        Condition {
            node: Node::All(join(self, other, true)),
        }
    }

    /// `self OR other`; chains of `or` stay one flat group.
    pub fn or(self, other: Condition<'a>) -> Self {
        Condition {
            node: Node::Any(join(self, other, false)),
        }
    }

    /// `NOT (self)`.
    pub fn negate(self) -> Self {
        Condition {
            node: Node::Not(Box::new(self)),
        }
    }

    /// A hand-written condition, rendered in parentheses; see [`RawSql`] for what it may contain.
    /// It takes no parameters.
    pub fn raw(sql: RawSql) -> Self {
        Condition {
            node: Node::Raw(sql),
        }
    }

    /// Bytes this condition roughly renders to, for sizing the buffer up front.
    pub(crate) fn estimate(&self) -> usize {
        self.estimate_at(0)
    }

    fn estimate_at(&self, depth: usize) -> usize {
        if depth > MAX_DEPTH {
            return 0;
        }
        match &self.node {
            Node::Compare { column, .. }
            | Node::Array { column, .. }
            | Node::Null { column, .. } => column.len() + 16,
            Node::All(items) | Node::Any(items) => {
                items.iter().map(|c| c.estimate_at(depth + 1) + 6).sum()
            }
            Node::Not(inner) => inner.estimate_at(depth + 1) + 7,
            Node::Raw(sql) => sql.as_str().len() + 2,
        }
    }

    /// Writes the condition; `nested` is set inside a group, where a group of several items needs
    /// parentheses to keep its meaning.
    pub(crate) fn render(&self, w: &mut Writer<'_>, nested: bool) -> Result<()> {
        self.render_at(w, nested, 0)
    }

    fn render_at(&self, w: &mut Writer<'_>, nested: bool, depth: usize) -> Result<()> {
        // Bounded so a pathological tree yields an error instead of overflowing the stack.
        if depth > MAX_DEPTH {
            return Err(w.invalid(
                "condition",
                format!("conditions nest deeper than {MAX_DEPTH} levels"),
            ));
        }
        let depth = depth + 1;
        match &self.node {
            Node::Compare { column, op } => {
                w.ident(column)?;
                w.push(op);
                w.param()
            }
            Node::Array { column, op } => {
                w.ident(column)?;
                w.push(op);
                w.param()?;
                w.push(")");
                Ok(())
            }
            Node::Null { column, negated } => {
                w.ident(column)?;
                w.push(if *negated { " IS NOT NULL" } else { " IS NULL" });
                Ok(())
            }
            Node::All(items) => render_group(w, items, " AND ", "TRUE", nested, depth),
            Node::Any(items) => render_group(w, items, " OR ", "FALSE", nested, depth),
            Node::Not(inner) => {
                w.push("NOT (");
                inner.render_at(w, false, depth)?;
                w.push(")");
                Ok(())
            }
            Node::Raw(sql) => {
                w.push("(");
                w.raw(sql)?;
                w.push(")");
                Ok(())
            }
        }
    }
}

/// The items of `a` and `b`, splicing in the items of either one that already is a group of the
/// requested kind (`all` for AND, otherwise OR).
fn join<'a>(a: Condition<'a>, b: Condition<'a>, all: bool) -> Vec<Condition<'a>> {
    let mut items = Vec::with_capacity(2);
    for c in [a, b] {
        match c.node {
            Node::All(inner) if all => items.extend(inner),
            Node::Any(inner) if !all => items.extend(inner),
            node => items.push(Condition { node }),
        }
    }
    items
}

fn render_group(
    w: &mut Writer<'_>,
    items: &[Condition<'_>],
    separator: &'static str,
    empty: &'static str,
    nested: bool,
    depth: usize,
) -> Result<()> {
    match items {
        [] => {
            w.push(empty);
            Ok(())
        }
        [only] => only.render_at(w, nested, depth),
        _ => {
            if nested {
                w.push("(");
            }
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    w.push(separator);
                }
                item.render_at(w, true, depth)?;
            }
            if nested {
                w.push(")");
            }
            Ok(())
        }
    }
}

/// Adds `condition` to a statement's filter, AND-ing it with any earlier one.
pub(crate) fn and_into<'a>(slot: &mut Option<Condition<'a>>, condition: Condition<'a>) {
    *slot = Some(match slot.take() {
        Some(previous) => previous.and(condition),
        None => condition,
    });
}

/// Writes ` WHERE ...` when there is a filter.
pub(crate) fn render_where(w: &mut Writer<'_>, filter: Option<&Condition<'_>>) -> Result<()> {
    match filter {
        Some(condition) => {
            w.push(" WHERE ");
            condition.render(w, false)
        }
        None => Ok(()),
    }
}
