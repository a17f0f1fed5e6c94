//! Keyset pages against a real server: every row once and in order, under concurrent inserts,
//! and cursors that were truncated, edited or made for another ordering.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use toolkit::{Cursor, Error, Filter, Find, Repository};
use toolkit_tests::assert_clean;

mod query_common;
use query_common::*;

// ---------------------------------------------------------------------------------------------
// 3. Keyset pages

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_visit_every_row_once_in_order() {
    bounded(async {
        let (_tdb, db) = items_db().await;
        let repo = Repository::<Item>::new(&db);
        let stored = many_items(&repo, 10_007).await;
        assert_eq!(stored.len(), 10_007);
        let c = Item::columns();

        for (order, desc, nulls_first) in [
            (c.grp.asc(), false, false),
            (c.grp.desc(), true, true),
            (c.grp.asc().nulls_first(), false, true),
            (c.grp.desc().nulls_last(), true, false),
        ] {
            let seen = walk(|| repo.find(Filter::all()).order_by(order), 100).await;
            let mut expected = stored.clone();
            expected.sort_by(|a, b| cmp_item(a, b, desc, nulls_first));
            assert_eq!(seen.len(), 10_007, "{order:?}");
            assert_eq!(
                seen.iter().map(|i| i.id).collect::<Vec<_>>(),
                expected.iter().map(|i| i.id).collect::<Vec<_>>(),
                "every row exactly once, in order, for {order:?}"
            );
            assert_eq!(seen, expected);
        }

        // With a filter, and the key given explicitly (descending).
        let seen = walk(
            || {
                repo.find(c.grp.ge(30).or(c.grp.is_null()))
                    .order_by(c.grp.asc())
                    .order_by(c.id.desc())
            },
            100,
        )
        .await;
        let mut expected: Vec<Item> = stored
            .iter()
            .filter(|i| i.grp.is_none_or(|g| g >= 30))
            .cloned()
            .collect();
        expected.sort_by(|a, b| cmp_grp(a.grp, b.grp, false, false).then(b.id.cmp(&a.id)));
        assert_eq!(
            seen.iter().map(|i| i.id).collect::<Vec<_>>(),
            expected.iter().map(|i| i.id).collect::<Vec<_>>()
        );

        // A page as large as the rest ends the walk; an empty result is one empty page.
        let page = repo.find(Filter::all()).page(None, 20_000).await.unwrap();
        assert_eq!(page.items.len(), 10_007);
        assert_eq!(page.next, None);
        let page = repo.find(c.grp.eq(-1)).page(None, 10).await.unwrap();
        assert!(page.items.is_empty());
        assert_eq!(page.next, None);
        let err = repo
            .find(Filter::all())
            .limit(5)
            .page(None, 10)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidData { .. }), "{err:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_with_concurrent_inserts_skip_and_repeat_nothing() {
    bounded(async {
        let (_tdb, db) = items_db().await;
        let repo = Repository::<Item>::new(&db);
        let stored = many_items(&repo, 10_007).await;
        let at_start: HashSet<i64> = stored.iter().map(|i| i.id).collect();
        let c = Item::columns();

        let done = Arc::new(AtomicBool::new(false));
        let inserted = Arc::new(AtomicUsize::new(0));
        let writer = tokio::spawn({
            let (db, done, inserted) = (db.clone(), done.clone(), inserted.clone());
            async move {
                let repo = Repository::<Item>::new(&db);
                let started = Instant::now();
                // At most 300 batches of 10, and at most 60 s.
                for batch in 0..300 {
                    if done.load(AtomicOrdering::Relaxed)
                        || started.elapsed() > Duration::from_secs(60)
                    {
                        break;
                    }
                    let rows: Vec<Item> = (0..10)
                        .map(|k| {
                            let i = batch * 10 + k;
                            item(&format!("new {i}"), grp_of(i * 7 + 3), None)
                        })
                        .collect();
                    repo.insert_many(&rows).await.unwrap();
                    inserted.fetch_add(10, AtomicOrdering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        });

        let seen = walk(
            || repo.find(Filter::all()).order_by(c.grp.asc().nulls_first()),
            100,
        )
        .await;
        done.store(true, AtomicOrdering::Relaxed);
        writer.await.unwrap();
        let inserted = inserted.load(AtomicOrdering::Relaxed);
        assert!(inserted > 0, "the writer inserted nothing during the walk");

        let mut counts: HashMap<i64, usize> = HashMap::new();
        for i in &seen {
            *counts.entry(i.id).or_default() += 1;
        }
        let repeated: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
        assert!(repeated.is_empty(), "rows seen twice: {repeated:?}");
        let skipped: Vec<_> = at_start
            .iter()
            .filter(|id| !counts.contains_key(id))
            .collect();
        assert!(
            skipped.is_empty(),
            "{} rows present at the start were skipped",
            skipped.len()
        );
        assert!(
            seen.windows(2)
                .all(|w| cmp_item(&w[0], &w[1], false, true) == Ordering::Less),
            "pages are in order"
        );
        eprintln!(
            "concurrent walk: {} rows seen, {} inserted meanwhile",
            seen.len(),
            inserted
        );
    })
    .await;
}

/// A few rows and a cursor of `order_by(grp.asc()).order_by(name.asc())` after a row whose
/// `grp` is not NULL: three values (int4, text, int8).
async fn cursor_fixture(repo: &Repository<'_, Item>) -> Cursor {
    for i in 0..50 {
        repo.create(&item(&format!("name {i}"), Some(i % 5), None))
            .await
            .unwrap();
    }
    let c = Item::columns();
    let page = repo
        .find(Filter::all())
        .order_by(c.grp.asc())
        .order_by(c.name.asc())
        .page(None, 10)
        .await
        .unwrap();
    page.next.unwrap()
}

fn fixture_find<'e>(repo: &Repository<'e, Item>) -> Find<'e, Item> {
    let c = Item::columns();
    repo.find(Filter::all())
        .order_by(c.grp.asc())
        .order_by(c.name.asc())
}

/// What became of one tampered cursor string.
#[derive(Debug)]
enum Outcome {
    /// `InvalidData` (from parsing or from `page`).
    Refused,
    /// `page` ran and returned rows.
    Accepted(usize),
    /// Any other error: the tampered bytes reached the server, or worse.
    Other(#[allow(dead_code)] String), // read through `Debug`, in failure messages
}

async fn try_cursor(repo: &Repository<'_, Item>, text: &str) -> Outcome {
    let cursor = match text.parse::<Cursor>() {
        Ok(cursor) => cursor,
        Err(Error::InvalidData { .. }) => return Outcome::Refused,
        Err(other) => return Outcome::Other(format!("parse: {other:?}")),
    };
    match fixture_find(repo).page(Some(&cursor), 10).await {
        Ok(page) => Outcome::Accepted(page.items.len()),
        Err(Error::InvalidData { .. }) => Outcome::Refused,
        Err(other) => Outcome::Other(format!("{other} (SQLSTATE {:?})", other.code())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_or_garbage_cursor_is_invalid_data() {
    bounded(async {
        let (_tdb, db) = items_db().await;
        let repo = Repository::<Item>::new(&db);
        let cursor = cursor_fixture(&repo).await;
        let text = cursor.to_string();
        assert!(matches!(
            try_cursor(&repo, &text).await,
            Outcome::Accepted(10)
        ));

        let mut bad: Vec<String> = (0..text.len()).map(|n| text[..n].to_owned()).collect();
        bad.extend([
            String::new(),
            "zz".into(),
            "not a cursor".into(),
            "ünïcödé".into(),
            "0".into(),
            "01".into(),
            "02".into(),
            format!("{text}00"),
            format!("{text}0"),
            format!("ff{}", &text[2..]),
            text.to_uppercase().replace('0', "G"),
            "00".repeat(100_000),
            "ff".repeat(64),
            format!("{text}{text}"),
            "'; DROP TABLE canary; --".into(),
        ]);
        let mut wrong = Vec::new();
        for candidate in &bad {
            match try_cursor(&repo, candidate).await {
                Outcome::Refused => {}
                other => wrong.push((candidate.chars().take(80).collect::<String>(), other)),
            }
        }
        assert!(wrong.is_empty(), "not refused as InvalidData: {wrong:#?}");
        assert!(canary_exists(&db).await);
        assert_clean(&db).await;
    })
    .await;
}

/// Every hex digit after the cursor's column list flipped in turn (`d ^ 8`): the outcomes.
async fn flipped_digit_outcomes(repo: &Repository<'_, Item>) -> Vec<(usize, Outcome)> {
    let text = cursor_fixture(repo).await.to_string();
    // Version (1 byte), column count (4) and three columns (12): 17 bytes before the values.
    let values_start = 2 * 17;
    let mut outcomes = Vec::new();
    for at in values_start..text.len() {
        let digit = u8::from_str_radix(&text[at..=at], 16).unwrap() ^ 0x8;
        let mut tampered = text.clone();
        tampered.replace_range(at..=at, &format!("{digit:x}"));
        outcomes.push((at, try_cursor(repo, &tampered).await));
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_with_a_flipped_digit_never_reaches_sql() {
    bounded(async {
        let (_tdb, db) = items_db().await;
        let repo = Repository::<Item>::new(&db);
        let outcomes = flipped_digit_outcomes(&repo).await;
        let other: Vec<_> = outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Other(_)))
            .collect();
        assert!(
            other.is_empty(),
            "{} of {} flipped digits gave an error other than InvalidData: {other:#?}",
            other.len(),
            outcomes.len()
        );
        assert_clean(&db).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_with_a_flipped_digit_is_invalid_data() {
    bounded(async {
        let (_tdb, db) = items_db().await;
        let repo = Repository::<Item>::new(&db);
        let outcomes = flipped_digit_outcomes(&repo).await;
        let not_refused: Vec<_> = outcomes
            .iter()
            .filter(|(_, o)| !matches!(o, Outcome::Refused))
            .collect();
        assert!(
            not_refused.is_empty(),
            "{} of {} flipped digits were not refused as InvalidData \
             (hex offset, outcome): {not_refused:?}",
            not_refused.len(),
            outcomes.len()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_from_another_ordering_is_invalid_data() {
    bounded(async {
        let (_tdb, db) = items_db().await;
        let repo = Repository::<Item>::new(&db);
        many_items(&repo, 300).await;
        let c = Item::columns();
        let cursor = repo
            .find(Filter::all())
            .order_by(c.grp.asc())
            .page(None, 10)
            .await
            .unwrap()
            .next
            .unwrap();
        // The same ordering takes it.
        let same = repo
            .find(Filter::all())
            .order_by(c.grp.asc())
            .page(Some(&cursor), 10)
            .await
            .unwrap();
        assert_eq!(same.items.len(), 10);

        let others: Vec<(&str, Find<'_, Item>)> = vec![
            ("by key only", repo.find(Filter::all())),
            ("by name", repo.find(Filter::all()).order_by(c.name.asc())),
            (
                "by grp then name",
                repo.find(Filter::all())
                    .order_by(c.grp.asc())
                    .order_by(c.name.asc()),
            ),
            (
                "by note (same type as nothing)",
                repo.find(Filter::all()).order_by(c.note.asc()),
            ),
            (
                "by grp descending",
                repo.find(Filter::all()).order_by(c.grp.desc()),
            ),
            (
                "by grp ascending, NULLs first",
                repo.find(Filter::all()).order_by(c.grp.asc().nulls_first()),
            ),
            (
                "by grp, then key descending",
                repo.find(Filter::all())
                    .order_by(c.grp.asc())
                    .order_by(c.id.desc()),
            ),
        ];
        let mut wrong = Vec::new();
        for (what, find) in others {
            match find.page(Some(&cursor), 10).await {
                Err(Error::InvalidData { .. }) => {}
                Ok(page) => wrong.push(format!("{what}: accepted, {} rows", page.items.len())),
                Err(other) => wrong.push(format!("{what}: {other}")),
            }
        }
        assert!(
            wrong.is_empty(),
            "a cursor of `order_by(grp.asc())` was not refused as InvalidData: {wrong:#?}"
        );
    })
    .await;
}
