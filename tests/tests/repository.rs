//! `#[derive(Entity)]` + `Repository<E>` against a real server (issue 4). Most tests take their
//! database from `#[toolkit::test]`, a copy of a template migrated once per run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use toolkit::{Database, DatabaseSettings, Entity, Error, Repository, SqlState};
use toolkit_tests::{fresh, fresh_db};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct Profile {
    bio: String,
    links: Vec<String>,
    settings: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "users")]
struct User {
    #[entity(primary_key, generated)]
    id: i64,
    name: String,
    #[entity(column = "email_address")]
    email: String,
    tags: Vec<String>,
    #[entity(json)]
    profile: Profile,
    age: Option<i32>,
    #[entity(generated)]
    created_at: DateTime<Utc>,
    #[entity(skip)]
    scratch: Vec<u8>,
}

/// The table of these tests: the migration the `#[toolkit::test]` ones get, run by hand for
/// the tests that need other settings.
const USERS: &str = include_str!("../migrations/users/0001_users.sql");

fn user(n: usize) -> User {
    User {
        id: 0,
        name: format!("user {n} ✓ Ünïcödé"),
        email: format!("u{n}@example.com"),
        tags: vec![format!("t{n}"), "common".into()],
        profile: Profile {
            bio: format!("bio {n}"),
            links: vec![],
            settings: BTreeMap::from([("n".into(), i64::try_from(n).unwrap())]),
        },
        age: if n.is_multiple_of(2) {
            Some(i32::try_from(n % 100).unwrap())
        } else {
            None
        },
        created_at: DateTime::<Utc>::MIN_UTC,
        scratch: vec![1, 2, 3],
    }
}

/// A database with [`USERS`], its settings adjusted first, e.g. to a pool of one connection.
async fn users_db_with(
    adjust: impl FnOnce(DatabaseSettings) -> DatabaseSettings,
) -> (toolkit::testing::TestDatabase, Database) {
    let (tdb, settings) = fresh().await;
    let db = Database::new(adjust(settings)).unwrap();
    db.connection()
        .await
        .unwrap()
        .batch_execute(USERS)
        .await
        .unwrap();
    (tdb, db)
}

#[toolkit::test(migrations = "migrations/users")]
async fn crud_round_trip(db: Database) {
    let repo = Repository::<User>::new(&db);
    assert_eq!(repo.count().await.unwrap(), 0);

    let created = repo.create(&user(1)).await.unwrap();
    assert!(created.id > 0);
    assert!(
        created.created_at > DateTime::<Utc>::MIN_UTC,
        "generated column comes back from RETURNING"
    );
    assert_eq!(created.name, user(1).name);
    assert_eq!(created.profile, user(1).profile);
    assert_eq!(created.age, None);
    assert!(
        created.scratch.is_empty(),
        "skip fields are Default on read"
    );

    let fetched = repo.get_by_id(created.id).await.unwrap();
    assert_eq!(fetched, created);
    let fetched = repo.get_by_id(&created.id).await.unwrap();
    assert_eq!(fetched, created);
    assert!(repo.exists(created.id).await.unwrap());
    assert!(!repo.exists(created.id + 1000).await.unwrap());
    assert_eq!(repo.get_all().await.unwrap(), vec![created.clone()]);

    let mut changed = created.clone();
    changed.name = "renamed".into();
    changed.tags = vec![];
    changed.age = Some(77);
    changed.created_at = DateTime::<Utc>::MIN_UTC; // generated: never written by save
    let saved = repo.save(&changed).await.unwrap();
    assert_eq!(saved.name, "renamed");
    assert!(saved.tags.is_empty());
    assert_eq!(saved.age, Some(77));
    assert_eq!(saved.created_at, created.created_at);

    repo.delete(created.id).await.unwrap();
    assert!(!repo.exists(created.id).await.unwrap());
    assert_eq!(repo.count().await.unwrap(), 0);
}

#[toolkit::test(migrations = "migrations/users")]
async fn missing_keys_are_record_not_found_naming_table_and_key(db: Database) {
    let repo = Repository::<User>::new(&db);
    for err in [
        repo.get_by_id(4242).await.unwrap_err(),
        repo.delete(4242).await.unwrap_err(),
        repo.update(
            4242,
            UserPatch {
                name: Some("x".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err(),
        repo.save(&User {
            id: 4242,
            ..user(1)
        })
        .await
        .unwrap_err(),
    ] {
        assert!(err.is_not_found(), "{err:?}");
        match &err {
            Error::RecordNotFound { table, key } => {
                assert_eq!(table, "users");
                assert_eq!(key, "4242");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[toolkit::test(migrations = "migrations/users")]
async fn patch_writes_only_given_columns(db: Database) {
    let repo = Repository::<User>::new(&db);
    let created = repo
        .create(&User {
            age: Some(30),
            ..user(2)
        })
        .await
        .unwrap();

    let updated = repo
        .update(
            created.id,
            UserPatch {
                name: Some("Bob".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.name, "Bob");
    assert_eq!(updated.email, created.email);
    assert_eq!(updated.age, Some(30));
    assert_eq!(updated.profile, created.profile);

    // Some(None) writes NULL into a nullable column.
    let updated = repo
        .update(
            &created.id,
            UserPatch {
                age: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.age, None);
    assert_eq!(updated.name, "Bob");

    let profile = Profile {
        bio: "new".into(),
        ..Profile::default()
    };
    let updated = repo
        .update(
            created.id,
            UserPatch {
                profile: Some(profile.clone()),
                tags: Some(vec![]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.profile, profile);
    assert!(updated.tags.is_empty());

    let err = repo
        .update(created.id, UserPatch::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidData { field, .. } if field == "patch"),
        "{err:?}"
    );
}

#[toolkit::test(migrations = "migrations/users")]
async fn bulk_of_zero_one_and_a_hundred_thousand_rows_in_order(db: Database) {
    let repo = Repository::<User>::new(&db);
    assert!(repo.create_bulk(&[]).await.unwrap().is_empty());

    let one = repo.create_bulk(&[user(0)]).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].email, "u0@example.com");

    let many: Vec<User> = (1..=100_000).map(user).collect();
    let stored = repo.create_bulk(&many).await.unwrap();
    assert_eq!(stored.len(), many.len());
    for (input, output) in many.iter().zip(&stored) {
        assert_eq!(input.email, output.email, "rows come back in input order");
        assert_eq!(input.profile, output.profile);
        assert_eq!(input.age, output.age);
    }
    assert!(stored.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(repo.count().await.unwrap(), 100_001);

    // A mid-size batch takes the VALUES route.
    let mid: Vec<User> = (200_000..200_100).map(user).collect();
    let stored = repo.create_bulk(&mid).await.unwrap();
    assert_eq!(
        stored.iter().map(|u| &u.email).collect::<Vec<_>>(),
        mid.iter().map(|u| &u.email).collect::<Vec<_>>()
    );
}

#[toolkit::test(migrations = "migrations/users")]
async fn failed_bulk_inserts_nothing(db: Database) {
    let repo = Repository::<User>::new(&db);
    // VALUES, COPY through one table, and COPY through several pipelined inserts of which
    // only the last fails.
    for size in [10usize, 5_000, 30_000] {
        let mut rows: Vec<User> = (0..size).map(user).collect();
        rows[size - 1].email = rows[0].email.clone(); // unique violation in the last row
        let err = repo.create_bulk(&rows).await.unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION), "{err}");
        assert_eq!(err.constraint(), Some("users_email_address_key"));
        assert_eq!(repo.count().await.unwrap(), 0, "size {size}");
    }
}

/// Temporary tables of this session left by `create_bulk`.
const LEFTOVER_TABLES: &str = "SELECT count(*) FROM pg_class \
     WHERE relpersistence = 't' AND relname LIKE 'toolkit_bulk_%' \
     AND pg_table_is_visible(oid)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bulk_leaves_no_tables_and_no_open_transaction() {
    let (tdb, db) = users_db_with(|settings| DatabaseSettings {
        max_pool_size: 1,
        min_pool_size: 1,
        ..settings
    })
    .await;
    let repo = Repository::<User>::new(&db);
    let rows: Vec<User> = (0..25_000).map(user).collect();
    let stored = repo.create_bulk(&rows).await.unwrap();
    assert_eq!(
        stored.iter().map(|u| &u.email).collect::<Vec<_>>(),
        rows.iter().map(|u| &u.email).collect::<Vec<_>>()
    );

    // The pool's only connection: committed, its tables dropped with the commit.
    let conn = db.connection().await.unwrap();
    let row = conn
        .query_one(
            &format!("SELECT ({LEFTOVER_TABLES}), txid_current_if_assigned() IS NULL"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 0, "temporary tables left behind");
    assert!(
        row.get::<_, bool>(1),
        "the bulk's transaction is still open"
    );
    drop(conn);
    let other_session = tdb.connect().await.unwrap();
    let count = other_session
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap();
    assert_eq!(count.get::<_, i64>(0), 25_000, "committed for everyone");

    // Inside a caller's transaction: the caller's to commit, the tables dropped at once.
    let tx = db.transaction().await.unwrap();
    let in_tx = Repository::<User>::new(&tx);
    let more: Vec<User> = (25_000..50_000).map(user).collect();
    assert_eq!(in_tx.create_bulk(&more).await.unwrap().len(), 25_000);
    let left = tx
        .client()
        .await
        .unwrap()
        .query_one(LEFTOVER_TABLES, &[])
        .await
        .unwrap();
    assert_eq!(left.get::<_, i64>(0), 0);
    assert_eq!(in_tx.count().await.unwrap(), 50_000);
    tx.rollback().await.unwrap();
    assert_eq!(repo.count().await.unwrap(), 25_000);
}

#[toolkit::test(migrations = "migrations/users")]
async fn repository_over_a_transaction_sees_its_own_writes(db: Database) {
    let tx = db.transaction().await.unwrap();
    let in_tx = Repository::<User>::new(&tx);
    let created = in_tx.create(&user(5)).await.unwrap();
    let bulk = in_tx
        .create_bulk(&(10..1_000).map(user).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(bulk.len(), 990);
    assert_eq!(in_tx.get_by_id(created.id).await.unwrap(), created);
    assert_eq!(in_tx.count().await.unwrap(), 991);
    assert_eq!(
        Repository::<User>::new(&db).count().await.unwrap(),
        0,
        "uncommitted writes are invisible outside"
    );
    tx.rollback().await.unwrap();
    assert_eq!(Repository::<User>::new(&db).count().await.unwrap(), 0);

    let tx = db.transaction().await.unwrap();
    Repository::<User>::new(&tx).create(&user(6)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(Repository::<User>::new(&db).count().await.unwrap(), 1);
}

#[toolkit::test(migrations = "migrations/users")]
async fn repository_over_a_connection_and_a_client(db: Database) {
    let conn = db.connection().await.unwrap();
    let repo = Repository::<User>::new(&conn);
    let created = repo.create(&user(1)).await.unwrap();
    assert_eq!(repo.get_by_id(created.id).await.unwrap(), created);
    drop(conn);

    let client = db.settings().connect().await.unwrap();
    let repo = Repository::<User>::new(&client);
    assert_eq!(repo.get_by_id(created.id).await.unwrap(), created);
    let bulk = repo
        .create_bulk(&(100..2_000).map(user).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(bulk.len(), 1_900);
}

#[toolkit::test(migrations = "migrations/users")]
async fn typed_json_that_does_not_fit_is_invalid_data_naming_field_and_table(db: Database) {
    let repo = Repository::<User>::new(&db);
    let created = repo.create(&user(1)).await.unwrap();
    db.connection()
        .await
        .unwrap()
        .execute(
            "UPDATE users SET profile = '{\"bio\": 5}' WHERE id = $1",
            &[&created.id],
        )
        .await
        .unwrap();
    let err = repo.get_by_id(created.id).await.unwrap_err();
    match &err {
        Error::InvalidData { table, field, .. } => {
            assert_eq!(table, "users");
            assert_eq!(field, "profile");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("users.profile"), "{err}");
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
#[entity(table = "everything", schema = "app")]
struct Everything {
    #[entity(primary_key)]
    code: String,
    flag: bool,
    small: i16,
    int: i32,
    big: i64,
    real: f32,
    double: f64,
    bytes: Vec<u8>,
    maybe_text: Option<String>,
    ints: Vec<i32>,
    day: NaiveDate,
    clock: NaiveTime,
    at: DateTime<Utc>,
    uid: Uuid,
    amount: Decimal,
    doc: serde_json::Value,
    #[entity(json)]
    typed: Option<Profile>,
    mood: Mood,
    moods: Vec<Mood>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_type_round_trips_in_a_non_public_schema() {
    let (_tdb, db) = fresh_db().await;
    db.connection()
        .await
        .unwrap()
        .batch_execute(
            "CREATE SCHEMA app;
             CREATE TYPE mood AS ENUM ('happy', 'sad');
             CREATE TABLE app.everything (
                code text PRIMARY KEY, flag bool NOT NULL, small int2 NOT NULL, int int4 NOT NULL,
                big int8 NOT NULL, real float4 NOT NULL, double float8 NOT NULL, bytes bytea NOT NULL,
                maybe_text text, ints int4[] NOT NULL, day date NOT NULL, clock time NOT NULL,
                at timestamptz NOT NULL, uid uuid NOT NULL, amount numeric NOT NULL, doc jsonb NOT NULL,
                typed json, mood mood NOT NULL, moods mood[] NOT NULL)",
        )
        .await
        .unwrap();
    let repo = Repository::<Everything>::new(&db);
    let big_doc = serde_json::json!({ "items": (0..5_000).map(|i| serde_json::json!({"i": i, "s": "ünï ✓"})).collect::<Vec<_>>() });
    let full = Everything {
        code: "ключ-1 \"quoted\"".into(),
        flag: true,
        small: i16::MIN,
        int: i32::MAX,
        big: i64::MIN,
        real: 1.5,
        double: -2.25e300,
        bytes: vec![0, 255, 1],
        maybe_text: Some("日本語".into()),
        ints: vec![1, -2, 3],
        day: NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
        clock: NaiveTime::from_hms_micro_opt(23, 59, 58, 123_456).unwrap(),
        at: DateTime::parse_from_rfc3339("2024-01-02T03:04:05.678901Z")
            .unwrap()
            .with_timezone(&Utc),
        uid: Uuid::new_v4(),
        amount: "12345678901234567890.123456789".parse().unwrap(),
        doc: big_doc,
        typed: Some(Profile {
            bio: "typed".into(),
            links: vec!["a".into()],
            settings: BTreeMap::new(),
        }),
        mood: Mood::Sad,
        moods: vec![Mood::Happy, Mood::Sad],
    };
    let empty = Everything {
        code: "empty".into(),
        bytes: vec![],
        maybe_text: None,
        ints: vec![],
        typed: None,
        moods: vec![],
        doc: serde_json::Value::Null,
        ..full.clone()
    };
    assert_eq!(repo.create(&full).await.unwrap(), full);
    assert_eq!(repo.create(&empty).await.unwrap(), empty);
    assert_eq!(
        repo.get_by_id("ключ-1 \"quoted\"".to_string())
            .await
            .unwrap(),
        full
    );
    assert_eq!(repo.get_by_id(&empty.code).await.unwrap(), empty);
    let typed_null: Option<String> = db
        .connection()
        .await
        .unwrap()
        .query_one(
            "SELECT typed::text FROM app.everything WHERE code = 'empty'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        typed_null, None,
        "None in a json field is SQL NULL, not JSON null"
    );
    // Bulk goes through binary COPY for these types too.
    let many: Vec<Everything> = (0..600)
        .map(|i| Everything {
            code: format!("k{i}"),
            doc: serde_json::json!({ "i": i }),
            ..full.clone()
        })
        .collect();
    assert_eq!(repo.create_bulk(&many).await.unwrap(), many);
}

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "documents")]
struct Document {
    #[entity(primary_key, generated)]
    id: Uuid,
    title: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uuid_key_generated_by_the_database() {
    let (_tdb, db) = fresh_db().await;
    db.connection()
        .await
        .unwrap()
        .batch_execute("CREATE TABLE documents (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), title text NOT NULL)")
        .await
        .unwrap();
    let repo = Repository::<Document>::new(&db);
    let a = repo
        .create(&Document {
            id: Uuid::nil(),
            title: "a".into(),
        })
        .await
        .unwrap();
    assert_ne!(a.id, Uuid::nil());
    let b = repo
        .create_bulk(&[Document {
            id: Uuid::nil(),
            title: "b".into(),
        }])
        .await
        .unwrap();
    assert_ne!(b[0].id, a.id);
    assert_eq!(repo.get_by_id(a.id).await.unwrap().title, "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_are_cached_per_connection_bounded_and_survive_alter_table() {
    let (tdb, db) = users_db_with(|settings| DatabaseSettings {
        max_pool_size: 1,
        min_pool_size: 1,
        statement_cache_size: 3,
        ..settings
    })
    .await;
    let repo = Repository::<User>::new(&db);
    let created = repo.create(&user(1)).await.unwrap();
    let before = db.connection().await.unwrap().cached_statements();
    for _ in 0..20 {
        repo.get_by_id(created.id).await.unwrap();
    }
    let conn = db.connection().await.unwrap();
    assert_eq!(
        conn.cached_statements(),
        before + 1,
        "one statement prepared for twenty calls"
    );
    let prepared: i64 = conn
        .query_one("SELECT count(*) FROM pg_prepared_statements", &[])
        .await
        .unwrap()
        .get(0);
    drop(conn);
    assert!(
        prepared <= 4,
        "{prepared} server-side statements for a cache of 3"
    );

    repo.count().await.unwrap();
    repo.exists(1).await.unwrap();
    repo.get_all().await.unwrap();
    assert_eq!(
        db.connection().await.unwrap().cached_statements(),
        3,
        "bounded by statement_cache_size"
    );

    // A cached statement whose result type changed ("cached plan must not change result
    // type") is prepared again and run once more.
    repo.get_by_id(created.id).await.unwrap();
    let witness = tdb.connect().await.unwrap();
    let before = witness
        .prepare("SELECT id, name FROM users WHERE id = $1")
        .await
        .unwrap();
    db.connection()
        .await
        .unwrap()
        .batch_execute("ALTER TABLE users ALTER COLUMN name TYPE varchar(200)")
        .await
        .unwrap();
    let err = witness.query(&before, &[&created.id]).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::FEATURE_NOT_SUPPORTED),
        "the scenario is real: {err}"
    );
    assert_eq!(repo.get_by_id(created.id).await.unwrap().id, created.id);
}

#[toolkit::test(migrations = "migrations/users")]
async fn insert_many_copies_all_or_nothing(db: Database) {
    let repo = Repository::<User>::new(&db);
    assert_eq!(repo.insert_many(&[]).await.unwrap(), 0);
    let rows: Vec<User> = (0..3_000).map(user).collect();
    assert_eq!(repo.insert_many(&rows).await.unwrap(), 3_000);
    assert_eq!(repo.count().await.unwrap(), 3_000);
    let stored = repo.get_all().await.unwrap();
    let last = stored
        .iter()
        .find(|u| u.email == rows[2_999].email)
        .expect("last row stored");
    assert_eq!(last.profile, rows[2_999].profile);
    assert_eq!(last.tags, rows[2_999].tags);

    let mut bad: Vec<User> = (10_000..12_000).map(user).collect();
    bad[1_999].email = bad[0].email.clone();
    let err = repo.insert_many(&bad).await.unwrap_err();
    assert_eq!(err.constraint(), Some("users_email_address_key"), "{err}");
    assert_eq!(
        repo.count().await.unwrap(),
        3_000,
        "a failed COPY inserts nothing"
    );
}
