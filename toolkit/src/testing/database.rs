//! `TestDatabase`: one fresh database per test.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use toolkit_core::{sql, Database, DatabaseSettings, Error, Result, RetryPolicy};

use super::TestCluster;

/// A freshly created, empty database for one test. Dropped databases on a `DATABASE_URL`
/// server are removed; on the throwaway cluster they disappear with the cluster.
#[derive(Debug)]
pub struct TestDatabase {
    settings: DatabaseSettings,
    name: String,
    server: Server,
    /// Set by [`TestDatabase::keep`] and [`TestDatabase::remove`]: `Drop` leaves it alone.
    kept: bool,
}

/// Where a test database lives, which decides what dropping it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Server {
    /// `DATABASE_URL`'s server: databases are dropped.
    Env,
    /// The throwaway cluster shared by the test binary: it is removed with everything on it.
    Shared,
    /// A [`TestCluster`] the test started itself.
    Own,
}

/// The cluster shared by every test of this binary when `DATABASE_URL` is unset. Statics are
/// never dropped: the cluster's watchdog removes it once the process has exited.
static SHARED: OnceLock<std::result::Result<TestCluster, String>> = OnceLock::new();

impl TestDatabase {
    /// Creates a database with a unique name and returns settings for it: `min_pool_size` 1 and a
    /// fast connect retry (3 attempts, 10 ms apart), other fields at their defaults.
    pub async fn create() -> Result<TestDatabase> {
        let (admin, server) = admin_settings().await?;
        Self::create_on(admin, server, "template0").await
    }

    /// Creates a fresh database on the server `admin` points at (its user must be allowed to
    /// `CREATE DATABASE`), e.g. on a [`TestCluster`] of the test's own.
    pub async fn create_in(cluster: &TestCluster) -> Result<TestDatabase> {
        Self::create_on(cluster.settings(), Server::Own, "template0").await
    }

    /// A copy of `template`, a database no one is connected to, on the server of
    /// [`create`](TestDatabase::create).
    pub(super) async fn create_from(template: &str) -> Result<TestDatabase> {
        let (admin, server) = admin_settings().await?;
        Self::create_on(admin, server, template).await
    }

    async fn create_on(
        admin: DatabaseSettings,
        server: Server,
        template: &str,
    ) -> Result<TestDatabase> {
        let name = unique_name();
        let client = connect(&admin).await?;
        let statement = format!(
            "CREATE DATABASE {} TEMPLATE {}",
            sql::quote_ident(&name)?,
            sql::quote_ident(template)?
        );
        client.batch_execute(&statement).await?;
        let settings = DatabaseSettings {
            dbname: name.clone(),
            min_pool_size: 1,
            connect_retry: RetryPolicy::fast(3),
            ..admin
        };
        Ok(TestDatabase {
            settings,
            name,
            server,
            kept: false,
        })
    }

    /// Settings that reach this database; adjust fields before building a [`Database`].
    pub fn settings(&self) -> DatabaseSettings {
        self.settings.clone()
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A [`Database`] on this database with [`settings`](TestDatabase::settings).
    pub fn database(&self) -> Result<Database> {
        Database::new(self.settings())
    }

    /// A raw driver client on this database; its connection task is already spawned.
    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        connect(&self.settings).await
    }

    /// Drops the database now, wherever it lives (also on the throwaway cluster, which `Drop`
    /// leaves to the cluster's removal). Close your pools on it first
    /// ([`Database::cleanup`]): connections still open are terminated.
    pub async fn remove(mut self) -> Result<()> {
        self.kept = true;
        drop_database(&self.admin(), &self.name).await
    }

    /// Keeps the database after this value is dropped (to inspect what a failed test left) and
    /// returns where it is and how to remove it. On the throwaway cluster a test binary
    /// shares, the cluster then keeps running after the binary exits.
    pub fn keep(mut self) -> String {
        self.kept = true;
        let quoted = sql::quote_ident(&self.name).unwrap_or_else(|_| self.name.clone());
        let mut text = format!("{} (drop it with: DROP DATABASE {quoted})", self.settings);
        let shared = match self.server {
            Server::Shared => SHARED.get().and_then(|c| c.as_ref().ok()),
            Server::Env | Server::Own => None,
        };
        if let Some(cluster) = shared {
            match cluster.keep_after_exit() {
                Ok(stop) => text.push_str(&format!(
                    "; its throwaway cluster keeps running after the tests, stop it with: {stop}"
                )),
                Err(err) => text.push_str(&format!(
                    "; but its throwaway cluster could not be kept ({err}) and goes when the \
                     tests end: set DATABASE_URL to keep databases on a server of your own"
                )),
            }
        }
        if self.server == Server::Own {
            text.push_str("; it goes with its TestCluster when that is dropped");
        }
        text
    }

    /// Settings for the server's administrative database, to drop this one from.
    fn admin(&self) -> DatabaseSettings {
        DatabaseSettings {
            dbname: admin_dbname(self.server),
            ..self.settings.clone()
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.server != Server::Env || self.kept {
            return;
        }
        // Drop may run inside a runtime that must not block on itself: use a thread with a
        // runtime of its own. Failure only leaves a test database behind.
        let admin = self.admin();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(drop_database(&admin, &name)).ok()
        })
        .join();
    }
}

/// Drops database `name`, first closing the door and ending the sessions on it ourselves.
///
/// `DROP DATABASE .. WITH (FORCE)` alone terminates the sessions it finds and then waits for
/// them in steps of 100 ms: a test whose pool had connected paid 100 ms for its drop. Here no
/// new session may start, the old ones are terminated, and their end is polled every 2 ms, so
/// the `DROP` finds none; `FORCE` stays for a session that slips through.
pub(super) async fn drop_database(admin: &DatabaseSettings, name: &str) -> Result<()> {
    let client = connect(admin).await?;
    let quoted = sql::quote_ident(name)?;
    let closed = client
        .batch_execute(&format!(
            "ALTER DATABASE {quoted} WITH ALLOW_CONNECTIONS false"
        ))
        .await;
    match closed {
        Err(err) if err.code() == Some(&toolkit_core::SqlState::UNDEFINED_DATABASE) => {
            return Ok(())
        }
        other => other?,
    }
    client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .await?;
    wait_until_unused(&client, name, Duration::from_secs(2)).await?;
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        .await?;
    Ok(())
}

/// Polls until no session is connected to `name`, or `limit` has passed.
pub(super) async fn wait_until_unused(
    client: &tokio_postgres::Client,
    name: &str,
    limit: Duration,
) -> Result<()> {
    let count = client
        .prepare("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
        .await?;
    let started = Instant::now();
    loop {
        let sessions: i64 = client.query_one(&count, &[&name]).await?.get(0);
        if sessions == 0 || started.elapsed() >= limit {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn admin_dbname(server: Server) -> String {
    match server {
        Server::Env => super::env_settings()
            .ok()
            .flatten()
            .map_or_else(|| "postgres".to_owned(), |s| s.dbname),
        Server::Shared | Server::Own => "postgres".to_owned(),
    }
}

/// Settings for the server tests run on, on its administrative database.
pub(super) async fn admin_settings() -> Result<(DatabaseSettings, Server)> {
    if let Some(settings) = super::env_settings()? {
        return Ok((settings, Server::Env));
    }
    let shared = tokio::task::spawn_blocking(|| {
        SHARED
            .get_or_init(|| super::throwaway_cluster().map_err(|e| e.to_string()))
            .as_ref()
            .map(TestCluster::settings)
            .map_err(Clone::clone)
    })
    .await
    .map_err(|e| Error::NotAvailable {
        message: format!("starting the test cluster panicked: {e}"),
    })?;
    let settings = shared.map_err(|message| Error::NotAvailable {
        message: format!("cannot start a throwaway PostgreSQL cluster: {message}"),
    })?;
    Ok((settings, Server::Shared))
}

fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "toolkit_test_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub(super) async fn connect(settings: &DatabaseSettings) -> Result<tokio_postgres::Client> {
    DatabaseSettings {
        connection_timeout: Duration::from_secs(10),
        ..settings.clone()
    }
    .connect()
    .await
}
