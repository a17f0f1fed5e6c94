//! What the toolkit traces (issue 15): a span per repository call, per transaction and per
//! statement in it, named and attributed after OpenTelemetry's database conventions; the first
//! failure as `error.type`; the SQL text only when enabled; never a parameter value; events for
//! slow statements and connect retries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod trace_common;

use std::time::Duration;

use toolkit::testing::TestDatabase;
use toolkit::{Database, DatabaseSettings, Entity, Repository, RetryPolicy};
use toolkit_tests::{closed_port, db_with};
use trace_common::{Recorder, SpanRec};

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "traced_users")]
struct TracedUser {
    #[entity(primary_key, generated)]
    id: i64,
    email: String,
    name: String,
}

const SCHEMA: &str = "CREATE TABLE traced_users (
    id bigserial PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text NOT NULL
)";

/// A value that must never reach a span or an event.
const SECRET: &str = "s3cr3t-4242@example.com";

fn user(email: &str) -> TracedUser {
    TracedUser {
        id: 0,
        email: email.into(),
        name: "Ada".into(),
    }
}

async fn traced_db(
    adjust: impl FnOnce(DatabaseSettings) -> DatabaseSettings,
) -> (TestDatabase, Database) {
    let (tdb, db) = db_with(SCHEMA, adjust).await;
    db.init_db().await.unwrap();
    (tdb, db)
}

/// The attributes every span of the toolkit carries, checked against the settings.
fn assert_connection_attributes(span: &SpanRec, settings: &DatabaseSettings) {
    assert_eq!(span.field("db.system.name"), "postgresql");
    assert_eq!(span.field("db.namespace"), settings.dbname);
    assert_eq!(span.field("server.address"), settings.host);
    assert_eq!(span.field("server.port"), settings.port.to_string());
    assert_eq!(span.field("otel.kind"), "client");
}

fn only(spans: Vec<SpanRec>, what: &str) -> SpanRec {
    assert_eq!(spans.len(), 1, "one {what} span: {spans:#?}");
    spans.into_iter().next().unwrap()
}

#[tokio::test]
async fn repository_calls_have_a_span_each() {
    let (_tdb, db) = traced_db(|s| s).await;
    let recorder = Recorder::default();
    let _guard = recorder.install();
    let repo = Repository::<TracedUser>::new(&db);

    let created = repo.create(&user(SECRET)).await.unwrap();
    let found = repo.get_by_id(created.id).await.unwrap();
    assert_eq!(found.email, SECRET);
    repo.delete(created.id).await.unwrap();

    let insert = only(recorder.spans_named("INSERT"), "INSERT");
    assert_eq!(insert.field("otel.name"), "INSERT traced_users");
    assert_eq!(insert.field("db.operation.name"), "INSERT");
    assert_eq!(insert.field("db.collection.name"), "traced_users");
    assert_connection_attributes(&insert, db.settings());
    let select = only(recorder.spans_named("SELECT"), "SELECT");
    assert_eq!(select.field("otel.name"), "SELECT traced_users");
    assert_eq!(select.field("db.operation.name"), "SELECT");
    assert_connection_attributes(&select, db.settings());
    let delete = only(recorder.spans_named("DELETE"), "DELETE");
    assert_eq!(delete.field("otel.name"), "DELETE traced_users");
    for span in [&insert, &select, &delete] {
        assert!(!span.has("error.type"), "no failure: {span:#?}");
        assert!(
            !span.has("db.query.text"),
            "text is off by default: {span:#?}"
        );
        assert_eq!(span.parent, None);
    }
    recorder.assert_never_shows(SECRET);
}

#[tokio::test]
async fn a_failing_statement_records_its_sqlstate_and_no_value() {
    let (_tdb, db) = traced_db(|s| DatabaseSettings {
        trace_query_text: true,
        ..s
    })
    .await;
    let repo = Repository::<TracedUser>::new(&db);
    repo.create(&user(SECRET)).await.unwrap();
    let recorder = Recorder::default();
    let _guard = recorder.install();

    // The server's message names the duplicate value: "Key (email)=(...) already exists".
    let err = repo.create(&user(SECRET)).await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("23505"));
    let missing = repo.get_by_id(-1).await.unwrap_err();
    assert!(missing.is_not_found());

    let insert = only(recorder.spans_named("INSERT"), "INSERT");
    assert_eq!(insert.field("error.type"), "23505");
    assert_eq!(insert.field("db.response.status_code"), "23505");
    assert_connection_attributes(&insert, db.settings());
    let text = insert.field("db.query.text");
    assert!(
        text.starts_with("INSERT INTO") && text.contains("$1"),
        "{text}"
    );
    // A key without a row is an answer, not a failed statement.
    let select = only(recorder.spans_named("SELECT"), "SELECT");
    assert!(!select.has("error.type"), "{select:#?}");
    recorder.assert_never_shows(SECRET);
    recorder.assert_never_shows("already exists");
}

#[tokio::test]
async fn query_text_is_recorded_only_when_enabled() {
    for enabled in [false, true] {
        let (_tdb, db) = traced_db(|s| DatabaseSettings {
            trace_query_text: enabled,
            ..s
        })
        .await;
        let recorder = Recorder::default();
        let _guard = recorder.install();
        let repo = Repository::<TracedUser>::new(&db);
        let created = repo.create(&user(SECRET)).await.unwrap();
        repo.get_by_id(created.id).await.unwrap();
        let mut tx = db.transaction().await.unwrap();
        tx.execute(
            "UPDATE traced_users SET name = $1 WHERE email = $2",
            &[&"Grace", &SECRET],
        )
        .await
        .unwrap();
        tx.savepoint("sp").await.unwrap().commit().await.unwrap();
        tx.commit().await.unwrap();

        let spans = recorder.spans();
        let with_text: Vec<&SpanRec> = spans.iter().filter(|s| s.has("db.query.text")).collect();
        if enabled {
            // The repository's two calls and the caller's UPDATE; not the transaction.
            assert_eq!(with_text.len(), 3, "{spans:#?}");
            let select = only(recorder.spans_named("SELECT"), "SELECT");
            let text = select.field("db.query.text");
            assert!(text.starts_with("SELECT") && text.contains("$1"), "{text}");
            let update = only(recorder.spans_named("postgresql"), "statement");
            assert_eq!(
                update.field("db.query.text"),
                "UPDATE traced_users SET name = $1 WHERE email = $2"
            );
        } else {
            assert!(with_text.is_empty(), "{with_text:#?}");
        }
        recorder.assert_never_shows(SECRET);
        recorder.assert_never_shows("Grace");
    }
}

#[tokio::test]
async fn a_transaction_is_the_parent_of_its_statements() {
    let (_tdb, db) = traced_db(|s| s).await;
    let recorder = Recorder::default();
    let _guard = recorder.install();

    let tx = db.transaction().await.unwrap();
    tx.execute(
        "INSERT INTO traced_users (email, name) VALUES ($1, $2)",
        &[&SECRET, &"Ada"],
    )
    .await
    .unwrap();
    let repo = Repository::<TracedUser>::new(&tx);
    assert_eq!(repo.count().await.unwrap(), 1);
    // Inside the transaction, a failing statement fails its own span, not the transaction's.
    let err = tx
        .execute(
            "INSERT INTO traced_users (email, name) VALUES ($1, 'x')",
            &[&SECRET],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("23505"));
    // COMMIT of an aborted transaction fails: that is the transaction's failure.
    let err = tx.commit().await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("25P02"));

    let transaction = only(recorder.spans_named("transaction"), "transaction");
    assert_connection_attributes(&transaction, db.settings());
    assert_eq!(transaction.field("error.type"), "25P02");
    assert_eq!(transaction.parent, None);
    let statements = recorder.spans_named("postgresql");
    assert_eq!(statements.len(), 2, "{statements:#?}");
    for statement in &statements {
        assert_eq!(statement.parent, Some("transaction"));
        assert_eq!(statement.field("db.operation.name"), "INSERT");
        assert_eq!(statement.field("otel.name"), "INSERT");
        assert_eq!(statement.field("db.system.name"), "postgresql");
        assert!(!statement.has("db.collection.name"));
    }
    assert!(!statements[0].has("error.type"));
    assert_eq!(statements[1].field("error.type"), "23505");
    let count = only(recorder.spans_named("SELECT"), "SELECT");
    assert_eq!(count.parent, Some("transaction"));
    assert_eq!(count.field("otel.name"), "SELECT traced_users");
    assert_connection_attributes(&count, db.settings());
    recorder.assert_never_shows(SECRET);
}

#[tokio::test]
async fn run_in_transaction_reruns_are_announced() {
    let (_tdb, db) = traced_db(|s| DatabaseSettings {
        transaction_retry: RetryPolicy::fast(3),
        ..s
    })
    .await;
    let recorder = Recorder::default();
    let _guard = recorder.install();
    let mut attempt = 0;
    let outcome: toolkit::Result<()> = db
        .run_in_transaction(async |tx| {
            attempt += 1;
            // A serialization failure raised by hand: retried like a real one.
            tx.batch_execute(
                "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = 'serialization_failure'; END $$",
            )
            .await
        })
        .await;
    assert_eq!(outcome.unwrap_err().code().map(|c| c.code()), Some("40001"));
    assert_eq!(attempt, 3);
    let reruns: Vec<_> = recorder
        .events()
        .into_iter()
        .filter(|e| e.target == "toolkit" && e.message().contains("running it again"))
        .collect();
    assert_eq!(reruns.len(), 2, "{reruns:#?}");
    assert_eq!(reruns[0].level, tracing::Level::INFO);
    assert_eq!(reruns[0].fields["attempt"], "1");
    assert_eq!(reruns[1].fields["attempt"], "2");
    assert_eq!(reruns[0].fields["error.type"], "40001");
    assert_eq!(recorder.spans_named("transaction").len(), 3);
}

#[tokio::test]
async fn a_slow_statement_emits_an_event_in_its_span() {
    let (_tdb, db) = traced_db(|s| DatabaseSettings {
        slow_statement_threshold: Some(Duration::from_millis(100)),
        ..s
    })
    .await;
    let recorder = Recorder::default();
    let _guard = recorder.install();
    let repo = Repository::<TracedUser>::new(&db);
    repo.count().await.unwrap();
    let tx = db.transaction().await.unwrap();
    tx.execute("SELECT pg_sleep(0.3)", &[]).await.unwrap();
    tx.commit().await.unwrap();

    let slow: Vec<_> = recorder
        .events()
        .into_iter()
        .filter(|e| e.message().starts_with("slow statement"))
        .collect();
    assert_eq!(slow.len(), 1, "only the sleep: {slow:#?}");
    assert_eq!(slow[0].level, tracing::Level::WARN);
    assert_eq!(slow[0].span, Some("postgresql"));
    assert!(!slow[0].fields.contains_key("db.query.text"), "text is off");
    assert_eq!(slow[0].fields["threshold"], "100ms");
}

#[tokio::test]
async fn init_db_announces_each_connect_retry() {
    let settings = DatabaseSettings {
        host: "127.0.0.1".into(),
        port: closed_port(),
        connect_retry: RetryPolicy::fast(3),
        ..DatabaseSettings::default()
    };
    let db = Database::new(settings).unwrap();
    let recorder = Recorder::default();
    let _guard = recorder.install();
    db.init_db().await.unwrap_err();
    let retries: Vec<_> = recorder
        .events()
        .into_iter()
        .filter(|e| e.message().starts_with("cannot reach"))
        .collect();
    assert_eq!(
        retries.len(),
        2,
        "two retries after three attempts: {retries:#?}"
    );
    assert_eq!(retries[0].level, tracing::Level::WARN);
    assert_eq!(retries[0].fields["attempt"], "1");
    assert_eq!(retries[0].fields["attempts"], "3");
    assert!(
        retries[0].fields["error"].contains("refused"),
        "{:?}",
        retries[0]
    );
}
