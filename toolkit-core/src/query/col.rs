//! Typed column handles: what `<Name>Columns` holds, one per stored column.

use std::fmt;
use std::marker::PhantomData;

use tokio_postgres::types::ToSql;

use super::filter::{Filter, Op};
use crate::sql::{Nulls, Order};

/// A stored column of entity `E` whose values are of type `T` (for an `Option<T>` field, `T`:
/// comparisons take the value, and [`is_null`](Col::is_null) asks for NULL). Comparing it with
/// a value of another type does not compile.
///
/// Made by `#[derive(Entity)]`: `User::columns().email` is a `Col<User, String>`.
pub struct Col<E, T> {
    index: usize,
    name: &'static str,
    types: PhantomData<fn() -> (E, T)>,
}

impl<E, T> Clone for Col<E, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E, T> Copy for Col<E, T> {}

impl<E, T> fmt::Debug for Col<E, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Col").field(&self.name).finish()
    }
}

/// A value that can be compared with a column holding `T`: a `T`, or for text columns a `&str`.
#[diagnostic::on_unimplemented(
    message = "a `{Self}` cannot be compared with this column, which holds `{T}`",
    label = "expected a `{T}` for this column",
    note = "each column of `<Name>Columns` takes values of its field's type (`T` for an `Option<T>` field)"
)]
pub trait IntoValue<T> {
    /// The value as the column's type.
    fn into_value(self) -> T;
}

impl<T: ToSql> IntoValue<T> for T {
    fn into_value(self) -> T {
        self
    }
}

impl IntoValue<String> for &str {
    fn into_value(self) -> String {
        self.to_owned()
    }
}

impl<T: ToSql + Clone> IntoValue<T> for &T {
    fn into_value(self) -> T {
        self.clone()
    }
}

/// One `ORDER BY` item on a column of `E`: [`Col::asc`] or [`Col::desc`].
pub struct OrderBy<E> {
    pub(crate) index: usize,
    pub(crate) order: Order,
    pub(crate) nulls: Nulls,
    entity: PhantomData<fn() -> E>,
}

impl<E> Clone for OrderBy<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for OrderBy<E> {}

impl<E> fmt::Debug for OrderBy<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderBy")
            .field("column", &self.index)
            .field("order", &self.order)
            .field("nulls", &self.nulls)
            .finish()
    }
}

impl<E> OrderBy<E> {
    /// Column `index` ascending (the key, as pagination's tie-breaker).
    pub(crate) fn ascending(index: usize) -> Self {
        OrderBy {
            index,
            order: Order::Asc,
            nulls: Nulls::Last,
            entity: PhantomData,
        }
    }

    /// NULLs before every value.
    pub fn nulls_first(mut self) -> Self {
        self.nulls = Nulls::First;
        self
    }

    /// NULLs after every value.
    pub fn nulls_last(mut self) -> Self {
        self.nulls = Nulls::Last;
        self
    }
}

impl<E, T> Col<E, T> {
    /// For the derive: column `index` of `E::META.columns`, named `name`.
    #[doc(hidden)]
    pub const fn new(index: usize, name: &'static str) -> Self {
        Col {
            index,
            name,
            types: PhantomData,
        }
    }

    /// The column's name in the database (unquoted), e.g. for `upsert_on`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The column's position among the entity's stored columns.
    pub fn index(&self) -> usize {
        self.index
    }

    /// `column IS NULL`.
    pub fn is_null(self) -> Filter<E> {
        Filter::test(self.index, Op::IsNull)
    }

    /// `column IS NOT NULL`.
    pub fn is_not_null(self) -> Filter<E> {
        Filter::test(self.index, Op::IsNotNull)
    }

    /// Ascending, NULLs last (PostgreSQL's default).
    pub fn asc(self) -> OrderBy<E> {
        self.order(Order::Asc, Nulls::Last)
    }

    /// Descending, NULLs first (PostgreSQL's default).
    pub fn desc(self) -> OrderBy<E> {
        self.order(Order::Desc, Nulls::First)
    }

    fn order(self, order: Order, nulls: Nulls) -> OrderBy<E> {
        OrderBy {
            index: self.index,
            order,
            nulls,
            entity: PhantomData,
        }
    }
}

impl<E, T: ToSql + Send + Sync + 'static> Col<E, T> {
    fn compare(self, op: Op, value: impl IntoValue<T>) -> Filter<E> {
        Filter::compare(self.index, op, Box::new(value.into_value()))
    }

    /// `column = value`. A NULL column matches nothing (use [`is_null`](Col::is_null)).
    pub fn eq(self, value: impl IntoValue<T>) -> Filter<E> {
        self.compare(Op::Eq, value)
    }

    /// `column <> value`. A NULL column matches nothing.
    pub fn ne(self, value: impl IntoValue<T>) -> Filter<E> {
        self.compare(Op::Ne, value)
    }

    /// `column < value`.
    pub fn lt(self, value: impl IntoValue<T>) -> Filter<E> {
        self.compare(Op::Lt, value)
    }

    /// `column <= value`.
    pub fn le(self, value: impl IntoValue<T>) -> Filter<E> {
        self.compare(Op::Le, value)
    }

    /// `column > value`.
    pub fn gt(self, value: impl IntoValue<T>) -> Filter<E> {
        self.compare(Op::Gt, value)
    }

    /// `column >= value`.
    pub fn ge(self, value: impl IntoValue<T>) -> Filter<E> {
        self.compare(Op::Ge, value)
    }

    /// `column = ANY($1)`: one array parameter whatever the number of values (none matches
    /// nothing).
    pub fn in_list<V: IntoValue<T>>(self, values: impl IntoIterator<Item = V>) -> Filter<E>
    where
        Vec<T>: ToSql,
    {
        let values: Vec<T> = values.into_iter().map(IntoValue::into_value).collect();
        Filter::compare(self.index, Op::InList, Box::new(values))
    }
}

impl<E> Col<E, String> {
    /// `column LIKE pattern`: `%` matches any run of characters and `_` one character; escape
    /// them with `\` to match them literally.
    pub fn like(self, pattern: impl IntoValue<String>) -> Filter<E> {
        self.compare(Op::Like, pattern)
    }

    /// `column ILIKE pattern`: [`like`](Col::like), ignoring case.
    pub fn ilike(self, pattern: impl IntoValue<String>) -> Filter<E> {
        self.compare(Op::Ilike, pattern)
    }
}
