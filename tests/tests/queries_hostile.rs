//! Hostile input to queries: quotes, wildcards, backslashes, NUL bytes and odd column names are
//! data, never SQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt;
use toolkit::{Cursor, Entity, Error, Filter, Repository};
use toolkit_tests::assert_clean;

mod query_common;
use query_common::*;

// ---------------------------------------------------------------------------------------------
// 8. Hostile input

const HOSTILE: [&str; 9] = [
    "it's",
    "say \"hi\"",
    "100%",
    "back\\slash",
    "'; DROP TABLE canary; --",
    "\"); DROP TABLE canary; --",
    "$1",
    "%_\\'\"",
    "\\'; SELECT pg_sleep(10); --",
];

/// `value` as a LIKE pattern matching itself literally.
fn like_literal(value: &str) -> String {
    let mut out = String::new();
    for ch in value.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_values_are_data_never_sql() {
    bounded(async {
        let (_tdb, db) = items_db().await;
        let repo = Repository::<Item>::new(&db);
        let c = Item::columns();
        for (i, value) in HOSTILE.iter().enumerate() {
            let grp = i32::try_from(i).unwrap();
            let created = repo
                .create(&item(value, Some(grp), Some(value)))
                .await
                .unwrap();
            assert_eq!(created.name, *value);
        }
        repo.create(&item("plain", None, None)).await.unwrap();
        for value in HOSTILE {
            let found = repo.find(c.name.eq(value)).all().await.unwrap();
            assert_eq!(found.len(), 1, "{value}");
            assert_eq!(found[0].note.as_deref(), Some(value));
            let liked = repo
                .find(c.note.like(like_literal(value)))
                .all()
                .await
                .unwrap();
            assert_eq!(liked.len(), 1, "{value}");
            assert_eq!(
                repo.find(c.name.ilike(like_literal(value)))
                    .count()
                    .await
                    .unwrap(),
                1
            );
            assert_eq!(repo.find(c.name.ne(value)).count().await.unwrap(), 9);
            let fetched = repo
                .query_as("SELECT * FROM items WHERE name = $1", &[&value])
                .await
                .unwrap();
            assert_eq!(fetched, found);
        }
        assert_eq!(repo.find(c.name.in_list(HOSTILE)).count().await.unwrap(), 9);
        // Pages ordered by the hostile text: the cursor carries it as a value.
        let seen = walk(|| repo.find(Filter::all()).order_by(c.name.desc()), 2).await;
        let mut names: Vec<&str> = HOSTILE.to_vec();
        names.push("plain");
        names.sort_unstable();
        names.reverse();
        assert_eq!(
            seen.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            names
        );
        let changed = repo
            .find(c.name.eq(HOSTILE[4]))
            .update(ItemPatch {
                note: Some(Some(HOSTILE[5].into())),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(changed, 1);
        assert_eq!(repo.find(c.note.eq(HOSTILE[5])).count().await.unwrap(), 2);
        assert_eq!(repo.find(c.name.eq(HOSTILE[5])).delete().await.unwrap(), 1);
        assert_eq!(repo.count().await.unwrap(), 9);
        assert!(canary_exists(&db).await, "a value became SQL");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_byte_in_text_is_a_clear_error() {
    bounded(async {
        let (_tdb, db) = items_db().await;
        let repo = Repository::<Item>::new(&db);
        let c = Item::columns();
        repo.create(&item("ok", Some(1), None)).await.unwrap();
        let nul = "a\0b";

        let mut errors = Vec::new();
        errors.push(("create", repo.create(&item(nul, None, None)).await.unwrap_err()));
        errors.push((
            "create (nullable column)",
            repo.create(&item("x", None, Some(nul))).await.unwrap_err(),
        ));
        errors.push((
            "insert_many",
            repo.insert_many(&[item("y", None, None), item(nul, None, None)])
                .await
                .unwrap_err(),
        ));
        errors.push((
            "create_bulk",
            repo.create_bulk(&[item(nul, None, None)]).await.unwrap_err(),
        ));
        errors.push((
            "upsert",
            repo.upsert(&Item {
                id: 77,
                ..item(nul, None, None)
            })
            .await
            .unwrap_err(),
        ));
        errors.push(("find eq", repo.find(c.name.eq(nul)).all().await.unwrap_err()));
        errors.push((
            "find like",
            repo.find(c.name.like(nul)).count().await.unwrap_err(),
        ));
        errors.push((
            "find in_list",
            repo.find(c.name.in_list(["ok", nul])).all().await.unwrap_err(),
        ));
        errors.push((
            "update patch",
            repo.find(Filter::all())
                .update(ItemPatch {
                    name: Some(nul.into()),
                    ..Default::default()
                })
                .await
                .unwrap_err(),
        ));
        for (what, err) in &errors {
            eprintln!("NUL byte, {what}: {err} | code {:?} | {err:?}", err.code());
            let named = matches!(err, Error::InvalidData { field, .. } if field == "name" || field == "note");
            let refused_by_server =
                err.code() == Some(&toolkit::SqlState::CHARACTER_NOT_IN_REPERTOIRE);
            assert!(
                named || refused_by_server,
                "{what}: not a clear error: {err:?}"
            );
        }
        assert_eq!(repo.count().await.unwrap(), 1, "nothing was written");
        assert_eq!(repo.find(c.name.eq("ok")).one().await.unwrap().grp, Some(1));
        assert_clean(&db).await;
    })
    .await;
}

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "odd \"table\" name")]
struct Odd {
    #[entity(primary_key, generated, column = "the \"id\"")]
    id: i64,
    #[entity(column = "label \"x\"; DROP TABLE canary; --")]
    label: String,
    #[entity(column = "rank \" ) OR 1=1 --")]
    rank: Option<i32>,
}

const ODD: &str = "CREATE TABLE \"odd \"\"table\"\" name\" (
    \"the \"\"id\"\"\" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    \"label \"\"x\"\"; DROP TABLE canary; --\" text NOT NULL,
    \"rank \"\" ) OR 1=1 --\" int
);
CREATE TABLE canary (x int);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_column_names_in_filters_orders_and_pages() {
    bounded(async {
        let (_tdb, db) = db_with(ODD, |s| s).await;
        let repo = Repository::<Odd>::new(&db);
        let c = Odd::columns();
        assert_eq!(c.label.name(), "label \"x\"; DROP TABLE canary; --");
        let rows: Vec<Odd> = (0..200)
            .map(|i| Odd {
                id: 0,
                label: format!(
                    "{} #{i}",
                    HOSTILE[usize::try_from(i).unwrap() % HOSTILE.len()]
                ),
                rank: (i % 7 != 0).then_some(i % 13),
            })
            .collect();
        let created = repo.create_bulk(&rows).await.unwrap();
        assert_eq!(created.len(), 200);
        let one = repo.create(&rows[0]).await.unwrap();
        assert_eq!(repo.get_by_id(one.id).await.unwrap(), one);

        assert_eq!(
            repo.find(c.label.eq(&created[5].label))
                .one()
                .await
                .unwrap(),
            created[5]
        );
        assert_eq!(
            repo.find(c.rank.is_null()).count().await.unwrap(),
            i64::try_from(created.iter().filter(|o| o.rank.is_none()).count()).unwrap() + 1
        );
        let high = repo
            .find(c.rank.gt(10).and(c.label.like("it\\'s%").not()))
            .order_by(c.rank.desc())
            .order_by(c.label.asc())
            .all()
            .await
            .unwrap();
        let mut want: Vec<Odd> = created
            .iter()
            .filter(|o| o.rank.is_some_and(|r| r > 10) && !o.label.starts_with("it's"))
            .cloned()
            .collect();
        want.sort_by(|a, b| b.rank.cmp(&a.rank).then_with(|| a.label.cmp(&b.label)));
        assert_eq!(high, want);
        assert_eq!(
            repo.find(c.id.in_list([created[0].id, created[1].id]))
                .count()
                .await
                .unwrap(),
            2
        );

        // Pages, each cursor through its string.
        let mut seen = Vec::new();
        let mut cursor: Option<Cursor> = None;
        for _ in 0..MAX_PAGES {
            let page = repo
                .find(c.rank.ne(3).or(c.rank.is_null()))
                .order_by(c.rank.desc())
                .order_by(c.label.asc())
                .page(cursor.as_ref(), 7)
                .await
                .unwrap();
            seen.extend(page.items);
            match page.next {
                Some(next) => cursor = Some(next.to_string().parse().unwrap()),
                None => break,
            }
        }
        let mut want: Vec<Odd> = repo
            .find(Filter::all())
            .all()
            .await
            .unwrap()
            .into_iter()
            .filter(|o| o.rank != Some(3))
            .collect();
        // rank DESC (NULLs first), label, key.
        want.sort_by(|a, b| {
            cmp_grp(a.rank, b.rank, true, true)
                .then_with(|| a.label.cmp(&b.label))
                .then(a.id.cmp(&b.id))
        });
        assert_eq!(seen, want);

        let streamed: Vec<Odd> = repo
            .find(c.rank.is_not_null())
            .order_by(c.rank.asc())
            .order_by(c.id.asc())
            .stream()
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(
            i64::try_from(streamed.len()).unwrap(),
            repo.find(c.rank.is_not_null()).count().await.unwrap()
        );

        let got = repo
            .get_many(&[created[3].id, created[1].id])
            .await
            .unwrap();
        assert_eq!(got, vec![created[3].clone(), created[1].clone()]);
        let all = repo
            .query_as("SELECT * FROM \"odd \"\"table\"\" name\"", &[])
            .await
            .unwrap();
        assert_eq!(all.len(), 201);
        let err = repo
            .query_as(
                "SELECT \"the \"\"id\"\"\" FROM \"odd \"\"table\"\" name\"",
                &[],
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidData { field, .. } if field == "label"),
            "the Rust field, not the column: {err:?}"
        );

        let changed = repo
            .find(c.rank.eq(12))
            .update(OddPatch {
                label: Some("twelve'\"".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            i64::try_from(changed).unwrap(),
            repo.find(c.label.eq("twelve'\"")).count().await.unwrap()
        );
        assert!(changed > 0);
        let upserted = repo
            .upsert(&Odd {
                label: "upserted".into(),
                ..created[0].clone()
            })
            .await
            .unwrap();
        assert_eq!(upserted.id, created[0].id);
        assert_eq!(
            repo.get_by_id(created[0].id).await.unwrap().label,
            "upserted"
        );
        let deleted = repo.find(c.rank.is_null()).delete().await.unwrap();
        assert!(deleted > 0);
        assert!(!repo.find(c.rank.is_null()).exists().await.unwrap());
        assert!(
            canary_exists(&db).await,
            "a column name or value became SQL"
        );
    })
    .await;
}
