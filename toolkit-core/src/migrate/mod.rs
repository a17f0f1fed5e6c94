//! Migrations: a directory of ordered SQL files, each applied once, in order, in a transaction
//! of its own, recorded with its checksum; safe to run from several processes at once.
//!
//! ```no_run
//! # use toolkit_core as toolkit;
//! use toolkit::migrate::Migrator;
//! # async fn demo(db: toolkit::Database) -> toolkit::Result<()> {
//! // Read at run time; `toolkit::embed_migrations!("migrations")` embeds them at compile time.
//! let migrator = Migrator::from_dir("migrations")?;
//! let report = migrator.run(&db).await?;
//! for applied in &report.applied {
//!     println!("applied {} {} in {:?}", applied.version, applied.name, applied.duration);
//! }
//! # Ok(()) }
//! ```
//!
//! How a run works, and why: see [`Migrator::run`].

mod apply;
mod source;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::sql::Ident;
use crate::{Database, Error, Pool, Result};
pub use source::Migration;

/// The table applied migrations are recorded in, unless [`Migrator::with_table`] says otherwise.
pub const DEFAULT_TABLE: &str = "toolkit_migrations";

/// An ordered set of migrations, and the table that records which are applied.
///
/// Files are named `<version>_<name>.sql` (`0001_create_users.sql`) or
/// `V<version>__<name>.sql` (`V1__create_users.sql`, as Flyway and refinery name them); the
/// version is a number that fits a `bigint`, leading zeros allowed, and no two files may share
/// one. Other files in the directory (a `README.md`) are ignored; a `.sql` file named otherwise
/// is an error, so that a misnamed migration is never skipped silently.
#[derive(Debug, Clone)]
pub struct Migrator {
    migrations: Vec<Migration>,
    /// Validated by `with_table`.
    table: String,
    /// Why embedded files could not become migrations (`embed_migrations!` checks names at
    /// compile time, so this stays `None` unless the two rules disagree); reported by `run`.
    invalid: Option<(String, String)>,
}

/// What [`Migrator::run`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Report {
    /// The migrations this run applied, in order.
    pub applied: Vec<Applied>,
    /// Migrations recorded as applied that this migrator has no file for (e.g. the database
    /// was migrated by a newer release); nothing is done about them.
    pub missing: Vec<Applied>,
}

/// One migration in a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Applied {
    /// Its version.
    pub version: i64,
    /// Its name (the file name without version and `.sql`).
    pub name: String,
    /// How long its SQL took, as measured by the client (as recorded, for a missing one).
    pub duration: Duration,
}

impl Migrator {
    /// Every `.sql` file directly in `dir`, read now. A file that cannot be read, a misnamed
    /// `.sql` file and two files with one version are [`Error::Migration`] naming the file.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Migrator> {
        Migrator::from_files(source::read_dir(dir.as_ref())?)
    }

    /// Migrations from `(file name, SQL)` pairs, e.g. `include_str!`s of your own; the same
    /// rules as [`from_dir`](Migrator::from_dir).
    pub fn from_files<I, N, S>(files: I) -> Result<Migrator>
    where
        I: IntoIterator<Item = (N, S)>,
        N: Into<String>,
        S: Into<Cow<'static, str>>,
    {
        let mut migrations = files
            .into_iter()
            .map(|(file, sql)| Migration::new(file, sql))
            .collect::<Result<Vec<_>>>()?;
        migrations.sort_by(|a, b| (a.version(), a.file()).cmp(&(b.version(), b.file())));
        if let Some(pair) = migrations
            .windows(2)
            .find(|pair| pair[0].version() == pair[1].version())
        {
            return Err(Error::Migration {
                file: pair[1].file().to_owned(),
                version: Some(pair[1].version()),
                message: format!("has the same version as `{}`", pair[0].file()),
                source: None,
            });
        }
        Ok(Migrator {
            migrations,
            table: DEFAULT_TABLE.to_owned(),
            invalid: None,
        })
    }

    /// What `toolkit::embed_migrations!` expands to; not a public API.
    #[doc(hidden)]
    pub fn __embedded(files: &[(&'static str, &'static str)]) -> Migrator {
        Migrator::from_files(files.iter().copied()).unwrap_or_else(|err| {
            let (file, message) = match err {
                Error::Migration { file, message, .. } => (file, message),
                other => (String::new(), other.to_string()),
            };
            Migrator {
                migrations: Vec::new(),
                table: DEFAULT_TABLE.to_owned(),
                invalid: Some((file, message)),
            }
        })
    }

    /// Records applied migrations in `table` (looked up on the `search_path`) instead of
    /// [`DEFAULT_TABLE`]: for several independent sets of migrations in one database. Fails
    /// with [`Error::InvalidIdentifier`] for a name that cannot be quoted.
    pub fn with_table(mut self, table: &str) -> Result<Migrator> {
        self.table = Ident::new(table)?.into_string();
        Ok(self)
    }

    /// The migrations, in the order they apply.
    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    /// SHA-256 (hex) over the table name and every version and checksum: equal for two
    /// migrators exactly when they would leave a database in the same state. The test harness
    /// names its template databases after it.
    pub fn checksum(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.table.as_bytes());
        for m in &self.migrations {
            hasher.update(b"\0");
            hasher.update(m.version().to_be_bytes());
            hasher.update(m.checksum().as_bytes());
        }
        source::hex(&hasher.finalize())
    }

    /// Applies every migration not yet recorded, in order, and returns what it did.
    ///
    /// Each migration runs in a transaction of its own (a toolkit [`Transaction`](crate::Transaction),
    /// so `query_timeout`, `statement_timeout` and the pool's rules for cancelled or failed
    /// transactions apply) together with its record, so a migration is recorded exactly when
    /// its changes are committed. A failing migration is [`Error::Migration`] naming its file
    /// (with the server's error as `source`, so [`Error::code`] works): it is rolled back and
    /// not recorded, the ones before it stay applied, and the ones after it are not tried.
    ///
    /// Each of those transactions first takes a transaction-level advisory lock
    /// (`pg_advisory_xact_lock`, keyed by the record table's name) and only then reads the
    /// records, so two processes migrating at once apply each file once: the second waits, then
    /// sees the first one's record. The lock ends with its transaction, whether it commits,
    /// rolls back, or its connection is lost, so no pooled connection can keep it; and it works
    /// through a transaction-pooling PgBouncer, where a session lock would not.
    ///
    /// Before anything is applied, every record is compared with the files: a migration whose
    /// checksum changed since it was applied is an error naming the file, as is a file that
    /// is not applied while a later version is (it would run out of order). Records without a
    /// file are listed in [`Report::missing`].
    ///
    /// Migration files must not contain `BEGIN`, `COMMIT` or `ROLLBACK` (a file that ends its
    /// transaction is an error, and is not recorded), nor statements that cannot run inside a
    /// transaction (`CREATE INDEX CONCURRENTLY`, `VACUUM`). Use `SET LOCAL`, not `SET`: a
    /// session setting would stay on the pooled connection the migration ran on.
    pub async fn run(&self, target: &(impl Target + ?Sized)) -> Result<Report> {
        if let Some((file, message)) = &self.invalid {
            return Err(Error::Migration {
                file: file.clone(),
                version: None,
                message: message.clone(),
                source: None,
            });
        }
        let pool = target.pool().await?;
        apply::run(self, &pool).await
    }

    /// The record table, quoted.
    pub(crate) fn table(&self) -> Result<Ident> {
        Ident::new(self.table.as_str())
    }
}

/// What [`Migrator::run`] migrates: a [`Database`] or a [`Pool`] (e.g. in an init callback).
pub trait Target: Sync + sealed::Sealed {
    /// The pool to take connections from; not a public API.
    #[doc(hidden)]
    fn pool(&self) -> impl Future<Output = Result<Pool>> + Send;
}

impl Target for Database {
    fn pool(&self) -> impl Future<Output = Result<Pool>> + Send {
        self.get_pool()
    }
}

impl Target for Pool {
    fn pool(&self) -> impl Future<Output = Result<Pool>> + Send {
        std::future::ready(Ok(self.clone()))
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::Database {}
    impl Sealed for crate::Pool {}
}
