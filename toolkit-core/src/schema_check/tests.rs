//! The comparison on its own, with catalog columns written by hand: no server needed.

use tokio_postgres::types::{Kind, Type};

use super::catalog::{CatalogColumn, Relation};
use super::*;
use crate::entity::ColumnMeta;

fn int4(ty: &Type) -> bool {
    *ty == Type::INT4
}

fn text(ty: &Type) -> bool {
    *ty == Type::TEXT
}

const fn column(name: &'static str, accepts: fn(&Type) -> bool) -> ColumnMeta {
    ColumnMeta {
        name,
        field: name,
        generated: false,
        json: false,
        nullable: false,
        accepts,
    }
}

static ITEMS: EntityMeta = EntityMeta {
    schema: Some("app"),
    table: "items",
    columns: &[
        ColumnMeta {
            generated: true,
            ..column("id", int4)
        },
        ColumnMeta {
            field: "label",
            ..column("name", text)
        },
        ColumnMeta {
            nullable: true,
            ..column("size", int4)
        },
    ],
    key: 0,
    version: None,
    soft_delete: None,
};

fn live(name: &str, ty: Type) -> CatalogColumn {
    CatalogColumn {
        name: name.to_owned(),
        ty: Some(ty),
        not_null: true,
        has_default: false,
        identity: String::new(),
        generated: String::new(),
    }
}

fn matching() -> Vec<CatalogColumn> {
    vec![
        CatalogColumn {
            identity: "a".to_owned(),
            ..live("id", Type::INT4)
        },
        live("name", Type::TEXT),
        CatalogColumn {
            not_null: false,
            ..live("size", Type::INT4)
        },
    ]
}

fn table(columns: Vec<CatalogColumn>) -> Relation {
    Relation {
        columns,
        records_not_null: true,
    }
}

fn mismatch(column: &str, field: Option<&str>, kind: MismatchKind) -> SchemaMismatch {
    SchemaMismatch {
        table: "app.items".to_owned(),
        column: Some(column.to_owned()),
        field: field.map(str::to_owned),
        kind,
    }
}

#[test]
fn a_matching_table_has_no_mismatch() {
    assert_eq!(compare(&ITEMS, Some(&table(matching()))), []);
}

#[test]
fn a_missing_table_is_the_only_mismatch() {
    assert_eq!(
        compare(&ITEMS, None),
        [SchemaMismatch {
            table: "app.items".to_owned(),
            column: None,
            field: None,
            kind: MismatchKind::MissingTable,
        }]
    );
}

#[test]
fn every_kind_is_reported_in_field_order_then_unmapped_columns() {
    let columns = vec![
        // A plain column: nothing fills it for a generated field.
        live("id", Type::INT4),
        CatalogColumn {
            not_null: false,
            generated: "s".to_owned(),
            has_default: true,
            ..live("name", Type::INT8)
        },
        CatalogColumn {
            has_default: true,
            ..live("tenant", Type::INT4)
        },
        live("owner", Type::TEXT),
    ];
    assert_eq!(
        compare(&ITEMS, Some(&table(columns.clone()))),
        [
            mismatch("id", Some("id"), MismatchKind::NoDefault),
            mismatch(
                "name",
                Some("label"),
                MismatchKind::WrongType {
                    column_type: "int8".to_owned()
                }
            ),
            mismatch("name", Some("label"), MismatchKind::Nullable),
            mismatch("name", Some("label"), MismatchKind::GeneratedAlways),
            mismatch("size", Some("size"), MismatchKind::MissingColumn),
            mismatch("owner", None, MismatchKind::UnmappedRequired),
        ]
    );
}

#[test]
fn a_domain_is_read_as_its_base_type_and_named_when_it_does_not_fit() {
    let domain = |base: Type| {
        Type::new(
            "code".to_owned(),
            90_001,
            Kind::Domain(base),
            "app".to_owned(),
        )
    };
    let mut columns = matching();
    columns[1].ty = Some(domain(Type::TEXT));
    assert_eq!(compare(&ITEMS, Some(&table(columns.clone()))), []);
    columns[1].ty = Some(domain(Type::BOOL));
    assert_eq!(
        compare(&ITEMS, Some(&table(columns.clone()))),
        [mismatch(
            "name",
            Some("label"),
            MismatchKind::WrongType {
                column_type: "bool (domain app.code)".to_owned()
            }
        )]
    );
}

#[test]
fn a_view_is_not_checked_for_null() {
    let mut columns = matching();
    columns[1].not_null = false;
    let view = Relation {
        columns,
        records_not_null: false,
    };
    assert_eq!(compare(&ITEMS, Some(&view)), []);
}

#[test]
fn a_type_that_could_not_be_built_is_not_checked() {
    let mut columns = matching();
    columns[1].ty = None;
    assert_eq!(compare(&ITEMS, Some(&table(columns.clone()))), []);
}

#[test]
fn the_error_lists_every_mismatch_with_table_column_and_field() {
    let err = Error::SchemaMismatch {
        table: "app.items".to_owned(),
        mismatches: vec![
            mismatch("size", Some("size"), MismatchKind::MissingColumn),
            mismatch("owner", None, MismatchKind::UnmappedRequired),
        ],
    };
    assert_eq!(
        err.to_string(),
        "table app.items does not match its entity: app.items.size (field `size`): no such \
         column; app.items.owner: NOT NULL without a default and no field maps it, so every \
         insert fails"
    );
}
