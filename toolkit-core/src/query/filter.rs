//! `Filter<E>`: a condition on an entity's columns, with its values kept beside it (never in
//! the SQL text), and a compact shape from which its SQL is rendered once per process.

use std::fmt;
use std::marker::PhantomData;

use tokio_postgres::types::ToSql;

use crate::entity::EntityMeta;
use crate::sql::{col, Condition};
use crate::Result;

/// A bound value of a filter.
pub(crate) type Value = Box<dyn ToSql + Send + Sync>;

/// How a column is tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    Ilike,
    InList,
    IsNull,
    IsNotNull,
}

#[derive(Debug, Clone)]
enum Node {
    /// Column `index` tested by `op` (with one value, except the NULL tests).
    Test {
        index: usize,
        op: Op,
    },
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
}

/// A condition on the columns of `E`, built from `E::columns()`:
/// `c.age.ge(18).and(c.name.like("A%"))`. Values are bound as parameters, in the order they
/// appear; the SQL text is rendered from the column names the derive validated.
pub struct Filter<E> {
    node: Node,
    /// The values in the order their placeholders appear in the rendered text.
    values: Vec<Value>,
    /// The column each value is compared with (for errors naming the field).
    columns: Vec<usize>,
    entity: PhantomData<fn() -> E>,
}

impl<E> fmt::Debug for Filter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("node", &self.node)
            .field("values", &self.values.len())
            .finish()
    }
}

impl<E> Filter<E> {
    /// Every row.
    pub fn all() -> Self {
        Filter::node(Node::All(Vec::new()))
    }

    /// Both conditions.
    pub fn and(self, other: Filter<E>) -> Self {
        self.join(other, true)
    }

    /// Either condition.
    pub fn or(self, other: Filter<E>) -> Self {
        self.join(other, false)
    }

    /// The opposite condition (`NOT (...)`; a NULL comparison stays unknown, so matches
    /// neither a condition nor its negation, as in SQL).
    #[allow(clippy::should_implement_trait)] // `!filter` would read worse than `filter.not()`
    pub fn not(self) -> Self {
        Filter {
            node: Node::Not(Box::new(self.node)),
            ..self
        }
    }

    fn node(node: Node) -> Self {
        Filter {
            node,
            values: Vec::new(),
            columns: Vec::new(),
            entity: PhantomData,
        }
    }

    pub(crate) fn test(index: usize, op: Op) -> Self {
        Filter::node(Node::Test { index, op })
    }

    pub(crate) fn compare(index: usize, op: Op, value: Value) -> Self {
        Filter {
            node: Node::Test { index, op },
            values: vec![value],
            columns: vec![index],
            entity: PhantomData,
        }
    }

    fn join(mut self, other: Filter<E>, all: bool) -> Self {
        let mut items = Vec::with_capacity(2);
        for node in [self.node, other.node] {
            match node {
                Node::All(inner) if all => items.extend(inner),
                Node::Any(inner) if !all => items.extend(inner),
                node => items.push(node),
            }
        }
        self.values.extend(other.values);
        self.columns.extend(other.columns);
        Filter {
            node: if all {
                Node::All(items)
            } else {
                Node::Any(items)
            },
            values: self.values,
            columns: self.columns,
            entity: PhantomData,
        }
    }

    /// True for [`Filter::all`]: no condition at all.
    pub(crate) fn is_everything(&self) -> bool {
        matches!(&self.node, Node::All(items) if items.is_empty())
    }

    pub(crate) fn values(&self) -> &[Value] {
        &self.values
    }

    pub(crate) fn columns(&self) -> &[usize] {
        &self.columns
    }

    /// Appends the filter's shape (no values) to `key`: equal keys render equal SQL.
    pub(crate) fn shape(&self, key: &mut Vec<u32>) {
        shape(&self.node, key);
    }

    /// The filter as a builder condition on `meta`'s columns; fails on a column index the
    /// entity does not have (only a hand-made `Col` can carry one).
    pub(crate) fn condition(&self, meta: &'static EntityMeta) -> Result<Condition<'static>> {
        condition(&self.node, meta)
    }
}

fn shape(node: &Node, key: &mut Vec<u32>) {
    let small = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    match node {
        Node::Test { index, op } => {
            key.push(1);
            key.push(small(*index));
            key.push(*op as u32);
        }
        Node::All(items) | Node::Any(items) => {
            key.push(if matches!(node, Node::All(_)) { 2 } else { 3 });
            key.push(small(items.len()));
            for item in items {
                shape(item, key);
            }
        }
        Node::Not(inner) => {
            key.push(4);
            shape(inner, key);
        }
    }
}

fn condition(node: &Node, meta: &'static EntityMeta) -> Result<Condition<'static>> {
    Ok(match node {
        Node::Test { index, op } => {
            let column = meta
                .columns
                .get(*index)
                .ok_or_else(|| crate::entity::private::no_such_column(*index, meta))?;
            let c = col(column.name);
            match op {
                Op::Eq => c.eq(),
                Op::Ne => c.ne(),
                Op::Lt => c.lt(),
                Op::Le => c.le(),
                Op::Gt => c.gt(),
                Op::Ge => c.ge(),
                Op::Like => c.like(),
                Op::Ilike => c.ilike(),
                Op::InList => c.eq_any(),
                Op::IsNull => c.is_null(),
                Op::IsNotNull => c.is_not_null(),
            }
        }
        Node::All(items) => Condition::all(
            items
                .iter()
                .map(|item| condition(item, meta))
                .collect::<Result<Vec<_>>>()?,
        ),
        Node::Any(items) => Condition::any(
            items
                .iter()
                .map(|item| condition(item, meta))
                .collect::<Result<Vec<_>>>()?,
        ),
        Node::Not(inner) => condition(inner, meta)?.negate(),
    })
}
