//! Template databases: a directory of migrations applied once per test binary, into a database
//! that each test then gets a copy of (`CREATE DATABASE .. TEMPLATE`), which costs a file copy
//! instead of every migration again.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;
use toolkit_core::migrate::Migrator;
use toolkit_core::{sql, Database, DatabaseSettings, Error, Result};

use super::database::{admin_settings, connect, drop_database, wait_until_unused};

/// One slot per migrations directory: the first test to need it makes the template, the tests
/// running meanwhile wait for it, later ones find it made (or find why it could not be).
type Slot = Arc<OnceCell<std::result::Result<String, String>>>;

static TEMPLATES: Mutex<BTreeMap<String, Slot>> = Mutex::new(BTreeMap::new());

/// The name of a template holding the migrations of `dir`, made (once per binary) if needed.
pub(super) async fn template_for(dir: &str) -> Result<String> {
    let slot = {
        let mut templates = TEMPLATES.lock().map_err(|_| Error::NotAvailable {
            message: "a test panicked while registering a template".into(),
        })?;
        templates.entry(dir.to_owned()).or_default().clone()
    };
    let made = slot
        .get_or_init(|| async { make(dir).await.map_err(|err| err.to_string()) })
        .await;
    made.clone().map_err(|message| Error::NotAvailable {
        message: format!("cannot make a template database from the migrations in {dir}: {message}"),
    })
}

/// Makes the template unless another process already did.
///
/// Its name carries the migrations' checksum, so binaries (or branches) with other migrations
/// use other templates, and an unchanged template on a `DATABASE_URL` server is reused by the
/// next run. Binaries making the same template at once are serialised by a session advisory
/// lock on an admin connection of our own (no pool: the lock goes with the connection, whatever
/// happens to this future). The template is marked `IS_TEMPLATE` only once migrated, so a
/// half-made one (its maker died) is recognised, dropped and made again; it refuses
/// connections, because a copy cannot start while anyone is connected to its template.
async fn make(dir: &str) -> Result<String> {
    let migrator = Migrator::from_dir(dir)?;
    let checksum = migrator.checksum();
    let name = format!("toolkit_template_{}", &checksum[..16]);
    let key = i64::from_str_radix(&checksum[..15], 16).unwrap_or_default();
    let (admin, _) = admin_settings().await?;
    let client = connect(&admin).await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&key])
        .await?;
    let found = client
        .query_opt(
            "SELECT datistemplate FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await?;
    match found.map(|row| row.get::<_, bool>(0)) {
        Some(true) => return Ok(name),
        Some(false) => drop_database(&admin, &name).await?,
        None => {}
    }
    let quoted = sql::quote_ident(&name)?;
    client
        .batch_execute(&format!("CREATE DATABASE {quoted} TEMPLATE template0"))
        .await?;
    let db = Database::new(DatabaseSettings {
        dbname: name.clone(),
        min_pool_size: 1,
        ..admin.clone()
    })?;
    let migrated = migrator.run(&db).await;
    db.cleanup().await;
    if let Err(err) = migrated {
        let _ = drop_database(&admin, &name).await;
        return Err(err);
    }
    wait_until_unused(&client, &name, Duration::from_secs(5)).await?;
    client
        .batch_execute(&format!(
            "ALTER DATABASE {quoted} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
        ))
        .await?;
    Ok(name)
}
