//! The connection pool: bb8 behind a fair gate, with a manager of our own so that we can see
//! connect errors, keep doubtful connections out of circulation, and skip the health-check
//! round trip. Every statement the toolkit sends goes through a [`Session`] (`session.rs`).

mod connection;
mod dial;
mod lending;
mod manager;
mod session;
mod status;
mod tls;
mod unnamed;

use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

pub use connection::Connection;
pub(crate) use dial::{connect, Dial};
pub(crate) use lending::Lent;
pub use session::AsStatement;
pub use session::Source;
pub(crate) use session::{text_of, InDoubt, Lease, Session};
pub use status::PoolStatus;
pub(crate) use tls::{connector, Connector};

use crate::error::DisplayChain;
use crate::{DatabaseSettings, Error, PoolErrorKind, Result};
use manager::{Limits, Manager, Shared};
use status::Counters;

/// A handle to the connection pool. Cheap to clone; all clones share the same connections.
#[derive(Clone)]
pub struct Pool {
    inner: bb8::Pool<Manager>,
    shared: Arc<Shared>,
    timeout: Duration,
}

/// A snapshot of a pool's connections, from [`Pool::state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolState {
    /// Open connections, idle or checked out.
    pub connections: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("Pool")
            .field("target", &self.shared.target)
            .field("connections", &state.connections)
            .field("idle", &state.idle)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Pool {
    /// Opens `min_pool_size` connections and returns the pool; fails with [`Error::Pool`]
    /// carrying the connect error when they cannot be opened within `pool_timeout`.
    pub(crate) async fn create(settings: &DatabaseSettings, tls: Connector) -> Result<Pool> {
        let shared = Arc::new(Shared::new(
            settings.to_string(),
            settings.pipeline_depth,
            settings.max_pool_size,
            settings.dial(),
            tls,
            settings.connection_timeout,
            crate::observe::Observe::of(settings),
        ));
        let manager = Manager {
            shared: shared.clone(),
            statement_cache_size: settings.statement_cache_size,
            limits: Limits {
                query: settings.query_timeout,
                cancel: settings.connection_timeout,
                unnamed: settings.statement_mode == crate::StatementMode::Unnamed,
                idle_in_transaction_local: settings.idle_in_transaction_local(),
            },
            max_lifetime: settings.max_lifetime,
            give_up: settings.pool_timeout,
        };
        let hopeless = shared.hopeless.notified();
        let built = bb8::Pool::builder()
            .max_size(settings.max_pool_size)
            .min_idle(Some(settings.min_pool_size))
            .connection_timeout(settings.pool_timeout)
            // A round trip on every checkout costs a third of the throughput of point queries;
            // dead connections are found by `is_closed` and by errors on use instead.
            .test_on_check_out(false)
            // Expiry is ours (`PgConnection::expires`): bb8's would discard, and spawn, from
            // wherever a connection is dropped.
            .max_lifetime(None)
            .idle_timeout(settings.idle_timeout)
            .queue_strategy(bb8::QueueStrategy::Lifo)
            .build(manager);
        let mut built = std::pin::pin!(built);
        let built = tokio::select! {
            built = &mut built => built,
            () = hopeless => match shared.last_error() {
                Some(cause) if cause.is_permanent() => return Err(permanent_error(&shared, cause)),
                _ => built.await,
            },
        };
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
                if cause.is_permanent() {
                    return Err(permanent_error(&shared, cause));
                }
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
                let _waiting = self.shared.counters.waiting();
                let gate = self.shared.gate.clone().acquire_owned();
                match tokio::time::timeout_at(deadline, gate).await {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_closed)) => return Err(self.closed_error()),
                    Err(_) => return Err(self.timeout_error(deadline)),
                }
            }
        };
        loop {
            if self.is_closed() {
                return Err(self.closed_error());
            }
            let mut checkout = std::pin::pin!(self.inner.get_owned());
            // An idle connection is there at the first poll: no timer, no waiter registered.
            let first = std::future::poll_fn(|cx| Poll::Ready(checkout.as_mut().poll(cx))).await;
            let checked_out = match first {
                Poll::Ready(outcome) => outcome,
                Poll::Pending => {
                    let hopeless = self.shared.hopeless.notified();
                    let expiry = async {
                        match timed {
                            true => tokio::time::sleep_until(deadline).await,
                            // bb8 bounds its own wait by the same `pool_timeout`.
                            false => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        outcome = checkout => outcome,
                        () = expiry => return Err(self.timeout_error(deadline)),
                        () = hopeless => return Err(self.timeout_error(deadline)),
                    }
                }
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
                Err(bb8::RunError::TimedOut) => return Err(self.timeout_error(deadline)),
            };
            // A connection the server already closed would fail its first query, and a parked
            // one was given back where it could not be discarded: dropping them here, on a
            // working runtime, discards them and costs no round trip.
            if !conn.doomed() {
                return Ok(Connection::new(conn, permit));
            }
            // Condemned first: the discard says why, before this mark hides it.
            conn.condemn();
            conn.marks.abandoned.store(true, Ordering::Release);
            drop(conn);
        }
    }

    /// True once [`Database::cleanup`](crate::Database::cleanup) closed this pool.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// How many statements so far ran pipelined on a busy connection (see `pipeline_depth`).
    pub fn pipelined_statements(&self) -> u64 {
        self.shared.pipelined.load(Ordering::Relaxed)
    }

    /// Whether the last attempt to open a connection failed (and nothing since showed the
    /// server answering).
    pub(crate) fn connects_failing(&self) -> bool {
        self.shared.failing.load(Ordering::Acquire)
    }

    /// The server answered on a connection of this pool: a failed connect before no longer
    /// says it is down (a pool that reuses idle connections may not connect again for long).
    pub(crate) fn server_answered(&self) {
        self.shared.failing.store(false, Ordering::Release);
    }

    /// Connections given up so far: lost, or abandoned after a deadline.
    pub(crate) fn lost_connections(&self) -> u64 {
        self.shared.lost.load(Ordering::Relaxed)
    }

    /// Open connections and how many of them are idle.
    pub fn state(&self) -> PoolState {
        let state = self.inner.state();
        PoolState {
            connections: state.connections,
            idle: state.idle_connections,
        }
    }

    /// Closes the pool: waiting and later checkouts fail, idle connections are closed now and
    /// checked-out ones when they come back, and nothing new is opened.
    pub(crate) async fn close(&self) {
        self.shared.close();
        // bb8 has no close of its own: its idle connections are taken out and dropped (the
        // manager calls them broken now, and refuses to open replacements).
        for _ in 0..self.inner.state().idle_connections {
            match tokio::time::timeout(Duration::from_millis(50), self.inner.get()).await {
                Ok(Ok(conn)) => {
                    conn.condemn();
                    drop(conn);
                }
                _ => break,
            }
        }
    }

    fn closed_error(&self) -> Error {
        Error::Pool {
            kind: PoolErrorKind::Closed,
            message: format!("the pool for {} was closed", self.shared.target),
            source: None,
        }
    }

    /// A checkout ran out of time; the connect failure it waited through, if any, is the cause.
    fn timeout_error(&self, deadline: tokio::time::Instant) -> Error {
        let started = deadline.into_std().checked_sub(self.timeout);
        let cause = match self.shared.last_error_since(started) {
            Some(cause) if cause.is_permanent() => return permanent_error(&self.shared, cause),
            cause => cause,
        };
        Counters::count(&self.shared.counters.checkout_timeouts);
        let why = cause.as_deref().map(|cause| DisplayChain(cause));
        crate::observe::pool_timeout(
            &self.shared.target,
            self.timeout,
            why.as_ref().map(|why| why as &dyn fmt::Display),
        );
        match cause {
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

/// A connect failure no wait can cure (TLS refused) is a connection error, not a pool one: the
/// pool is fine, the server cannot be talked to as configured.
fn permanent_error(shared: &Shared, cause: Arc<crate::error::ConnectFailure>) -> Error {
    Error::connection(
        format!(
            "cannot connect to {}: {}",
            shared.target,
            DisplayChain(cause.as_ref())
        ),
        cause,
    )
}
