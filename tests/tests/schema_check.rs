//! `check_schema` against a real server: each kind of mismatch, all of them in one error, and
//! the tables that match (domains, enums, composites, schemas, the search path).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use toolkit::{
    DatabaseSettings, Entity, Error, MismatchKind, Repository, SchemaMismatch, StatementMode,
};
use toolkit_tests::db_with;

/// Every test finishes well within this, or fails.
const TEST_DEADLINE: Duration = Duration::from_secs(120);

async fn bounded<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_DEADLINE, body)
        .await
        .expect("test deadline")
}

#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
struct Profile {
    bio: String,
}

#[derive(Debug, Clone, Copy, PartialEq, postgres_types::ToSql, postgres_types::FromSql)]
#[postgres(name = "mood")]
enum Mood {
    #[postgres(name = "happy")]
    Happy,
    #[postgres(name = "sad")]
    Sad,
}

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "accounts")]
struct Account {
    #[entity(primary_key, generated)]
    id: i64,
    name: String,
    #[entity(column = "email_address")]
    email: String,
    tags: Vec<String>,
    #[entity(json)]
    profile: Profile,
    age: Option<i32>,
    mood: Mood,
    #[entity(generated)]
    created_at: chrono::DateTime<chrono::Utc>,
    #[entity(skip)]
    scratch: String,
}

/// A table `Account` maps exactly; each test below changes one line or a few.
const ACCOUNTS: &str = "CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE TABLE accounts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    email_address varchar(200) NOT NULL,
    tags text[] NOT NULL,
    profile jsonb NOT NULL,
    age int,
    mood mood NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    note text,
    version int NOT NULL DEFAULT 1
);";

/// `ACCOUNTS` with each `(from, to)` replaced, failing if a `from` is not there.
fn accounts_with(changes: &[(&str, &str)]) -> String {
    changes.iter().fold(ACCOUNTS.to_owned(), |ddl, (from, to)| {
        assert!(ddl.contains(from), "{from:?} is not in the DDL");
        ddl.replace(from, to)
    })
}

fn account() -> Account {
    Account {
        id: 0,
        name: "Ada".into(),
        email: "ada@example.com".into(),
        tags: vec!["admin".into()],
        profile: Profile { bio: "math".into() },
        age: Some(36),
        mood: Mood::Happy,
        created_at: chrono::Utc::now(),
        scratch: String::new(),
    }
}

type Found = (Option<String>, Option<String>, MismatchKind);

fn at(column: &str, field: Option<&str>, kind: MismatchKind) -> Found {
    (Some(column.to_owned()), field.map(str::to_owned), kind)
}

fn missing(column: &str, field: &str) -> Found {
    at(column, Some(field), MismatchKind::MissingColumn)
}

fn unmapped(column: &str) -> Found {
    (
        Some(column.to_owned()),
        None,
        MismatchKind::UnmappedRequired,
    )
}

fn wrong_type(column_type: &str) -> MismatchKind {
    MismatchKind::WrongType {
        column_type: column_type.to_owned(),
    }
}

/// The mismatches of `E` against its table, from the one error; checks every mismatch names
/// the entity's table, as the error does.
fn mismatches_of<E: Entity>(result: toolkit::Result<()>) -> (String, Vec<Found>) {
    let err = result.expect_err("the schema check passed");
    let message = err.to_string();
    let Error::SchemaMismatch { table, mismatches } = err else {
        panic!("not a schema mismatch: {err:?}");
    };
    assert_eq!(table, E::META.display_name());
    assert!(
        mismatches.iter().all(|m| m.table == table),
        "{mismatches:?}"
    );
    let found = mismatches
        .into_iter()
        .map(
            |SchemaMismatch {
                 column,
                 field,
                 kind,
                 ..
             }| (column, field, kind),
        )
        .collect();
    (message, found)
}

/// Runs `schema` on a fresh database and checks `E` against it.
async fn check<E: Entity>(schema: &str) -> (String, Vec<Found>) {
    let (_tdb, db) = db_with(schema, |s| s).await;
    mismatches_of::<E>(db.check_schema::<E>().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matching_table_passes_and_really_round_trips() {
    bounded(async {
        let (_tdb, db) = db_with(ACCOUNTS, |s| s).await;
        db.check_schema::<Account>().await.unwrap();
        db.get_pool()
            .await
            .unwrap()
            .check_schema::<Account>()
            .await
            .unwrap();
        // What the check passed, the repository can do.
        let repo = Repository::<Account>::new(&db);
        let created = repo.create(&account()).await.unwrap();
        assert_eq!(repo.get_by_id(created.id).await.unwrap(), created);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_is_reported_alone() {
    bounded(async {
        let (message, found) = check::<Account>("CREATE TABLE other (id bigint)").await;
        assert_eq!(found, [(None, None, MismatchKind::MissingTable)]);
        assert_eq!(
            message,
            "table accounts does not match its entity: accounts: no such table"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_column_names_column_and_field() {
    bounded(async {
        let ddl = accounts_with(&[("email_address varchar(200) NOT NULL,", "")]);
        let (message, found) = check::<Account>(&ddl).await;
        assert_eq!(found, [missing("email_address", "email")], "{message}");
        assert_eq!(
            message,
            "table accounts does not match its entity: accounts.email_address (field `email`): \
             no such column"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_the_field_cannot_read_is_named() {
    bounded(async {
        let ddl = accounts_with(&[
            ("tags text[]", "tags int[]"),
            ("profile jsonb", "profile text"),
            ("age int,", "age bigint,"),
            // The enum has a label the Rust enum lacks: reading could meet a value it cannot hold.
            ("ENUM ('happy', 'sad')", "ENUM ('happy', 'sad', 'meh')"),
        ]);
        let (message, found) = check::<Account>(&ddl).await;
        assert_eq!(
            found,
            [
                at("tags", Some("tags"), wrong_type("_int4")),
                at("profile", Some("profile"), wrong_type("text")),
                at("age", Some("age"), wrong_type("int8")),
                at("mood", Some("mood"), wrong_type("mood")),
            ],
            "{message}"
        );
        assert!(
            message.contains(
                "accounts.age (field `age`): the field cannot read the column's type int8"
            ),
            "{message}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nullable_column_behind_a_plain_field_is_named() {
    bounded(async {
        let ddl = accounts_with(&[("name text NOT NULL", "name text")]);
        let (message, found) = check::<Account>(&ddl).await;
        assert_eq!(
            found,
            [at("name", Some("name"), MismatchKind::Nullable)],
            "{message}"
        );
        assert!(
            message.contains(
                "accounts.name (field `name`): the column allows NULL but the field is not an \
                 Option"
            ),
            "{message}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_field_without_a_default_is_named() {
    bounded(async {
        let ddl = accounts_with(&[
            (
                "id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
                "id bigint PRIMARY KEY",
            ),
            ("NOT NULL DEFAULT now()", "NOT NULL"),
        ]);
        let (message, found) = check::<Account>(&ddl).await;
        assert_eq!(
            found,
            [
                at("id", Some("id"), MismatchKind::NoDefault),
                at("created_at", Some("created_at"), MismatchKind::NoDefault),
            ],
            "{message}"
        );
        assert!(
            message.contains(
                "accounts.created_at (field `created_at`): the field is generated but the column \
                 has no default, identity or generation expression"
            ),
            "{message}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_always_column_behind_a_written_field_is_named_and_would_fail() {
    bounded(async {
        let ddl = accounts_with(&[(
            "age int,",
            "age int GENERATED ALWAYS AS (length(name)) STORED,",
        )]);
        let (_tdb, db) = db_with(&ddl, |s| s).await;
        let (message, found) = mismatches_of::<Account>(db.check_schema::<Account>().await);
        assert_eq!(
            found,
            [at("age", Some("age"), MismatchKind::GeneratedAlways)],
            "{message}"
        );
        // What the check says: the insert fails.
        let insert = Repository::<Account>::new(&db).create(&account()).await;
        assert!(insert.is_err(), "{insert:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_column_no_field_maps_is_named_and_would_fail() {
    bounded(async {
        let ddl = accounts_with(&[(
            "note text,",
            "note text, tenant int NOT NULL, region text NOT NULL DEFAULT 'eu',",
        )]);
        let (_tdb, db) = db_with(&ddl, |s| s).await;
        let (message, found) = mismatches_of::<Account>(db.check_schema::<Account>().await);
        assert_eq!(found, [unmapped("tenant")], "{message}");
        assert!(
            message.contains(
                "accounts.tenant: NOT NULL without a default and no field maps it, so every \
                 insert fails"
            ),
            "{message}"
        );
        let insert = Repository::<Account>::new(&db).create(&account()).await;
        assert_eq!(
            insert.unwrap_err().code(),
            Some(&toolkit::SqlState::NOT_NULL_VIOLATION)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_mismatch_is_in_the_one_error() {
    bounded(async {
        let ddl = accounts_with(&[
            (
                "id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
                "id bigint PRIMARY KEY",
            ),
            ("name text NOT NULL", "name text"),
            ("email_address varchar(200) NOT NULL,", ""),
            ("age int,", "age bigint,"),
            (
                "profile jsonb NOT NULL,",
                "profile jsonb GENERATED ALWAYS AS ('{\"bio\": \"\"}') STORED,",
            ),
            ("note text,", "tenant int NOT NULL,"),
        ]);
        let (message, found) = check::<Account>(&ddl).await;
        assert_eq!(
            found,
            [
                at("id", Some("id"), MismatchKind::NoDefault),
                at("name", Some("name"), MismatchKind::Nullable),
                missing("email_address", "email"),
                // A stored generated column allows NULL unless declared NOT NULL.
                at("profile", Some("profile"), MismatchKind::Nullable),
                at("profile", Some("profile"), MismatchKind::GeneratedAlways),
                at("age", Some("age"), wrong_type("int8")),
                unmapped("tenant"),
            ],
            "{message}"
        );
        assert_eq!(
            message,
            "table accounts does not match its entity: \
             accounts.id (field `id`): the field is generated but the column has no default, \
             identity or generation expression; \
             accounts.name (field `name`): the column allows NULL but the field is not an \
             Option; \
             accounts.email_address (field `email`): no such column; \
             accounts.profile (field `profile`): the column allows NULL but the field is not \
             an Option; \
             accounts.profile (field `profile`): the column is GENERATED ALWAYS but the field \
             is written; mark it #[entity(generated)]; \
             accounts.age (field `age`): the field cannot read the column's type int8; \
             accounts.tenant: NOT NULL without a default and no field maps it, so every insert \
             fails"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Types beyond the built-in ones: compared with the type the driver builds when it reads.

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "contacts")]
struct Contact {
    #[entity(primary_key)]
    id: i64,
    email: String,
    score: Option<i32>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_column_is_checked_as_its_base_type() {
    bounded(async {
        let domains = "CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%');
                       CREATE DOMAIN work_email AS email;
                       CREATE DOMAIN big_score AS bigint;";
        let (_tdb, db) = db_with(
            &format!(
                "{domains} CREATE TABLE contacts (id bigint PRIMARY KEY,
                                                  email work_email NOT NULL, score int)"
            ),
            |s| s,
        )
        .await;
        // A domain over a domain over text: a String reads it.
        db.check_schema::<Contact>().await.unwrap();
        let repo = Repository::<Contact>::new(&db);
        let stored = Contact {
            id: 1,
            email: "a@example.com".into(),
            score: None,
        };
        assert_eq!(repo.create(&stored).await.unwrap(), stored);

        let (message, found) = check::<Contact>(&format!(
            "{domains} CREATE TABLE contacts (id bigint PRIMARY KEY, email text NOT NULL,
                                              score big_score)"
        ))
        .await;
        assert_eq!(
            found,
            [at(
                "score",
                Some("score"),
                wrong_type("int8 (domain big_score)")
            )],
            "{message}"
        );
    })
    .await;
}

#[derive(Debug, Clone, PartialEq, postgres_types::ToSql, postgres_types::FromSql)]
#[postgres(name = "pair")]
struct Pair {
    lo: i32,
    hi: String,
}

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "shapes")]
struct Shape {
    #[entity(primary_key)]
    id: i32,
    mood: Mood,
    moods: Vec<Mood>,
    pair: Pair,
    labels: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enums_composites_and_arrays_are_checked_as_they_are_read() {
    bounded(async {
        let types = "CREATE TYPE mood AS ENUM ('happy', 'sad');
                     CREATE DOMAIN label AS text;";
        let matching = format!(
            "{types} CREATE TYPE pair AS (lo int, hi text);
             CREATE TABLE shapes (id int PRIMARY KEY, mood mood NOT NULL, moods mood[] NOT NULL,
                                  pair pair NOT NULL, labels text[] NOT NULL)"
        );
        let (_tdb, db) = db_with(&matching, |s| s).await;
        db.check_schema::<Shape>().await.unwrap();
        let shape = Shape {
            id: 1,
            mood: Mood::Sad,
            moods: vec![Mood::Happy, Mood::Sad],
            pair: Pair {
                lo: 1,
                hi: "r".into(),
            },
            labels: vec!["x".into()],
        };
        let repo = Repository::<Shape>::new(&db);
        assert_eq!(repo.create(&shape).await.unwrap(), shape);

        // A composite field of another type, and an array of a domain: the server describes
        // only a domain column itself by its base type, not an array's elements.
        let drifted = format!(
            "{types} CREATE TYPE pair AS (lo bigint, hi text);
             CREATE TABLE shapes (id int PRIMARY KEY, mood mood NOT NULL, moods mood[] NOT NULL,
                                  pair pair NOT NULL, labels label[] NOT NULL)"
        );
        let (_tdb2, db2) = db_with(&drifted, |s| s).await;
        let (message, found) = mismatches_of::<Shape>(db2.check_schema::<Shape>().await);
        assert_eq!(
            found,
            [
                at("pair", Some("pair"), wrong_type("pair")),
                at("labels", Some("labels"), wrong_type("_label")),
            ],
            "{message}"
        );
        // What the check says: reading those columns fails.
        db2.connection()
            .await
            .unwrap()
            .execute(
                "INSERT INTO shapes VALUES (1, 'sad', '{happy}', ROW(1, 'r'), '{x}')",
                &[],
            )
            .await
            .unwrap();
        let read = Repository::<Shape>::new(&db2).get_by_id(1).await;
        assert!(
            matches!(&read, Err(Error::InvalidData { field, .. }) if field == "pair"),
            "{read:?}"
        );
        let labels = db2
            .connection()
            .await
            .unwrap()
            .query_one("SELECT labels FROM shapes", &[])
            .await
            .unwrap();
        assert!(labels.try_get::<_, Vec<String>>(0).is_err());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_statements_work_unnamed() {
    bounded(async {
        // Both statements (columns, then the user-defined types) with parameters sent unnamed,
        // as behind a transaction-mode PgBouncer.
        let (_tdb, db) = db_with(
            "CREATE TYPE mood AS ENUM ('happy', 'sad');
             CREATE TYPE pair AS (lo int, hi text);
             CREATE TABLE shapes (id int PRIMARY KEY, mood mood NOT NULL, moods mood[] NOT NULL,
                                  pair pair NOT NULL, labels varchar[])",
            |s| DatabaseSettings {
                statement_mode: StatementMode::Unnamed,
                ..s
            },
        )
        .await;
        let (message, found) = mismatches_of::<Shape>(db.check_schema::<Shape>().await);
        assert_eq!(
            found,
            [at("labels", Some("labels"), MismatchKind::Nullable)],
            "{message}"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Where the table is looked up.

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "ledger", schema = "app")]
struct Ledger {
    #[entity(primary_key)]
    id: i64,
    amount: i64,
}

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "ledger")]
struct Unqualified {
    #[entity(primary_key)]
    id: i64,
    amount: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_qualified_entity_is_checked_in_its_schema() {
    bounded(async {
        // A same-named table on the search path with another shape must not be the one checked.
        let (_tdb, db) = db_with(
            "CREATE SCHEMA app;
             CREATE TABLE app.ledger (id bigint PRIMARY KEY, amount bigint NOT NULL);
             CREATE TABLE public.ledger (id bigint PRIMARY KEY, amount text);",
            |s| s,
        )
        .await;
        db.check_schema::<Ledger>().await.unwrap();
        let (message, found) = mismatches_of::<Unqualified>(db.check_schema::<Unqualified>().await);
        assert_eq!(
            found,
            [
                at("amount", Some("amount"), wrong_type("text")),
                at("amount", Some("amount"), MismatchKind::Nullable),
            ],
            "{message}"
        );

        // The schema itself missing is a missing table, not a failed statement.
        let (message, found) =
            check::<Ledger>("CREATE TABLE ledger (id bigint PRIMARY KEY, amount bigint NOT NULL)")
                .await;
        assert_eq!(found, [(None, None, MismatchKind::MissingTable)]);
        assert_eq!(
            message,
            "table app.ledger does not match its entity: app.ledger: no such table"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_is_checked_but_not_for_null() {
    bounded(async {
        let (_tdb, db) = db_with(
            "CREATE TABLE entries (id bigint PRIMARY KEY, amount bigint NOT NULL);
             CREATE VIEW ledger AS SELECT id, amount FROM entries;",
            |s| s,
        )
        .await;
        // The catalog marks no view column NOT NULL, so a plain field is not reported.
        db.check_schema::<Unqualified>().await.unwrap();
        let (message, found) = check::<Unqualified>(
            "CREATE TABLE entries (id bigint PRIMARY KEY, amount text NOT NULL);
             CREATE VIEW ledger AS SELECT id, amount FROM entries;",
        )
        .await;
        assert_eq!(
            found,
            [at("amount", Some("amount"), wrong_type("text"))],
            "{message}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unqualified_entity_is_found_on_the_search_path() {
    bounded(async {
        let (_tdb, db) = db_with(
            "CREATE SCHEMA app;
             CREATE TABLE app.ledger (id bigint PRIMARY KEY, amount bigint NOT NULL);
             DO $$ BEGIN
                 EXECUTE format('ALTER DATABASE %I SET search_path = app, public',
                                current_database());
             END $$;",
            |s| s,
        )
        .await;
        db.check_schema::<Unqualified>().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_callback_check_fails_init_db() {
    bounded(async {
        let (_tdb, db) = db_with(
            "CREATE TABLE contacts (id bigint PRIMARY KEY, email text, score int)",
            |s| s,
        )
        .await;
        db.register_init_callback(|pool| async move { pool.check_schema::<Contact>().await })
            .await;
        let (message, found) = mismatches_of::<Contact>(db.init_db().await);
        assert_eq!(
            found,
            [at("email", Some("email"), MismatchKind::Nullable)],
            "{message}"
        );
        assert!(!db.is_pool_active(), "init_db left its pool open");
    })
    .await;
}
