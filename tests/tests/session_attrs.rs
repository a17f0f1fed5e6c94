//! `target_session_attrs` against a real primary and a streaming standby: every libpq value
//! picks the host it names, from fields and from URLs, in either order of the host list;
//! `prefer-standby` falls back to the primary when no standby answers; a host list with no
//! host of the wanted role fails saying what each host was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use toolkit::testing::TestCluster;
use toolkit::{Database, DatabaseSettings, Error, TargetSessionAttrs};
use toolkit_tests::closed_port;

const TEST_DEADLINE: Duration = Duration::from_secs(120);

/// Whether the server a pooled connection reached is in recovery, and its port.
async fn served_by(db: &Database) -> (bool, u16) {
    let row = db
        .connection()
        .await
        .unwrap()
        .query_one("SELECT pg_is_in_recovery(), inet_server_port()", &[])
        .await
        .unwrap();
    (row.get(0), u16::try_from(row.get::<_, i32>(1)).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_value_picks_its_host_and_prefer_standby_falls_back() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let primary = tokio::task::spawn_blocking(TestCluster::start)
            .await
            .unwrap()
            .expect("start the primary");
        let primary = std::sync::Arc::new(primary);
        let source = primary.clone();
        let standby = tokio::task::spawn_blocking(move || source.standby())
            .await
            .unwrap()
            .expect("start the standby");
        let (p, s) = (primary.port(), standby.port());

        use TargetSessionAttrs::*;
        // (attrs, served when the standby is listed first, served when the primary is)
        let cases = [
            (Any, s, p),
            (ReadWrite, p, p),
            (ReadOnly, s, s),
            (Primary, p, p),
            (Standby, s, s),
            (PreferStandby, s, s),
        ];
        for (attrs, standby_first, primary_first) in cases {
            for (hosts, expected) in [((s, p), standby_first), ((p, s), primary_first)] {
                let url = format!(
                    "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs={attrs}",
                    hosts.0, hosts.1
                );
                let from_url = DatabaseSettings::from_url(&url).unwrap();
                assert_eq!(from_url.target_session_attrs, attrs, "{url}");
                let from_fields = DatabaseSettings {
                    host: format!("127.0.0.1:{},127.0.0.1:{}", hosts.0, hosts.1),
                    target_session_attrs: attrs,
                    ..primary.settings()
                };
                for settings in [from_url, from_fields] {
                    let db = Database::new(DatabaseSettings {
                        min_pool_size: 1,
                        ..settings
                    })
                    .unwrap();
                    let (recovery, port) = served_by(&db).await;
                    assert_eq!(port, expected, "{attrs} with hosts {hosts:?}");
                    assert_eq!(recovery, port == s, "{attrs}");
                    db.cleanup().await;
                }
            }
        }

        // A Database on a standby reads, and its writes fail as writes on a standby do.
        let reader = Database::new(DatabaseSettings {
            host: format!("127.0.0.1:{p},127.0.0.1:{s}"),
            target_session_attrs: PreferStandby,
            ..primary.settings()
        })
        .unwrap();
        let conn = reader.connection().await.unwrap();
        conn.query_one("SELECT 1", &[]).await.unwrap();
        let err = conn
            .batch_execute("CREATE TABLE written_on_a_standby (id int)")
            .await
            .map_err(Error::from)
            .unwrap_err();
        assert!(err.is_read_only(), "{err:?}");
        drop(conn);
        reader.cleanup().await;

        // Primary wanted, only a standby there: the one host's role is the reason.
        let err = DatabaseSettings {
            host: format!("127.0.0.1:{s}"),
            target_session_attrs: Primary,
            ..primary.settings()
        }
        .connect()
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("target_session_attrs=primary")
                && err.to_string().contains(&format!("127.0.0.1:{s} is a standby")),
            "{err}"
        );

        // No standby answers: prefer-standby takes the primary, wherever it is listed, and a
        // host that refuses the connection is passed over.
        let dead = closed_port();
        for host in [
            format!("127.0.0.1:{dead},127.0.0.1:{p}"),
            format!("127.0.0.1:{p},127.0.0.1:{dead}"),
        ] {
            let db = Database::new(DatabaseSettings {
                host: host.clone(),
                target_session_attrs: PreferStandby,
                min_pool_size: 1,
                ..primary.settings()
            })
            .unwrap();
            assert_eq!(served_by(&db).await, (false, p), "{host}");
            db.cleanup().await;
        }
        // A host that takes the TCP connection and then says nothing costs its own
        // `connection_timeout`, not the whole connect: the hosts after it are still tried,
        // and prefer-standby keeps the primary it found before it.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let quiet = silent.local_addr().unwrap().port();
        for (attrs, host) in [
            (PreferStandby, format!("127.0.0.1:{p},127.0.0.1:{quiet}")),
            (ReadWrite, format!("127.0.0.1:{quiet},127.0.0.1:{p}")),
            (Primary, format!("127.0.0.1:{quiet},127.0.0.1:{p}")),
        ] {
            let settings = DatabaseSettings {
                host,
                target_session_attrs: attrs,
                connection_timeout: Duration::from_millis(500),
                ..primary.settings()
            };
            let client = settings
                .connect()
                .await
                .unwrap_or_else(|err| panic!("{attrs}: {err}"));
            let port: i32 = client
                .query_one("SELECT inet_server_port()", &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(port, i32::from(p), "{attrs}");
        }
        drop(silent);

        let stopping = std::sync::Arc::new(standby);
        let stopped = stopping.clone();
        tokio::task::spawn_blocking(move || stopped.stop())
            .await
            .unwrap()
            .expect("stop the standby");
        let db = Database::new(DatabaseSettings {
            host: format!("127.0.0.1:{s},127.0.0.1:{p}"),
            target_session_attrs: PreferStandby,
            min_pool_size: 1,
            ..primary.settings()
        })
        .unwrap();
        assert_eq!(served_by(&db).await, (false, p));
        db.cleanup().await;

        // Standby wanted, only a primary (and a dead host) there: the error says what each
        // host was.
        let settings = DatabaseSettings {
            host: format!("127.0.0.1:{p},127.0.0.1:{dead}"),
            target_session_attrs: Standby,
            ..primary.settings()
        };
        let err = settings.connect().await.unwrap_err();
        let message = err.to_string();
        assert!(err.is_connection_lost(), "{err:?}");
        assert!(
            message.contains("target_session_attrs=standby")
                && message.contains(&format!("127.0.0.1:{p} is a primary"))
                && message.contains(&format!("127.0.0.1:{dead}:")),
            "{message}"
        );
        drop(stopping);
    })
    .await
    .expect("test deadline");
}

#[test]
fn a_database_with_replicas_must_write_to_its_primary() {
    for attrs in [
        TargetSessionAttrs::ReadOnly,
        TargetSessionAttrs::Standby,
        TargetSessionAttrs::PreferStandby,
    ] {
        let err = Database::new(DatabaseSettings {
            target_session_attrs: attrs,
            replicas: vec!["replica1".into()],
            ..DatabaseSettings::default()
        })
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidSettings {
                    field: "target_session_attrs",
                    ..
                }
            ),
            "{attrs}: {err:?}"
        );
        // Without replicas it is a Database that reads.
        Database::new(DatabaseSettings {
            target_session_attrs: attrs,
            ..DatabaseSettings::default()
        })
        .unwrap();
    }
    for attrs in [
        TargetSessionAttrs::Any,
        TargetSessionAttrs::ReadWrite,
        TargetSessionAttrs::Primary,
    ] {
        Database::new(DatabaseSettings {
            target_session_attrs: attrs,
            replicas: vec!["replica1".into()],
            ..DatabaseSettings::default()
        })
        .unwrap();
    }
    let err = DatabaseSettings::from_url("postgres://h1,h2/db?target_session_attrs=prefer_standby")
        .unwrap_err();
    assert!(err.to_string().contains("prefer-standby"), "{err}");
}
