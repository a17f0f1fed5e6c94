//! Repository calls beyond the key: `find`, `get_many`, `upsert`, `upsert_on`, `query_as`.

use tokio_postgres::types::ToSql;

use super::bind::{refs, Bound};
use super::find::Find;
use super::statements::{small, special_column, table_ref, EntitySql, ShapeKind};
use super::Repository;
use crate::entity::private::Param;
use crate::entity::{Entity, EntityMeta};
use crate::observe::Op;
use crate::query::Filter;
use crate::sql::{control, Insert};
use crate::{Error, Result};

impl<'e, E: Entity> Repository<'e, E> {
    /// A query on the rows matching `filter` (`Filter::all()` for every row); see [`Find`].
    ///
    /// ```no_run
    /// # use toolkit_core as toolkit;
    /// # async fn demo<User: toolkit::Entity>(repo: toolkit::Repository<'_, User>, c: toolkit::Col<User, String>, age: toolkit::Col<User, i32>) -> toolkit::Result<()> {
    /// let adults = repo.find(age.ge(18).and(c.like("A%"))).order_by(age.desc()).limit(50).all().await?;
    /// # Ok(()) }
    /// ```
    pub fn find(&self, filter: Filter<E>) -> Find<'e, E> {
        Find::new(self.executor, filter)
    }

    /// The rows with keys `ids`, in one statement, in the order asked; keys without a row are
    /// simply absent (a key asked twice comes back once).
    pub async fn get_many(&self, ids: &[E::Id]) -> Result<Vec<E>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = EntitySql::of::<E>()?;
        let meta = E::META;
        let text = sql.shaped(&[ShapeKind::GetMany as u32], || {
            let live = special_column(meta, meta.soft_delete)?;
            control::select_by_keys(
                table_ref(meta),
                &sql.all_names,
                meta.key_column()?.name,
                live,
            )
        })?;
        let ids = Bound::param::<E>(Param::Ref(&ids), meta.key);
        let session = self.executor.session(Op::select::<E>()).await?;
        session
            .query_map(&*text, &[&ids], |row| E::from_row(&row))
            .await
    }

    /// Inserts `value`, or, when a row with its key exists, overwrites that row's columns with
    /// it (`INSERT ... ON CONFLICT (key) DO UPDATE`); returns the stored row. The key is
    /// written even when it is `generated`, since it is what decides which row is meant.
    pub async fn upsert(&self, value: &E) -> Result<E> {
        self.upsert_by(value, &[]).await
    }

    /// Inserts `value`, or, when it conflicts with a row on the unique `columns` (e.g.
    /// `[c.email.name()]`), overwrites that row's other columns with it; returns the stored
    /// row. Generated columns are left to the database.
    pub async fn upsert_on<'c>(
        &self,
        value: &E,
        columns: impl IntoIterator<Item = &'c str>,
    ) -> Result<E> {
        let meta = E::META;
        let mut target = Vec::new();
        for name in columns {
            let index = meta
                .columns
                .iter()
                .position(|c| c.name == name)
                .ok_or_else(|| {
                    Error::invalid_data(
                        meta.display_name(),
                        name,
                        format!("upsert_on: the entity has no column named {name:?}"),
                        None,
                    )
                })?;
            target.push(index);
        }
        if target.is_empty() {
            return Err(Error::invalid_data(
                meta.display_name(),
                "",
                "upsert_on needs at least one conflict column",
                None,
            ));
        }
        self.upsert_by(value, &target).await
    }

    /// `target` empty: on the key.
    async fn upsert_by(&self, value: &E, target: &[usize]) -> Result<E> {
        let sql = EntitySql::of::<E>()?;
        let meta = E::META;
        let mut written: Vec<usize> = sql.insert_columns.clone();
        let on: Vec<usize> = match target {
            [] => {
                if !written.contains(&meta.key) {
                    written.insert(0, meta.key);
                }
                vec![meta.key]
            }
            columns => columns.to_vec(),
        };
        // By key (which may add the key to the written columns) or by named columns.
        let mut key = vec![
            ShapeKind::Upsert as u32,
            u32::from(target.is_empty()),
            small(on.len()),
        ];
        key.extend(on.iter().map(|&c| small(c)));
        let text = sql.shaped(&key, || render_upsert(meta, sql, &written, &on))?;
        let params = Bound::fields(value, &written)?;
        let session = self.executor.session(Op::insert::<E>()).await?;
        let row = session.query_one(&*text, &refs(&params)).await?;
        E::from_row(&row)
    }

    /// Rows of a hand-written query, mapped to `E` by column NAME: every stored column of the
    /// entity must be in the result (a missing one is [`Error::InvalidData`] naming it), in any
    /// order; other columns are ignored. Prepared once per connection like every statement.
    ///
    /// ```no_run
    /// # use toolkit_core as toolkit;
    /// # async fn demo<User: toolkit::Entity>(repo: toolkit::Repository<'_, User>) -> toolkit::Result<()> {
    /// let older: Vec<User> = repo.query_as("SELECT * FROM users WHERE age > $1", &[&30_i32]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn query_as(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<E>> {
        let session = self.executor.session(Op::sql(Some(sql))).await?;
        let described = session.describe(sql).await?;
        let at = by_name(E::META, &described.columns)?;
        session
            .query_map(sql, params, |row| E::from_row_at(&row, &at))
            .await
    }
}

fn render_upsert(
    meta: &'static EntityMeta,
    sql: &EntitySql,
    written: &[usize],
    on: &[usize],
) -> Result<String> {
    let names = |indices: &[usize]| -> Vec<&'static str> {
        indices
            .iter()
            .filter_map(|&i| meta.columns.get(i))
            .map(|c| c.name)
            .collect()
    };
    let set_columns: Vec<usize> = sql
        .update_columns
        .iter()
        .copied()
        .filter(|c| !on.contains(c))
        .collect();
    let mut set = names(&set_columns);
    if set.is_empty() {
        // Nothing else to overwrite; a no-op update still returns the stored row.
        set = names(&on[..1]);
    }
    Ok(Insert::into(table_ref(meta))
        .columns(&names(written))
        .on_conflict_do_update(&names(on), &set)
        .returning(&sql.all_names)
        .build()?
        .into_sql())
}

/// For each stored column of `meta`, its position in a result with these columns.
fn by_name(
    meta: &'static EntityMeta,
    columns: &[(String, tokio_postgres::types::Type)],
) -> Result<Vec<usize>> {
    meta.columns
        .iter()
        .map(|column| {
            columns
                .iter()
                .position(|(name, _)| name == column.name)
                .ok_or_else(|| {
                    Error::invalid_data(
                        meta.display_name(),
                        column.field,
                        format!("the query's result has no column \"{}\"", column.name),
                        None,
                    )
                })
        })
        .collect()
}
