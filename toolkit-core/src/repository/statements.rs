//! Every statement of an entity, rendered once per process from its metadata.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::entity::private::no_such_column;
use crate::entity::{Entity, EntityMeta};
use crate::sql::{col, quote_ident, Condition, Delete, Insert, RawSql, Select, TableRef, Update};
use crate::{Error, Result};

/// The SQL of one entity. Built by [`EntitySql::build`] once per process and kept in the
/// entity's `static` slot (`Entity::statement_slot`), so no statement text is allocated per call.
#[derive(Debug)]
pub(crate) struct EntitySql {
    /// `SELECT <all columns> FROM <table>`.
    pub(crate) get_all: String,
    /// `... WHERE <key> = $1`.
    pub(crate) get_by_id: String,
    /// `INSERT INTO <table> (<insert columns>) VALUES (...) RETURNING <all columns>`.
    pub(crate) insert: String,
    /// `UPDATE <table> SET <update columns>[, <version> = <version> + 1] WHERE <key> = $n
    /// [AND <version> = $m] RETURNING <all columns>`, or `None` when nothing is writable.
    pub(crate) save: Option<String>,
    /// `DELETE FROM <table> WHERE <key> = $1`, or with a soft-delete column
    /// `UPDATE <table> SET <column> = now() WHERE <key> = $1 AND <column> IS NULL`.
    pub(crate) delete: String,
    /// `DELETE FROM <table> WHERE <key> = $1`, whatever the soft-delete column says.
    pub(crate) purge: String,
    /// `UPDATE <table> SET <soft-delete column> = NULL WHERE <key> = $1`, with such a column.
    pub(crate) restore: Option<String>,
    /// `SELECT EXISTS(SELECT 1 FROM <table> WHERE <key> = $1)`.
    pub(crate) exists: String,
    /// `SELECT COUNT(*) FROM <table>`.
    pub(crate) count: String,
    /// Columns written by INSERT (indices into `EntityMeta::columns`): all but generated ones.
    pub(crate) insert_columns: Vec<usize>,
    /// Columns written by `save` and patchable by `update`: all but the key and generated ones.
    pub(crate) update_columns: Vec<usize>,
    /// Names of `insert_columns`.
    pub(crate) insert_names: Vec<&'static str>,
    /// Names of every stored column, in field order.
    pub(crate) all_names: Vec<&'static str>,
    /// Statements rendered per shape on first use (patches, queries), by shape key.
    shapes: RwLock<HashMap<Box<[u32]>, Arc<str>>>,
}

/// More distinct shapes than this are rendered per call instead of cached: the cache must stay
/// bounded even for an entity queried or patched in every combination of its columns.
const MAX_CACHED_SHAPES: usize = 1024;

/// First word of a shape key: which kind of statement it describes.
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub(crate) enum ShapeKind {
    Patch = 1,
    Select,
    Count,
    Exists,
    Delete,
    Update,
    Page,
    GetMany,
    Upsert,
}

impl EntitySql {
    /// Renders every statement; fails only if the metadata holds a name that is not a valid
    /// identifier (the derive already rejects those at compile time).
    ///
    /// With a `soft_delete` column every read and write of the key statements sees live rows
    /// only, and `delete` sets the column instead of deleting; with a `version` column `save`
    /// checks and bumps it.
    pub(crate) fn build(meta: &'static EntityMeta) -> Result<EntitySql> {
        let table = table_ref(meta);
        let all: Vec<&str> = meta.columns.iter().map(|c| c.name).collect();
        let key = meta.key_column()?.name;
        let insert_columns: Vec<usize> = (0..meta.columns.len())
            .filter(|&i| !meta.columns[i].generated)
            .collect();
        // The version column is written by its bump, never from the value.
        let update_columns: Vec<usize> = (0..meta.columns.len())
            .filter(|&i| i != meta.key && !meta.columns[i].generated && Some(i) != meta.version)
            .collect();
        let names = |indices: &[usize]| {
            indices
                .iter()
                .map(|&i| meta.columns[i].name)
                .collect::<Vec<_>>()
        };
        let live = live(meta);
        let by_key = || with(col(key).eq(), live.clone());

        let insert = if insert_columns.is_empty() {
            Insert::into(table)
                .default_values()
                .returning(&all)
                .build()?
        } else {
            Insert::into(table)
                .columns(&names(&insert_columns))
                .returning(&all)
                .build()?
        };
        let save = if update_columns.is_empty() && meta.version.is_none() {
            None
        } else {
            let mut update = Update::table(table).set(&names(&update_columns));
            let mut filter = col(key).eq();
            if let Some(version) = special_column(meta, meta.version)? {
                update = update.set_raw(version, bump(version)?);
                filter = filter.and(col(version).eq());
            }
            Some(
                update
                    .filter(with(filter, live.clone()))
                    .returning(&all)
                    .build()?
                    .into_sql(),
            )
        };
        let delete = match special_column(meta, meta.soft_delete)? {
            Some(column) => Update::table(table)
                .set_raw(column, RawSql::new("now()"))
                .filter(by_key())
                .build()?
                .into_sql(),
            None => Delete::from(table)
                .filter(col(key).eq())
                .build()?
                .into_sql(),
        };
        let select = |filter: Option<Condition<'static>>| {
            let select = Select::from(table).columns(&all);
            match filter {
                Some(filter) => select.filter(filter),
                None => select,
            }
        };
        let count = match live.clone() {
            Some(live) => Select::from(table).filter(live),
            None => Select::from(table),
        };
        let insert_names = names(&insert_columns);
        Ok(EntitySql {
            get_all: select(live.clone()).build()?.into_sql(),
            get_by_id: select(Some(by_key())).build()?.into_sql(),
            insert: insert.into_sql(),
            save,
            delete,
            purge: Delete::from(table)
                .filter(col(key).eq())
                .build()?
                .into_sql(),
            restore: match special_column(meta, meta.soft_delete)? {
                Some(column) => Some(
                    Update::table(table)
                        .set_raw(column, RawSql::new("NULL"))
                        .filter(col(key).eq())
                        .build()?
                        .into_sql(),
                ),
                None => None,
            },
            exists: Select::from(table)
                .filter(by_key())
                .build_exists()?
                .into_sql(),
            count: count.build_count()?.into_sql(),
            insert_columns,
            update_columns,
            insert_names,
            all_names: all,
            shapes: RwLock::new(HashMap::new()),
        })
    }

    /// The statements of `E`, rendered on first use and kept in its slot.
    pub(crate) fn of<E: Entity>() -> Result<&'static EntitySql> {
        let meta = E::META;
        let rendered =
            E::statement_slot().get_or_init(|| EntitySql::build(meta).map_err(|e| e.to_string()));
        match rendered {
            Some(Ok(sql)) => Ok(sql),
            Some(Err(message)) => Err(Error::invalid_data(
                meta.display_name(),
                "",
                message.clone(),
                None,
            )),
            None => Err(Error::invalid_data(
                meta.display_name(),
                "",
                "the entity's statement slot holds something else",
                None,
            )),
        }
    }
}

impl EntitySql {
    /// `UPDATE <table> SET <columns>[, <version> bumped] WHERE <key> = $n [AND <version> = $m]
    /// RETURNING <all columns>` for the given column indices, rendered once per distinct set;
    /// `check_version` when the patch names the version it expects.
    pub(crate) fn patch(
        &self,
        meta: &'static EntityMeta,
        columns: &[usize],
        check_version: bool,
    ) -> Result<Arc<str>> {
        let mut key = Vec::with_capacity(columns.len() + 2);
        key.extend([ShapeKind::Patch as u32, u32::from(check_version)]);
        key.extend(columns.iter().map(|&c| small(c)));
        self.shaped(&key, || {
            let names: Vec<&str> = columns.iter().map(|&i| meta.columns[i].name).collect();
            let all: Vec<&str> = meta.columns.iter().map(|c| c.name).collect();
            let mut update = Update::table(table_ref(meta)).set(&names);
            let mut filter = col(meta.key_column()?.name).eq();
            if let Some(version) = special_column(meta, meta.version)? {
                update = update.set_raw(version, bump(version)?);
                if check_version {
                    filter = filter.and(col(version).eq());
                }
            }
            Ok(update
                .filter(with(filter, live(meta)))
                .returning(&all)
                .build()?
                .into_sql())
        })
    }

    /// The statement of shape `key`, rendered by `render` the first time the shape is seen.
    pub(crate) fn shaped(
        &self,
        key: &[u32],
        render: impl FnOnce() -> Result<String>,
    ) -> Result<Arc<str>> {
        if let Some(sql) = self
            .shapes
            .read()
            .ok()
            .and_then(|cache| cache.get(key).cloned())
        {
            return Ok(sql);
        }
        let sql: Arc<str> = render()?.into();
        if let Ok(mut cache) = self.shapes.write() {
            if cache.len() < MAX_CACHED_SHAPES {
                cache.insert(key.into(), sql.clone());
            }
        }
        Ok(sql)
    }
}

/// `"<soft_delete>" IS NULL`: the row is live; `None` without such a column.
pub(crate) fn live(meta: &'static EntityMeta) -> Option<Condition<'static>> {
    let column = meta.soft_delete.and_then(|i| meta.columns.get(i))?;
    Some(col(column.name).is_null())
}

/// `condition AND live`, or `condition` alone.
pub(crate) fn with(
    condition: Condition<'static>,
    live: Option<Condition<'static>>,
) -> Condition<'static> {
    match live {
        Some(live) => condition.and(live),
        None => condition,
    }
}

/// The name of the column at `index` (the entity's `version` or `soft_delete`), if it has one.
pub(crate) fn special_column(
    meta: &'static EntityMeta,
    index: Option<usize>,
) -> Result<Option<&'static str>> {
    index
        .map(|i| {
            meta.columns
                .get(i)
                .map(|c| c.name)
                .ok_or_else(|| no_such_column(i, meta))
        })
        .transpose()
}

/// `"<version>" + 1`: built from the quoted, validated name, so no input reaches the text.
pub(crate) fn bump(version: &str) -> Result<RawSql> {
    Ok(RawSql::new_unchecked(format!(
        "{} + 1",
        quote_ident(version)?
    )))
}

/// A count or index as a shape-key word.
pub(crate) fn small(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The entity's table as the SQL builder takes it.
pub(crate) fn table_ref(meta: &'static EntityMeta) -> TableRef<'static> {
    match meta.schema {
        Some(schema) => TableRef::qualified(schema, meta.table),
        None => TableRef::new(meta.table),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::ColumnMeta;

    static USERS: EntityMeta = EntityMeta {
        schema: Some("app"),
        table: "users",
        columns: &[
            ColumnMeta {
                name: "id",
                field: "id",
                generated: true,
                json: false,
                nullable: false,
                accepts: |_| true,
            },
            ColumnMeta {
                name: "email_address",
                field: "email",
                generated: false,
                json: false,
                nullable: false,
                accepts: |_| true,
            },
            ColumnMeta {
                name: "profile",
                field: "profile",
                generated: false,
                json: true,
                nullable: false,
                accepts: |_| true,
            },
        ],
        key: 0,
        version: None,
        soft_delete: None,
    };

    static COUNTER: EntityMeta = EntityMeta {
        schema: None,
        table: "counter",
        columns: &[
            ColumnMeta {
                name: "id",
                field: "id",
                generated: true,
                json: false,
                nullable: false,
                accepts: |_| true,
            },
            ColumnMeta {
                name: "hits",
                field: "hits",
                generated: true,
                json: false,
                nullable: false,
                accepts: |_| true,
            },
        ],
        key: 0,
        version: None,
        soft_delete: None,
    };

    #[test]
    fn statements_are_built_from_meta() {
        let sql = EntitySql::build(&USERS).unwrap();
        assert_eq!(
            sql.get_by_id,
            r#"SELECT "id", "email_address", "profile" FROM "app"."users" WHERE "id" = $1"#
        );
        assert_eq!(
            sql.insert,
            r#"INSERT INTO "app"."users" ("email_address", "profile") VALUES ($1, $2) RETURNING "id", "email_address", "profile""#
        );
        assert_eq!(
            sql.save.as_deref(),
            Some(
                r#"UPDATE "app"."users" SET "email_address" = $1, "profile" = $2 WHERE "id" = $3 RETURNING "id", "email_address", "profile""#
            )
        );
        assert_eq!(sql.insert_columns, [1, 2]);
        assert_eq!(sql.update_columns, [1, 2]);
        assert_eq!(sql.insert_names, ["email_address", "profile"]);
        let patch = sql.patch(&USERS, &[2], false).unwrap();
        assert_eq!(
            &*patch,
            r#"UPDATE "app"."users" SET "profile" = $1 WHERE "id" = $2 RETURNING "id", "email_address", "profile""#
        );
        assert!(std::sync::Arc::ptr_eq(
            &patch,
            &sql.patch(&USERS, &[2], false).unwrap()
        ));
    }

    #[test]
    fn an_all_generated_entity_has_no_save() {
        let sql = EntitySql::build(&COUNTER).unwrap();
        assert!(sql.save.is_none());
        assert_eq!(
            sql.insert,
            r#"INSERT INTO "counter" DEFAULT VALUES RETURNING "id", "hits""#
        );
    }
}
