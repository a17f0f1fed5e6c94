//! Compile-time regression test: every repository future can be spawned on a multi-threaded
//! runtime, alone and through a generic wrapper (the shape that trips rustc's higher-ranked
//! `Send` inference, rust-lang/rust#64552), so users never meet "`Send` is not general enough".
//! Nothing here needs to run; the test only has to compile.
#![allow(dead_code)]
use toolkit::{Database, Entity, Repository};

#[derive(Debug, Clone, PartialEq, Entity)]
struct Item {
    #[entity(primary_key, generated)]
    id: i64,
    name: String,
}

fn spawn_all(db: Database) {
    let d = db.clone();
    tokio::spawn(async move { Repository::<Item>::new(&d).get_by_id(1).await.map(drop) });
    let d = db.clone();
    tokio::spawn(async move {
        Repository::<Item>::new(&d)
            .create(&Item {
                id: 0,
                name: String::new(),
            })
            .await
            .map(drop)
    });
    let d = db.clone();
    tokio::spawn(async move {
        Repository::<Item>::new(&d)
            .update(1, ItemPatch::default())
            .await
            .map(drop)
    });
    let d = db.clone();
    tokio::spawn(async move {
        Repository::<Item>::new(&d)
            .save(&Item {
                id: 0,
                name: String::new(),
            })
            .await
            .map(drop)
    });
    let d = db.clone();
    tokio::spawn(async move { Repository::<Item>::new(&d).delete(1).await.map(drop) });
    let d = db.clone();
    tokio::spawn(async move { Repository::<Item>::new(&d).exists(1).await.map(drop) });
    let d = db.clone();
    tokio::spawn(async move { Repository::<Item>::new(&d).count().await.map(drop) });
    let d = db.clone();
    tokio::spawn(async move { Repository::<Item>::new(&d).get_all().await.map(drop) });
    let d = db.clone();
    tokio::spawn(async move { Repository::<Item>::new(&d).create_bulk(&[]).await.map(drop) });
}

async fn bounded<T>(
    op: impl std::future::Future<Output = toolkit::Result<T>>,
) -> toolkit::Result<T> {
    op.await
}

async fn worker(db: Database) {
    let repo = Repository::<Item>::new(&db);
    let item = Item {
        id: 0,
        name: String::new(),
    };
    for _ in 0..3 {
        let _ = bounded(repo.create(&item)).await;
        let _ = bounded(repo.update(
            1,
            ItemPatch {
                name: Some("x".into()),
            },
        ))
        .await;
        let _ = bounded(repo.create_bulk(std::slice::from_ref(&item))).await;
        let _ = bounded(repo.delete(1)).await;
    }
}

fn spawn_worker(db: Database) {
    tokio::spawn(worker(db));
}

#[test]
fn repository_futures_are_send() {
    // The functions above compile only if every future is `Send + 'static` once spawned.
    let _ = (
        spawn_all as fn(Database),
        spawn_worker as fn(Database),
        spawn_transaction_with_repository as fn(Database),
    );
}

/// The most common shape: repositories inside `run_in_transaction`, inside a spawned task.
fn spawn_transaction_with_repository(db: Database) {
    tokio::spawn(async move {
        db.run_in_transaction(async move |tx| {
            let repo = Repository::<Item>::new(&*tx);
            let created = repo
                .create(&Item {
                    id: 0,
                    name: "a".into(),
                })
                .await?;
            repo.update(
                created.id,
                ItemPatch {
                    name: Some("b".into()),
                },
            )
            .await?;
            repo.count().await
        })
        .await
    });
}
