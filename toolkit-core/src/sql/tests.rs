//! One test per builder feature; the helper functions are tested beside their code.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::Error;

fn sql(q: Result<Query, Error>) -> String {
    q.unwrap().into_sql()
}

fn invalid_field(q: Result<Query, Error>) -> String {
    match q {
        Err(Error::InvalidData { field, .. }) => field,
        other => panic!("expected InvalidData, got {other:?}"),
    }
}

#[test]
fn select_star_and_columns() {
    assert_eq!(
        sql(Select::from("users").build()),
        r#"SELECT * FROM "users""#
    );
    assert_eq!(
        sql(Select::from("users")
            .columns(&["id"])
            .column("we\"ird")
            .build()),
        r#"SELECT "id", "we""ird" FROM "users""#
    );
}

#[test]
fn schema_qualified_tables() {
    assert_eq!(
        sql(Select::from(TableRef::qualified("my app", "users")).build()),
        r#"SELECT * FROM "my app"."users""#
    );
    let name = QualifiedName::with_schema("app", "t\"x").unwrap();
    assert_eq!(
        sql(Delete::from(&name).all_rows().build()),
        r#"DELETE FROM "app"."t""x""#
    );
    let bad = Select::from(TableRef::qualified("", "users")).build();
    assert!(matches!(bad, Err(Error::InvalidIdentifier { .. })));
}

#[test]
fn every_comparison_operator() {
    let q = Select::from("t")
        .filter(col("a").eq())
        .filter(col("b").ne())
        .filter(col("c").lt())
        .filter(col("d").gt())
        .filter(col("e").le())
        .filter(col("f").ge())
        .build()
        .unwrap();
    assert_eq!(
        q.sql(),
        r#"SELECT * FROM "t" WHERE "a" = $1 AND "b" <> $2 AND "c" < $3 AND "d" > $4 AND "e" <= $5 AND "f" >= $6"#
    );
    assert_eq!(q.param_count(), 6);
}

#[test]
fn in_is_any_and_not_in_is_all() {
    let q = Select::from("t")
        .filter(col("id").eq_any())
        .filter(col("x").ne_all())
        .build()
        .unwrap();
    assert_eq!(
        q.sql(),
        r#"SELECT * FROM "t" WHERE "id" = ANY($1) AND "x" <> ALL($2)"#
    );
    assert_eq!(q.param_count(), 2);
}

#[test]
fn null_tests_take_no_parameter() {
    let q = Select::from("t")
        .filter(col("a").is_null())
        .filter(col("b").is_not_null())
        .build()
        .unwrap();
    assert_eq!(
        q.sql(),
        r#"SELECT * FROM "t" WHERE "a" IS NULL AND "b" IS NOT NULL"#
    );
    assert_eq!(q.param_count(), 0);
}

#[test]
fn and_or_nest_with_parentheses() {
    let cond = col("a")
        .eq()
        .or(col("b").eq())
        .and(col("c").eq().or(col("d").is_null()));
    assert_eq!(
        sql(Select::from("t").filter(cond).build()),
        r#"SELECT * FROM "t" WHERE ("a" = $1 OR "b" = $2) AND ("c" = $3 OR "d" IS NULL)"#
    );
    let top_or = col("a").eq().and(col("b").eq()).or(col("c").eq());
    assert_eq!(
        sql(Select::from("t").filter(top_or).build()),
        r#"SELECT * FROM "t" WHERE ("a" = $1 AND "b" = $2) OR "c" = $3"#
    );
}

#[test]
fn chains_stay_flat() {
    let cond = col("a")
        .eq()
        .and(col("b").eq())
        .and(col("c").eq().and(col("d").eq()));
    assert_eq!(
        sql(Select::from("t").filter(cond).build()),
        r#"SELECT * FROM "t" WHERE "a" = $1 AND "b" = $2 AND "c" = $3 AND "d" = $4"#
    );
}

#[test]
fn all_any_negate_and_empty_groups() {
    let cond = Condition::all([
        col("a").eq(),
        Condition::any([col("b").eq(), col("c").eq()]).negate(),
    ]);
    assert_eq!(
        sql(Select::from("t").filter(cond).build()),
        r#"SELECT * FROM "t" WHERE "a" = $1 AND NOT ("b" = $2 OR "c" = $3)"#
    );
    assert_eq!(
        sql(Select::from("t").filter(Condition::all([])).build()),
        r#"SELECT * FROM "t" WHERE TRUE"#
    );
    assert_eq!(
        sql(Select::from("t").filter(Condition::any([])).build()),
        r#"SELECT * FROM "t" WHERE FALSE"#
    );
    let single = Condition::any([col("a").eq().or(col("b").eq())]);
    assert_eq!(
        sql(Select::from("t")
            .filter(col("x").eq())
            .filter(single)
            .build()),
        r#"SELECT * FROM "t" WHERE "x" = $1 AND ("a" = $2 OR "b" = $3)"#
    );
}

#[test]
fn raw_conditions_and_columns_are_checked() {
    let q = Select::from("t")
        .column_raw(RawSql::new("count(*)"))
        .filter(Condition::raw(RawSql::new(r#""a" > "b" OR "c""#)))
        .build();
    assert_eq!(
        sql(q),
        r#"SELECT count(*) FROM "t" WHERE ("a" > "b" OR "c")"#
    );
    let injected = RawSql::new_unchecked("1; DROP TABLE victims");
    assert_eq!(
        invalid_field(Select::from("t").column_raw(injected.clone()).build()),
        "raw"
    );
    assert_eq!(
        invalid_field(Select::from("t").filter(Condition::raw(injected)).build()),
        "raw"
    );
}

#[test]
fn order_by_asc_desc() {
    assert_eq!(
        sql(Select::from("t")
            .order_by("a", Order::Asc)
            .order_by("b", Order::Desc)
            .build()),
        r#"SELECT * FROM "t" ORDER BY "a" ASC, "b" DESC"#
    );
    assert!(matches!(
        Select::from("t").order_by("", Order::Asc).build(),
        Err(Error::InvalidIdentifier { .. })
    ));
}

#[test]
fn limit_and_offset_as_values_or_placeholders() {
    assert_eq!(
        sql(Select::from("t").limit(5).offset(10).build()),
        r#"SELECT * FROM "t" LIMIT 5 OFFSET 10"#
    );
    let q = Select::from("t")
        .filter(col("a").eq())
        .offset_param()
        .limit_param()
        .build()
        .unwrap();
    assert_eq!(
        q.sql(),
        r#"SELECT * FROM "t" WHERE "a" = $1 LIMIT $2 OFFSET $3"#
    );
    assert_eq!(q.param_count(), 3);
    let max = u64::try_from(i64::MAX).unwrap();
    assert!(Select::from("t").limit(max).build().is_ok());
    assert_eq!(
        invalid_field(Select::from("t").limit(max + 1).build()),
        "limit"
    );
    assert_eq!(
        invalid_field(Select::from("t").offset(u64::MAX).build()),
        "offset"
    );
}

#[test]
fn count_and_exists() {
    let base = Select::from("t")
        .columns(&["a"])
        .filter(col("a").eq())
        .order_by("a", Order::Desc);
    assert_eq!(
        sql(base.build_count()),
        r#"SELECT COUNT(*) FROM "t" WHERE "a" = $1"#
    );
    assert_eq!(
        sql(base.build_exists()),
        r#"SELECT EXISTS (SELECT 1 FROM "t" WHERE "a" = $1)"#
    );
    let paged = base.clone().limit_param().offset(3);
    assert_eq!(
        sql(paged.build_count()),
        r#"SELECT COUNT(*) FROM (SELECT 1 FROM "t" WHERE "a" = $1 LIMIT $2 OFFSET 3) AS "counted""#
    );
    assert_eq!(
        paged.build().unwrap().param_count(),
        paged.build_count().unwrap().param_count()
    );
    assert!(Select::from("t")
        .order_by("", Order::Asc)
        .build_count()
        .is_err());
}

#[test]
fn insert_multi_row_and_default_values() {
    assert_eq!(
        sql(Insert::into("t").columns(&["a", "b"]).rows(3).build()),
        r#"INSERT INTO "t" ("a", "b") VALUES ($1, $2), ($3, $4), ($5, $6)"#
    );
    assert_eq!(
        sql(Insert::into("t")
            .default_values()
            .returning(&["id"])
            .build()),
        r#"INSERT INTO "t" DEFAULT VALUES RETURNING "id""#
    );
    assert_eq!(invalid_field(Insert::into("t").build()), "columns");
    assert_eq!(
        invalid_field(Insert::into("t").column("a").rows(0).build()),
        "rows"
    );
    assert_eq!(
        invalid_field(Insert::into("t").column("a").default_values().build()),
        "columns"
    );
    assert_eq!(
        invalid_field(Insert::into("t").default_values().rows(2).build()),
        "rows"
    );
    assert_eq!(
        invalid_field(Insert::into("t").columns(&["a", "b"]).rows(40_000).build()),
        "parameters"
    );
    assert_eq!(
        invalid_field(Insert::into("t").column("a").rows(usize::MAX).build()),
        "parameters"
    );
}

#[test]
fn insert_on_conflict() {
    assert_eq!(
        sql(Insert::into("t")
            .column("a")
            .on_conflict_do_nothing(&[])
            .build()),
        r#"INSERT INTO "t" ("a") VALUES ($1) ON CONFLICT DO NOTHING"#
    );
    assert_eq!(
        sql(Insert::into("t")
            .column("a")
            .on_conflict_do_nothing(&["a", "b"])
            .build()),
        r#"INSERT INTO "t" ("a") VALUES ($1) ON CONFLICT ("a", "b") DO NOTHING"#
    );
    assert_eq!(
        sql(Insert::into("t")
            .columns(&["id", "x\"y"])
            .on_conflict_do_update(&["id"], &["x\"y"])
            .build()),
        r#"INSERT INTO "t" ("id", "x""y") VALUES ($1, $2) ON CONFLICT ("id") DO UPDATE SET "x""y" = EXCLUDED."x""y""#
    );
    assert_eq!(
        invalid_field(
            Insert::into("t")
                .column("a")
                .on_conflict_do_update(&[], &["a"])
                .build()
        ),
        "on_conflict"
    );
    assert_eq!(
        invalid_field(
            Insert::into("t")
                .column("a")
                .on_conflict_do_update(&["a"], &[])
                .build()
        ),
        "on_conflict"
    );
}

#[test]
fn returning_columns_or_star() {
    assert_eq!(
        sql(Insert::into("t").column("a").returning_all().build()),
        r#"INSERT INTO "t" ("a") VALUES ($1) RETURNING *"#
    );
    assert_eq!(
        sql(Update::table("t")
            .set(&["a"])
            .all_rows()
            .returning(&["id", "a"])
            .build()),
        r#"UPDATE "t" SET "a" = $1 RETURNING "id", "a""#
    );
    assert_eq!(
        sql(Delete::from("t").all_rows().returning_all().build()),
        r#"DELETE FROM "t" RETURNING *"#
    );
    assert_eq!(
        invalid_field(Delete::from("t").all_rows().returning(&[]).build()),
        "returning"
    );
}

#[test]
fn update_numbers_set_then_filter_and_requires_intent() {
    let q = Update::table(TableRef::qualified("s", "t"))
        .set(&["a"])
        .set_raw("v", RawSql::new(r#""v" + 1"#))
        .set(&["b"])
        .filter(col("id").eq())
        .filter(col("v").eq())
        .build()
        .unwrap();
    assert_eq!(
        q.sql(),
        r#"UPDATE "s"."t" SET "a" = $1, "v" = "v" + 1, "b" = $2 WHERE "id" = $3 AND "v" = $4"#
    );
    assert_eq!(q.param_count(), 4);
    assert_eq!(
        invalid_field(Update::table("t").filter(col("id").eq()).build()),
        "set"
    );
    assert_eq!(
        invalid_field(Update::table("t").set(&["a"]).build()),
        "filter"
    );
    assert_eq!(
        sql(Update::table("t").set(&["a"]).all_rows().build()),
        r#"UPDATE "t" SET "a" = $1"#
    );
}

#[test]
fn delete_requires_a_filter_or_all_rows() {
    assert_eq!(
        sql(Delete::from("t").filter(col("id").eq_any()).build()),
        r#"DELETE FROM "t" WHERE "id" = ANY($1)"#
    );
    assert_eq!(invalid_field(Delete::from("t").build()), "filter");
}

#[test]
fn builders_agree_with_helpers() {
    assert_eq!(
        sql(Select::from("my users")
            .columns(&["id", "we\"ird"])
            .filter(col("a").eq())
            .filter(col("B").eq())
            .build()),
        build_select_query("my users", &["id", "we\"ird"], &["a", "B"]).unwrap()
    );
    assert_eq!(
        sql(Insert::into("users")
            .columns(&["id", "name"])
            .rows(2)
            .build()),
        build_insert_query("users", &["id", "name"], 2).unwrap()
    );
    assert_eq!(
        sql(Update::table("users")
            .set(&["name", "age"])
            .filter(col("id").eq())
            .build()),
        build_update_query("users", &["name", "age"], &["id"]).unwrap()
    );
    assert_eq!(
        sql(Delete::from("users")
            .filter(col("id").eq())
            .filter(col("t").eq())
            .build()),
        build_delete_query("users", &["id", "t"]).unwrap()
    );
}

#[test]
fn injection_shaped_names_stay_one_identifier() {
    let table = "users\"; DROP TABLE victims; --";
    assert_eq!(
        sql(Select::from(table)
            .filter(col("id\" = 1 OR \"1").eq())
            .build()),
        r#"SELECT * FROM "users""; DROP TABLE victims; --" WHERE "id"" = 1 OR ""1" = $1"#
    );
}

#[test]
fn deep_conditions_error_instead_of_overflowing() {
    let mut cond = col("a").eq();
    for _ in 0..1_000 {
        cond = cond.negate();
    }
    assert_eq!(
        invalid_field(Select::from("t").filter(cond).build()),
        "condition"
    );
}

#[test]
fn building_is_repeatable() {
    let select = Select::from("t")
        .columns(&["a"])
        .filter(col("a").eq_any())
        .limit(3);
    assert_eq!(select.build().unwrap(), select.build().unwrap());
}
