//! Helpers shared by the fault suite (`tests/tests/fault_*.rs`): a test entity, a small random
//! number generator, admin queries on `pg_stat_activity`, clusters of a test's own.
#![allow(dead_code)] // each fault_* binary uses a different subset

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use toolkit::testing::{TestCluster, TestDatabase};
use toolkit::{Database, DatabaseSettings, Entity, Error, Repository};
use toolkit_tests::proxy::Proxy;

/// The row every fault test writes: a generated key, a `tag` naming the operation that wrote
/// it (never unique: the audit must see a duplicate if one is ever written), a value.
#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "items")]
pub(crate) struct Item {
    #[entity(primary_key, generated)]
    pub(crate) id: i64,
    pub(crate) tag: String,
    pub(crate) value: i64,
    pub(crate) payload: String,
}

pub(crate) const ITEMS: &str = "CREATE TABLE items (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tag text NOT NULL,
    value bigint NOT NULL,
    payload text NOT NULL
)";

pub(crate) fn item(tag: impl Into<String>, value: i64) -> Item {
    Item {
        id: 0,
        tag: tag.into(),
        value,
        payload: String::new(),
    }
}

/// xorshift64*: enough randomness for fault schedules without a dependency. Seeded from the
/// clock unless `FAULT_SEED` is set; the seed is printed so a failure can be replayed.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(stream: u64) -> Rng {
        let seed = std::env::var("FAULT_SEED")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0x9E37_79B9, |d| d.as_secs() ^ u64::from(d.subsec_nanos()))
            });
        if stream == 0 {
            eprintln!("FAULT_SEED={seed}");
        }
        Rng::seeded(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    pub(crate) fn seeded(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `0..n` as a usize.
    pub(crate) fn index(&mut self, n: usize) -> usize {
        let n64 = u64::try_from(n).unwrap_or(u64::MAX);
        usize::try_from(self.below(n64)).unwrap_or(0)
    }

    /// True with probability `percent`/100.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// An `application_name` no other test uses, to find this test's backends on the server.
pub(crate) fn unique_app(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "fault_{test}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Backend pids of `application_name = app`, seen from an admin client.
pub(crate) async fn pids_of(admin: &tokio_postgres::Client, app: &str) -> Vec<i32> {
    admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid",
            &[&app],
        )
        .await
        .expect("list backends")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Terminates every backend of `app`; returns their pids once the server no longer lists them.
pub(crate) async fn terminate_all(admin: &tokio_postgres::Client, app: &str) -> Vec<i32> {
    let pids = pids_of(admin, app).await;
    for pid in &pids {
        let done: bool = admin
            .query_one("SELECT pg_terminate_backend($1)", &[pid])
            .await
            .expect("terminate")
            .get(0);
        assert!(done, "pg_terminate_backend({pid})");
    }
    wait_until(
        Duration::from_secs(10),
        "terminated backends to exit",
        || async {
            let left = pids_of(admin, app).await;
            !left.iter().any(|pid| pids.contains(pid))
        },
    )
    .await;
    pids
}

/// Polls `condition` every 20 ms until it holds; panics naming `what` after `limit`.
pub(crate) async fn wait_until<F, Fut>(limit: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if condition().await {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A cluster of this test's own (it may be stopped, restarted, or its backends killed).
pub(crate) async fn own_cluster() -> TestCluster {
    tokio::task::spawn_blocking(TestCluster::start)
        .await
        .expect("cluster start panicked")
        .expect("start a throwaway cluster")
}

/// A fresh database on the shared cluster with the `items` table created.
pub(crate) async fn items_db() -> TestDatabase {
    let tdb = TestDatabase::create().await.expect("create test database");
    tdb.connect()
        .await
        .expect("admin connect")
        .batch_execute(ITEMS)
        .await
        .expect("create items");
    tdb
}

/// A proxy in front of the server `tdb` lives on, and settings that go through it.
pub(crate) async fn proxied(tdb: &TestDatabase) -> (Proxy, DatabaseSettings) {
    let settings = tdb.settings();
    let upstream = format!("{}:{}", settings.host, settings.port)
        .parse()
        .expect("loopback address");
    let proxy = Proxy::start(upstream).await.expect("start proxy");
    let settings = DatabaseSettings {
        host: "127.0.0.1".into(),
        port: proxy.port(),
        ..settings
    };
    (proxy, settings)
}

/// Two rows in one transaction (`BEGIN`, two creates, `COMMIT`).
// Not `run_in_transaction`: a future holding its async closure cannot be proven `Send` for
// `tokio::spawn` (rust-lang/rust#110338), so spawned tasks spell the transaction out.
pub(crate) async fn create_pair(
    db: &Database,
    a: &str,
    b: &str,
    value: i64,
) -> Result<(i64, i64), Error> {
    let tx = db.transaction().await?;
    let repo = Repository::<Item>::new(&tx);
    let first = repo.create(&item(a, value)).await?;
    let second = repo.create(&item(b, value)).await?;
    tx.commit().await?;
    Ok((first.id, second.id))
}

/// `pg_backend_pid()` of a checkout from `db`.
pub(crate) async fn backend_pid(db: &Database) -> i32 {
    db.connection()
        .await
        .expect("checkout")
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0)
}

/// Rows of `items` per tag, read on an admin connection.
pub(crate) async fn tags(
    admin: &tokio_postgres::Client,
) -> std::collections::HashMap<String, Vec<(i64, i64)>> {
    let mut map: std::collections::HashMap<String, Vec<(i64, i64)>> =
        std::collections::HashMap::new();
    for row in admin
        .query("SELECT tag, id, value FROM items ORDER BY id", &[])
        .await
        .expect("read items")
    {
        map.entry(row.get(0))
            .or_default()
            .push((row.get(1), row.get(2)));
    }
    map
}

/// What an audit may find: for each tag the states callers leave possible (`None`: absent),
/// and the tags written together by one transaction.
#[derive(Debug, Default)]
pub(crate) struct Expected {
    pub(crate) possible: std::collections::HashMap<String, Vec<Option<i64>>>,
    /// Tags created together in one transaction: both present or both absent.
    pub(crate) pairs: Vec<(String, String)>,
}

impl Expected {
    /// The tag can only be in one of `states` now.
    pub(crate) fn set(&mut self, tag: &str, states: Vec<Option<i64>>) {
        self.possible.insert(tag.to_owned(), states);
    }

    /// The tag may also be in `state` (an outcome the caller could not learn).
    pub(crate) fn widen(&mut self, tag: &str, state: Option<i64>) {
        let entry = self.possible.entry(tag.to_owned()).or_default();
        if !entry.contains(&state) {
            entry.push(state);
        }
    }

    pub(crate) fn merge(&mut self, other: Expected) {
        self.possible.extend(other.possible);
        self.pairs.extend(other.pairs);
    }

    /// Checks the table against what callers were told: every tag stored once and written by
    /// someone, in one of its possible states, transactions all or nothing. Returns how many
    /// tags had exactly one possible state, how many were in doubt, and how many rows are stored.
    pub(crate) async fn audit(&self, admin: &tokio_postgres::Client) -> (usize, usize, usize) {
        let stored = tags(admin).await;
        for (tag, rows) in &stored {
            assert!(
                rows.len() == 1,
                "tag {tag} stored {} times: {rows:?}",
                rows.len()
            );
            assert!(
                self.possible.contains_key(tag),
                "row {tag} that nobody wrote"
            );
        }
        let (mut exact, mut in_doubt) = (0, 0);
        for (tag, states) in &self.possible {
            let actual = stored.get(tag).map(|rows| rows[0].1);
            assert!(
                states.contains(&actual),
                "tag {tag}: stored {actual:?}, callers were told {states:?} (more than one state \
                 is allowed only where the caller could not learn the outcome: a \
                 connection-lost or timeout failure, or a cancellation)"
            );
            if states.len() == 1 {
                exact += 1;
            } else {
                in_doubt += 1;
            }
        }
        for (a, b) in &self.pairs {
            assert_eq!(
                stored.contains_key(a),
                stored.contains_key(b),
                "transaction {a}/{b} half-applied"
            );
        }
        (exact, in_doubt, stored.len())
    }
}
