//! Fault suite, errors and session state (issue 7, scenarios 10-12): lock vs statement vs
//! client timeouts and cancellation, constraint names, what session state survives a checkout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_common;

use std::time::{Duration, Instant};

use fault_common::{backend_pid, item, items_db, terminate_all, unique_app, Item, ItemPatch};
use toolkit::testing::TestDatabase;
use toolkit::tokio_postgres::NoTls;
use toolkit::{Database, DatabaseSettings, Entity, Error, Repository, SqlState};
use toolkit_tests::first_value as text;

const TEST_DEADLINE: Duration = Duration::from_secs(60);

fn one_connection(tdb: &TestDatabase, app: &str) -> DatabaseSettings {
    DatabaseSettings {
        application_name: app.into(),
        min_pool_size: 1,
        max_pool_size: 1,
        pool_timeout: Duration::from_secs(10),
        ..tdb.settings()
    }
}

fn value_patch(value: i64) -> ItemPatch {
    ItemPatch {
        value: Some(value),
        ..Default::default()
    }
}

/// Scenario 10: waiting on a row lock under `lock_timeout`, under `statement_timeout`, and
/// under the client's `query_timeout` end in three different errors, each classified as a
/// timeout: 55P03, 57014 and `Error::Timeout`. A query cancelled through its `CancelToken`
/// fails with 57014 and leaves the connection usable (the pool keeps it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_statement_and_client_timeouts_are_told_apart() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let tdb = items_db().await;
        let row = Repository::<Item>::new(&tdb.database().unwrap())
            .create(&item("locked", 1))
            .await
            .unwrap();
        // The locker holds the row lock; the admin watches (outside a transaction: inside one,
        // pg_stat_activity is a snapshot).
        let admin = tdb.connect().await.unwrap();
        let locker = tdb.connect().await.unwrap();
        locker
            .batch_execute(&format!(
                "BEGIN; SELECT * FROM items WHERE id = {} FOR UPDATE",
                row.id
            ))
            .await
            .unwrap();

        // statement_timeout (server side, every pooled connection): 57014.
        let app = unique_app("statement_timeout");
        let db = Database::new(DatabaseSettings {
            statement_timeout: Some(Duration::from_millis(300)),
            ..one_connection(&tdb, &app)
        })
        .unwrap();
        let repo = Repository::<Item>::new(&db);
        let pid = backend_pid(&db).await;
        let started = Instant::now();
        let statement = repo.update(row.id, value_patch(2)).await.unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(statement.code(), Some(&SqlState::QUERY_CANCELED), "{statement:?}");
        assert!(statement.to_string().contains("statement timeout"), "{statement}");
        assert!(statement.is_timeout(), "{statement:?}");
        assert!(!statement.is_connection_lost() && !statement.is_retryable() && !statement.is_not_found());
        assert!(matches!(statement, Error::Operation { .. }));
        // The connection stays in the pool and works.
        assert_eq!(repo.count().await.unwrap(), 1);
        assert_eq!(backend_pid(&db).await, pid);

        // lock_timeout (per transaction, SET LOCAL): 55P03.
        let app = unique_app("lock_timeout");
        let db = Database::new(one_connection(&tdb, &app)).unwrap();
        let pid = backend_pid(&db).await;
        let tx = db.transaction().await.unwrap();
        tx.batch_execute("SET LOCAL lock_timeout = '200ms'").await.unwrap();
        let started = Instant::now();
        let lock = Repository::<Item>::new(&tx)
            .update(row.id, value_patch(3))
            .await
            .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(lock.code(), Some(&SqlState::LOCK_NOT_AVAILABLE), "{lock:?}");
        assert!(lock.is_timeout(), "{lock:?}");
        assert!(!lock.is_connection_lost() && !lock.is_retryable());
        assert_ne!(lock.code(), statement.code());
        tx.rollback().await.unwrap();
        let conn = db.connection().await.unwrap();
        let lock_timeout: String = conn.query_one("SHOW lock_timeout", &[]).await.unwrap().get(0);
        assert_eq!(lock_timeout, "0", "SET LOCAL ends with the transaction");
        drop(conn);
        assert_eq!(backend_pid(&db).await, pid, "the connection was kept");

        // query_timeout (client side): Error::Timeout, the connection is discarded and the
        // server-side statement cancelled (the lock wait ends).
        let app = unique_app("query_timeout");
        let db = Database::new(DatabaseSettings {
            query_timeout: Some(Duration::from_millis(300)),
            ..one_connection(&tdb, &app)
        })
        .unwrap();
        let pid = backend_pid(&db).await;
        let started = Instant::now();
        let client = Repository::<Item>::new(&db)
            .update(row.id, value_patch(4))
            .await
            .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(matches!(client, Error::Timeout { .. }), "{client:?}");
        assert!(client.is_timeout() && client.code().is_none() && !client.is_connection_lost());
        assert_ne!(backend_pid(&db).await, pid, "an abandoned connection was reused");
        fault_common::wait_until(Duration::from_secs(5), "the cancel to reach the server", || async {
            admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
                    &[&pid],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
                == 0
        })
        .await;
        locker.batch_execute("ROLLBACK").await.unwrap();

        // A statement cancelled through its CancelToken: 57014 "due to user request"; the
        // connection is usable and stays pooled.
        let app = unique_app("cancel_token");
        let db = Database::new(one_connection(&tdb, &app)).unwrap();
        let conn = db.connection().await.unwrap();
        let pid: i32 = conn.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
        let token = conn.cancel_token();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            token.cancel_query(NoTls).await
        });
        let started = Instant::now();
        let cancelled = Error::from(conn.simple_query("SELECT pg_sleep(20)").await.unwrap_err());
        assert!(started.elapsed() < Duration::from_secs(10));
        canceller.await.unwrap().unwrap();
        assert_eq!(cancelled.code(), Some(&SqlState::QUERY_CANCELED), "{cancelled:?}");
        assert!(cancelled.to_string().contains("user request"), "{cancelled}");
        assert!(cancelled.is_timeout() && !cancelled.is_connection_lost());
        let one: i32 = conn.query_one("SELECT 1", &[]).await.unwrap().get(0);
        assert_eq!(one, 1);
        drop(conn);
        assert_eq!(backend_pid(&db).await, pid);
        // Cancelled inside a transaction: the transaction is aborted, commit reports it, and
        // the connection comes back clean.
        let tx = db.transaction().await.unwrap();
        let token = tx.client().await.unwrap().cancel_token();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            token.cancel_query(NoTls).await
        });
        let err = tx.execute("SELECT pg_sleep(20)", &[]).await.unwrap_err();
        canceller.await.unwrap().unwrap();
        assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED));
        let err = tx.commit().await.unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION), "{err:?}");
        assert_eq!(toolkit_tests::assert_clean(&db).await, pid, "clean, and kept");
        let conn = db.connection().await.unwrap();
        assert_eq!(Repository::<Item>::new(&conn).get_by_id(row.id).await.unwrap().value, 1);
    })
    .await
    .expect("test deadline");
}

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "parents")]
struct Parent {
    #[entity(primary_key, generated)]
    id: i64,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "children")]
struct Child {
    #[entity(primary_key, generated)]
    id: i64,
    parent_id: i64,
    label: String,
}

const FAMILY: &str = "
CREATE TABLE parents (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL CONSTRAINT parents_name_uniq UNIQUE
);
CREATE TABLE children (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    parent_id bigint NOT NULL CONSTRAINT children_parent_fk REFERENCES parents (id),
    label text NOT NULL CONSTRAINT children_label_nonempty CHECK (label <> '')
)";

fn assert_violation(err: &Error, code: &SqlState, constraint: &str) {
    assert_eq!(err.code(), Some(code), "{err:?}");
    assert_eq!(err.constraint(), Some(constraint), "{err:?}");
    assert!(
        err.to_string().contains(constraint),
        "the message names it: {err}"
    );
    assert!(
        !err.is_retryable()
            && !err.is_connection_lost()
            && !err.is_timeout()
            && !err.is_not_found(),
        "{err:?}"
    );
}

/// Scenario 11: unique, foreign-key and check violations report the constraint's name through
/// `constraint()`, whichever repository call (create, create_bulk on both routes, update, save,
/// delete) or transaction hit it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn violations_name_their_constraint() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let tdb = TestDatabase::create().await.unwrap();
        tdb.connect()
            .await
            .unwrap()
            .batch_execute(FAMILY)
            .await
            .unwrap();
        let db = tdb.database().unwrap();
        let parents = Repository::<Parent>::new(&db);
        let children = Repository::<Child>::new(&db);
        let parent = |name: &str| Parent {
            id: 0,
            name: name.into(),
        };
        let ann = parents.create(&parent("ann")).await.unwrap();
        let bob = parents.create(&parent("bob")).await.unwrap();
        let unique = &SqlState::UNIQUE_VIOLATION;
        let foreign = &SqlState::FOREIGN_KEY_VIOLATION;

        let err = parents.create(&parent("ann")).await.unwrap_err();
        assert_violation(&err, unique, "parents_name_uniq");
        // Multi-row VALUES route, and the COPY route (more than 256 rows).
        let small = vec![parent("cy"), parent("cy")];
        assert_violation(
            &parents.create_bulk(&small).await.unwrap_err(),
            unique,
            "parents_name_uniq",
        );
        let mut large: Vec<Parent> = (0..400).map(|n| parent(&format!("p{n}"))).collect();
        large.push(parent("ann"));
        assert_violation(
            &parents.create_bulk(&large).await.unwrap_err(),
            unique,
            "parents_name_uniq",
        );
        assert_eq!(
            parents.count().await.unwrap(),
            2,
            "failed bulks inserted nothing"
        );
        let patch = ParentPatch {
            name: Some("ann".into()),
        };
        assert_violation(
            &parents.update(bob.id, patch).await.unwrap_err(),
            unique,
            "parents_name_uniq",
        );
        let renamed = Parent {
            name: "ann".into(),
            ..bob.clone()
        };
        assert_violation(
            &parents.save(&renamed).await.unwrap_err(),
            unique,
            "parents_name_uniq",
        );

        let orphan = Child {
            id: 0,
            parent_id: 9999,
            label: "x".into(),
        };
        assert_violation(
            &children.create(&orphan).await.unwrap_err(),
            foreign,
            "children_parent_fk",
        );
        children
            .create(&Child {
                id: 0,
                parent_id: ann.id,
                label: "kid".into(),
            })
            .await
            .unwrap();
        assert_violation(
            &parents.delete(ann.id).await.unwrap_err(),
            foreign,
            "children_parent_fk",
        );
        let empty = Child {
            id: 0,
            parent_id: ann.id,
            label: String::new(),
        };
        assert_violation(
            &children.create(&empty).await.unwrap_err(),
            &SqlState::CHECK_VIOLATION,
            "children_label_nonempty",
        );

        // Inside a transaction: same report, and the transaction is aborted.
        let tx = db.transaction().await.unwrap();
        let err = Repository::<Parent>::new(&tx)
            .create(&parent("bob"))
            .await
            .unwrap_err();
        assert_violation(&err, unique, "parents_name_uniq");
        let err = tx.commit().await.unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
        assert_eq!(parents.count().await.unwrap(), 2);
        assert_eq!(children.count().await.unwrap(), 1);
    })
    .await
    .expect("test deadline");
}

/// Scenario 12: the pool does not reset sessions. Session-level state made through one checkout
/// (SET, temporary tables, prepared statements, advisory locks, LISTEN) is seen by every later
/// checkout of the same connection; transaction-scoped state (SET LOCAL, ON COMMIT DROP) is
/// not; `DISCARD ALL` clears it (and the repository re-prepares its statements afterwards);
/// a replaced connection starts clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_state_persists_on_the_pooled_connection() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let tdb = items_db().await;
        tdb.connect()
            .await
            .unwrap()
            .batch_execute("CREATE SCHEMA extra; CREATE TABLE extra.only_here (x int)")
            .await
            .unwrap();
        let app = unique_app("session_state");
        let db = Database::new(one_connection(&tdb, &app)).unwrap();
        let repo = Repository::<Item>::new(&db);
        repo.create(&item("one", 1)).await.unwrap();
        let default_path = text(&db.connection().await.unwrap(), "SHOW search_path").await;

        let pid = {
            let conn = db.connection().await.unwrap();
            conn.batch_execute(
                "SET search_path TO extra, public;
                 SET statement_timeout = '12345ms';
                 CREATE TEMP TABLE scratch (x int);
                 INSERT INTO scratch VALUES (7);
                 PREPARE answer AS SELECT 42;
                 SELECT pg_advisory_lock(4242);
                 LISTEN fault_channel",
            )
            .await
            .unwrap();
            text(&conn, "SELECT pg_backend_pid()").await
        };

        // A later checkout: the same connection, every piece of session state still there.
        let conn = db.connection().await.unwrap();
        assert_eq!(text(&conn, "SELECT pg_backend_pid()").await, pid);
        assert_eq!(text(&conn, "SHOW search_path").await, "extra, public");
        assert_eq!(text(&conn, "SELECT count(*) FROM only_here").await, "0", "search_path resolves");
        assert_eq!(text(&conn, "SHOW statement_timeout").await, "12345ms");
        assert_eq!(text(&conn, "SELECT x FROM scratch").await, "7");
        assert_eq!(text(&conn, "EXECUTE answer").await, "42");
        assert_eq!(
            text(&conn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()").await,
            "1"
        );
        assert_eq!(text(&conn, "SELECT string_agg(c, ',') FROM pg_listening_channels() c").await, "fault_channel");
        drop(conn);
        // The repository still works: its table is public.items, found through the path.
        assert_eq!(repo.count().await.unwrap(), 1);

        // Transaction-scoped state ends with the transaction.
        let tx = db.transaction().await.unwrap();
        tx.batch_execute(
            "SET LOCAL search_path TO extra;
             SET LOCAL statement_timeout = '999ms';
             CREATE TEMP TABLE tx_scratch (x int) ON COMMIT DROP",
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let conn = db.connection().await.unwrap();
        assert_eq!(text(&conn, "SHOW search_path").await, "extra, public", "the session value is back");
        assert_eq!(text(&conn, "SHOW statement_timeout").await, "12345ms");
        assert_eq!(text(&conn, "SELECT count(*) FROM pg_class WHERE relname = 'tx_scratch'").await, "0");

        // DISCARD ALL resets the session; the repository's cached statements are gone with it
        // and are prepared again transparently.
        conn.batch_execute("DISCARD ALL").await.unwrap();
        assert_eq!(text(&conn, "SHOW search_path").await, default_path);
        assert_eq!(text(&conn, "SELECT count(*) FROM pg_class WHERE relname = 'scratch'").await, "0");
        assert_eq!(text(&conn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()").await, "0");
        drop(conn);
        assert_eq!(repo.count().await.unwrap(), 1);
        assert_eq!(repo.get_all().await.unwrap().len(), 1);

        // State lives exactly as long as the connection: a replaced one starts clean.
        db.connection()
            .await
            .unwrap()
            .batch_execute("SET search_path TO extra, public; CREATE TEMP TABLE scratch (x int)")
            .await
            .unwrap();
        let admin = tdb.connect().await.unwrap();
        terminate_all(&admin, &app).await;
        // Let the driver read the FATAL message of the idle connection (this part is about
        // state, not about errors; scenario 1 counts those).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let conn = db.connection().await.unwrap();
        assert_ne!(text(&conn, "SELECT pg_backend_pid()").await, pid);
        assert_eq!(text(&conn, "SHOW search_path").await, default_path);
        assert_eq!(text(&conn, "SELECT count(*) FROM pg_class WHERE relname = 'scratch'").await, "0");
    })
    .await
    .expect("test deadline");
}
