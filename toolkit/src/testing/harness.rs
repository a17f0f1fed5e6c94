//! What `#[toolkit::test]` expands to: a runtime per test, a database per test (a copy of the
//! migrated template, fixtures applied), the body, then the database dropped, or kept when the
//! test failed and `TOOLKIT_KEEP_TEST_DB` asks for it.

use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::Duration;

use toolkit_core::{Database, DisplayChain};

use super::{template, TestDatabase};

/// The environment variable that keeps a failed test's database.
pub const KEEP_ENV: &str = "TOOLKIT_KEEP_TEST_DB";

/// One test, as the attribute describes it; not a public API.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// `module::path::test_name`, for messages.
    pub test: &'static str,
    /// The migrations directory, absolute.
    pub migrations: Option<&'static str>,
    /// `(path as written, contents)` of each fixture, in order.
    pub fixtures: &'static [(&'static str, &'static str)],
}

/// A test's return value: `()` or a `Result`, whose `Err` fails the test; not a public API.
pub trait Outcome {
    /// Whether the test failed.
    fn failed(&self) -> bool;
}

impl Outcome for () {
    fn failed(&self) -> bool {
        false
    }
}

impl<T, E> Outcome for std::result::Result<T, E> {
    fn failed(&self) -> bool {
        self.is_err()
    }
}

/// Runs one test body on a database of its own; not a public API.
///
/// Setup failures (no server, a failing migration or fixture) panic with the reason, as a
/// failed test should.
pub fn run<F, Fut>(spec: Spec, body: F) -> Fut::Output
where
    F: FnOnce(Database) -> Fut,
    Fut: Future,
    Fut::Output: Outcome,
{
    // Multi-threaded, as services run: a test sees the same scheduling as production code.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|err| panic!("{}: cannot start a runtime: {err}", spec.test));
    let test_db = runtime.block_on(create(&spec)).unwrap_or_else(|err| {
        panic!(
            "{}: cannot create its database: {}",
            spec.test,
            DisplayChain(&err)
        )
    });
    let db = test_db
        .database()
        .unwrap_or_else(|err| panic!("{}: {}", spec.test, DisplayChain(&err)));
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(async {
            apply_fixtures(&spec, &test_db).await;
            body(db.clone()).await
        })
    }));
    let failed = outcome.as_ref().map_or(true, Outcome::failed);
    runtime.block_on(async {
        // Closed first, so that dropping the database has no session to wait for.
        db.cleanup().await;
        if failed && keep_requested() {
            eprintln!("{}: kept its database {}", spec.test, test_db.keep());
        } else if let Err(err) = test_db.remove().await {
            eprintln!(
                "{}: could not drop its database: {}",
                spec.test,
                DisplayChain(&err)
            );
        }
    });
    // Tasks the test left running are cancelled; a blocking one is not waited for long.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(output) => output,
        Err(panic) => resume_unwind(panic),
    }
}

async fn create(spec: &Spec) -> toolkit_core::Result<TestDatabase> {
    match spec.migrations {
        Some(dir) => TestDatabase::create_from(&template::template_for(dir).await?).await,
        None => TestDatabase::create().await,
    }
}

async fn apply_fixtures(spec: &Spec, test_db: &TestDatabase) {
    if spec.fixtures.is_empty() {
        return;
    }
    let client = test_db
        .connect()
        .await
        .unwrap_or_else(|err| panic!("{}: {}", spec.test, DisplayChain(&err)));
    for (file, sql) in spec.fixtures {
        if let Err(err) = client.batch_execute(sql).await {
            panic!(
                "{}: fixture {file} failed: {}",
                spec.test,
                DisplayChain(&err)
            );
        }
    }
}

fn keep_requested() -> bool {
    std::env::var(KEEP_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}
