//! Streams, `get_many`, `upsert`, `upsert_on` and `query_as` against a real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use toolkit::{DatabaseSettings, Entity, Error, Filter, Repository};
use toolkit_tests::assert_clean;

mod query_common;
use query_common::*;

// ---------------------------------------------------------------------------------------------
// 4. Streams

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_yields_every_row_in_order() {
    bounded(async {
        let (_tdb, db) = items_db().await;
        let repo = Repository::<Item>::new(&db);
        many_items(&repo, 10_000).await;
        let c = Item::columns();
        let expected = repo
            .find(Filter::all())
            .order_by(c.grp.desc())
            .order_by(c.id.asc())
            .all()
            .await
            .unwrap();
        assert_eq!(expected.len(), 10_000);

        let mut stream = std::pin::pin!(repo
            .find(Filter::all())
            .order_by(c.grp.desc())
            .order_by(c.id.asc())
            .stream());
        let mut seen = Vec::with_capacity(10_000);
        while let Some(row) = stream.next().await {
            seen.push(row.unwrap());
            assert!(seen.len() <= 10_000, "more rows than stored");
        }
        assert_eq!(seen, expected);

        // With a filter and a window.
        let filtered: Vec<Item> = repo
            .find(c.grp.eq(5))
            .order_by(c.id.asc())
            .offset(3)
            .limit(50)
            .stream()
            .map(Result::unwrap)
            .collect()
            .await;
        let want: Vec<Item> = expected
            .iter()
            .filter(|i| i.grp == Some(5))
            .skip(3)
            .take(50)
            .cloned()
            .collect::<Vec<_>>();
        let mut want = want;
        want.sort_by_key(|i| i.id);
        assert_eq!(filtered, want);
        let empty: Vec<_> = repo.find(c.grp.eq(-1)).stream().collect().await;
        assert!(empty.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stream_early_leaves_the_pool_usable() {
    bounded(async {
        let (_tdb, db) = db_with(ITEMS, |s| DatabaseSettings {
            max_pool_size: 1,
            min_pool_size: 1,
            ..s
        })
        .await;
        let repo = Repository::<Item>::new(&db);
        many_items(&repo, 10_000).await;
        let c = Item::columns();
        for round in 0..5 {
            {
                let mut stream =
                    std::pin::pin!(repo.find(Filter::all()).order_by(c.id.asc()).stream());
                for _ in 0..3 {
                    stream.next().await.unwrap().unwrap();
                }
            } // dropped with 9,997 rows unread
            let count =
                tokio::time::timeout(Duration::from_secs(10), repo.find(Filter::all()).count())
                    .await
                    .unwrap_or_else(|_| {
                        panic!("round {round}: the pool is stuck after a dropped stream")
                    })
                    .unwrap();
            assert_eq!(count, 10_000, "round {round}");
        }
        // A stream never polled, dropped.
        drop(repo.find(Filter::all()).stream());
        assert_clean(&db).await;
        let all: Vec<_> = repo.find(Filter::all()).stream().collect().await;
        assert_eq!(all.len(), 10_000);
        assert!(all.iter().all(Result::is_ok));
        assert_eq!(repo.find(c.grp.eq(3)).one().await.unwrap().grp, Some(3));
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 5. get_many

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_in_the_order_asked() {
    bounded(async {
        let (_tdb, db) = items_db().await;
        let repo = Repository::<Item>::new(&db);
        five(&repo).await;
        let all = repo.find(Filter::all()).all().await.unwrap();
        let id = |name: &str| all.iter().find(|i| i.name == name).unwrap().id;

        assert!(repo.get_many(&[]).await.unwrap().is_empty());
        let got = repo
            .get_many(&[id("c"), id("a"), id("e"), id("b")])
            .await
            .unwrap();
        assert_eq!(
            got.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            ["c", "a", "e", "b"]
        );
        assert_eq!(got[0], repo.get_by_id(id("c")).await.unwrap());
        let got = repo
            .get_many(&[-1, id("d"), 9_999_999, id("a"), 0])
            .await
            .unwrap();
        assert_eq!(
            got.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            ["d", "a"],
            "missing keys are absent"
        );
        assert!(repo.get_many(&[-5, -6]).await.unwrap().is_empty());
        let got = repo.get_many(&[id("b"), id("b")]).await.unwrap();
        assert_eq!(got.len(), 1, "a key asked twice comes back once");
        // Many keys in one statement.
        let mut ids: Vec<i64> = all.iter().map(|i| i.id).collect();
        ids.extend(1_000..11_000);
        ids.reverse();
        let got = repo.get_many(&ids).await.unwrap();
        assert_eq!(
            got.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            ["e", "d", "c", "b", "a"]
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 6. upsert

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "settings")]
struct Setting {
    #[entity(primary_key)]
    key: String,
    value: i32,
}

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "accounts")]
struct Account {
    #[entity(primary_key, generated)]
    id: i64,
    email: String,
    name: String,
}

const UPSERT_TABLES: &str = "
CREATE TABLE settings (key text PRIMARY KEY, value int NOT NULL);
CREATE TABLE accounts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text NOT NULL
);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_race_on_one_key() {
    bounded(async {
        let (_tdb, db) = db_with(UPSERT_TABLES, |s| DatabaseSettings {
            max_pool_size: 16,
            ..s
        })
        .await;
        let barrier = Arc::new(tokio::sync::Barrier::new(32));
        let tasks: Vec<_> = (0..32)
            .map(|value| {
                let (db, barrier) = (db.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    Repository::<Setting>::new(&db)
                        .upsert(&Setting {
                            key: "shared".into(),
                            value,
                        })
                        .await
                })
            })
            .collect();
        for (value, task) in (0..32).zip(tasks) {
            let stored = task.await.unwrap().unwrap();
            assert_eq!(
                stored,
                Setting {
                    key: "shared".into(),
                    value
                },
                "upsert returns the row it wrote"
            );
        }
        let repo = Repository::<Setting>::new(&db);
        assert_eq!(repo.count().await.unwrap(), 1);
        let row = repo.get_by_id("shared".to_string()).await.unwrap();
        assert!((0..32).contains(&row.value), "{row:?}");

        // A new key is inserted; an existing one overwritten.
        let other = Setting {
            key: "other".into(),
            value: -1,
        };
        assert_eq!(repo.upsert(&other).await.unwrap(), other);
        let other = Setting { value: -2, ..other };
        assert_eq!(repo.upsert(&other).await.unwrap(), other);
        assert_eq!(repo.count().await.unwrap(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_on_a_unique_email() {
    bounded(async {
        let (_tdb, db) = db_with(UPSERT_TABLES, |s| s).await;
        let repo = Repository::<Account>::new(&db);
        let c = Account::columns();
        let account = |email: &str, name: &str| Account {
            id: 0,
            email: email.into(),
            name: name.into(),
        };
        let first = repo
            .upsert_on(&account("a@example.com", "first"), [c.email.name()])
            .await
            .unwrap();
        assert!(first.id > 0);
        assert_eq!(first.name, "first");
        let second = repo
            .upsert_on(&account("a@example.com", "second"), [c.email.name()])
            .await
            .unwrap();
        assert_eq!(second.id, first.id, "the same row");
        assert_eq!(second.name, "second");
        let other = repo
            .upsert_on(&account("b@example.com", "b"), [c.email.name()])
            .await
            .unwrap();
        assert_ne!(other.id, first.id);
        assert_eq!(repo.count().await.unwrap(), 2);
        assert_eq!(
            repo.find(c.email.eq("a@example.com"))
                .one()
                .await
                .unwrap()
                .name,
            "second"
        );

        // Concurrently on one email.
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    Repository::<Account>::new(&db)
                        .upsert_on(
                            &Account {
                                id: 0,
                                email: "race@example.com".into(),
                                name: format!("racer {i}"),
                            },
                            [Account::columns().email.name()],
                        )
                        .await
                })
            })
            .collect();
        let mut ids = HashSet::new();
        for task in tasks {
            ids.insert(task.await.unwrap().unwrap().id);
        }
        assert_eq!(ids.len(), 1, "one row for one email");
        assert_eq!(
            repo.find(c.email.eq("race@example.com"))
                .count()
                .await
                .unwrap(),
            1
        );

        let err = repo
            .upsert_on(&account("c@example.com", "c"), ["no_such_column"])
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidData { .. }), "{err:?}");
        let err = repo
            .upsert_on(&account("c@example.com", "c"), [])
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidData { .. }), "{err:?}");
        // A column without a unique index is the server's error, not a panic.
        let err = repo
            .upsert_on(&account("c@example.com", "c"), [c.name.name()])
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(&toolkit::SqlState::INVALID_COLUMN_REFERENCE),
            "{err:?}"
        );
        assert_eq!(repo.count().await.unwrap(), 3);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 7. query_as

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_as_maps_columns_by_name() {
    bounded(async {
        let (_tdb, db) = items_db().await;
        let repo = Repository::<Item>::new(&db);
        five(&repo).await;
        let expected = repo
            .find(Filter::all())
            .order_by(Item::columns().id.asc())
            .all()
            .await
            .unwrap();

        let reordered = repo
            .query_as("SELECT note, grp, name, id FROM items ORDER BY id", &[])
            .await
            .unwrap();
        assert_eq!(reordered, expected);
        let extra = repo
            .query_as(
                "SELECT 1 AS first, *, 'x' AS nme, now() AS at FROM items ORDER BY id",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(extra, expected);
        let param = repo
            .query_as(
                "SELECT id, name, grp, note FROM items WHERE grp > $1 ORDER BY id",
                &[&1_i32],
            )
            .await
            .unwrap();
        assert_eq!(
            param.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            ["b", "c"]
        );

        let err = repo
            .query_as("SELECT id, name, grp FROM items", &[])
            .await
            .unwrap_err();
        match &err {
            Error::InvalidData { table, field, .. } => {
                assert_eq!(table, "items");
                assert_eq!(field, "note");
            }
            other => panic!("{other:?}"),
        }
        // Renamed away: missing too, even with rows to map.
        let err = repo
            .query_as("SELECT id AS key, name, grp, note FROM items", &[])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidData { field, .. } if field == "id"),
            "{err:?}"
        );
        // A column of the wrong type names the field too (or at least is a clear error).
        let err = repo
            .query_as("SELECT id, name, grp::text AS grp, note FROM items", &[])
            .await
            .unwrap_err();
        eprintln!("query_as with a text `grp`: {err:?}");
        assert!(
            matches!(&err, Error::InvalidData { field, .. } if field == "grp"),
            "{err:?}"
        );
    })
    .await;
}
