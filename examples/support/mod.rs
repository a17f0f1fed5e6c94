//! Where the examples find their server: the one part of them an application would not copy.
//!
//! An application reads its settings with `DatabaseSettings::from_env()` (`DATABASE_URL`, else
//! libpq's `PG*` variables), and so do the examples when either is set. Only when neither is
//! set do they start a throwaway cluster (`toolkit::testing`, a dev-dependency feature), so that
//! `cargo run --example quickstart` works on a machine without a server.

use toolkit::testing::TestCluster;
use toolkit::DatabaseSettings;

/// The settings an application would read from its environment; otherwise those of a
/// throwaway cluster, returned beside them. Keep the cluster alive while using the settings:
/// dropping it stops the server and removes its files.
pub async fn settings(
) -> Result<(DatabaseSettings, Option<TestCluster>), Box<dyn std::error::Error>> {
    let configured = ["DATABASE_URL", "PGHOST"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
    if configured {
        return Ok((DatabaseSettings::from_env()?, None));
    }
    // initdb and pg_ctl block for a second or two: off the runtime's worker threads.
    let cluster = tokio::task::spawn_blocking(TestCluster::start).await??;
    eprintln!(
        "DATABASE_URL is not set: started a throwaway PostgreSQL cluster on {}:{}, removed on exit",
        cluster.host(),
        cluster.port()
    );
    Ok((cluster.settings(), Some(cluster)))
}
