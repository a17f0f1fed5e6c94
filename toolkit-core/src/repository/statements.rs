//! Every statement of an entity, rendered once per process from its metadata.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::entity::{Entity, EntityMeta};
use crate::sql::{col, Delete, Insert, Select, TableRef, Update};
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
    /// `UPDATE <table> SET <update columns> WHERE <key> = $n RETURNING <all columns>`, or
    /// `None` when every non-key column is generated.
    pub(crate) save: Option<String>,
    /// `DELETE FROM <table> WHERE <key> = $1`.
    pub(crate) delete: String,
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
    pub(crate) fn build(meta: &'static EntityMeta) -> Result<EntitySql> {
        let table = table_ref(meta);
        let all: Vec<&str> = meta.columns.iter().map(|c| c.name).collect();
        let key = meta.key_column()?.name;
        let insert_columns: Vec<usize> = (0..meta.columns.len())
            .filter(|&i| !meta.columns[i].generated)
            .collect();
        let update_columns: Vec<usize> = (0..meta.columns.len())
            .filter(|&i| i != meta.key && !meta.columns[i].generated)
            .collect();
        let names = |indices: &[usize]| {
            indices
                .iter()
                .map(|&i| meta.columns[i].name)
                .collect::<Vec<_>>()
        };

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
        let save = if update_columns.is_empty() {
            None
        } else {
            Some(
                Update::table(table)
                    .set(&names(&update_columns))
                    .filter(col(key).eq())
                    .returning(&all)
                    .build()?
                    .into_sql(),
            )
        };
        let by_key = Select::from(table).columns(&all).filter(col(key).eq());
        let insert_names = names(&insert_columns);
        Ok(EntitySql {
            get_all: Select::from(table).columns(&all).build()?.into_sql(),
            get_by_id: by_key.build()?.into_sql(),
            insert: insert.into_sql(),
            save,
            delete: Delete::from(table)
                .filter(col(key).eq())
                .build()?
                .into_sql(),
            exists: Select::from(table)
                .filter(col(key).eq())
                .build_exists()?
                .into_sql(),
            count: Select::from(table).build_count()?.into_sql(),
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
    /// `UPDATE <table> SET <columns> WHERE <key> = $n RETURNING <all columns>` for the given
    /// column indices, rendered once per distinct set.
    pub(crate) fn patch(&self, meta: &'static EntityMeta, columns: &[usize]) -> Result<Arc<str>> {
        let mut key = Vec::with_capacity(columns.len() + 1);
        key.push(ShapeKind::Patch as u32);
        key.extend(columns.iter().map(|&c| small(c)));
        self.shaped(&key, || {
            let names: Vec<&str> = columns.iter().map(|&i| meta.columns[i].name).collect();
            let all: Vec<&str> = meta.columns.iter().map(|c| c.name).collect();
            let key = meta.key_column()?.name;
            Ok(Update::table(table_ref(meta))
                .set(&names)
                .filter(col(key).eq())
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
            },
            ColumnMeta {
                name: "email_address",
                field: "email",
                generated: false,
                json: false,
            },
            ColumnMeta {
                name: "profile",
                field: "profile",
                generated: false,
                json: true,
            },
        ],
        key: 0,
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
            },
            ColumnMeta {
                name: "hits",
                field: "hits",
                generated: true,
                json: false,
            },
        ],
        key: 0,
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
        let patch = sql.patch(&USERS, &[2]).unwrap();
        assert_eq!(
            &*patch,
            r#"UPDATE "app"."users" SET "profile" = $1 WHERE "id" = $2 RETURNING "id", "email_address", "profile""#
        );
        assert!(std::sync::Arc::ptr_eq(
            &patch,
            &sql.patch(&USERS, &[2]).unwrap()
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
