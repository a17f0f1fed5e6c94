//! `Repository::find`: typed queries on any column, rendered once per shape and prepared once
//! per connection like the repository's own statements.

use std::sync::Arc;

use futures_util::{Stream, StreamExt, TryFutureExt};
use tokio_postgres::types::{ToSql, Type};

use super::bind::{base_type, patched, refs, Bound, TEXT_TYPES};
use super::executor::ExecutorRef;
use super::statements::{bump, live, small, special_column, table_ref, with, EntitySql, ShapeKind};
use crate::entity::private::Param;
use crate::entity::Entity;
use crate::observe::Op;
use crate::query::{Cursor, Filter, OrderBy, Page, RawValue};
use crate::sql::{col, Condition, Delete, Order, RawSql, Select, Update};
use crate::{Error, Result};

/// A query on the rows of `E` that match a filter; made by
/// [`Repository::find`](crate::Repository::find), run by one of its async methods.
#[must_use = "a query does nothing until one of its methods (`all`, `one`, ...) is awaited"]
pub struct Find<'e, E> {
    executor: ExecutorRef<'e>,
    filter: Filter<E>,
    order: Vec<OrderBy<E>>,
    limit: Option<u64>,
    offset: Option<u64>,
    with_deleted: bool,
}

impl<E> std::fmt::Debug for Find<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Find")
            .field("filter", &self.filter)
            .field("order", &self.order)
            .field("limit", &self.limit)
            .field("offset", &self.offset)
            .finish()
    }
}

/// The SQL of one call and the values to bind, in placeholder order.
struct Prepared<'v> {
    sql: Arc<str>,
    params: Vec<Bound<'v>>,
    extra: Vec<Box<dyn ToSql + Send + Sync>>,
}

impl Prepared<'_> {
    fn bind(&self) -> Vec<&(dyn ToSql + Sync)> {
        let mut bound = refs(&self.params);
        bound.extend(self.extra.iter().map(|v| &**v as &(dyn ToSql + Sync)));
        bound
    }
}

impl<'e, E: Entity> Find<'e, E> {
    pub(super) fn new(executor: ExecutorRef<'e>, filter: Filter<E>) -> Self {
        Find {
            executor,
            filter,
            order: Vec::new(),
            limit: None,
            offset: None,
            with_deleted: false,
        }
    }

    /// Includes soft-deleted rows (`#[entity(soft_delete)]`), which every query skips
    /// otherwise. `delete` stays a soft delete of the rows not yet deleted.
    pub fn with_deleted(mut self) -> Self {
        self.with_deleted = true;
        self
    }

    /// The `WHERE` of the query: the filter, and the soft-delete condition unless
    /// `with_deleted`. `None` for every row.
    fn condition(&self, live_only: bool) -> Result<Option<Condition<'static>>> {
        let filter = match self.filter.is_everything() {
            true => None,
            false => Some(self.filter.condition(E::META)?),
        };
        let live = live(E::META).filter(|_| live_only);
        Ok(match (filter, live) {
            (Some(filter), live) => Some(with(filter, live)),
            (None, live) => live,
        })
    }

    /// The shape of the filter and of the soft-delete choice.
    fn filter_shape(&self, key: &mut Vec<u32>) {
        self.filter.shape(key);
        key.push(u32::from(self.with_deleted));
    }

    /// Sorts by a column (`c.created_at.desc()`); repeat for further columns.
    pub fn order_by(mut self, order: OrderBy<E>) -> Self {
        self.order.push(order);
        self
    }

    /// At most `n` rows.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Skips the first `n` rows (prefer [`page`](Find::page) for paging: an offset makes the
    /// server read every skipped row).
    pub fn offset(mut self, n: u64) -> Self {
        self.offset = Some(n);
        self
    }

    /// Every matching row, in the query's order.
    pub async fn all(self) -> Result<Vec<E>> {
        let prepared = self.select(ShapeKind::Select, self.limit)?;
        let session = self.executor.session(Op::select::<E>()).await?;
        session
            .query_map(&*prepared.sql, &prepared.bind(), |row| E::from_row(&row))
            .await
    }

    /// The first matching row, or [`Error::RecordNotFound`].
    pub async fn one(self) -> Result<E> {
        match self.optional_inner().await? {
            Some(value) => Ok(value),
            None => Err(Error::RecordNotFound {
                table: E::META.display_name(),
                key: "matching the filter".into(),
            }),
        }
    }

    /// The first matching row, if any.
    pub async fn optional(self) -> Result<Option<E>> {
        self.optional_inner().await
    }

    async fn optional_inner(self) -> Result<Option<E>> {
        let limit = Some(self.limit.map_or(1, |n| n.min(1)));
        let prepared = self.select(ShapeKind::Select, limit)?;
        let session = self.executor.session(Op::select::<E>()).await?;
        let mut rows = session
            .query_map(&*prepared.sql, &prepared.bind(), |row| E::from_row(&row))
            .await?;
        Ok(rows.pop())
    }

    /// How many rows match (honouring `limit` and `offset`).
    pub async fn count(self) -> Result<i64> {
        let prepared = self.select(ShapeKind::Count, self.limit)?;
        let session = self.executor.session(Op::select::<E>()).await?;
        Ok(session
            .query_one(&*prepared.sql, &prepared.bind())
            .await?
            .try_get(0)?)
    }

    /// Whether any row matches.
    pub async fn exists(self) -> Result<bool> {
        let prepared = self.select(ShapeKind::Exists, self.limit)?;
        let session = self.executor.session(Op::select::<E>()).await?;
        Ok(session
            .query_one(&*prepared.sql, &prepared.bind())
            .await?
            .try_get(0)?)
    }

    /// Deletes the matching rows; returns how many. `order_by`, `limit` and `offset` are not
    /// allowed here (SQL's `DELETE` has none).
    pub async fn delete(self) -> Result<u64> {
        self.no_window("delete")?;
        let sql = EntitySql::of::<E>()?;
        let meta = E::META;
        let mut key = vec![ShapeKind::Delete as u32];
        self.filter_shape(&mut key);
        let text = sql.shaped(&key, || {
            let soft = special_column(meta, meta.soft_delete)?;
            // A soft delete stamps the rows not yet deleted, whatever `with_deleted` says.
            let condition = self.condition(soft.is_some())?;
            let statement = match soft {
                Some(column) => {
                    let update =
                        Update::table(table_ref(meta)).set_raw(column, RawSql::new("now()"));
                    match condition {
                        Some(condition) => update.filter(condition),
                        None => update.all_rows(),
                    }
                    .build()?
                }
                None => {
                    let delete = Delete::from(table_ref(meta));
                    match condition {
                        Some(condition) => delete.filter(condition),
                        None => delete.all_rows(),
                    }
                    .build()?
                }
            };
            Ok(statement.into_sql())
        })?;
        let params = self.filter_params();
        let session = self.executor.session(Op::soft_delete::<E>()).await?;
        session.execute(&*text, &refs(&params)).await
    }

    /// Writes the columns `patch` sets to every matching row; returns how many rows changed.
    /// An empty patch is [`Error::InvalidData`]. `order_by`, `limit` and `offset` are not
    /// allowed here.
    pub async fn update(self, patch: E::Patch) -> Result<u64> {
        self.no_window("update")?;
        let sql = EntitySql::of::<E>()?;
        let meta = E::META;
        let (columns, mut params) = patched::<E>(&patch, &sql.update_columns)?;
        let mut key = vec![ShapeKind::Update as u32, small(columns.len())];
        key.extend(columns.iter().map(|&c| small(c)));
        self.filter_shape(&mut key);
        let text = sql.shaped(&key, || {
            let names: Vec<&str> = columns.iter().map(|&i| meta.columns[i].name).collect();
            let mut update = Update::table(table_ref(meta)).set(&names);
            // Rows changed in bulk are changed: a copy read before must not save over them.
            if let Some(version) = special_column(meta, meta.version)? {
                update = update.set_raw(version, bump(version)?);
            }
            let update = match self.condition(!self.with_deleted)? {
                Some(condition) => update.filter(condition),
                None => update.all_rows(),
            };
            Ok(update.build()?.into_sql())
        })?;
        params.extend(self.filter_params());
        let session = self.executor.session(Op::update::<E>()).await?;
        session.execute(&*text, &refs(&params)).await
    }

    /// The matching rows as a stream, decoded as they arrive: memory stays bounded by what the
    /// driver buffers (one batch of messages), whatever the size of the result. The stream
    /// holds a connection of its own until it ends or is dropped; `query_timeout` bounds the
    /// start of the query, not the whole stream.
    pub fn stream(self) -> impl Stream<Item = Result<E>> + Send + 'e {
        let start = async move {
            let prepared = self.select(ShapeKind::Select, self.limit)?;
            let session = self.executor.session_exclusive(Op::select::<E>()).await?;
            let rows = session.stream(&*prepared.sql, &prepared.bind()).await?;
            drop(prepared);
            Ok::<_, Error>(rows.map(move |row| {
                // The session lives as long as the stream: the connection stays checked out.
                let _connection = &session;
                E::from_row(&row.map_err(Error::from)?)
            }))
        };
        start.try_flatten_stream()
    }

    /// One page of at most `size` rows after `cursor` (the first page with `None`), in the
    /// query's order plus the primary key as the last tie-breaker: keyset pagination, so a
    /// page costs the same wherever it is, and rows inserted meanwhile never make a page skip
    /// or repeat rows that were there before. `limit` and `offset` are not allowed here.
    ///
    /// A cursor made for another ordering, or tampered with, is [`Error::InvalidData`].
    pub async fn page(self, cursor: Option<&Cursor>, size: u64) -> Result<Page<E>> {
        self.no_window("page")?;
        if size == 0 {
            return Err(Error::invalid_data(
                E::META.display_name(),
                "page",
                "a page holds at least one row",
                None,
            ));
        }
        let meta = E::META;
        let mut order: Vec<OrderBy<E>> = self.order.clone();
        if !order.iter().any(|o| o.index == meta.key) {
            order.push(OrderBy::ascending(meta.key));
        }
        // What the cursor must have been made for: the columns, directions and NULLs placement.
        let columns: Vec<u32> = order
            .iter()
            .map(|o| small(o.index) << 2 | (o.order as u32) << 1 | o.nulls as u32)
            .collect();
        if let Some(cursor) = cursor {
            if cursor.columns != columns {
                return Err(cursor_error("the cursor was made for another ordering"));
            }
        }
        let sql = EntitySql::of::<E>()?;
        let mut key = vec![ShapeKind::Page as u32];
        self.filter_shape(&mut key);
        key.push(small(order.len()));
        for o in &order {
            key.extend(o.shape());
        }
        // The SQL differs with which cursor values are NULL.
        match cursor {
            None => key.push(0),
            Some(cursor) => {
                key.push(1);
                key.extend(cursor.values.iter().map(|v| u32::from(v.bytes.is_none())));
            }
        }
        let text = sql.shaped(&key, || {
            let mut select = Select::from(table_ref(meta)).columns(&sql.all_names);
            let mut filter = self.condition(!self.with_deleted)?;
            if let Some(cursor) = cursor {
                let after = after_cursor(meta, &order, cursor)?;
                filter = Some(match filter {
                    Some(filter) => filter.and(after),
                    None => after,
                });
            }
            if let Some(filter) = filter {
                select = select.filter(filter);
            }
            for o in &order {
                select = select.order_by_nulls(column_name(meta, o.index)?, o.order, o.nulls);
            }
            Ok(select.limit_param().build()?.into_sql())
        })?;
        let fetch = i64::try_from(size.saturating_add(1)).unwrap_or(i64::MAX);
        let mut params = self.filter_params();
        let filtered = params.len();
        let mut slots = Vec::new();
        if let Some(cursor) = cursor {
            slots = cursor_slots(&order, cursor);
            params.extend(slots.iter().map(|&(value, column)| {
                Bound::param::<E>(Param::Ref(&cursor.values[value]), column)
            }));
        }
        let session = self.executor.session(Op::select::<E>()).await?;
        if let Some(cursor) = cursor {
            let described = session.describe(&text).await?;
            check_cursor_types(&described.params, filtered, &slots, cursor)?;
        }
        let mut bound = refs(&params);
        bound.push(&fetch);
        let take = usize::try_from(size).unwrap_or(usize::MAX);
        // The values of the page's last row, which start the next page if there is one.
        let mut last: Option<Vec<RawValue>> = None;
        let mut seen = 0usize;
        let mut items = session
            .query_map(&*text, &bound, |row| {
                seen += 1;
                if seen == take {
                    last = Some(
                        order
                            .iter()
                            .map(|o| row.try_get::<_, RawValue>(o.index))
                            .collect::<std::result::Result<_, _>>()?,
                    );
                }
                E::from_row(&row)
            })
            .await?;
        let next = match items.len() > take {
            true => {
                items.truncate(take);
                last.map(|values| Cursor { columns, values })
            }
            false => None,
        };
        Ok(Page { items, next })
    }

    /// `SELECT`, `COUNT` or `EXISTS` of the query, with its parameters.
    fn select(&self, kind: ShapeKind, limit: Option<u64>) -> Result<Prepared<'_>> {
        let sql = EntitySql::of::<E>()?;
        let meta = E::META;
        let mut key = vec![kind as u32];
        self.filter_shape(&mut key);
        key.push(small(self.order.len()));
        for o in &self.order {
            key.extend(o.shape());
        }
        key.extend([u32::from(limit.is_some()), u32::from(self.offset.is_some())]);
        let text = sql.shaped(&key, || {
            let mut select = Select::from(table_ref(meta)).columns(&sql.all_names);
            if let Some(condition) = self.condition(!self.with_deleted)? {
                select = select.filter(condition);
            }
            for o in &self.order {
                let name = column_name(meta, o.index)?;
                select = select.order_by_nulls(name, o.order, o.nulls);
            }
            if limit.is_some() {
                select = select.limit_param();
            }
            if self.offset.is_some() {
                select = select.offset_param();
            }
            let query = match kind {
                ShapeKind::Count => select.build_count()?,
                ShapeKind::Exists => select.build_exists()?,
                _ => select.build()?,
            };
            Ok(query.into_sql())
        })?;
        let mut extra: Vec<Box<dyn ToSql + Send + Sync>> = Vec::new();
        for bound in [limit, self.offset].into_iter().flatten() {
            let value = i64::try_from(bound).map_err(|_| {
                Error::invalid_data(meta.display_name(), "limit", "larger than a bigint", None)
            })?;
            extra.push(Box::new(value));
        }
        Ok(Prepared {
            sql: text,
            params: self.filter_params(),
            extra,
        })
    }

    fn filter_params(&self) -> Vec<Bound<'_>> {
        self.filter
            .values()
            .iter()
            .zip(self.filter.columns())
            .map(|(value, &index)| {
                Bound::param::<E>(Param::Ref(&**value as &(dyn ToSql + Sync)), index)
            })
            .collect()
    }

    fn no_window(&self, what: &str) -> Result<()> {
        let has_order = !self.order.is_empty() && what != "page";
        if has_order || self.limit.is_some() || self.offset.is_some() {
            return Err(Error::invalid_data(
                E::META.display_name(),
                what,
                format!(
                    "`{what}` takes no {}",
                    if what == "page" {
                        "limit or offset"
                    } else {
                        "order_by, limit or offset"
                    }
                ),
                None,
            ));
        }
        Ok(())
    }
}

fn column_name(meta: &'static crate::entity::EntityMeta, index: usize) -> Result<&'static str> {
    meta.columns
        .get(index)
        .map(|c| c.name)
        .ok_or_else(|| crate::entity::private::no_such_column(index, meta))
}

/// Rows after the cursor in the order `order`: for some column `i`, every earlier column equal
/// (NULL equal to NULL) and column `i` past the cursor's value, where NULLs sort as `order`
/// says. The placeholders take the cursor's values in the order [`cursor_params`] binds them.
fn after_cursor<E>(
    meta: &'static crate::entity::EntityMeta,
    order: &[OrderBy<E>],
    cursor: &Cursor,
) -> Result<Condition<'static>> {
    let mut levels = Vec::with_capacity(order.len());
    for (i, o) in order.iter().enumerate() {
        let mut parts = Vec::with_capacity(i + 1);
        for earlier in &order[..i] {
            let column = col(column_name(meta, earlier.index)?);
            // `=` where NULL cannot occur: the server can use an index for it.
            parts.push(match nullable(meta, earlier.index) {
                true => column.not_distinct(),
                false => column.eq(),
            });
        }
        let name = column_name(meta, o.index)?;
        // A column that cannot hold NULL needs no NULL branch, which would keep the server
        // from using an index on it.
        let nullable = nullable(meta, o.index);
        let nulls_last = o.nulls == crate::sql::Nulls::Last;
        let past = match (&cursor.values[i].bytes, nulls_last) {
            // Nothing sorts after a NULL when NULLs come last.
            (None, true) => Condition::any(Vec::new()),
            (None, false) => col(name).is_not_null(),
            (Some(_), _) => {
                let beyond = match o.order {
                    Order::Asc => col(name).gt(),
                    Order::Desc => col(name).lt(),
                };
                match nulls_last && nullable {
                    true => beyond.or(col(name).is_null()),
                    false => beyond,
                }
            }
        };
        parts.push(past);
        levels.push(Condition::all(parts));
    }
    Ok(Condition::any(levels))
}

/// Whether column `index` may hold NULL: an `Option` field that is not the key.
fn nullable(meta: &'static crate::entity::EntityMeta, index: usize) -> bool {
    index != meta.key && meta.columns.get(index).is_some_and(|c| c.nullable)
}

/// Which cursor value (and column) each of [`after_cursor`]'s placeholders takes, in text
/// order.
fn cursor_slots<E>(order: &[OrderBy<E>], cursor: &Cursor) -> Vec<(usize, usize)> {
    let mut slots = Vec::new();
    for (i, o) in order.iter().enumerate() {
        for (j, earlier) in order[..i].iter().enumerate() {
            slots.push((j, earlier.index));
        }
        if cursor.values[i].bytes.is_some() {
            slots.push((i, o.index));
        }
    }
    slots
}

/// The cursor's values must have exactly the types of the columns they are compared with: a
/// cursor made for another query (or edited) is refused before anything runs.
fn check_cursor_types(
    types: &[Type],
    filtered: usize,
    slots: &[(usize, usize)],
    cursor: &Cursor,
) -> Result<()> {
    // The cursor's placeholders, then the limit's.
    if types.len() != filtered + slots.len() + 1 {
        return Err(cursor_error("the cursor does not fit this query"));
    }
    for (k, &(value, _)) in slots.iter().enumerate() {
        let ty = base_type(&types[filtered + k]);
        let value = &cursor.values[value];
        if !same_format(ty, value.oid) {
            return Err(cursor_error(
                "the cursor's values do not fit this query's columns",
            ));
        }
        // The server would refuse text that is not UTF-8 with a SQL error.
        let text = TEXT_TYPES.contains(ty);
        let bytes = value.bytes.as_deref();
        if text && bytes.is_some_and(|b| std::str::from_utf8(b).is_err()) {
            return Err(cursor_error("the cursor holds text that is not UTF-8"));
        }
    }
    Ok(())
}

/// A cursor value of type `oid` can bind to a parameter of type `ty`: the same type, or one
/// with the same binary format (a `varchar` column is compared through `text` operators, so
/// its placeholder is `text`).
pub(crate) fn same_format(ty: &Type, oid: u32) -> bool {
    const INET: [Type; 2] = [Type::INET, Type::CIDR];
    let in_group = |group: &[Type]| group.contains(ty) && group.iter().any(|t| t.oid() == oid);
    ty.oid() == oid || in_group(&TEXT_TYPES) || in_group(&INET)
}

fn cursor_error(message: &str) -> Error {
    Error::invalid_data("", "cursor", message, None)
}
