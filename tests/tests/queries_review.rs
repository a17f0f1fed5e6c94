//! Cases a review of the query code found: pages ordered by `varchar` columns (whose
//! placeholders are `text`), two orderings whose statements once shared a cache entry, `upsert`
//! and `upsert_on` of the key in one process, and bulk updates that bump the version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use toolkit::{Database, Entity, Filter, Repository};
use toolkit_tests::fresh_db;

const TEST_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "codes")]
struct Code {
    #[entity(primary_key)]
    code: String,
    label: String,
    rank: Option<i32>,
    extra: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "counters")]
struct Counter {
    #[entity(primary_key, generated)]
    id: i64,
    name: String,
    #[entity(version)]
    version: i32,
}

async fn setup() -> (toolkit::testing::TestDatabase, Database) {
    let (tdb, db) = fresh_db().await;
    db.connection()
        .await
        .unwrap()
        .batch_execute(
            "CREATE TABLE codes (code varchar(20) PRIMARY KEY, label varchar(40) NOT NULL, \
                 rank int, extra text);
             CREATE TABLE counters (id bigserial PRIMARY KEY, name text NOT NULL, version int NOT NULL)",
        )
        .await
        .unwrap();
    (tdb, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_by_varchar_columns_walk_every_row() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = setup().await;
        let repo = Repository::<Code>::new(&db);
        let rows: Vec<Code> = (0..250)
            .map(|n| Code {
                code: format!("c{n:04}"),
                label: format!("label {}", n % 7),
                rank: (n % 5 != 0).then_some(n % 3),
                extra: None,
            })
            .collect();
        repo.create_bulk(&rows).await.unwrap();
        let c = Code::columns();
        // By the varchar key alone, then by a varchar column and the key.
        for by_label in [false, true] {
            let mut seen = Vec::new();
            let mut cursor = None;
            for _ in 0..100 {
                let find = repo.find(Filter::all());
                let find = if by_label {
                    find.order_by(c.label.desc())
                } else {
                    find
                };
                let page = find.page(cursor.as_ref(), 40).await.unwrap();
                seen.extend(page.items.into_iter().map(|r| r.code));
                cursor = page.next;
                if cursor.is_none() {
                    break;
                }
            }
            let mut sorted = seen.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(
                (seen.len(), sorted.len()),
                (250, 250),
                "by_label {by_label}"
            );
        }
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orderings_of_different_lengths_do_not_share_a_statement() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = setup().await;
        let repo = Repository::<Code>::new(&db);
        let rows: Vec<Code> = (0..30)
            .map(|n| Code {
                code: format!("k{n:03}"),
                label: format!("l{}", n % 4),
                rank: None,
                extra: (n % 2 == 0).then(|| format!("x{n}")),
            })
            .collect();
        repo.create_bulk(&rows).await.unwrap();
        let c = Code::columns();
        // Four items, no cursor ...
        let four = repo
            .find(Filter::all())
            .order_by(c.rank.asc())
            .order_by(c.label.asc())
            .order_by(c.code.asc())
            .order_by(c.extra.desc())
            .page(None, 10)
            .await
            .unwrap();
        assert_eq!(four.items.len(), 10);
        // ... then two items with a cursor whose first value is NULL: once the same cache key.
        let first = repo
            .find(Filter::all())
            .order_by(c.rank.asc())
            .order_by(c.label.asc())
            .page(None, 10)
            .await
            .unwrap();
        let second = repo
            .find(Filter::all())
            .order_by(c.rank.asc())
            .order_by(c.label.asc())
            .page(first.next.as_ref(), 10)
            .await
            .unwrap();
        assert_eq!(second.items.len(), 10);
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_by_key_and_upsert_on_the_key_column_both_work() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = setup().await;
        let repo = Repository::<Counter>::new(&db);
        let created = repo
            .create(&Counter {
                id: 0,
                name: "a".into(),
                version: 0,
            })
            .await
            .unwrap();
        let by_key = repo
            .upsert(&Counter {
                name: "b".into(),
                ..created.clone()
            })
            .await
            .unwrap();
        assert_eq!(by_key.name, "b");
        let c = Counter::columns();
        let by_column = repo
            .upsert_on(
                &Counter {
                    name: "c".into(),
                    ..created.clone()
                },
                [c.id.name()],
            )
            .await
            .unwrap();
        assert_eq!(by_column.name, "c");
        assert_eq!(
            repo.count().await.unwrap(),
            2,
            "upsert_on(id) inserts: the key is generated"
        );
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_update_bumps_the_version_so_a_stale_save_conflicts() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_tdb, db) = setup().await;
        let repo = Repository::<Counter>::new(&db);
        let read = repo
            .create(&Counter {
                id: 0,
                name: "n".into(),
                version: 0,
            })
            .await
            .unwrap();
        let c = Counter::columns();
        let patch = CounterPatch {
            name: Some("bulk".into()),
            ..Default::default()
        };
        assert_eq!(repo.find(c.id.eq(read.id)).update(patch).await.unwrap(), 1);
        assert_eq!(repo.get_by_id(read.id).await.unwrap().version, 1);
        let err = repo
            .save(&Counter {
                name: "stale".into(),
                ..read
            })
            .await
            .unwrap_err();
        assert!(err.is_conflict(), "{err:?}");
    })
    .await
    .expect("test deadline");
}
