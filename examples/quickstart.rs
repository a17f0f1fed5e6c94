//! Quick start: settings, `Database`, `init_db`, a table, an insert and a select, `cleanup`.
//!
//! Uses the server of `DATABASE_URL` (or the `PG*` variables) when it is set; otherwise it
//! starts a throwaway PostgreSQL cluster (needs the server binaries, e.g.
//! `apt-get install postgresql`). Its table is temporary, so it leaves nothing behind.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use toolkit::{Database, DatabaseSettings};

#[path = "support/mod.rs"]
mod support;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // An application writes `let settings = DatabaseSettings::from_env()?;` here. The cluster,
    // when one was started, lives until the end of main: dropping it stops and removes it.
    let (settings, _cluster) = support::settings().await?;

    let settings = DatabaseSettings {
        min_pool_size: 1,
        max_pool_size: 5,
        ..settings
    };
    println!("connecting to {settings}");
    let db = Database::new(settings)?;
    db.init_db().await?;

    let conn = db.connection().await?;
    let version: String = conn.query_one("SELECT version()", &[]).await?.get(0);
    println!("server: {version}");

    conn.batch_execute(
        "CREATE TEMP TABLE quickstart_users (
             id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             name text NOT NULL,
             email text NOT NULL UNIQUE
         )",
    )
    .await?;
    let id: i64 = conn
        .query_one(
            "INSERT INTO quickstart_users (name, email) VALUES ($1, $2) RETURNING id",
            &[&"Ada Lovelace", &"ada@example.com"],
        )
        .await?
        .get(0);
    println!("inserted user {id}");
    for row in conn
        .query(
            "SELECT id, name, email FROM quickstart_users ORDER BY id",
            &[],
        )
        .await?
    {
        let (id, name, email): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
        println!("  {id}: {name} <{email}>");
    }
    drop(conn);

    println!("pool healthy: {}", db.check_pool_health().await);
    db.cleanup().await;
    println!("done");
    Ok(())
}
