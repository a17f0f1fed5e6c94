//! `Database`: the entry point, owning the settings, the lazily created pool and init callbacks.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::error::{ConnectFailure, DisplayChain};
use crate::replicas::{Replicas, Tracker};
use crate::{
    Connection, DatabaseSettings, Error, Pool, Result, Transaction, TransactionBuilder,
    TransactionManager,
};

type InitFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;
type InitCallback = Box<dyn Fn(Pool) -> InitFuture + Send + Sync>;

/// A PostgreSQL database reached through a connection pool.
///
/// Cheap to clone (clones share the pool), `Send + Sync`. Creating it validates the settings
/// and does no I/O; the pool is created by [`init_db`](Database::init_db) or lazily by the first
/// call that needs it.
///
/// ```no_run
/// # async fn demo() -> toolkit_core::Result<()> {
/// use toolkit_core::{Database, DatabaseSettings};
/// let db = Database::new(DatabaseSettings::from_env()?)?;
/// db.init_db().await?;
/// let conn = db.connection().await?;
/// let row = conn.query_one("SELECT 1 + 1", &[]).await?;
/// assert_eq!(row.get::<_, i32>(0), 2);
/// drop(conn);
/// db.cleanup().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Database {
    pub(crate) inner: Arc<Inner>,
    /// Where this handle sends reads and writes (`primary()`, `replica()`).
    pub(crate) route: Route,
    /// What this handle and its clones wrote, for read-your-writes on replicas.
    pub(crate) tracker: Arc<Tracker>,
}

/// Where a handle's statements go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// Reads to a replica when one is configured and fit, everything else to the primary.
    Auto,
    Primary,
    /// Everything to a replica, writes included (they fail as read-only).
    Replica,
}

pub(crate) struct Inner {
    settings: DatabaseSettings,
    /// Built once from the settings (certificate files read at `new`), shared by the pool,
    /// its cancel requests and pings.
    tls: crate::pool::Connector,
    /// Read on every checkout, written only when the pool is created or closed.
    pool: RwLock<Option<Pool>>,
    /// Serialises pool creation so two concurrent first calls create one pool, not two.
    creating: tokio::sync::Mutex<()>,
    callbacks: tokio::sync::Mutex<Vec<Arc<InitCallback>>>,
    pub(crate) replicas: Option<Arc<Replicas>>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("settings", &self.inner.settings)
            .field("pool", &self.current_pool())
            .finish()
    }
}

impl Database {
    /// Validates the settings; no network I/O happens until the pool is needed.
    pub fn new(settings: DatabaseSettings) -> Result<Database> {
        settings.validate()?;
        let tls = crate::pool::connector(&settings)?;
        let replicas = Replicas::new(&settings, &tls).map(Arc::new);
        Ok(Database {
            inner: Arc::new(Inner {
                settings,
                tls,
                pool: RwLock::new(None),
                creating: tokio::sync::Mutex::new(()),
                callbacks: tokio::sync::Mutex::new(Vec::new()),
                replicas,
            }),
            route: Route::Auto,
            tracker: Arc::default(),
        })
    }

    /// The settings this database was created with.
    pub fn settings(&self) -> &DatabaseSettings {
        &self.inner.settings
    }

    /// Pings the server (with retry), creates the pool, then runs the init callbacks in
    /// registration order. When a callback fails its error is returned and the pool is closed,
    /// so no half-initialised pool is left behind.
    pub async fn init_db(&self) -> Result<()> {
        self.ping_postgres().await?;
        let pool = self.create_pool().await?;
        let callbacks: Vec<Arc<InitCallback>> = self.inner.callbacks.lock().await.clone();
        for callback in callbacks {
            if let Err(err) = callback(pool.clone()).await {
                self.cleanup().await;
                return Err(err);
            }
        }
        Ok(())
    }

    /// Creates the pool unless an open one exists, and returns it.
    pub async fn create_pool(&self) -> Result<Pool> {
        if let Some(pool) = self.current_pool() {
            return Ok(pool);
        }
        let _creating = self.inner.creating.lock().await;
        if let Some(pool) = self.current_pool() {
            return Ok(pool);
        }
        let pool = Pool::create(&self.inner.settings, self.inner.tls.clone()).await?;
        if let Ok(mut slot) = self.inner.pool.write() {
            *slot = Some(pool.clone());
        }
        Ok(pool)
    }

    /// The pool, created first if missing or closed.
    pub async fn get_pool(&self) -> Result<Pool> {
        self.create_pool().await
    }

    /// Checks out a pooled connection; it goes back to the pool when dropped.
    pub async fn connection(&self) -> Result<Connection> {
        if self.route == Route::Replica {
            return self.replicas()?.any_pool().await?.get().await;
        }
        let conn = match self.current_pool() {
            Some(pool) => pool.get().await?,
            None => self.create_pool().await?.get().await?,
        };
        // Whatever it runs may write: the handle's reads after it wait for it.
        Ok(conn.with_write_mark(self.write_mark()))
    }

    /// Checks out a connection and begins a transaction on it.
    pub async fn transaction(&self) -> Result<Transaction> {
        self.build_transaction().begin().await
    }

    /// A builder for a transaction with an isolation level, read only, deferrable.
    pub fn build_transaction(&self) -> TransactionBuilder {
        TransactionBuilder::new(self.clone())
    }

    /// A [`TransactionManager`] on this database.
    pub async fn get_transaction_manager(&self) -> Result<TransactionManager> {
        Ok(TransactionManager::new(self.clone()))
    }

    /// Runs `body` in a transaction: commits on `Ok`, rolls back on `Err` or panic, and reruns
    /// the whole body on serialization failure (40001) or deadlock (40P01) under
    /// `settings.transaction_retry`. Other errors are never retried.
    ///
    /// Inside `tokio::spawn`, pass an `async move` closure that owns what it captures: a closure
    /// borrowing its surroundings fails the spawned future's `Send` check, a compiler limitation
    /// (rust-lang/rust#100013), not a property of the transaction.
    ///
    /// ```no_run
    /// # async fn demo(db: toolkit_core::Database) -> toolkit_core::Result<()> {
    /// let n: i64 = db
    ///     .run_in_transaction(async |tx| {
    ///         tx.execute("UPDATE accounts SET balance = balance - 10 WHERE id = 1", &[]).await?;
    ///         Ok(tx.query_one("SELECT count(*) FROM accounts", &[]).await?.get(0))
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn run_in_transaction<T, F>(&self, body: F) -> Result<T>
    where
        F: AsyncFnMut(&mut Transaction) -> Result<T>,
    {
        self.build_transaction()
            .run(&self.inner.settings.transaction_retry, body)
            .await
    }

    /// Opens one connection outside the pool to check the server is reachable, retrying under
    /// `settings.connect_retry`. Once attempts are exhausted it returns [`Error::Connection`]
    /// holding the last underlying error.
    pub async fn ping_postgres(&self) -> Result<()> {
        let settings = &self.inner.settings;
        let dial = settings.dial();
        let mut attempts = settings.connect_retry.attempts();
        loop {
            let err = match ping_once(&dial, &self.inner.tls, settings.connection_timeout).await {
                Ok(()) => return Ok(()),
                Err(err) => err,
            };
            let announce =
                |next: &_| crate::observe::connect_retry(next, settings, &DisplayChain(&err));
            if !attempts.retry(!err.is_permanent(), announce).await {
                let message = format!(
                    "cannot reach {settings} after {} attempt(s): {}",
                    attempts.made(),
                    DisplayChain(&err)
                );
                return Err(Error::connection(message, err.into_source()));
            }
        }
    }

    /// Runs `SELECT 1` through the pool. Never errors or panics, and answers within
    /// `connection_timeout` (capped by `pool_timeout`) even when the server is gone.
    pub async fn check_pool_health(&self) -> bool {
        let settings = &self.inner.settings;
        let deadline = settings.connection_timeout.min(settings.pool_timeout);
        let probe = async {
            let conn = self.connection().await?;
            conn.simple_query("SELECT 1").await?;
            Ok::<_, Error>(())
        };
        matches!(tokio::time::timeout(deadline, probe).await, Ok(Ok(())))
    }

    /// True while an open pool exists.
    pub fn is_pool_active(&self) -> bool {
        self.current_pool().is_some()
    }

    /// Adds a callback that [`init_db`](Database::init_db) runs, in registration order, with the
    /// new pool; typically `CREATE TABLE IF NOT EXISTS ...`.
    pub async fn register_init_callback<F, Fut>(&self, callback: F)
    where
        F: Fn(Pool) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let boxed: InitCallback = Box::new(move |pool| Box::pin(callback(pool)));
        self.inner.callbacks.lock().await.push(Arc::new(boxed));
    }

    /// Closes the pool: waiting and later checkouts through old pool handles fail, connections
    /// are closed as they come back. A later call on this `Database` creates a fresh pool.
    pub async fn cleanup(&self) {
        let _creating = self.inner.creating.lock().await;
        let taken = self
            .inner
            .pool
            .write()
            .ok()
            .and_then(|mut slot| slot.take());
        if let Some(pool) = taken {
            pool.close().await;
        }
        if let Some(replicas) = &self.inner.replicas {
            replicas.close().await;
        }
    }

    pub(crate) fn current_pool(&self) -> Option<Pool> {
        let slot = self.inner.pool.read().ok()?;
        slot.as_ref().filter(|pool| !pool.is_closed()).cloned()
    }
}

impl DatabaseSettings {
    /// Opens one connection outside any pool, made as the pool makes its own (hosts, TLS,
    /// timeouts, session settings), its driver task spawned on the current runtime. For what a
    /// pooled connection cannot be: a `LISTEN` session, a long-lived session of its own.
    /// Validates the settings first; a failure is [`Error::Connection`] saying why.
    ///
    /// ```no_run
    /// # async fn demo() -> toolkit_core::Result<()> {
    /// let settings = toolkit_core::DatabaseSettings::from_env()?;
    /// let client = settings.connect().await?;
    /// client.batch_execute("LISTEN jobs").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        self.validate()?;
        let tls = crate::pool::connector(self)?;
        crate::pool::connect(&self.dial(), &tls, self.connection_timeout)
            .await
            .map_err(|err| {
                let message = format!("cannot connect to {self}: {}", DisplayChain(&err));
                Error::connection(message, err.into_source())
            })
    }
}

async fn ping_once(
    dial: &crate::pool::Dial,
    tls: &crate::pool::Connector,
    limit: Duration,
) -> Result<(), ConnectFailure> {
    // Bounded like a pooled connect, and the `SELECT 1` too, so a server that accepts the
    // socket and then goes silent fails the ping.
    let client = crate::pool::connect(dial, tls, limit).await?;
    match tokio::time::timeout(limit, client.simple_query("SELECT 1")).await {
        Ok(answer) => answer.map(drop).map_err(ConnectFailure::Driver),
        Err(_) => Err(ConnectFailure::TimedOut(limit)),
    }
}
