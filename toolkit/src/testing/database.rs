//! `TestDatabase`: one fresh database per test.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use toolkit_core::{sql, Database, DatabaseSettings, Error, Result, RetryPolicy};

use super::TestCluster;

/// A freshly created, empty database for one test. Dropped databases on a `DATABASE_URL`
/// server are removed; on the throwaway cluster they disappear with the cluster.
#[derive(Debug)]
pub struct TestDatabase {
    settings: DatabaseSettings,
    name: String,
    owned_server: bool,
}

/// The cluster shared by every test of this binary when `DATABASE_URL` is unset. Statics are
/// never dropped: the cluster's watchdog removes it once the process has exited.
static SHARED: OnceLock<std::result::Result<TestCluster, String>> = OnceLock::new();

impl TestDatabase {
    /// Creates a database with a unique name and returns settings for it: `min_pool_size` 1 and a
    /// fast connect retry (3 attempts, 10 ms apart), other fields at their defaults.
    pub async fn create() -> Result<TestDatabase> {
        let (admin, owned_server) = admin_settings().await?;
        Self::create_on(admin, owned_server).await
    }

    /// Creates a fresh database on the server `admin` points at (its user must be allowed to
    /// `CREATE DATABASE`), e.g. on a [`TestCluster`] of the test's own.
    pub async fn create_in(cluster: &TestCluster) -> Result<TestDatabase> {
        Self::create_on(cluster.settings(), true).await
    }

    async fn create_on(admin: DatabaseSettings, owned_server: bool) -> Result<TestDatabase> {
        let name = unique_name();
        let client = connect(&admin).await?;
        let statement = format!(
            "CREATE DATABASE {} TEMPLATE template0",
            sql::quote_ident(&name)?
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
            owned_server,
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
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.owned_server {
            return;
        }
        // Drop may run inside a runtime that must not block on itself: use a thread with a
        // runtime of its own. Failure only leaves a test database behind.
        let settings = DatabaseSettings {
            dbname: admin_dbname(),
            ..self.settings.clone()
        };
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let client = connect(&settings).await.ok()?;
                let statement = format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    sql::quote_ident(&name).ok()?
                );
                client.batch_execute(&statement).await.ok()
            })
        })
        .join();
    }
}

fn admin_dbname() -> String {
    super::env_settings()
        .ok()
        .flatten()
        .map_or_else(|| "postgres".to_owned(), |s| s.dbname)
}

async fn admin_settings() -> Result<(DatabaseSettings, bool)> {
    if let Some(settings) = super::env_settings()? {
        return Ok((settings, false));
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
    Ok((settings, true))
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

async fn connect(settings: &DatabaseSettings) -> Result<tokio_postgres::Client> {
    DatabaseSettings {
        connection_timeout: Duration::from_secs(10),
        ..settings.clone()
    }
    .connect()
    .await
}
