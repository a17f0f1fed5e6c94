//! TLS against clusters the tests configure themselves: certificates made per test, every
//! `ssl_mode`, the failures a deployment meets (unknown issuer, name mismatch, expired, a
//! server without TLS), client certificates, and cancel requests over TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use toolkit::testing::{TestCertificates, TestCluster};
use toolkit::{Database, DatabaseSettings, Entity, Error, Repository, SslMode};

const TEST_DEADLINE: Duration = Duration::from_secs(90);

/// A TLS cluster: the user `certuser` must show a client certificate, everyone else may use
/// TLS or plain TCP (so `disable` can be told apart from the rest).
async fn tls_cluster(certs: &TestCertificates, expired: bool) -> TestCluster {
    let mut builder = TestCluster::builder()
        .tls(certs)
        .hba("hostssl all certuser 127.0.0.1/32 trust clientcert=verify-full")
        .hba("hostssl all all 127.0.0.1/32 trust")
        .hba("hostnossl all all 127.0.0.1/32 trust");
    if expired {
        let old = certs.expired_server().unwrap();
        builder = builder
            .file("server.crt", old.cert_pem)
            .file("server.key", old.key_pem);
    }
    tokio::task::spawn_blocking(move || builder.start())
        .await
        .unwrap()
        .unwrap()
}

fn settings(cluster: &TestCluster, mode: SslMode) -> DatabaseSettings {
    DatabaseSettings {
        ssl_mode: mode,
        // The pool opens one at creation, so a refused connect fails the first call at once.
        min_pool_size: 1,
        max_pool_size: 2,
        pool_timeout: Duration::from_secs(5),
        connection_timeout: Duration::from_secs(5),
        ..cluster.settings()
    }
}

/// Whether the pooled connection is encrypted, as the server sees it.
async fn encrypted(db: &Database) -> toolkit::Result<bool> {
    let conn = db.connection().await?;
    let row = conn
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// The error of a TLS failure: `Error::Connection` through the pool and through `init_db`
/// (which does not retry it: no wait can cure a certificate).
async fn connect_error(settings: DatabaseSettings) -> String {
    let db = Database::new(settings).unwrap();
    let pooled = match db.connection().await {
        Err(err @ Error::Connection { .. }) => err.to_string(),
        Err(other) => panic!("expected Error::Connection from the pool, got {other:?}"),
        Ok(_) => panic!("connected, but must not have"),
    };
    let started = std::time::Instant::now();
    match db.init_db().await {
        Err(Error::Connection { .. }) => {}
        other => panic!("expected Error::Connection from init_db, got {other:?}"),
    }
    // The default connect_retry would wait about a second or more before its fifth attempt.
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "init_db retried a TLS failure"
    );
    db.cleanup().await;
    pooled
}

/// The error of a connection the server refuses after TLS (pg_hba): like any refused
/// login, `Error::Connection` from `init_db`, and a pool error carrying the server's words.
async fn refused_by_server(settings: DatabaseSettings) -> String {
    let db = Database::new(settings).unwrap();
    let pooled = match db.connection().await {
        Err(err @ Error::Pool { .. }) => err.to_string(),
        Err(other) => panic!("expected Error::Pool from the pool, got {other:?}"),
        Ok(_) => panic!("connected, but must not have"),
    };
    match db.init_db().await {
        Err(Error::Connection { .. }) => {}
        other => panic!("expected Error::Connection from init_db, got {other:?}"),
    }
    db.cleanup().await;
    pooled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ssl_mode_against_a_tls_server() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let certs = TestCertificates::generate().unwrap();
        let cluster = tls_cluster(&certs, false).await;
        for (mode, expect_tls) in [
            (SslMode::Disable, false),
            (SslMode::Prefer, true),
            (SslMode::Require, true),
            (SslMode::VerifyCa, true),
            (SslMode::VerifyFull, true),
        ] {
            let db = Database::new(settings(&cluster, mode)).unwrap();
            assert_eq!(encrypted(&db).await.unwrap(), expect_tls, "{mode}");
            db.cleanup().await;
        }
        // By the name the certificate lists, and from a URL with libpq's parameters.
        let ca = certs.ca_file();
        let url = format!(
            "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
            cluster.port(),
            ca.display()
        );
        let from_url = DatabaseSettings::from_url(&url).unwrap();
        assert_eq!(from_url.ssl_mode, SslMode::VerifyFull);
        let db = Database::new(from_url).unwrap();
        db.init_db().await.unwrap();
        assert!(encrypted(&db).await.unwrap());
        db.cleanup().await;
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_refuses_a_host_name_the_certificate_does_not_list() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let certs = TestCertificates::generate().unwrap();
        let cluster = tls_cluster(&certs, false).await;
        // hostaddr reaches the server while host names what the certificate must list.
        let wrong_name = DatabaseSettings {
            host: "db.wrong-name.test".into(),
            hostaddr: Some("127.0.0.1".into()),
            ..settings(&cluster, SslMode::VerifyFull)
        };
        let message = connect_error(wrong_name.clone()).await;
        assert!(message.contains("name mismatch"), "{message}");
        assert!(message.contains("db.wrong-name.test"), "{message}");
        // verify-ca checks the chain only, so the same connection is accepted.
        let db = Database::new(DatabaseSettings {
            ssl_mode: SslMode::VerifyCa,
            ..wrong_name
        })
        .unwrap();
        assert!(encrypted(&db).await.unwrap());
        db.cleanup().await;
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_untrusted_authority_is_refused() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let certs = TestCertificates::generate().unwrap();
        let cluster = tls_cluster(&certs, false).await;
        let stranger = TestCertificates::generate().unwrap();
        for mode in [SslMode::VerifyFull, SslMode::VerifyCa, SslMode::Require] {
            // `require` with a root certificate checks the chain, as libpq does.
            let message = connect_error(DatabaseSettings {
                ssl_root_cert: Some(stranger.ca_file()),
                ..settings(&cluster, mode)
            })
            .await;
            assert!(message.contains("unknown issuer"), "{mode}: {message}");
        }
        // Without a root certificate, verify-full trusts the public roots only.
        let message = connect_error(DatabaseSettings {
            ssl_root_cert: None,
            ..settings(&cluster, SslMode::VerifyFull)
        })
        .await;
        assert!(message.contains("unknown issuer"), "{message}");
        // `require` without one encrypts and takes the certificate as it comes.
        let db = Database::new(DatabaseSettings {
            ssl_root_cert: None,
            ..settings(&cluster, SslMode::Require)
        })
        .unwrap();
        assert!(encrypted(&db).await.unwrap());
        db.cleanup().await;
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let certs = TestCertificates::generate().unwrap();
        let cluster = tls_cluster(&certs, true).await;
        for mode in [SslMode::VerifyFull, SslMode::VerifyCa] {
            let message = connect_error(settings(&cluster, mode)).await;
            assert!(message.contains("expired"), "{mode}: {message}");
        }
        let db = Database::new(DatabaseSettings {
            ssl_root_cert: None,
            ..settings(&cluster, SslMode::Require)
        })
        .unwrap();
        assert!(encrypted(&db).await.unwrap());
        db.cleanup().await;
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_against_a_server_without_tls_fails_saying_so() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let certs = TestCertificates::generate().unwrap();
        let plain = tokio::task::spawn_blocking(TestCluster::start)
            .await
            .unwrap()
            .unwrap();
        for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            let message = connect_error(DatabaseSettings {
                ssl_mode: mode,
                ssl_root_cert: Some(certs.ca_file()),
                min_pool_size: 1,
                ..plain.settings()
            })
            .await;
            assert!(
                message.contains("does not accept TLS") && message.contains("ssl = off"),
                "{mode}: {message}"
            );
        }
        // prefer falls back to plain TCP.
        let db = Database::new(DatabaseSettings {
            ssl_mode: SslMode::Prefer,
            ..plain.settings()
        })
        .unwrap();
        assert!(!encrypted(&db).await.unwrap());
        db.cleanup().await;
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_for_clientcert_verify_full() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let certs = TestCertificates::generate().unwrap();
        let cluster = tls_cluster(&certs, false).await;
        let admin = Database::new(settings(&cluster, SslMode::VerifyFull)).unwrap();
        admin
            .connection()
            .await
            .unwrap()
            .batch_execute("CREATE ROLE certuser LOGIN")
            .await
            .unwrap();
        admin.cleanup().await;
        let as_certuser = DatabaseSettings {
            user: "certuser".into(),
            ..settings(&cluster, SslMode::VerifyFull)
        };

        let (cert, key) = certs.client_files("certuser").unwrap();
        let db = Database::new(DatabaseSettings {
            ssl_cert: Some(cert.clone()),
            ssl_key: Some(key.clone()),
            ..as_certuser.clone()
        })
        .unwrap();
        db.init_db().await.unwrap();
        let conn = db.connection().await.unwrap();
        let row = conn
            .query_one(
                "SELECT client_dn, current_user::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "/CN=certuser");
        assert_eq!(row.get::<_, String>(1), "certuser");
        drop(conn);
        db.cleanup().await;

        // No certificate, or one issued to someone else: the server refuses, and says why.
        let none = refused_by_server(as_certuser.clone()).await;
        assert!(none.contains("certificate"), "{none}");
        let (other_cert, other_key) = certs.client_files("intruder").unwrap();
        let other = refused_by_server(DatabaseSettings {
            ssl_cert: Some(other_cert),
            ssl_key: Some(other_key),
            ..as_certuser.clone()
        })
        .await;
        assert!(
            other.contains("authentication failed for user \"certuser\""),
            "{other}"
        );

        // A key file that is not there is a settings error naming the field, before any I/O.
        match Database::new(DatabaseSettings {
            ssl_cert: Some(cert),
            ssl_key: Some(key.with_extension("missing")),
            ..as_certuser
        }) {
            Err(Error::InvalidSettings { field, .. }) => assert_eq!(field, "ssl_key"),
            other => panic!("expected InvalidSettings for ssl_key, got {other:?}"),
        }
    })
    .await
    .expect("test deadline");
}

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "notes")]
struct Note {
    #[entity(primary_key, generated)]
    id: i64,
    body: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_and_cancel_over_a_tls_only_server() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let certs = TestCertificates::generate().unwrap();
        let builder = TestCluster::builder()
            .tls(&certs)
            .hba("hostssl all all 127.0.0.1/32 trust")
            .hba("hostnossl all all 127.0.0.1/32 reject");
        let cluster = tokio::task::spawn_blocking(move || builder.start())
            .await
            .unwrap()
            .unwrap();
        let plain = refused_by_server(settings(&cluster, SslMode::Disable)).await;
        assert!(plain.contains("no encryption"), "{plain}");

        let db = Database::new(DatabaseSettings {
            query_timeout: Some(Duration::from_millis(300)),
            ..settings(&cluster, SslMode::VerifyFull)
        })
        .unwrap();
        db.init_db().await.unwrap();
        db.connection()
            .await
            .unwrap()
            .batch_execute("CREATE TABLE notes (id bigserial PRIMARY KEY, body text NOT NULL)")
            .await
            .unwrap();
        let repo = Repository::<Note>::new(&db);
        let created = repo
            .create(&Note {
                id: 0,
                body: "over TLS".into(),
            })
            .await
            .unwrap();
        assert_eq!(repo.get_by_id(created.id).await.unwrap(), created);
        // 1,000 rows take the COPY route.
        let many: Vec<Note> = (0..1000)
            .map(|i| Note {
                id: 0,
                body: format!("note {i}"),
            })
            .collect();
        assert_eq!(repo.create_bulk(&many).await.unwrap().len(), 1000);
        assert_eq!(repo.count().await.unwrap(), 1001);

        // A statement past query_timeout is cancelled on the server: the cancel request goes
        // over TLS too, or a TLS-only server would never see it.
        let err = db
            .run_in_transaction(async |tx| {
                tx.execute("SELECT pg_sleep(30)", &[]).await?;
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        let watcher = Database::new(settings(&cluster, SslMode::VerifyFull)).unwrap();
        let mut still_sleeping = 1;
        for _ in 0..50 {
            still_sleeping = watcher
                .connection()
                .await
                .unwrap()
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' \
                     AND state = 'active'",
                    &[],
                )
                .await
                .unwrap()
                .get::<_, i64>(0);
            if still_sleeping == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            still_sleeping, 0,
            "the sleeping statement was not cancelled"
        );
        watcher.cleanup().await;
        db.cleanup().await;
    })
    .await
    .expect("test deadline");
}
