//! `#[entity(version)]` optimistic locking and `#[entity(soft_delete)]` against a real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use toolkit::{Database, Entity, Error, Filter, Repository};
use toolkit_tests::fresh_db;

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "docs")]
struct Doc {
    #[entity(primary_key, generated)]
    id: i64,
    title: String,
    #[entity(version)]
    version: i32,
    #[entity(soft_delete)]
    deleted_at: Option<DateTime<Utc>>,
}

const DOCS: &str = "CREATE TABLE docs (
    id bigserial PRIMARY KEY,
    title text NOT NULL,
    version int NOT NULL,
    deleted_at timestamptz
)";

const TEST_DEADLINE: Duration = Duration::from_secs(30);

async fn setup() -> (toolkit::testing::TestDatabase, Database) {
    let (tdb, db) = fresh_db().await;
    db.connection()
        .await
        .unwrap()
        .batch_execute(DOCS)
        .await
        .unwrap();
    (tdb, db)
}

fn doc(title: &str) -> Doc {
    Doc {
        id: 0,
        title: title.into(),
        version: 0,
        deleted_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_checks_and_bumps_the_version() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = setup().await;
        let repo = Repository::<Doc>::new(&db);
        let read = repo.create(&doc("first")).await.unwrap();
        assert_eq!(read.version, 0);

        let saved = repo
            .save(&Doc {
                title: "by A".into(),
                ..read.clone()
            })
            .await
            .unwrap();
        assert_eq!((saved.title.as_str(), saved.version), ("by A", 1));

        // B read the same version 0: its save is a conflict and changes nothing.
        let err = repo
            .save(&Doc {
                title: "by B".into(),
                ..read.clone()
            })
            .await
            .unwrap_err();
        assert!(err.is_conflict(), "{err:?}");
        assert!(matches!(&err, Error::Conflict { table, .. } if table == "docs"));
        let stored = repo.get_by_id(read.id).await.unwrap();
        assert_eq!((stored.title.as_str(), stored.version), ("by A", 1));

        // A missing row is not a conflict.
        let err = repo
            .save(&Doc {
                id: 999_999,
                ..read
            })
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_bumps_and_checks_the_version_the_patch_names() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = setup().await;
        let repo = Repository::<Doc>::new(&db);
        let read = repo.create(&doc("first")).await.unwrap();
        // Without a version in the patch: no check, still bumped.
        let updated = repo
            .update(
                read.id,
                DocPatch {
                    title: Some("x".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(updated.version, 1);
        // With the version read earlier: stale.
        let err = repo
            .update(
                read.id,
                DocPatch {
                    title: Some("y".into()),
                    version: Some(0),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(err.is_conflict(), "{err:?}");
        assert_eq!(repo.get_by_id(read.id).await.unwrap().title, "x");
        // With the current one: written and bumped.
        let updated = repo
            .update(
                read.id,
                DocPatch {
                    title: Some("z".into()),
                    version: Some(1),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!((updated.title.as_str(), updated.version), ("z", 2));
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_tasks_saving_the_same_version_exactly_one_wins() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = setup().await;
        let repo = Repository::<Doc>::new(&db);
        for round in 0..20 {
            let read = repo.create(&doc(&format!("round {round}"))).await.unwrap();
            let barrier = Arc::new(tokio::sync::Barrier::new(2));
            let tasks: Vec<_> = ["A", "B"]
                .into_iter()
                .map(|who| {
                    let (db, barrier, read) = (db.clone(), barrier.clone(), read.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        Repository::<Doc>::new(&db)
                            .save(&Doc {
                                title: who.into(),
                                ..read
                            })
                            .await
                    })
                })
                .collect();
            let mut wins = Vec::new();
            for task in tasks {
                match task.await.unwrap() {
                    Ok(saved) => wins.push(saved.title),
                    Err(err) => assert!(err.is_conflict(), "{err:?}"),
                }
            }
            assert_eq!(wins.len(), 1, "round {round}: {wins:?}");
            let stored = repo.get_by_id(read.id).await.unwrap();
            assert_eq!((stored.title.clone(), stored.version), (wins[0].clone(), 1));
        }
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_deleted_rows_are_skipped_by_every_read_until_restored() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = setup().await;
        let repo = Repository::<Doc>::new(&db);
        let kept = repo.create(&doc("kept")).await.unwrap();
        let gone = repo.create(&doc("gone")).await.unwrap();
        repo.delete(gone.id).await.unwrap();
        let c = Doc::columns();

        let raw = db.connection().await.unwrap();
        let stamped: Option<DateTime<Utc>> = raw
            .query_one("SELECT deleted_at FROM docs WHERE id = $1", &[&gone.id])
            .await
            .unwrap()
            .get(0);
        assert!(stamped.is_some(), "the row stays, stamped");
        drop(raw);

        assert!(repo.get_by_id(gone.id).await.unwrap_err().is_not_found());
        assert!(!repo.exists(gone.id).await.unwrap());
        assert_eq!(repo.count().await.unwrap(), 1);
        assert_eq!(repo.get_all().await.unwrap(), vec![kept.clone()]);
        assert_eq!(
            repo.get_many(&[gone.id, kept.id]).await.unwrap(),
            vec![kept.clone()]
        );
        assert_eq!(
            repo.find(Filter::all()).all().await.unwrap(),
            vec![kept.clone()]
        );
        assert_eq!(repo.find(c.title.eq("gone")).count().await.unwrap(), 0);
        assert!(!repo.find(c.title.eq("gone")).exists().await.unwrap());
        let page = repo.find(Filter::all()).page(None, 10).await.unwrap();
        assert_eq!(page.items, vec![kept.clone()]);
        let streamed: Vec<Doc> = repo
            .find(Filter::all())
            .stream()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(streamed, vec![kept.clone()]);
        // Writes by key do not see it either; deleting twice is not found.
        let patch = DocPatch {
            title: Some("zombie".into()),
            ..Default::default()
        };
        assert!(repo
            .update(gone.id, patch)
            .await
            .unwrap_err()
            .is_not_found());
        assert!(repo.delete(gone.id).await.unwrap_err().is_not_found());
        let patch = DocPatch {
            title: Some("zombie".into()),
            ..Default::default()
        };
        assert_eq!(
            repo.find(c.title.eq("gone")).update(patch).await.unwrap(),
            0
        );

        // Asked for, it is there.
        let all = repo
            .find(Filter::all())
            .with_deleted()
            .count()
            .await
            .unwrap();
        assert_eq!(all, 2);
        let found = repo
            .find(c.title.eq("gone"))
            .with_deleted()
            .one()
            .await
            .unwrap();
        assert!(found.deleted_at.is_some());

        repo.restore(gone.id).await.unwrap();
        assert_eq!(repo.get_by_id(gone.id).await.unwrap().title, "gone");
        assert_eq!(repo.count().await.unwrap(), 2);

        // A query's delete is soft too; purge really deletes.
        assert_eq!(repo.find(c.title.eq("gone")).delete().await.unwrap(), 1);
        assert_eq!(repo.count().await.unwrap(), 1);
        repo.purge(gone.id).await.unwrap();
        assert_eq!(
            repo.find(Filter::all())
                .with_deleted()
                .count()
                .await
                .unwrap(),
            1
        );
        assert!(repo.purge(gone.id).await.unwrap_err().is_not_found());
    })
    .await
    .expect("test deadline");
}

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "plain")]
struct Plain {
    id: i64,
    name: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_without_soft_delete_is_invalid_data_and_nul_in_text_names_the_field() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = fresh_db().await;
        db.connection()
            .await
            .unwrap()
            .batch_execute("CREATE TABLE plain (id bigint PRIMARY KEY, name text NOT NULL)")
            .await
            .unwrap();
        let repo = Repository::<Plain>::new(&db);
        assert!(matches!(
            repo.restore(1).await,
            Err(Error::InvalidData { .. })
        ));
        let err = repo
            .create(&Plain {
                id: 1,
                name: "a\0b".into(),
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidData { field, .. } if field == "name"),
            "{err:?}"
        );
        assert_eq!(repo.count().await.unwrap(), 0);
        let err = repo
            .find(Plain::columns().name.eq("a\0b"))
            .all()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidData { field, .. } if field == "name"),
            "{err:?}"
        );
    })
    .await
    .expect("test deadline");
}
