//! What the catalog says about a table: its columns, and each column's type built the way the
//! driver builds it when it reads a row.

use std::collections::HashMap;

use tokio_postgres::types::{Field, Kind, Type};
use tokio_postgres::Row;

use crate::entity::EntityMeta;
use crate::pool::Session;
use crate::Result;

/// The relation the repository's statements would reach: in the entity's schema, or through
/// the `search_path` like an unqualified statement (`to_regclass`). One row per live column,
/// or one row of NULLs when the table is missing (`found` false) or has no columns.
const COLUMNS: &str = "\
SELECT c.oid IS NOT NULL, a.attname::text, a.atttypid, a.attnotnull, a.atthasdef,
       a.attidentity::text, a.attgenerated::text, c.relkind::text
FROM (SELECT CASE WHEN $1::text IS NULL
                  THEN pg_catalog.to_regclass(pg_catalog.quote_ident($2::text))::pg_catalog.oid
                  ELSE (SELECT r.oid FROM pg_catalog.pg_class r
                        JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
                        WHERE n.nspname = $1::text AND r.relname = $2::text)
             END AS oid) AS target
LEFT JOIN pg_catalog.pg_class c
       ON c.oid = target.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
LEFT JOIN pg_catalog.pg_attribute a
       ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum";

/// Every type the given ones are made of (array elements, domain bases, range subtypes,
/// composite fields), with what tokio-postgres reads to build a `Type` (its `TYPEINFO`
/// queries), in one round trip instead of one per type.
const TYPES: &str = "\
WITH RECURSIVE wanted(oid) AS (
    SELECT pg_catalog.unnest($1::pg_catalog.oid[])
  UNION
    SELECT refs.oid
    FROM wanted
    JOIN pg_catalog.pg_type t ON t.oid = wanted.oid
    CROSS JOIN LATERAL (
        SELECT t.typelem
        UNION ALL SELECT t.typbasetype
        UNION ALL SELECT r.rngsubtype FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid
        UNION ALL SELECT a.atttypid FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
    ) AS refs(oid)
    WHERE refs.oid <> 0
)
SELECT t.oid, t.typname::text, t.typtype::text, t.typelem, r.rngsubtype, t.typbasetype,
       n.nspname::text, t.typrelid,
       ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e
             WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
       ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum),
       ARRAY(SELECT a.atttypid FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum)
FROM wanted
JOIN pg_catalog.pg_type t ON t.oid = wanted.oid
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid";

/// Deeper nesting of types than this is not built (the catalog forbids cycles; this only keeps
/// a damaged one from recursing without end).
const MAX_TYPE_DEPTH: u8 = 32;

/// The live table (or view) as the catalog describes it.
#[derive(Debug)]
pub(crate) struct Relation {
    /// Its columns in column order.
    pub(crate) columns: Vec<CatalogColumn>,
    /// False for views and materialized views: the catalog never marks their columns
    /// `NOT NULL`, so whether one can hold NULL is unknown, not "yes".
    pub(crate) records_not_null: bool,
}

/// One live column of the table.
#[derive(Debug, Clone)]
pub(crate) struct CatalogColumn {
    pub(crate) name: String,
    /// The declared type; `None` when it could not be built (dropped meanwhile), so it is not
    /// checked.
    pub(crate) ty: Option<Type>,
    pub(crate) not_null: bool,
    /// A `DEFAULT` or a stored generation expression.
    pub(crate) has_default: bool,
    /// `a` (always), `d` (by default) or empty.
    pub(crate) identity: String,
    /// `s` (stored) or empty.
    pub(crate) generated: String,
}

impl CatalogColumn {
    /// The database fills it when an insert leaves it out.
    pub(crate) fn fills_itself(&self) -> bool {
        self.has_default || !self.identity.is_empty() || !self.generated.is_empty()
    }

    /// Writing any value but `DEFAULT` to it fails.
    pub(crate) fn generated_always(&self) -> bool {
        self.identity == "a" || !self.generated.is_empty()
    }
}

/// The entity's table; `None` when there is no such table.
pub(crate) async fn relation(session: &Session<'_>, meta: &EntityMeta) -> Result<Option<Relation>> {
    let rows = session.query(COLUMNS, &[&meta.schema, &meta.table]).await?;
    let mut raw = Vec::with_capacity(rows.len());
    let mut records_not_null = true;
    for row in &rows {
        if !row.try_get::<_, bool>(0)? {
            return Ok(None);
        }
        let relkind: String = row.try_get(7)?;
        records_not_null = !matches!(relkind.as_str(), "v" | "m");
        if let Some(column) = RawColumn::read(row)? {
            raw.push(column);
        }
    }
    let custom: Vec<u32> = raw
        .iter()
        .map(|c| c.type_oid)
        .filter(|&oid| Type::from_oid(oid).is_none())
        .collect();
    let types = if custom.is_empty() {
        TypeRows::default()
    } else {
        TypeRows::read(&session.query(TYPES, &[&custom]).await?)?
    };
    let columns = raw
        .into_iter()
        .map(|c| CatalogColumn {
            ty: types.build(c.type_oid, MAX_TYPE_DEPTH),
            name: c.name,
            not_null: c.not_null,
            has_default: c.has_default,
            identity: c.identity,
            generated: c.generated,
        })
        .collect();
    Ok(Some(Relation {
        columns,
        records_not_null,
    }))
}

struct RawColumn {
    name: String,
    type_oid: u32,
    not_null: bool,
    has_default: bool,
    identity: String,
    generated: String,
}

impl RawColumn {
    /// `None` for the row of NULLs of a table without columns.
    fn read(row: &Row) -> Result<Option<Self>> {
        let Some(name) = row.try_get::<_, Option<String>>(1)? else {
            return Ok(None);
        };
        Ok(Some(RawColumn {
            name,
            type_oid: row.try_get(2)?,
            not_null: row.try_get(3)?,
            has_default: row.try_get(4)?,
            identity: row.try_get(5)?,
            generated: row.try_get(6)?,
        }))
    }
}

/// One row of [`TYPES`].
struct TypeRow {
    name: String,
    typtype: String,
    elem: u32,
    range_subtype: Option<u32>,
    base: u32,
    schema: String,
    relid: u32,
    labels: Vec<String>,
    field_names: Vec<String>,
    field_types: Vec<u32>,
}

#[derive(Default)]
struct TypeRows(HashMap<u32, TypeRow>);

impl TypeRows {
    fn read(rows: &[Row]) -> Result<Self> {
        let mut types = HashMap::with_capacity(rows.len());
        for row in rows {
            let oid: u32 = row.try_get(0)?;
            let type_row = TypeRow {
                name: row.try_get(1)?,
                typtype: row.try_get(2)?,
                elem: row.try_get(3)?,
                range_subtype: row.try_get(4)?,
                base: row.try_get(5)?,
                schema: row.try_get(6)?,
                relid: row.try_get(7)?,
                labels: row.try_get(8)?,
                field_names: row.try_get(9)?,
                field_types: row.try_get(10)?,
            };
            types.insert(oid, type_row);
        }
        Ok(TypeRows(types))
    }

    /// The `Type` tokio-postgres builds for `oid` (its `get_type`, same order of cases), so
    /// `FromSql::accepts` answers here as it will when a row is read.
    fn build(&self, oid: u32, depth: u8) -> Option<Type> {
        if let Some(ty) = Type::from_oid(oid) {
            return Some(ty);
        }
        let row = self.0.get(&oid)?;
        let depth = depth.checked_sub(1)?;
        let kind = if row.typtype == "e" {
            Kind::Enum(row.labels.clone())
        } else if row.typtype == "p" {
            Kind::Pseudo
        } else if row.base != 0 {
            Kind::Domain(self.build(row.base, depth)?)
        } else if row.elem != 0 {
            Kind::Array(self.build(row.elem, depth)?)
        } else if row.relid != 0 {
            let fields = row
                .field_names
                .iter()
                .zip(&row.field_types)
                .map(|(name, &ty)| Some(Field::new(name.clone(), self.build(ty, depth)?)))
                .collect::<Option<Vec<_>>>()?;
            Kind::Composite(fields)
        } else if let Some(subtype) = row.range_subtype {
            Kind::Range(self.build(subtype, depth)?)
        } else {
            Kind::Simple
        };
        Some(Type::new(row.name.clone(), oid, kind, row.schema.clone()))
    }
}
