//! Every statement of an entity, rendered once per process from its metadata.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use super::EntityMeta;
use crate::sql::{col, Delete, Insert, Select, TableRef, Update};
use crate::{Error, Result};

/// The SQL of one entity. Built by [`EntitySql::build`] once per process and cached by the
/// derive in a `static`, so no statement text is allocated per call.
#[derive(Debug)]
pub struct EntitySql {
    /// `SELECT <all columns> FROM <table>`.
    pub get_all: String,
    /// `... WHERE <key> = $1`.
    pub get_by_id: String,
    /// `INSERT INTO <table> (<insert columns>) VALUES (...) RETURNING <all columns>`.
    pub insert: String,
    /// `UPDATE <table> SET <update columns> WHERE <key> = $n RETURNING <all columns>`, or
    /// `None` when every non-key column is generated.
    pub save: Option<String>,
    /// `DELETE FROM <table> WHERE <key> = $1`.
    pub delete: String,
    /// `SELECT EXISTS(SELECT 1 FROM <table> WHERE <key> = $1)`.
    pub exists: String,
    /// `SELECT COUNT(*) FROM <table>`.
    pub count: String,
    /// Columns written by INSERT (indices into `EntityMeta::columns`): all but generated ones.
    pub insert_columns: Vec<usize>,
    /// Columns written by `save` and patchable by `update`: all but the key and generated ones.
    pub update_columns: Vec<usize>,
    /// The quoted table name, for statements built per call.
    pub table: String,
    /// `update` statements by the set of patched columns, rendered on first use.
    patches: RwLock<HashMap<Box<[usize]>, Arc<str>>>,
}

/// More distinct patch shapes than this are rendered per call instead of cached: the cache
/// must stay bounded even for an entity with many columns patched in every combination.
const MAX_CACHED_PATCHES: usize = 256;

impl EntitySql {
    /// Renders every statement; fails only if the metadata holds a name that is not a valid
    /// identifier (the derive already rejects those at compile time).
    pub fn build(meta: &'static EntityMeta) -> Result<EntitySql> {
        let table = meta.table_ref();
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
        let mut quoted = String::new();
        if let Some(schema) = meta.schema {
            quoted.push_str(&crate::sql::quote_ident(schema)?);
            quoted.push('.');
        }
        quoted.push_str(&crate::sql::quote_ident(meta.table)?);
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
            table: quoted,
            patches: RwLock::new(HashMap::new()),
        })
    }

    /// The statements of `meta`, rendered on first use and kept in `cell` (a `static` of the
    /// derive's output).
    pub fn cached(
        cell: &'static OnceLock<std::result::Result<EntitySql, String>>,
        meta: &'static EntityMeta,
    ) -> Result<&'static EntitySql> {
        cell.get_or_init(|| EntitySql::build(meta).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|message| Error::InvalidData {
                table: meta.display_name(),
                field: String::new(),
                message: message.clone(),
                source: None,
            })
    }
}

impl EntitySql {
    /// `UPDATE <table> SET <columns> WHERE <key> = $n RETURNING <all columns>` for the given
    /// column indices, rendered once per distinct set.
    pub fn patch(&self, meta: &'static EntityMeta, columns: &[usize]) -> Result<Arc<str>> {
        if let Some(sql) = self
            .patches
            .read()
            .ok()
            .and_then(|cache| cache.get(columns).cloned())
        {
            return Ok(sql);
        }
        let names: Vec<&str> = columns.iter().map(|&i| meta.columns[i].name).collect();
        let all: Vec<&str> = meta.columns.iter().map(|c| c.name).collect();
        let key = meta.key_column()?.name;
        let sql: Arc<str> = Update::table(meta.table_ref())
            .set(&names)
            .filter(col(key).eq())
            .returning(&all)
            .build()?
            .into_sql()
            .into();
        if let Ok(mut cache) = self.patches.write() {
            if cache.len() < MAX_CACHED_PATCHES {
                cache.insert(columns.into(), sql.clone());
            }
        }
        Ok(sql)
    }
}

impl EntityMeta {
    /// The table as the SQL builder takes it.
    pub fn table_ref(&self) -> TableRef<'static> {
        match self.schema {
            Some(schema) => TableRef::qualified(schema, self.table),
            None => TableRef::new(self.table),
        }
    }

    pub(crate) fn key_column(&self) -> Result<&'static super::Column> {
        self.columns
            .get(self.key)
            .ok_or_else(|| Error::InvalidData {
                table: self.display_name(),
                field: String::new(),
                message: format!(
                    "key index {} is outside the {} columns",
                    self.key,
                    self.columns.len()
                ),
                source: None,
            })
    }
}
