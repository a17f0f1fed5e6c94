//! The connection pool: bb8 with a manager of our own around bb8-postgres, so that we can
//! see connect errors, mark connections in doubt, and skip the health-check round trip.

mod lending;

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bb8_postgres::PostgresConnectionManager;
use tokio_postgres::{Client, NoTls};

use crate::error::{ConnectFailure, DisplayChain};
use crate::statement_cache::StatementCache;
use crate::{DatabaseSettings, Error, PoolErrorKind, Result};

/// One pooled server connection and what the toolkit knows about it.
pub(crate) struct PgConnection {
    pub(crate) client: Client,
    /// Set before anything that opens a transaction is sent and cleared only once the server
    /// confirmed its end. A connection returned while this is set is discarded, never reused:
    /// the pool cannot tell whether a cancelled `BEGIN`/`COMMIT` reached the server.
    pub(crate) in_doubt: AtomicBool,
    pub(crate) statements: StatementCache,
    deadlines: Deadlines,
    progress: lending::Progress,
}

/// Client-side limits copied from the settings into every connection.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    query: Option<Duration>,
    cancel: Duration,
}

/// State shared by the pool's manager and every [`Pool`] handle.
struct Shared {
    /// The most recent connect failure, kept until a connect succeeds, so a pool timeout can
    /// say why no connection could be opened (bb8 itself only reports "timed out").
    last_connect_error: Mutex<Option<Arc<ConnectFailure>>>,
    closed: AtomicBool,
    target: String,
    /// Connections currently lent to single statements, which other single statements may
    /// join (pipelining) when every connection is busy; see `lending.rs`.
    lent: Mutex<Vec<std::sync::Weak<Connection>>>,
    pipeline_depth: usize,
    /// One permit per connection, handed to waiters in arrival order. bb8 wakes one waiter
    /// per returned connection but lets the returning task take it back first, so under
    /// contention most wake-ups find nothing; a fair gate in front of bb8 hands each freed
    /// slot straight to the longest waiter, and bb8 then always has an idle connection.
    gate: Arc<tokio::sync::Semaphore>,
    /// Statements that joined a busy connection instead of waiting: a pool metric.
    pipelined: std::sync::atomic::AtomicU64,
}

impl Shared {
    fn record(&self, outcome: Option<Arc<ConnectFailure>>) {
        if let Ok(mut slot) = self.last_connect_error.lock() {
            *slot = outcome;
        }
    }

    fn last_error(&self) -> Option<Arc<ConnectFailure>> {
        self.last_connect_error
            .lock()
            .ok()
            .and_then(|slot| slot.clone())
    }
}

pub(crate) struct Manager {
    inner: PostgresConnectionManager<NoTls>,
    shared: Arc<Shared>,
    statement_cache_size: usize,
    deadlines: Deadlines,
    /// Bound on one whole connect: TCP, startup and authentication. The driver's own
    /// `connect_timeout` covers only the TCP connect, so a server (or network) that accepts the
    /// socket and then goes silent would hold a pool slot for as long as the kernel keeps it.
    connect_timeout: Duration,
}

impl bb8::ManageConnection for Manager {
    type Connection = PgConnection;
    // Shared so that the same error can go to bb8 and stay in `Shared` for the caller.
    type Error = Arc<ConnectFailure>;

    async fn connect(&self) -> Result<PgConnection, Self::Error> {
        let connected = tokio::time::timeout(self.connect_timeout, self.inner.connect())
            .await
            .map_err(|_| ConnectFailure::TimedOut(self.connect_timeout))
            .and_then(|connected| connected.map_err(ConnectFailure::Driver));
        match connected {
            Ok(client) => {
                self.shared.record(None);
                Ok(PgConnection {
                    client,
                    in_doubt: AtomicBool::new(false),
                    statements: StatementCache::new(self.statement_cache_size),
                    deadlines: self.deadlines,
                    progress: lending::Progress::default(),
                })
            }
            Err(err) => {
                let err = Arc::new(err);
                self.shared.record(Some(err.clone()));
                Err(err)
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
        conn.in_doubt.load(Ordering::Acquire)
            || conn.client.is_closed()
            || self.shared.closed.load(Ordering::Acquire)
    }
}

/// A handle to the connection pool. Cheap to clone; all clones share the same connections.
#[derive(Clone)]
pub struct Pool {
    inner: bb8::Pool<Manager>,
    shared: Arc<Shared>,
    timeout: Duration,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state();
        f.debug_struct("Pool")
            .field("target", &self.shared.target)
            .field("connections", &state.connections)
            .field("idle", &state.idle_connections)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Pool {
    /// Opens `min_pool_size` connections and returns the pool; fails with [`Error::Pool`]
    /// carrying the connect error when they cannot be opened within `pool_timeout`.
    pub(crate) async fn create(settings: &DatabaseSettings) -> Result<Pool> {
        let shared = Arc::new(Shared {
            last_connect_error: Mutex::new(None),
            closed: AtomicBool::new(false),
            target: settings.to_string(),
            lent: Mutex::new(Vec::new()),
            pipeline_depth: settings.pipeline_depth.max(1),
            pipelined: std::sync::atomic::AtomicU64::new(0),
            gate: Arc::new(tokio::sync::Semaphore::new(
                usize::try_from(settings.max_pool_size).unwrap_or(usize::MAX),
            )),
        });
        let manager = Manager {
            inner: PostgresConnectionManager::new(settings.pg_config(), NoTls),
            shared: shared.clone(),
            statement_cache_size: settings.statement_cache_size,
            deadlines: Deadlines {
                query: settings.query_timeout,
                cancel: settings.connection_timeout,
            },
            connect_timeout: settings.connection_timeout,
        };
        let built = bb8::Pool::builder()
            .max_size(settings.max_pool_size)
            .min_idle(Some(settings.min_pool_size))
            .connection_timeout(settings.pool_timeout)
            // A round trip on every checkout costs a third of the throughput of point queries;
            // dead connections are found by `is_closed` and by errors on use instead.
            .test_on_check_out(false)
            .queue_strategy(bb8::QueueStrategy::Lifo)
            .build(manager)
            .await;
        match built {
            Ok(inner) => Ok(Pool {
                inner,
                shared,
                timeout: settings.pool_timeout,
            }),
            Err(err) => {
                // bb8 returns the first failure; the recorded one is the latest, which is what
                // a caller retrying by hand would meet next.
                let cause = shared.last_error().unwrap_or(err);
                Err(Error::Pool {
                    kind: PoolErrorKind::Create,
                    message: format!(
                        "cannot open connections to {}: {}",
                        shared.target,
                        DisplayChain(cause.as_ref())
                    ),
                    source: Some(Box::new(cause)),
                })
            }
        }
    }

    /// Checks out a connection, waiting at most `pool_timeout`.
    pub async fn get(&self) -> Result<Connection> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        // A free slot needs no timer: arming one costs more than the rest of a checkout.
        let mut timed = true;
        let permit = match self.shared.gate.clone().try_acquire_owned() {
            Ok(permit) => {
                // bb8 bounds its own wait by the same `pool_timeout`.
                timed = false;
                permit
            }
            Err(tokio::sync::TryAcquireError::Closed) => return Err(self.closed_error()),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                let gate = self.shared.gate.clone().acquire_owned();
                match tokio::time::timeout_at(deadline, gate).await {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_closed)) => return Err(self.closed_error()),
                    Err(_) => return Err(self.timeout_error()),
                }
            }
        };
        loop {
            if self.is_closed() {
                return Err(self.closed_error());
            }
            let checkout = self.inner.get_owned();
            let checked_out = if timed {
                match tokio::time::timeout_at(deadline, checkout).await {
                    Ok(outcome) => outcome,
                    Err(_) => return Err(self.timeout_error()),
                }
            } else {
                checkout.await
            };
            timed = true;
            let conn = match checked_out {
                Ok(conn) => conn,
                Err(bb8::RunError::User(err)) => {
                    return Err(Error::connection(
                        format!("cannot connect to {}", self.shared.target),
                        err,
                    ))
                }
                Err(bb8::RunError::TimedOut) => return Err(self.timeout_error()),
            };
            // A connection the server already closed would fail its first query; returning it
            // makes bb8 discard it, and costs no round trip.
            if !conn.client.is_closed() {
                return Ok(Connection {
                    conn,
                    _permit: permit,
                });
            }
        }
    }

    /// True once [`Database::cleanup`](crate::Database::cleanup) closed this pool.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// How many statements so far ran pipelined on a busy connection (see `pipeline_depth`).
    pub fn pipelined_statements(&self) -> u64 {
        self.shared.pipelined.load(Ordering::Relaxed)
    }

    /// Open connections and how many of them are idle.
    pub fn state(&self) -> (u32, u32) {
        let state = self.inner.state();
        (state.connections, state.idle_connections)
    }

    pub(crate) fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.gate.close();
    }

    fn closed_error(&self) -> Error {
        Error::Pool {
            kind: PoolErrorKind::Closed,
            message: format!("the pool for {} was closed", self.shared.target),
            source: None,
        }
    }

    fn timeout_error(&self) -> Error {
        match self.shared.last_error() {
            Some(cause) => Error::Pool {
                kind: PoolErrorKind::Timeout,
                message: format!(
                    "timed out after {:?} waiting for a connection to {}; last connect error: {}",
                    self.timeout,
                    self.shared.target,
                    DisplayChain(cause.as_ref())
                ),
                source: Some(Box::new(cause)),
            },
            None => Error::Pool {
                kind: PoolErrorKind::Timeout,
                message: format!(
                    "timed out after {:?} waiting for a connection to {} (all {} in use)",
                    self.timeout,
                    self.shared.target,
                    self.inner.state().connections
                ),
                source: None,
            },
        }
    }
}

/// A pooled connection; derefs to [`tokio_postgres::Client`] and goes back to the pool on drop.
pub struct Connection {
    // Declared first so it is dropped first: the connection is back in bb8 before the permit
    // lets the next waiter in.
    conn: bb8::PooledConnection<'static, Manager>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("closed", &self.conn.client.is_closed())
            .finish()
    }
}

impl Connection {
    /// Marks the connection as possibly inside a transaction (set before `BEGIN` is sent) or
    /// as known clean (after the server confirmed `COMMIT`/`ROLLBACK`). Returned in doubt, it
    /// is discarded instead of reused.
    pub(crate) fn set_in_doubt(&self, in_doubt: bool) {
        self.conn.in_doubt.store(in_doubt, Ordering::Release);
    }
}

impl Connection {
    /// Neither in doubt nor closed: safe to run another statement on.
    pub(crate) fn usable(&self) -> bool {
        !self.conn.in_doubt.load(Ordering::Acquire) && !self.conn.client.is_closed()
    }

    /// When a single statement lent this connection last started or finished.
    pub(crate) fn progress(&self) -> &lending::Progress {
        &self.conn.progress
    }

    pub(crate) fn statements(&self) -> &StatementCache {
        &self.conn.statements
    }

    /// Runs `operation` under the `query_timeout` deadline. When it expires the connection is
    /// abandoned (see [`Connection::abandon`]) and [`Error::Timeout`] returned.
    ///
    /// A statement that failed because the connection is lost marks it in doubt: the server's
    /// FATAL message reaches the caller before the socket is seen closed, and a connection
    /// returned in that window would otherwise be handed out again and fail a second caller.
    ///
    /// `sole_user` is false on a connection shared by pipelined statements: the server-side
    /// cancel would hit whichever of them is running, so it is skipped there.
    pub(crate) async fn within_deadline<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T>>,
        sole_user: bool,
    ) -> Result<T> {
        let outcome = match self.conn.deadlines.query {
            None => operation.await,
            Some(limit) => match tokio::time::timeout(limit, operation).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    if sole_user {
                        self.abandon();
                    } else {
                        self.set_in_doubt(true);
                    }
                    return Err(Error::Timeout {
                        operation: "query",
                        after: limit,
                    });
                }
            },
        };
        if matches!(&outcome, Err(err) if err.is_connection_lost()) {
            self.set_in_doubt(true);
        }
        outcome
    }

    /// Gives up on this connection: the pool discards it when it comes back, and the server is
    /// asked (on a separate connection, bounded by `connection_timeout`) to cancel whatever it
    /// is running, so a stuck statement does not hold locks until the server notices.
    pub(crate) fn abandon(&self) {
        self.set_in_doubt(true);
        let token = self.conn.client.cancel_token();
        let limit = self.conn.deadlines.cancel;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(limit, token.cancel_query(NoTls)).await;
            });
        }
    }

    /// Number of prepared statements this connection keeps (bounded by `statement_cache_size`).
    pub fn cached_statements(&self) -> usize {
        self.conn.statements.len()
    }
}

impl Deref for Connection {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.conn.client
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.conn.client
    }
}
