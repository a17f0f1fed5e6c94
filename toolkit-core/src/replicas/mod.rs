//! Read replicas: one lazily created pool per replica, health from a background probe and
//! from failures seen on the way, round-robin choice among the healthy, and read-your-writes
//! (a read after a write waits until the chosen replica replayed the primary's position).

mod lsn;
mod routing;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

pub use lsn::ConsistencyToken;
pub(crate) use lsn::{parse_lsn, Tracker, WriteMark};

use tokio_postgres::{SimpleQueryMessage, SimpleQueryRow};

use crate::pool::{Connector, Lent, Pool};
use crate::{DatabaseSettings, Error, PoolStatus, Result};

/// The replicas of one `Database`.
pub(crate) struct Replicas {
    nodes: Vec<Node>,
    next: AtomicUsize,
    wait: Duration,
    max_lag: Option<Duration>,
    interval: Duration,
    probing: AtomicBool,
    /// Counts `cleanup`s: a probe started before one ends instead of re-opening the pools.
    generation: AtomicU64,
    /// Reads the primary served because no replica could (none healthy, or none caught up
    /// within `replica_wait`).
    pub(crate) fallbacks: AtomicU64,
}

struct Node {
    entry: String,
    settings: DatabaseSettings,
    tls: Connector,
    /// Created by the first read that needs it, emptied by `cleanup`, created again after.
    pool: std::sync::RwLock<Option<Pool>>,
    creating: tokio::sync::Mutex<()>,
    /// Set by the probe (reachable, replaying, not lagging) and cleared by failures seen by
    /// reads; a node starts healthy, so reads use it before the first probe.
    healthy: AtomicBool,
    /// The highest replay position seen: reads waiting for less need not ask.
    replayed: AtomicU64,
    /// The pool's count of given-up connections when the probe last found the node well: a
    /// higher count means reads lost connections since, so the node is skipped until probed.
    lost_seen: AtomicU64,
    lag_ms: AtomicU64,
    reads: AtomicU64,
}

/// How one node of a `Database` is doing, from [`Database::node_status`].
///
/// [`Database::node_status`]: crate::Database::node_status
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStatus {
    /// `host` or `host:port` as configured (for the primary: its host list).
    pub address: String,
    /// True for the primary.
    pub primary: bool,
    /// Whether reads are sent here now (the primary always is).
    pub healthy: bool,
    /// Replication lag the last probe saw (replicas only).
    pub lag: Option<Duration>,
    /// Reads served by this node (the primary: reads no replica could serve).
    pub reads: u64,
    /// Its pool's [`Pool::status`], once the pool exists.
    pub pool: Option<PoolStatus>,
}

impl Replicas {
    pub(crate) fn new(settings: &DatabaseSettings, tls: &Connector) -> Option<Replicas> {
        if settings.replicas.is_empty() {
            return None;
        }
        let nodes = settings
            .replicas
            .iter()
            .map(|entry| Node {
                entry: entry.clone(),
                settings: settings.for_replica(entry),
                tls: tls.clone(),
                pool: std::sync::RwLock::new(None),
                creating: tokio::sync::Mutex::new(()),
                healthy: AtomicBool::new(true),
                replayed: AtomicU64::new(0),
                lost_seen: AtomicU64::new(0),
                lag_ms: AtomicU64::new(0),
                reads: AtomicU64::new(0),
            })
            .collect();
        Some(Replicas {
            nodes,
            next: AtomicUsize::new(0),
            wait: settings.replica_wait,
            max_lag: settings.max_replica_lag,
            interval: settings.replica_probe_interval,
            probing: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        })
    }

    /// A connection for one read on a replica that has replayed `position` (0: any), or
    /// `None` when the primary must serve it. `any` takes an unhealthy node rather than none
    /// (`Database::replica`).
    pub(crate) async fn lease(&self, position: u64, any: bool) -> Option<Lent> {
        let node = self.choose(any)?;
        let pool = node.pool().await.ok()?;
        let deadline = tokio::time::Instant::now() + self.wait;
        let mut checkout = std::pin::pin!(pool.get_for_statement());
        // An idle connection is there at the first poll: no timer armed for the usual case.
        let first = std::future::poll_fn(|cx| Poll::Ready(checkout.as_mut().poll(cx))).await;
        let outcome = match first {
            Poll::Ready(outcome) => outcome,
            // A replica that cannot lend a connection quickly (down, or saturated) hands the
            // read to the primary instead of holding it.
            Poll::Pending => match tokio::time::timeout_at(deadline, checkout).await {
                Ok(outcome) => outcome,
                Err(_) => return None,
            },
        };
        let Ok(lent) = outcome else {
            node.healthy.store(false, Ordering::Release);
            return None;
        };
        if position > node.replayed.load(Ordering::Acquire)
            && !node.wait_for(&lent, position, deadline).await
        {
            return None;
        }
        node.reads.fetch_add(1, Ordering::Relaxed);
        Some(lent)
    }

    fn choose(&self, any: bool) -> Option<&Node> {
        let n = self.nodes.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.nodes[(start + i) % n])
            .find(|node| node.usable())
            .or_else(|| any.then(|| &self.nodes[start % n]))
    }

    /// Starts the background probe once; it ends with the `Database`.
    pub(crate) fn start_probing(self: &Arc<Self>) {
        // Every read passes here: a load, not a write, once the probe runs.
        if self.probing.load(Ordering::Acquire) || self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.probing.store(false, Ordering::Release);
            return;
        };
        let weak: Weak<Replicas> = Arc::downgrade(self);
        let interval = self.interval;
        let generation = self.generation.load(Ordering::Acquire);
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(replicas) = weak.upgrade() else {
                    return;
                };
                for node in &replicas.nodes {
                    // After `cleanup` the next read starts a new probe; this one must not open
                    // the pools it closed.
                    if replicas.generation.load(Ordering::Acquire) != generation {
                        return;
                    }
                    node.probe(replicas.max_lag).await;
                }
            }
        });
    }

    pub(crate) fn status(&self) -> Vec<NodeStatus> {
        self.nodes
            .iter()
            .map(|node| NodeStatus {
                address: node.entry.clone(),
                primary: false,
                healthy: node.usable(),
                lag: Some(Duration::from_millis(node.lag_ms.load(Ordering::Relaxed))),
                reads: node.reads.load(Ordering::Relaxed),
                pool: node.with_pool(Pool::status),
            })
            .collect()
    }

    /// Closes every replica pool (`Database::cleanup`); the next read opens them again, and
    /// starts a new probe.
    pub(crate) async fn close(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.probing.store(false, Ordering::Release);
        for node in &self.nodes {
            node.close().await;
        }
    }

    /// Any replica, for writes sent to one on purpose (they fail as read-only).
    pub(crate) async fn any_pool(&self) -> Result<Pool> {
        let node = self
            .choose(true)
            .ok_or_else(|| Error::settings("replicas", "no replica is configured"))?;
        node.pool().await
    }
}

impl Node {
    fn usable(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
            && self
                .with_pool(|pool| {
                    !pool.connects_failing()
                        && pool.lost_connections() <= self.lost_seen.load(Ordering::Acquire)
                })
                .unwrap_or(true)
    }

    /// `f` of the node's open pool, if it has one.
    fn with_pool<R>(&self, f: impl FnOnce(&Pool) -> R) -> Option<R> {
        let slot = self.pool.read().ok()?;
        slot.as_ref().filter(|pool| !pool.is_closed()).map(f)
    }

    async fn pool(&self) -> Result<Pool> {
        if let Some(pool) = self.with_pool(Pool::clone) {
            return Ok(pool);
        }
        let _creating = self.creating.lock().await;
        if let Some(pool) = self.with_pool(Pool::clone) {
            return Ok(pool);
        }
        let pool = Pool::create(&self.settings, self.tls.clone()).await?;
        if let Ok(mut slot) = self.pool.write() {
            *slot = Some(pool.clone());
        }
        Ok(pool)
    }

    async fn close(&self) {
        let _creating = self.creating.lock().await;
        let taken = self.pool.write().ok().and_then(|mut slot| slot.take());
        if let Some(pool) = taken {
            pool.close().await;
        }
        // What was seen of the closed pool says nothing of the next one.
        self.lost_seen.store(0, Ordering::Release);
        self.healthy.store(true, Ordering::Release);
    }

    /// Asks the replica how far it replayed until it reaches `position`, polling, until
    /// `deadline`.
    async fn wait_for(&self, lent: &Lent, position: u64, deadline: tokio::time::Instant) -> bool {
        let mut pause = Duration::from_micros(500);
        loop {
            let replayed = match tokio::time::timeout_at(deadline, replay_position(lent)).await {
                Ok(Some(replayed)) => replayed,
                Ok(None) => {
                    self.healthy.store(false, Ordering::Release);
                    return false;
                }
                Err(_) => {
                    // The answer may still come: nothing else may be sent on this connection.
                    lent.connection().abandon();
                    return false;
                }
            };
            self.replayed.fetch_max(replayed, Ordering::AcqRel);
            if replayed >= position {
                return true;
            }
            if tokio::time::Instant::now() + pause >= deadline {
                return false;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    async fn probe(&self, max_lag: Option<Duration>) {
        let limit = self.settings.connection_timeout;
        let outcome = tokio::time::timeout(limit, async {
            let pool = self.pool().await?;
            let conn = pool.get().await?;
            let rows = conn
                .simple_query(
                    "SELECT pg_is_in_recovery(), \
                     CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END, \
                     coalesce(pg_last_wal_replay_lsn(), '0/0')::text, \
                     CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
                     ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()) \
                     * 1000, 0) END::bigint",
                )
                .await?;
            pool.server_answered();
            Ok::<_, Error>((rows, pool.lost_connections()))
        })
        .await;
        let Ok(Ok((rows, lost))) = outcome else {
            self.healthy.store(false, Ordering::Release);
            return;
        };
        let row = first_row(&rows);
        let field = |i: usize| row.and_then(|row| row.get(i));
        let in_recovery = field(0) == Some("t");
        let paused = field(1) == Some("t");
        let replayed = field(2).and_then(parse_lsn).unwrap_or(0);
        let lag_ms: u64 = field(3).and_then(|ms| ms.parse().ok()).unwrap_or(0);
        self.replayed.fetch_max(replayed, Ordering::AcqRel);
        self.lag_ms.store(lag_ms, Ordering::Relaxed);
        let lagging = max_lag.is_some_and(|max| u128::from(lag_ms) > max.as_millis());
        // A replica that left recovery was promoted: its data now diverges from the primary's.
        let well = in_recovery && !paused && !lagging;
        if well {
            self.lost_seen.store(lost, Ordering::Release);
        }
        self.healthy.store(well, Ordering::Release);
    }
}

/// The replica's replay position, asked on the read's own connection.
async fn replay_position(lent: &Lent) -> Option<u64> {
    let rows = lent
        .connection()
        .simple_query("SELECT coalesce(pg_last_wal_replay_lsn(), '0/0')::text")
        .await
        .ok()?;
    lsn_of(&rows)
}

/// The row of a one-row simple query.
fn first_row(rows: &[SimpleQueryMessage]) -> Option<&SimpleQueryRow> {
    rows.iter().find_map(|message| match message {
        SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    })
}

/// The WAL position a one-row, one-column simple query returned as text.
pub(crate) fn lsn_of(rows: &[SimpleQueryMessage]) -> Option<u64> {
    first_row(rows)?.get(0).and_then(parse_lsn)
}
