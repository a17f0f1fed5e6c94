//! `StatementMode::Unnamed`: every route works and no named prepared statement is ever left on
//! the server connection (what PgBouncer's transaction pooling needs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures_util::TryStreamExt;
use toolkit::{Database, DatabaseSettings, Entity, Error, Filter, Repository, StatementMode};
use toolkit_tests::{first_value, fresh};

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "notes")]
struct Note {
    #[entity(primary_key, generated)]
    id: i64,
    title: String,
    body: Option<String>,
}

const NOTES: &str =
    "CREATE TABLE notes (id bigserial PRIMARY KEY, title text NOT NULL UNIQUE, body text)";

fn note(n: usize) -> Note {
    Note {
        id: 0,
        title: format!("note {n}"),
        body: n.is_multiple_of(2).then(|| format!("body {n}")),
    }
}

async fn unnamed_db() -> (toolkit::testing::TestDatabase, Database) {
    let (tdb, settings) = fresh().await;
    let db = Database::new(DatabaseSettings {
        statement_mode: StatementMode::Unnamed,
        idle_in_transaction_timeout: Some(Duration::from_secs(42)),
        min_pool_size: 1,
        max_pool_size: 1,
        ..settings
    })
    .unwrap();
    db.connection()
        .await
        .unwrap()
        .batch_execute(NOTES)
        .await
        .unwrap();
    (tdb, db)
}

/// Named statements on the pool's one connection (asked with the simple protocol, which
/// creates none).
async fn named(db: &Database) -> String {
    let conn = db.connection().await.unwrap();
    first_value(&conn, "SELECT count(*) FROM pg_prepared_statements").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_works_without_a_named_statement() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (_tdb, db) = unnamed_db().await;
        let repo = Repository::<Note>::new(&db);
        let c = Note::columns();

        let created = repo.create(&note(1)).await.unwrap();
        assert_eq!(repo.get_by_id(created.id).await.unwrap(), created);
        let patch = NotePatch {
            body: Some(Some("patched".into())),
            ..Default::default()
        };
        let updated = repo.update(created.id, patch).await.unwrap();
        assert_eq!(updated.body.as_deref(), Some("patched"));
        repo.save(&Note {
            title: "saved".into(),
            ..updated
        })
        .await
        .unwrap();
        assert!(repo.exists(created.id).await.unwrap());
        assert_eq!(
            repo.create_bulk(&(2..12).map(note).collect::<Vec<_>>())
                .await
                .unwrap()
                .len(),
            10
        );
        let bulk: Vec<Note> = (12..1_012).map(note).collect();
        let stored = repo.create_bulk(&bulk).await.unwrap();
        assert_eq!(stored[999].title, "note 1011");
        assert_eq!(
            repo.insert_many(&(2_000..2_300).map(note).collect::<Vec<_>>())
                .await
                .unwrap(),
            300
        );
        assert_eq!(repo.count().await.unwrap(), 1 + 10 + 1_000 + 300);
        assert_eq!(repo.get_all().await.unwrap().len(), 1_311);

        assert_eq!(
            repo.find(c.title.eq("note 5")).one().await.unwrap().title,
            "note 5"
        );
        assert_eq!(repo.find(c.body.is_null()).count().await.unwrap(), 655);
        let page = repo
            .find(Filter::all())
            .order_by(c.title.asc())
            .page(None, 100)
            .await
            .unwrap();
        let next = repo
            .find(Filter::all())
            .order_by(c.title.asc())
            .page(page.next.as_ref(), 100)
            .await
            .unwrap();
        assert_eq!(next.items.len(), 100);
        let streamed: Vec<Note> = repo.find(c.id.le(50)).stream().try_collect().await.unwrap();
        assert_eq!(streamed.len(), 50);
        assert_eq!(repo.get_many(&[3, 1]).await.unwrap().len(), 2);
        let upserted = repo
            .upsert_on(
                &Note {
                    body: Some("up".into()),
                    ..note(7)
                },
                [c.title.name()],
            )
            .await
            .unwrap();
        assert_eq!(upserted.body.as_deref(), Some("up"));
        let mapped: Vec<Note> = repo
            .query_as("SELECT body, title, id FROM notes WHERE id < $1", &[&4_i64])
            .await
            .unwrap();
        assert_eq!(mapped.len(), 3);
        repo.delete(created.id).await.unwrap();

        // Transactions, savepoints, run_in_transaction, the transaction's own query API.
        let mut tx = db.transaction().await.unwrap();
        let shown: String = tx
            .query_one("SHOW idle_in_transaction_session_timeout", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            shown, "42s",
            "applied with SET LOCAL inside each transaction"
        );
        tx.execute("INSERT INTO notes (title) VALUES ($1)", &[&"in tx"])
            .await
            .unwrap();
        {
            let sp = tx.savepoint("inner").await.unwrap();
            Repository::<Note>::new(&sp)
                .create(&note(5_000))
                .await
                .unwrap();
        }
        let n: i64 = tx
            .query_one(
                "SELECT count(*) FROM notes WHERE title = $1",
                &[&"note 5000"],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "rolled back to the savepoint");
        assert!(matches!(
            tx.prepare("SELECT 1").await,
            Err(Error::InvalidSettings { .. })
        ));
        tx.commit().await.unwrap();
        let total: i64 = db
            .run_in_transaction(async |tx| {
                tx.execute("CREATE TEMPORARY TABLE scratch (x int) ON COMMIT DROP", &[])
                    .await?;
                Repository::<Note>::new(&*tx).create(&note(6_000)).await?;
                Ok(tx
                    .query_one("SELECT count(*) FROM notes", &[])
                    .await?
                    .get(0))
            })
            .await
            .unwrap();
        assert_eq!(total, 1 + 10 + 1_000 + 300 - 1 + 1 + 1);

        // A COPY on a borrowed connection would need a transaction the toolkit cannot open.
        let conn = db.connection().await.unwrap();
        let err = Repository::<Note>::new(&conn)
            .insert_many(&[note(7_000)])
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidData { .. }), "{err:?}");
        drop(conn);

        assert_eq!(
            named(&db).await,
            "0",
            "a named statement was left on the connection"
        );
    })
    .await
    .expect("test deadline");
}

#[test]
fn statement_timeout_is_refused_in_unnamed_mode() {
    let err = Database::new(DatabaseSettings {
        statement_mode: StatementMode::Unnamed,
        statement_timeout: Some(Duration::from_secs(1)),
        ..DatabaseSettings::default()
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidSettings {
                field: "statement_timeout",
                ..
            }
        ),
        "{err:?}"
    );
}
