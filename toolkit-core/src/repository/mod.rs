//! `Repository<E>`: typed CRUD for a `#[derive(Entity)]` struct on any executor.

mod bind;
mod bulk;
mod copy;
mod executor;
mod find;
mod more;
mod statements;
mod traced;

use std::borrow::Borrow;
use std::marker::PhantomData;

use crate::entity::Entity;
use crate::observe::Op;
use crate::{Error, Result};
use bind::{refs, Bound};
use statements::EntitySql;

pub(crate) use bind::base_type;
pub(crate) use executor::Intent;
pub use executor::{Executor, ExecutorRef};
pub(crate) use find::same_format;
pub use find::Find;

/// Typed CRUD for entity `E` on an executor: a [`Database`](crate::Database) (a connection is
/// checked out per call), a pooled [`Connection`](crate::Connection), a
/// [`Transaction`](crate::Transaction) or [`Savepoint`](crate::Savepoint), or a
/// `tokio_postgres::Client`.
///
/// Statements are rendered once per process and prepared once per connection (kept in the
/// connection's bounded statement cache), so a repeated call costs one round trip.
///
/// ```no_run
/// # use toolkit_core as toolkit;
/// # async fn demo<User: toolkit::Entity<Id = i64>>(db: toolkit::Database, user: User) -> toolkit::Result<()> {
/// use toolkit::Repository;
/// let repo = Repository::<User>::new(&db);
/// let created = repo.create(&user).await?;
/// let again = repo.get_by_id(created.id()).await?;
/// assert!(repo.exists(1).await? || repo.count().await? >= 1);
/// # Ok(()) }
/// ```
pub struct Repository<'e, E> {
    executor: ExecutorRef<'e>,
    entity: PhantomData<fn() -> E>,
}

impl<E> std::fmt::Debug for Repository<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("entity", &std::any::type_name::<E>())
            .field("executor", &self.executor)
            .finish()
    }
}

impl<E> Clone for Repository<'_, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for Repository<'_, E> {}

impl<'e, E: Entity> Repository<'e, E> {
    /// A repository running on `executor`.
    pub fn new<X: Executor + ?Sized>(executor: &'e X) -> Self {
        Repository {
            executor: executor.executor(),
            entity: PhantomData,
        }
    }

    fn not_found(id: &E::Id) -> Error {
        Error::RecordNotFound {
            table: E::META.display_name(),
            key: format!("{id:?}"),
        }
    }

    /// Inserts `value` (generated columns are left to the database) and returns the stored row,
    /// generated columns filled in.
    pub async fn create(&self, value: &E) -> Result<E> {
        let sql = EntitySql::of::<E>()?;
        let params = Bound::fields(value, &sql.insert_columns)?;
        let session = self.executor.session(Op::insert::<E>()).await?;
        let row = session
            .query_one(sql.insert.as_str(), &refs(&params))
            .await?;
        E::from_row(&row)
    }

    /// Inserts all `values`, all or nothing, and returns the stored rows in input order. Small
    /// batches use one multi-row `VALUES`; large ones a binary `COPY` into temporary tables and
    /// `INSERT ... SELECT ... RETURNING` from them, pipelined in one transaction (the caller's,
    /// or one of its own on a connection it checked out; on a borrowed connection or a plain
    /// client, which may be inside a transaction it cannot see, one statement).
    pub async fn create_bulk(&self, values: &[E]) -> Result<Vec<E>> {
        bulk::create_bulk(self.executor, values).await
    }

    /// Inserts all `values` by binary `COPY` straight into the table, all or nothing, and
    /// returns how many were written: the fastest way in when the stored rows (generated keys,
    /// defaults) are not needed back. Use [`create_bulk`](Repository::create_bulk) when they are.
    pub async fn insert_many(&self, values: &[E]) -> Result<u64> {
        bulk::insert_many(self.executor, values).await
    }

    /// The row with key `id`, or [`Error::RecordNotFound`].
    pub async fn get_by_id(&self, id: impl Borrow<E::Id>) -> Result<E> {
        let id = id.borrow();
        let sql = EntitySql::of::<E>()?;
        let session = self.executor.session(Op::select::<E>()).await?;
        let key = Bound::key::<E>(id);
        match session.query_opt(sql.get_by_id.as_str(), &[&key]).await? {
            Some(row) => E::from_row(&row),
            None => Err(Self::not_found(id)),
        }
    }

    /// Every row of the table.
    pub async fn get_all(&self) -> Result<Vec<E>> {
        let sql = EntitySql::of::<E>()?;
        let session = self.executor.session(Op::select::<E>()).await?;
        session
            .query_map(sql.get_all.as_str(), &[], |row| E::from_row(&row))
            .await
    }

    /// Writes the columns the patch sets and returns the stored row. An empty patch is
    /// [`Error::InvalidData`] (nothing is sent); a missing key is [`Error::RecordNotFound`].
    ///
    /// With an `#[entity(version)]` field the version is bumped; when the patch sets it, it is
    /// the version the caller read, and a row changed since fails with [`Error::Conflict`],
    /// changing nothing.
    pub async fn update(&self, id: impl Borrow<E::Id>, patch: E::Patch) -> Result<E> {
        let id = id.borrow();
        let sql = EntitySql::of::<E>()?;
        let meta = E::META;
        let (columns, mut params) = bind::patched::<E>(&patch, &sql.update_columns)?;
        let expected = match meta.version {
            Some(version) => E::patch_param(&patch, version)
                .transpose()?
                .map(|param| Bound::param::<E>(param, version)),
            None => None,
        };
        let statement = sql.patch(meta, &columns, expected.is_some())?;
        params.push(Bound::key::<E>(id));
        let checked = expected.is_some();
        params.extend(expected);
        let session = self.executor.session(Op::update::<E>()).await?;
        match session.query_opt(&*statement, &refs(&params)).await? {
            Some(row) => E::from_row(&row),
            None => Err(self.missing_or_conflict(&session, sql, id, checked).await),
        }
    }

    /// Writes every non-key, non-generated column of `value` to the row with its key, and
    /// returns the stored row; a missing key is [`Error::RecordNotFound`]. With an
    /// `#[entity(version)]` field, `value`'s version must still be the stored one (else
    /// [`Error::Conflict`], changing nothing), and the stored version is bumped.
    pub async fn save(&self, value: &E) -> Result<E> {
        let sql = EntitySql::of::<E>()?;
        let Some(save) = &sql.save else {
            // Nothing is writable: saving is reading back.
            return self.get_by_id(value.id()).await;
        };
        let mut params = Bound::fields(value, &sql.update_columns)?;
        params.push(Bound::key::<E>(value.id()));
        if let Some(version) = E::META.version {
            params.push(Bound::field(value, version)?);
        }
        let session = self.executor.session(Op::update::<E>()).await?;
        match session.query_opt(save.as_str(), &refs(&params)).await? {
            Some(row) => E::from_row(&row),
            None => {
                let checked = E::META.version.is_some();
                Err(self
                    .missing_or_conflict(&session, sql, value.id(), checked)
                    .await)
            }
        }
    }

    /// Why a write by key changed nothing: the row is gone, or (when a version was checked)
    /// someone changed it first.
    async fn missing_or_conflict(
        &self,
        session: &crate::pool::Session<'_>,
        sql: &EntitySql,
        id: &E::Id,
        checked: bool,
    ) -> Error {
        if !checked {
            return Self::not_found(id);
        }
        let key = Bound::key::<E>(id);
        match session.query_one(sql.exists.as_str(), &[&key]).await {
            Ok(row) => match row.try_get::<_, bool>(0) {
                Ok(true) => Error::Conflict {
                    table: E::META.display_name(),
                    key: format!("{id:?}"),
                },
                Ok(false) => Self::not_found(id),
                Err(err) => err.into(),
            },
            Err(err) => err,
        }
    }

    /// Deletes the row with key `id`; a missing key is [`Error::RecordNotFound`]. With an
    /// `#[entity(soft_delete)]` field the row is kept with that field set to `now()`, and every
    /// read skips it from then on (see [`restore`](Repository::restore),
    /// [`purge`](Repository::purge)).
    pub async fn delete(&self, id: impl Borrow<E::Id>) -> Result<()> {
        let sql = EntitySql::of::<E>()?;
        self.execute_by_key(Op::soft_delete::<E>(), &sql.delete, id.borrow())
            .await
    }

    /// Deletes the row with key `id` for good, soft-deleted or not; a missing key is
    /// [`Error::RecordNotFound`].
    pub async fn purge(&self, id: impl Borrow<E::Id>) -> Result<()> {
        let sql = EntitySql::of::<E>()?;
        self.execute_by_key(Op::delete::<E>(), &sql.purge, id.borrow())
            .await
    }

    /// Makes a soft-deleted row live again; a missing key is [`Error::RecordNotFound`], and an
    /// entity without `#[entity(soft_delete)]` is [`Error::InvalidData`].
    pub async fn restore(&self, id: impl Borrow<E::Id>) -> Result<()> {
        let sql = EntitySql::of::<E>()?;
        let Some(restore) = &sql.restore else {
            return Err(Error::invalid_data(
                E::META.display_name(),
                "",
                "restore needs an #[entity(soft_delete)] field",
                None,
            ));
        };
        self.execute_by_key(Op::update::<E>(), restore, id.borrow())
            .await
    }

    async fn execute_by_key(&self, op: Op<'_>, statement: &str, id: &E::Id) -> Result<()> {
        let session = self.executor.session(op).await?;
        match session.execute(statement, &[&Bound::key::<E>(id)]).await? {
            0 => Err(Self::not_found(id)),
            _ => Ok(()),
        }
    }

    /// Whether a row with key `id` exists.
    pub async fn exists(&self, id: impl Borrow<E::Id>) -> Result<bool> {
        let sql = EntitySql::of::<E>()?;
        let session = self.executor.session(Op::select::<E>()).await?;
        let key = Bound::key::<E>(id.borrow());
        Ok(session
            .query_one(sql.exists.as_str(), &[&key])
            .await?
            .try_get(0)?)
    }

    /// Number of rows in the table.
    pub async fn count(&self) -> Result<i64> {
        let sql = EntitySql::of::<E>()?;
        let session = self.executor.session(Op::select::<E>()).await?;
        Ok(session
            .query_one(sql.count.as_str(), &[])
            .await?
            .try_get(0)?)
    }
}
