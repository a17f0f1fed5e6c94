//! Opening connections: one connect-with-deadline used by the pool and by `ping_postgres`, and
//! the bb8 manager that tells bb8 which returned connections it must discard.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::dial::{connect, Dial};
use super::lending::Progress;
use super::status::Counters;
use super::tls::Connector;
use crate::error::{ConnectFailure, DisplayChain};
use crate::observe::Observe;
use crate::statement_cache::StatementCache;

/// What the toolkit knows about one pooled connection beyond the driver's closed flag. Shared
/// (behind an `Arc`) with the in-doubt guards of transactions and bulk inserts.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    /// Set before anything that opens a transaction (or session state the toolkit must undo) is
    /// sent, cleared only once the server confirmed its end.
    pub(crate) in_doubt: AtomicBool,
    /// Never cleared: the connection was given up (a client deadline expired, a cancel was sent
    /// for its backend, or it was lost). Nothing more is sent on it and it is discarded.
    pub(crate) abandoned: AtomicBool,
    /// Returned where its discard could not start a replacement (outside a runtime, or while
    /// the runtime shuts down): bb8 keeps it idle and the next checkout discards it.
    pub(crate) parked: AtomicBool,
    /// Decided once, where a discard can start a replacement: bb8 must drop it on return. bb8
    /// reads nothing else, so a connection that turns doomed between our decision and bb8's
    /// (closed by a dying runtime, a pool closed meanwhile) is kept and caught by the next
    /// checkout instead of discarded where bb8's replacement spawn would panic or be lost.
    pub(crate) discard: AtomicBool,
}

impl Marks {
    /// Must not be handed out again.
    pub(crate) fn unusable(&self) -> bool {
        // SeqCst: pairs with the timed-out statement's store-then-count in `Session::guard`.
        self.in_doubt.load(Ordering::Acquire) || self.abandoned.load(Ordering::SeqCst)
    }
}

/// One pooled server connection and its per-connection state.
pub(crate) struct PgConnection {
    pub(crate) client: Client,
    pub(crate) marks: Arc<Marks>,
    pub(crate) statements: StatementCache,
    pub(crate) limits: Limits,
    /// When a single statement lent this connection last started or finished (pipelining).
    pub(crate) progress: Progress,
    /// Statements running on this connection right now: more than one only when pipelined.
    pub(crate) in_flight: AtomicUsize,
    /// Past this (`max_lifetime`) it is replaced when it comes back, or at its next checkout if
    /// it expired while idle; `None` never.
    pub(crate) expires: Option<Instant>,
    pub(crate) pool: Arc<Shared>,
}

impl PgConnection {
    /// Must not be handed out again: checked at every checkout and when it comes back.
    pub(crate) fn doomed(&self) -> bool {
        self.marks.unusable()
            || self.marks.parked.load(Ordering::Acquire)
            || self.client.is_closed()
            || self.pool.is_closed()
            || self.expires.is_some_and(|at| Instant::now() >= at)
    }

    /// Tells bb8 to drop it on return (see [`Marks::discard`]), and counts and reports it.
    pub(crate) fn condemn(&self) {
        let (reason, trouble) = self.doom_reason();
        Counters::count(&self.pool.counters.discarded);
        crate::observe::discarded(&self.pool.target, reason, trouble);
        self.marks.parked.store(false, Ordering::Release);
        self.marks.discard.store(true, Ordering::Release);
    }

    /// Why it is discarded, and whether that means something went wrong.
    fn doom_reason(&self) -> (&'static str, bool) {
        if self.marks.abandoned.load(Ordering::Acquire) {
            (
                "abandoned after a client-side timeout or a lost connection",
                true,
            )
        } else if self.marks.in_doubt.load(Ordering::Acquire) {
            (
                "in doubt: a transaction or bulk insert did not confirm its end",
                true,
            )
        } else if self.client.is_closed() {
            ("closed by the server or the network", true)
        } else if self.pool.is_closed() {
            ("the pool was closed", false)
        } else {
            ("older than max_lifetime", false)
        }
    }
}

/// Client-side limits copied from the settings into every connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) query: Option<Duration>,
    /// Bound on sending a cancel request for an abandoned statement.
    pub(crate) cancel: Duration,
    /// `StatementMode::Unnamed`: no named statement on the server.
    pub(crate) unnamed: bool,
    /// What a `BEGIN` the toolkit sends must carry (`DatabaseSettings::begin_suffix`).
    pub(crate) idle_in_transaction_local: Option<Duration>,
}

/// State shared by the pool's manager, every [`Pool`](super::Pool) handle and every connection.
pub(crate) struct Shared {
    /// The most recent connect failure, kept until a connect succeeds, so a pool timeout can
    /// say why no connection could be opened (bb8 itself only reports "timed out").
    /// The most recent connect failure and when it happened, kept after a later success too:
    /// a checkout that waited through an outage and timed out just after the server came back
    /// still says what it waited for (see `last_error_since`).
    last_connect_error: Mutex<Option<(Arc<ConnectFailure>, Instant)>>,
    /// Woken when a connect failed in a way no retry cures (TLS refused): bb8 would retry it
    /// until `pool_timeout`, so waiters stop waiting instead.
    pub(crate) hopeless: tokio::sync::Notify,
    closed: AtomicBool,
    pub(crate) target: String,
    /// Connections currently lent to single statements, which other single statements may
    /// join (pipelining) when every connection is busy; see `lending.rs`.
    pub(crate) lent: Mutex<Vec<Weak<super::Connection>>>,
    pub(crate) pipeline_depth: usize,
    /// One permit per connection, handed to waiters in arrival order. bb8 wakes one waiter
    /// per returned connection but lets the returning task take it back first, so under
    /// contention most wake-ups find nothing; a fair gate in front of bb8 hands each freed
    /// slot straight to the longest waiter, and bb8 then always has an idle connection.
    pub(crate) gate: Arc<tokio::sync::Semaphore>,
    /// Connections given up (lost, or abandoned after a deadline): read-replica routing skips
    /// a replica whose count grew since it was last found well.
    pub(crate) lost: std::sync::atomic::AtomicU64,
    /// The last connect attempt failed: read-replica routing skips such a replica at once
    /// instead of waiting on its pool.
    pub(crate) failing: AtomicBool,
    /// Statements that joined a busy connection instead of waiting: a pool metric.
    pub(crate) pipelined: std::sync::atomic::AtomicU64,
    /// How to open a connection, for the pool and outside it (learning statements in
    /// `Unnamed` mode).
    dial: Dial,
    /// Also the one cancel requests go through: a server that takes only TLS takes only TLS
    /// cancel requests too.
    pub(crate) tls: Connector,
    pub(crate) connect_timeout: Duration,
    /// Statements learned in `Unnamed` mode.
    pub(crate) learned: super::unnamed::Learned,
    /// What `Pool::status` counts.
    pub(crate) counters: Counters,
    /// The endpoint spans name, and the tracing settings.
    pub(crate) observe: Observe,
}

impl Shared {
    pub(crate) fn new(
        target: String,
        pipeline_depth: usize,
        max_size: u32,
        dial: Dial,
        tls: Connector,
        connect_timeout: Duration,
        observe: Observe,
    ) -> Self {
        Shared {
            counters: Counters::default(),
            observe,
            dial,
            tls,
            connect_timeout,
            learned: super::unnamed::Learned::default(),
            last_connect_error: Mutex::new(None),
            hopeless: tokio::sync::Notify::new(),
            closed: AtomicBool::new(false),
            target,
            lent: Mutex::new(Vec::new()),
            pipeline_depth: pipeline_depth.max(1),
            pipelined: std::sync::atomic::AtomicU64::new(0),
            lost: std::sync::atomic::AtomicU64::new(0),
            failing: AtomicBool::new(false),
            gate: Arc::new(tokio::sync::Semaphore::new(
                usize::try_from(max_size).unwrap_or(usize::MAX),
            )),
        }
    }

    pub(crate) fn record(&self, failure: Arc<ConnectFailure>) {
        self.failing.store(true, Ordering::Release);
        let permanent = failure.is_permanent();
        if let Ok(mut slot) = self.last_connect_error.lock() {
            *slot = Some((failure, Instant::now()));
        }
        if permanent {
            self.hopeless.notify_waiters();
        }
    }

    /// The most recent connect failure, however old.
    pub(crate) fn last_error(&self) -> Option<Arc<ConnectFailure>> {
        self.last_error_since(None)
    }

    /// The most recent connect failure, if it happened at or after `since`.
    pub(crate) fn last_error_since(&self, since: Option<Instant>) -> Option<Arc<ConnectFailure>> {
        let slot = self.last_connect_error.lock().ok()?;
        let (failure, at) = slot.as_ref()?;
        since
            .is_none_or(|since| *at >= since)
            .then(|| failure.clone())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Opens one connection with the pool's settings, bounded by `connection_timeout`.
    pub(crate) async fn open(&self) -> Result<Client, ConnectFailure> {
        connect(&self.dial, &self.tls, self.connect_timeout).await
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.gate.close();
    }
}

pub(crate) struct Manager {
    pub(crate) shared: Arc<Shared>,
    pub(crate) statement_cache_size: usize,
    pub(crate) limits: Limits,
    pub(crate) max_lifetime: Option<Duration>,
    /// `pool_timeout`: how long one connect keeps retrying, as bb8 would.
    pub(crate) give_up: Duration,
}

impl bb8::ManageConnection for Manager {
    type Connection = PgConnection;
    // Shared so that the same error can go to bb8 and stay in `Shared` for the caller.
    type Error = Arc<ConnectFailure>;

    async fn connect(&self) -> Result<PgConnection, Self::Error> {
        // We retry here rather than let bb8 do it: bb8 doubles its wait between attempts up
        // to half of `pool_timeout` (15 s by default), so after a failover or a restart the
        // pool would find the server again only that much later. Ours stays under a second,
        // and gives up once `pool_timeout` has passed, when bb8 gives up too.
        let started = Instant::now();
        let mut delay = RECONNECT_FIRST;
        loop {
            if self.shared.is_closed() {
                // bb8 replenishes after a discard; a closed pool must not open anything.
                return Err(Arc::new(ConnectFailure::Closed));
            }
            match self.connect_once().await {
                Ok(conn) => return Ok(conn),
                Err(err) if err.is_permanent() || started.elapsed() + delay >= self.give_up => {
                    return Err(err)
                }
                Err(_) => {
                    // Equal jitter: pools that lost the same server do not return in step.
                    tokio::time::sleep(delay.mul_f64(0.5 + fastrand::f64() / 2.0)).await;
                    delay = (delay * 2).min(RECONNECT_MAX);
                }
            }
        }
    }

    async fn is_valid(&self, conn: &mut PgConnection) -> Result<(), Self::Error> {
        conn.client
            .simple_query("")
            .await
            .map(|_| ())
            .map_err(|e| Arc::new(ConnectFailure::Driver(e)))
    }

    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        // A discard makes bb8 spawn a replacement, so it happens only where we decided it can
        // (`Marks::discard`); anything else doomed is kept idle and discarded at checkout.
        conn.marks.discard.load(Ordering::Acquire)
    }
}

/// The first wait between connect attempts of one pooled connection, doubled per failure.
const RECONNECT_FIRST: Duration = Duration::from_millis(50);
/// The longest wait between connect attempts: how late, at most, a pool finds a server that
/// came back (or a promoted standby).
const RECONNECT_MAX: Duration = Duration::from_secs(1);

impl Manager {
    async fn connect_once(&self) -> Result<PgConnection, Arc<ConnectFailure>> {
        match self.shared.open().await {
            Ok(client) => {
                self.shared.failing.store(false, Ordering::Release);
                Counters::count(&self.shared.counters.connects);
                Ok(PgConnection {
                    client,
                    marks: Arc::default(),
                    statements: StatementCache::new(self.statement_cache_size),
                    limits: self.limits,
                    progress: Progress::default(),
                    in_flight: AtomicUsize::new(0),
                    expires: self.max_lifetime.map(|limit| Instant::now() + limit),
                    pool: self.shared.clone(),
                })
            }
            Err(err) => {
                Counters::count(&self.shared.counters.connect_failures);
                crate::observe::connect_failed(&self.shared.target, &DisplayChain(&err));
                let err = Arc::new(err);
                self.shared.record(err.clone());
                Err(err)
            }
        }
    }
}
