//! A realistic entity end to end: `#[derive(Entity)]`, then every `Repository` method.
//!
//! Uses `DATABASE_URL` (or the `PG*` variables) when set, otherwise starts a throwaway cluster.
//! It creates its own schema (`repository_example`) and drops it at the end (and any left by
//! an interrupted run at the start), so it can run again and again:
//!
//! ```text
//! cargo run --example repository
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toolkit::{Database, DatabaseSettings, Entity, Repository};

#[path = "support/mod.rs"]
mod support;

/// Free-form preferences, stored as one jsonb column.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct Profile {
    theme: String,
    newsletter: bool,
    limits: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "users", schema = "repository_example")]
struct User {
    #[entity(primary_key, generated)]
    id: i64,
    name: String,
    #[entity(column = "email_address")]
    email: String,
    tags: Vec<String>,
    #[entity(json)]
    profile: Profile,
    age: Option<i32>,
    #[entity(generated)]
    created_at: chrono::DateTime<chrono::Utc>,
    /// Not stored: rebuilt with `Default` when read.
    #[entity(skip)]
    session_note: String,
}

const SCHEMA: &str = "
DROP SCHEMA IF EXISTS repository_example CASCADE;
CREATE SCHEMA repository_example;
CREATE TABLE repository_example.users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    email_address text NOT NULL UNIQUE,
    tags text[] NOT NULL DEFAULT '{}',
    profile jsonb NOT NULL,
    age int,
    created_at timestamptz NOT NULL DEFAULT now()
)";

fn new_user(name: &str, email: &str) -> User {
    User {
        id: 0,
        name: name.into(),
        email: email.into(),
        tags: vec!["early-adopter".into()],
        profile: Profile {
            theme: "dark".into(),
            ..Profile::default()
        },
        age: None,
        created_at: chrono::DateTime::<chrono::Utc>::MIN_UTC,
        session_note: String::new(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // An application writes `let settings = DatabaseSettings::from_env()?;` here. The cluster,
    // when one was started, lives until the end of main: dropping it stops and removes it.
    let (settings, _cluster) = support::settings().await?;
    let db = Database::new(DatabaseSettings {
        min_pool_size: 1,
        ..settings
    })?;
    db.register_init_callback(|pool| async move {
        pool.get().await?.batch_execute(SCHEMA).await?;
        Ok(())
    })
    .await;
    db.init_db().await?;

    let users = Repository::<User>::new(&db);
    let ada = users.create(&new_user("Ada", "ada@example.com")).await?;
    println!("created #{} at {}", ada.id, ada.created_at);

    let many: Vec<User> = (0..1_000)
        .map(|i| new_user(&format!("user {i}"), &format!("u{i}@example.com")))
        .collect();
    let stored = users.create_bulk(&many).await?;
    println!(
        "bulk-inserted {} users, ids {}..={}",
        stored.len(),
        stored[0].id,
        stored[stored.len() - 1].id
    );

    let patched = users
        .update(
            ada.id,
            UserPatch {
                age: Some(Some(36)),
                ..Default::default()
            },
        )
        .await?;
    println!("patched age: {:?}", patched.age);

    let mut full = patched.clone();
    full.tags.push("admin".into());
    let saved = users.save(&full).await?;
    println!("saved tags: {:?}", saved.tags);

    println!(
        "exists: {}, count: {}",
        users.exists(ada.id).await?,
        users.count().await?
    );

    // The same repository type works inside a transaction and sees its own writes.
    let tx = db.transaction().await?;
    let in_tx = Repository::<User>::new(&tx);
    in_tx.delete(ada.id).await?;
    println!(
        "inside the transaction ada exists: {}",
        in_tx.exists(ada.id).await?
    );
    tx.rollback().await?;
    println!("after rollback ada exists: {}", users.exists(ada.id).await?);

    match users.get_by_id(-1).await {
        Err(err) if err.is_not_found() => println!("as expected: {err}"),
        other => println!("unexpected: {other:?}"),
    }

    users.delete(ada.id).await?;
    println!("{} users remain", users.get_all().await?.len());

    db.connection()
        .await?
        .batch_execute("DROP SCHEMA repository_example CASCADE")
        .await?;
    db.cleanup().await;
    Ok(())
}
