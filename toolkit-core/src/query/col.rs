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
/// Made by `#[derive(Entity)]`: `User::columns().email` is a `Col<User, String, User_email>`.
/// The third parameter is a marker type the derive names after the column, so that a compile
/// error about a value of the wrong type names the column. Take handles from
/// `User::columns()`; their type rarely needs to be written out.
pub struct Col<E, T, C = ()> {
    index: usize,
    name: &'static str,
    types: PhantomData<Types<E, T, C>>,
}

/// Only the types matter: a handle owns no `E`, `T` or `C`, and is `Send`, `Sync` and `Copy`
/// whatever they are.
type Types<E, T, C> = fn() -> (E, T, C);

impl<E, T, C> Clone for Col<E, T, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E, T, C> Copy for Col<E, T, C> {}

impl<E, T, C> fmt::Debug for Col<E, T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Col").field(&self.name).finish()
    }
}

/// A value that can be compared with a column holding `T`: a `T`, a `&T`, or for text columns
/// a `&str`. `C` is the column's marker type, which names it in compile errors.
#[diagnostic::on_unimplemented(
    message = "a `{Self}` cannot be compared with column `{C}`, which holds `{T}`",
    label = "expected a `{T}` for column `{C}`",
    note = "each column of `<Name>Columns` takes values of its field's type (`T` for an `Option<T>` field)"
)]
pub trait IntoValue<T, C = ()> {
    /// The value as the column's type.
    fn into_value(self) -> T;
}

impl<T: ToSql, C> IntoValue<T, C> for T {
    fn into_value(self) -> T {
        self
    }
}

impl<C> IntoValue<String, C> for &str {
    fn into_value(self) -> String {
        self.to_owned()
    }
}

impl<T: ToSql + Clone, C> IntoValue<T, C> for &T {
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
    /// The item as words of a statement's shape key: column, direction, NULLs placement.
    pub(crate) fn shape(&self) -> [u32; 3] {
        let index = u32::try_from(self.index).unwrap_or(u32::MAX);
        [index, self.order as u32, self.nulls as u32]
    }

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

impl<E, T, C> Col<E, T, C> {
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

impl<E, T: ToSql + Send + Sync + 'static, C> Col<E, T, C> {
    fn compare(self, op: Op, value: impl IntoValue<T, C>) -> Filter<E> {
        Filter::compare(self.index, op, Box::new(value.into_value()))
    }

    /// `column = value`. A NULL column matches nothing (use [`is_null`](Col::is_null)).
    pub fn eq(self, value: impl IntoValue<T, C>) -> Filter<E> {
        self.compare(Op::Eq, value)
    }

    /// `column <> value`. A NULL column matches nothing.
    pub fn ne(self, value: impl IntoValue<T, C>) -> Filter<E> {
        self.compare(Op::Ne, value)
    }

    /// `column < value`.
    pub fn lt(self, value: impl IntoValue<T, C>) -> Filter<E> {
        self.compare(Op::Lt, value)
    }

    /// `column <= value`.
    pub fn le(self, value: impl IntoValue<T, C>) -> Filter<E> {
        self.compare(Op::Le, value)
    }

    /// `column > value`.
    pub fn gt(self, value: impl IntoValue<T, C>) -> Filter<E> {
        self.compare(Op::Gt, value)
    }

    /// `column >= value`.
    pub fn ge(self, value: impl IntoValue<T, C>) -> Filter<E> {
        self.compare(Op::Ge, value)
    }

    /// `column = ANY($1)`: one array parameter whatever the number of values (none matches
    /// nothing).
    pub fn in_list<V: IntoValue<T, C>>(self, values: impl IntoIterator<Item = V>) -> Filter<E>
    where
        Vec<T>: ToSql,
    {
        let values: Vec<T> = values.into_iter().map(IntoValue::into_value).collect();
        Filter::compare(self.index, Op::InList, Box::new(values))
    }
}

impl<E, C> Col<E, String, C> {
    /// `column LIKE pattern`: `%` matches any run of characters and `_` one character; escape
    /// them with `\` to match them literally.
    pub fn like(self, pattern: impl IntoValue<String, C>) -> Filter<E> {
        self.compare(Op::Like, pattern)
    }

    /// `column ILIKE pattern`: [`like`](Col::like), ignoring case.
    pub fn ilike(self, pattern: impl IntoValue<String, C>) -> Filter<E> {
        self.compare(Op::Ilike, pattern)
    }
}
