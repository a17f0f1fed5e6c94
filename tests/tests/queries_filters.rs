//! Queries against a real server: every operator with NULL semantics, combinations, ordering,
//! windows and the terminal methods of `find`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use toolkit::{Error, Filter, Repository};

mod query_common;
use query_common::*;

// ---------------------------------------------------------------------------------------------
// 1. Operators

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::needless_borrows_for_generic_args)] // references are among the accepted values
async fn comparisons_and_null_semantics() {
    bounded(async {
        let (_tdb, db) = items_db().await;
        let repo = Repository::<Item>::new(&db);
        five(&repo).await;
        let c = Item::columns();

        assert_eq!(names(repo.find(c.grp.eq(2))).await, strs(&["b"]));
        assert_eq!(names(repo.find(c.grp.eq(&2))).await, strs(&["b"]));
        assert_eq!(
            names(repo.find(c.grp.ne(2))).await,
            strs(&["a", "c"]),
            "a NULL column matches no <>"
        );
        assert_eq!(names(repo.find(c.grp.lt(2))).await, strs(&["a"]));
        assert_eq!(names(repo.find(c.grp.le(2))).await, strs(&["a", "b"]));
        assert_eq!(names(repo.find(c.grp.gt(2))).await, strs(&["c"]));
        assert_eq!(names(repo.find(c.grp.ge(2))).await, strs(&["b", "c"]));
        assert_eq!(names(repo.find(c.name.eq("c"))).await, strs(&["c"]));
        assert_eq!(
            names(repo.find(c.name.eq(String::from("d")))).await,
            strs(&["d"])
        );
        let owned = String::from("e");
        assert_eq!(names(repo.find(c.name.eq(&owned))).await, strs(&["e"]));
        assert_eq!(names(repo.find(c.name.gt("c"))).await, strs(&["d", "e"]));

        // NULL semantics on a nullable text column.
        assert_eq!(names(repo.find(c.note.eq("x"))).await, strs(&["a", "e"]));
        assert_eq!(
            names(repo.find(c.note.ne("x"))).await,
            strs(&["c"]),
            "NULL notes match neither = nor <>"
        );
        assert_eq!(names(repo.find(c.grp.is_null())).await, strs(&["d", "e"]));
        assert_eq!(
            names(repo.find(c.grp.is_not_null())).await,
            strs(&["a", "b", "c"])
        );
        assert_eq!(names(repo.find(c.note.is_null())).await, strs(&["b", "d"]));

        // NOT of a comparison with NULL stays unknown: the NULL rows match neither.
        assert_eq!(names(repo.find(c.grp.eq(2).not())).await, strs(&["a", "c"]));
        assert_eq!(names(repo.find(c.grp.ne(2).not())).await, strs(&["b"]));
        assert_eq!(names(repo.find(c.note.eq("x").not())).await, strs(&["c"]));
        assert_eq!(names(repo.find(c.grp.gt(1).not())).await, strs(&["a"]));
        assert_eq!(
            names(repo.find(c.grp.is_null().not())).await,
            strs(&["a", "b", "c"])
        );
        assert_eq!(
            names(repo.find(c.grp.is_not_null().not())).await,
            strs(&["d", "e"])
        );
        assert_eq!(
            names(repo.find(c.grp.eq(2).not().not())).await,
            strs(&["b"])
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::needless_borrows_for_generic_args)] // references are among the accepted values
async fn in_list_of_zero_a_few_and_ten_thousand_values() {
    bounded(async {
        let (_tdb, db) = items_db().await;
        let repo = Repository::<Item>::new(&db);
        five(&repo).await;
        let c = Item::columns();

        assert_eq!(
            names(repo.find(c.grp.in_list(Vec::<i32>::new()))).await,
            Vec::<String>::new(),
            "an empty list matches nothing"
        );
        assert_eq!(
            repo.find(c.grp.in_list(Vec::<i32>::new()))
                .count()
                .await
                .unwrap(),
            0
        );
        assert!(!repo
            .find(c.name.in_list(Vec::<String>::new()))
            .exists()
            .await
            .unwrap());
        // `x = ANY('{}')` is false even for a NULL x, so its negation holds for every row.
        assert_eq!(
            names(repo.find(c.grp.in_list(Vec::<i32>::new()).not())).await,
            strs(&["a", "b", "c", "d", "e"])
        );
        assert_eq!(
            names(repo.find(c.grp.in_list([1, 3, 99]))).await,
            strs(&["a", "c"])
        );
        assert_eq!(
            names(repo.find(c.grp.in_list(&[2]))).await,
            strs(&["b"]),
            "references"
        );
        assert_eq!(
            names(repo.find(c.name.in_list(["a", "e", "zz"]))).await,
            strs(&["a", "e"]),
            "&str values for a text column"
        );
        assert_eq!(
            names(repo.find(c.note.in_list(["x"]))).await,
            strs(&["a", "e"])
        );
        assert_eq!(
            names(repo.find(c.grp.in_list([1, 2]).not())).await,
            strs(&["c"]),
            "NOT IN leaves out the NULL rows"
        );

        // 10,000 values in one array parameter.
        let rows: Vec<Item> = (0..20_000)
            .map(|i| item(&format!("bulk {i}"), Some(i), None))
            .collect();
        assert_eq!(repo.insert_many(&rows).await.unwrap(), 20_000);
        let ids: Vec<i64> = repo
            .find(c.name.like("bulk %"))
            .order_by(c.id.asc())
            .all()
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids.len(), 20_000);
        let every_other: Vec<i64> = ids.iter().copied().step_by(2).collect();
        assert_eq!(every_other.len(), 10_000);
        let found = repo
            .find(c.id.in_list(every_other.clone()))
            .order_by(c.id.asc())
            .all()
            .await
            .unwrap();
        assert_eq!(found.iter().map(|i| i.id).collect::<Vec<_>>(), every_other);
        // Half of the values match no row.
        let half: Vec<i64> = every_other[..5_000]
            .iter()
            .copied()
            .chain((1..=5_000).map(|i| -i))
            .collect();
        assert_eq!(half.len(), 10_000);
        assert_eq!(repo.find(c.id.in_list(&half)).count().await.unwrap(), 5_000);
        let groups: Vec<i32> = (0..10_000).map(|i| i * 2).collect();
        assert_eq!(
            repo.find(c.grp.in_list(groups).and(c.name.like("bulk %")))
                .count()
                .await
                .unwrap(),
            10_000
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn like_and_ilike_wildcards_and_escapes() {
    bounded(async {
        let (_tdb, db) = items_db().await;
        let repo = Repository::<Item>::new(&db);
        for name in ["abc", "aXc", "a%c", "a_c", "ABC", "a\\c", "abbc"] {
            repo.create(&item(name, None, Some(name))).await.unwrap();
        }
        let c = Item::columns();
        let all_but_upper = strs(&["abc", "aXc", "a%c", "a_c", "a\\c", "abbc"]);

        assert_eq!(
            names(repo.find(c.name.like("a_c"))).await,
            strs(&["abc", "aXc", "a%c", "a_c", "a\\c"]),
            "_ matches exactly one character"
        );
        assert_eq!(
            names(repo.find(c.name.like("a%c"))).await,
            all_but_upper,
            "% matches any run"
        );
        assert_eq!(names(repo.find(c.name.like("a%"))).await, all_but_upper);
        assert_eq!(
            names(repo.find(c.name.like("a\\%c"))).await,
            strs(&["a%c"]),
            "\\% is a literal %"
        );
        assert_eq!(names(repo.find(c.name.like("%\\%%"))).await, strs(&["a%c"]));
        assert_eq!(
            names(repo.find(c.name.like("a\\_c"))).await,
            strs(&["a_c"]),
            "\\_ is a literal _"
        );
        assert_eq!(
            names(repo.find(c.name.like("a\\\\c"))).await,
            strs(&["a\\c"]),
            "\\\\ is a literal backslash"
        );
        assert_eq!(names(repo.find(c.name.like("abc"))).await, strs(&["abc"]));
        assert_eq!(names(repo.find(c.name.like("ABC"))).await, strs(&["ABC"]));
        assert_eq!(
            names(repo.find(c.name.ilike("a_c"))).await,
            strs(&["abc", "aXc", "a%c", "a_c", "ABC", "a\\c"])
        );
        assert_eq!(
            names(repo.find(c.name.ilike("%B%"))).await,
            strs(&["abc", "ABC", "abbc"])
        );
        assert_eq!(
            names(repo.find(c.name.ilike("A\\%C"))).await,
            strs(&["a%c"])
        );
        assert_eq!(
            names(repo.find(c.name.like("a%").not())).await,
            strs(&["ABC"])
        );
        // On a nullable text column.
        assert_eq!(names(repo.find(c.note.like("%\\_%"))).await, strs(&["a_c"]));
        let pattern = String::from("%X%");
        assert_eq!(
            names(repo.find(c.note.ilike(&pattern))).await,
            strs(&["aXc"])
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 2. Combinations, ordering, windows and the terminal methods

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn and_or_not_and_filter_all() {
    bounded(async {
        let (_tdb, db) = items_db().await;
        let repo = Repository::<Item>::new(&db);
        five(&repo).await;
        let c = Item::columns();

        assert_eq!(
            names(repo.find(Filter::all())).await,
            strs(&["a", "b", "c", "d", "e"])
        );
        assert_eq!(repo.find(Filter::all()).count().await.unwrap(), 5);
        assert_eq!(
            names(repo.find(Filter::all().not())).await,
            Vec::<String>::new(),
            "NOT TRUE"
        );
        assert_eq!(
            names(repo.find(Filter::all().and(c.grp.eq(1)))).await,
            strs(&["a"])
        );
        assert_eq!(
            names(repo.find(c.grp.ge(2).and(c.note.is_not_null()))).await,
            strs(&["c"])
        );
        assert_eq!(
            names(repo.find(c.grp.eq(1).or(c.grp.eq(3)))).await,
            strs(&["a", "c"])
        );
        assert_eq!(
            names(repo.find(c.grp.eq(1).or(c.grp.eq(3)).and(c.note.eq("y")))).await,
            strs(&["c"]),
            "(a OR b) AND c keeps its grouping"
        );
        assert_eq!(
            names(repo.find(c.grp.eq(1).or(c.grp.eq(3).and(c.note.eq("y"))))).await,
            strs(&["a", "c"]),
            "a OR (b AND c) keeps its grouping"
        );
        assert_eq!(
            names(repo.find(c.grp.eq(1).or(c.grp.is_null()).not())).await,
            strs(&["b", "c"])
        );
        assert_eq!(
            names(repo.find(c.grp.eq(1).and(c.note.eq("x")).not())).await,
            strs(&["b", "c"]),
            "NOT (a AND b): NULL AND true, and NULL AND NULL, stay unknown under NOT"
        );
        assert_eq!(
            names(repo.find(c.note.eq("x").and(c.grp.is_null()).or(c.name.eq("b")))).await,
            strs(&["b", "e"])
        );
        assert_eq!(
            names(
                repo.find(
                    c.name
                        .eq("a")
                        .or(c.name.eq("b"))
                        .or(c.name.eq("c"))
                        .and(c.name.ne("b").and(c.grp.lt(3)))
                )
            )
            .await,
            strs(&["a"])
        );
        // Values bind in the order of their placeholders, across nesting.
        assert_eq!(
            names(
                repo.find(
                    c.name
                        .in_list(["a", "b", "c", "d"])
                        .and(c.grp.gt(1).or(c.note.like("y%")).not())
                )
            )
            .await,
            strs(&["a"]),
            "d: NOT (NULL OR NULL) is unknown"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordering_with_nulls() {
    bounded(async {
        let (_tdb, db) = items_db().await;
        let repo = Repository::<Item>::new(&db);
        for (name, grp) in [
            ("p", Some(2)),
            ("q", None),
            ("r", Some(1)),
            ("s", None),
            ("t", Some(3)),
            ("u", Some(2)),
        ] {
            repo.create(&item(name, grp, None)).await.unwrap();
        }
        let c = Item::columns();
        let all = || repo.find(Filter::all());

        assert_eq!(
            names(all().order_by(c.grp.asc())).await,
            strs(&["r", "p", "u", "t", "q", "s"]),
            "asc: NULLs last by default"
        );
        assert_eq!(
            names(all().order_by(c.grp.desc())).await,
            strs(&["q", "s", "t", "p", "u", "r"]),
            "desc: NULLs first by default"
        );
        assert_eq!(
            names(all().order_by(c.grp.asc().nulls_first())).await,
            strs(&["q", "s", "r", "p", "u", "t"])
        );
        assert_eq!(
            names(all().order_by(c.grp.desc().nulls_last())).await,
            strs(&["t", "p", "u", "r", "q", "s"])
        );
        assert_eq!(
            names(all().order_by(c.grp.asc().nulls_last())).await,
            strs(&["r", "p", "u", "t", "q", "s"])
        );
        assert_eq!(
            names(all().order_by(c.grp.desc().nulls_first())).await,
            strs(&["q", "s", "t", "p", "u", "r"])
        );
        // Several columns, each with its own direction.
        let two = all()
            .order_by(c.grp.asc().nulls_first())
            .order_by(c.name.desc())
            .all()
            .await
            .unwrap();
        assert_eq!(
            two.into_iter().map(|i| i.name).collect::<Vec<_>>(),
            strs(&["s", "q", "r", "u", "p", "t"])
        );
        let by_name = all().order_by(c.name.desc()).all().await.unwrap();
        assert_eq!(
            by_name.into_iter().map(|i| i.name).collect::<Vec<_>>(),
            strs(&["u", "t", "s", "r", "q", "p"])
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_offset_count_and_exists() {
    bounded(async {
        let (_tdb, db) = items_db().await;
        let repo = Repository::<Item>::new(&db);
        for i in 0..10 {
            repo.create(&item(&format!("n{i}"), Some(i % 3), None))
                .await
                .unwrap();
        }
        let c = Item::columns();
        let page = |limit: Option<u64>, offset: Option<u64>| {
            let mut find = repo.find(Filter::all()).order_by(c.name.asc());
            if let Some(n) = limit {
                find = find.limit(n);
            }
            if let Some(n) = offset {
                find = find.offset(n);
            }
            find
        };
        let got = |items: Vec<Item>| items.into_iter().map(|i| i.name).collect::<Vec<_>>();
        assert_eq!(
            got(page(Some(3), None).all().await.unwrap()),
            strs(&["n0", "n1", "n2"])
        );
        assert_eq!(
            got(page(Some(3), Some(4)).all().await.unwrap()),
            strs(&["n4", "n5", "n6"])
        );
        assert_eq!(
            got(page(None, Some(8)).all().await.unwrap()),
            strs(&["n8", "n9"])
        );
        assert_eq!(got(page(Some(0), None).all().await.unwrap()), strs(&[]));
        assert_eq!(
            got(page(Some(5), Some(100)).all().await.unwrap()),
            strs(&[])
        );
        assert_eq!(got(page(Some(100), None).all().await.unwrap()).len(), 10);

        assert_eq!(repo.find(Filter::all()).count().await.unwrap(), 10);
        assert_eq!(repo.find(c.grp.eq(0)).count().await.unwrap(), 4);
        assert_eq!(repo.find(c.grp.eq(7)).count().await.unwrap(), 0);
        assert_eq!(
            page(Some(3), None).count().await.unwrap(),
            3,
            "count honours limit"
        );
        assert_eq!(
            page(None, Some(7)).count().await.unwrap(),
            3,
            "count honours offset"
        );
        assert_eq!(page(Some(5), Some(8)).count().await.unwrap(), 2);

        assert!(repo.find(c.grp.eq(2)).exists().await.unwrap());
        assert!(!repo.find(c.grp.eq(3)).exists().await.unwrap());
        assert!(!repo.find(c.grp.is_null()).exists().await.unwrap());
        assert!(repo.find(Filter::all()).exists().await.unwrap());
        assert!(!page(None, Some(10)).exists().await.unwrap());
        assert!(page(None, Some(9)).exists().await.unwrap());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_update_return_counts() {
    bounded(async {
        let (_tdb, db) = items_db().await;
        let repo = Repository::<Item>::new(&db);
        for i in 0..20 {
            let grp = if i % 5 == 0 { None } else { Some(i % 4) };
            repo.create(&item(&format!("n{i:02}"), grp, None))
                .await
                .unwrap();
        }
        let c = Item::columns();
        let with_one = repo.find(c.grp.eq(1)).count().await.unwrap();
        assert!(with_one > 0);

        let changed = repo
            .find(c.grp.eq(1))
            .update(ItemPatch {
                note: Some(Some("one".into())),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(i64::try_from(changed).unwrap(), with_one);
        assert_eq!(repo.find(c.note.eq("one")).count().await.unwrap(), with_one);
        assert_eq!(
            repo.find(c.note.eq("one").and(c.grp.ne(1)))
                .count()
                .await
                .unwrap(),
            0,
            "only the matching rows changed"
        );

        // Two columns at once, one of them set to NULL.
        let changed = repo
            .find(c.note.eq("one"))
            .update(ItemPatch {
                grp: Some(None),
                name: Some("renamed".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(i64::try_from(changed).unwrap(), with_one);
        let renamed = repo.find(c.name.eq("renamed")).all().await.unwrap();
        assert_eq!(i64::try_from(renamed.len()).unwrap(), with_one);
        assert!(renamed
            .iter()
            .all(|i| i.grp.is_none() && i.note.as_deref() == Some("one")));

        assert_eq!(
            repo.find(c.name.eq("nobody"))
                .update(ItemPatch {
                    note: Some(None),
                    ..Default::default()
                })
                .await
                .unwrap(),
            0
        );
        let everyone = repo
            .find(Filter::all())
            .update(ItemPatch {
                note: Some(Some("all".into())),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(everyone, 20);
        assert_eq!(repo.find(c.note.eq("all")).count().await.unwrap(), 20);

        let err = repo
            .find(Filter::all())
            .update(ItemPatch::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidData { .. }), "{err:?}");
        let err = repo
            .find(Filter::all())
            .order_by(c.id.asc())
            .delete()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidData { .. }), "{err:?}");
        let err = repo
            .find(Filter::all())
            .limit(1)
            .update(ItemPatch {
                note: Some(None),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidData { .. }), "{err:?}");
        assert_eq!(repo.count().await.unwrap(), 20, "refused calls ran nothing");

        let nulls = repo.find(c.grp.is_null()).count().await.unwrap();
        let deleted = repo.find(c.grp.is_null()).delete().await.unwrap();
        assert_eq!(i64::try_from(deleted).unwrap(), nulls);
        assert_eq!(repo.count().await.unwrap(), 20 - nulls);
        assert!(!repo.find(c.grp.is_null()).exists().await.unwrap());
        assert_eq!(repo.find(c.grp.eq(99)).delete().await.unwrap(), 0);
        assert_eq!(
            repo.find(Filter::all()).delete().await.unwrap(),
            u64::try_from(20 - nulls).unwrap()
        );
        assert_eq!(repo.count().await.unwrap(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_and_optional() {
    bounded(async {
        let (_tdb, db) = items_db().await;
        let repo = Repository::<Item>::new(&db);
        five(&repo).await;
        let c = Item::columns();

        let err = repo.find(c.grp.eq(42)).one().await.unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
        assert!(
            matches!(&err, Error::RecordNotFound { table, .. } if table == "items"),
            "{err:?}"
        );
        assert_eq!(repo.find(c.grp.eq(42)).optional().await.unwrap(), None);
        assert_eq!(repo.find(c.grp.eq(2)).one().await.unwrap().name, "b");
        assert_eq!(
            repo.find(c.grp.eq(2))
                .optional()
                .await
                .unwrap()
                .unwrap()
                .name,
            "b"
        );
        // Several matches: the first in the query's order.
        assert_eq!(
            repo.find(Filter::all())
                .order_by(c.name.desc())
                .one()
                .await
                .unwrap()
                .name,
            "e"
        );
        assert_eq!(
            repo.find(c.grp.is_null())
                .order_by(c.name.asc())
                .optional()
                .await
                .unwrap()
                .unwrap()
                .name,
            "d"
        );
        assert_eq!(
            repo.find(Filter::all())
                .order_by(c.name.asc())
                .offset(2)
                .one()
                .await
                .unwrap()
                .name,
            "c"
        );
        assert!(repo
            .find(Filter::all())
            .offset(5)
            .one()
            .await
            .unwrap_err()
            .is_not_found());
        assert_eq!(
            repo.find(Filter::all()).limit(0).optional().await.unwrap(),
            None,
            "limit 0 matches nothing"
        );
    })
    .await;
}
