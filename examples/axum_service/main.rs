//! A small REST service on axum: bookmarks created, read, listed a page at a time with a cursor,
//! patched with optimistic locking, and deleted, all through `Repository` and its queries.
//! `api.rs` holds the service; `examples/tests/axum_service.rs` starts it on a port of its own
//! and drives it over HTTP.
//!
//! Uses the server of `DATABASE_URL` (or the `PG*` variables) when it is set; otherwise it
//! starts a throwaway PostgreSQL cluster. It listens on `LISTEN_ADDR` (default
//! `127.0.0.1:3000`) until Ctrl-C. Its table, `axum_example.bookmarks`, is created when missing
//! and keeps its rows between runs, as a service's data does.
//!
//! ```text
//! cargo run --example axum_service
//! curl -i -X POST localhost:3000/bookmarks -H 'content-type: application/json' \
//!      -d '{"url": "https://www.postgresql.org", "title": "PostgreSQL"}'
//! curl -i 'localhost:3000/bookmarks?limit=10'          # then ?limit=10&cursor=<next>
//! curl -i -X PATCH localhost:3000/bookmarks/1 -H 'content-type: application/json' \
//!      -d '{"title": "The PostgreSQL site", "version": 0}'
//! curl -i -X DELETE localhost:3000/bookmarks/1
//! ```

use toolkit::{Database, DatabaseSettings};

mod api;
#[path = "../support/mod.rs"]
mod support;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // An application writes `let settings = DatabaseSettings::from_env()?;` here. The cluster,
    // when one was started, lives until the end of main: dropping it stops and removes it.
    let (settings, _cluster) = support::settings().await?;
    let db = Database::new(DatabaseSettings {
        min_pool_size: 1,
        ..settings
    })?;
    db.register_init_callback(api::migrate).await;
    db.init_db().await?;

    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, api::router(db.clone()))
        .with_graceful_shutdown(async {
            // Without a signal handler there is nothing to wait for: serve until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await?;
    println!("stopped");
    db.cleanup().await;
    Ok(())
}
