//! Queries beyond the key: find by a column, order, count, page through a table with a cursor,
//! stream every row, upsert, map custom SQL by column name, optimistic locking, soft delete.
//!
//! Uses `DATABASE_URL` (or the `PG*` variables) when set, otherwise starts a throwaway cluster.
//! It creates its own schema (`queries_example`) and drops it at the end (and any left by an
//! interrupted run at the start), so it can run again and again:
//!
//! ```text
//! cargo run --example queries
//! ```

use futures_util::TryStreamExt;
use toolkit::{Cursor, Database, DatabaseSettings, Entity, Filter, Repository};

#[path = "support/mod.rs"]
mod support;

#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "products", schema = "queries_example")]
struct Product {
    #[entity(primary_key, generated)]
    id: i64,
    sku: String,
    name: String,
    price_cents: i64,
    stock: Option<i32>,
    #[entity(version)]
    version: i32,
    #[entity(soft_delete)]
    discontinued_at: Option<chrono::DateTime<chrono::Utc>>,
}

const SCHEMA: &str = "
DROP SCHEMA IF EXISTS queries_example CASCADE;
CREATE SCHEMA queries_example;
CREATE TABLE queries_example.products (
    id bigserial PRIMARY KEY,
    sku text NOT NULL UNIQUE,
    name text NOT NULL,
    price_cents bigint NOT NULL,
    stock int,
    version int NOT NULL DEFAULT 0,
    discontinued_at timestamptz
)";

fn product(n: i64) -> Product {
    Product {
        id: 0,
        sku: format!("SKU-{n:05}"),
        name: format!("{} widget {n}", if n % 3 == 0 { "Blue" } else { "Red" }),
        price_cents: 100 + (n * 37) % 900,
        stock: (n % 4 != 0).then_some(i32::try_from(n % 50).unwrap_or(0)),
        version: 0,
        discontinued_at: None,
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
    db.connection().await?.batch_execute(SCHEMA).await?;

    let products = Repository::<Product>::new(&db);
    let all: Vec<Product> = (1..=1_000).map(product).collect();
    products.create_bulk(&all).await?;
    let c = Product::columns();

    // Find by a column, with ordering and a limit.
    let cheap_blue = products
        .find(c.name.like("Blue%").and(c.price_cents.lt(300)))
        .order_by(c.price_cents.asc())
        .order_by(c.sku.desc())
        .limit(3)
        .all()
        .await?;
    for p in &cheap_blue {
        println!(
            "cheap blue: {} {} at {} cents",
            p.sku, p.name, p.price_cents
        );
    }
    let one = products.find(c.sku.eq("SKU-00042")).one().await?;
    println!("by sku: {} (#{})", one.name, one.id);
    let unknown = products.find(c.stock.is_null()).count().await?;
    println!("{unknown} products with unknown stock");

    // Page through everything in stock, 100 at a time; the cursor travels as a string.
    let mut cursor: Option<Cursor> = None;
    let mut pages = 0;
    loop {
        let page = products
            .find(c.stock.gt(0))
            .order_by(c.price_cents.desc())
            .page(cursor.as_ref(), 100)
            .await?;
        pages += 1;
        match page.next {
            Some(next) => cursor = Some(next.to_string().parse()?),
            None => break,
        }
    }
    println!("walked the in-stock products in {pages} pages");

    // Stream every row: decoded as it arrives, never all in memory.
    let mut total_cents = 0;
    let mut rows = std::pin::pin!(products.find(Filter::all()).stream());
    while let Some(p) = rows.try_next().await? {
        total_cents += p.price_cents;
    }
    println!("catalogue value: {total_cents} cents");

    // Upsert on the unique sku, get_many in the order asked, custom SQL mapped by name.
    let mut renamed = product(7);
    renamed.name = "Renamed widget".into();
    let stored = products.upsert_on(&renamed, [c.sku.name()]).await?;
    println!("upserted #{}: {}", stored.id, stored.name);
    let some = products.get_many(&[3, 1, 2, 999_999]).await?;
    println!(
        "get_many: {:?}",
        some.iter().map(|p| p.id).collect::<Vec<_>>()
    );
    let pricey: Vec<Product> = products
        .query_as(
            "SELECT discontinued_at, version, stock, price_cents, name, sku, id \
             FROM queries_example.products WHERE price_cents > $1 ORDER BY id LIMIT 2",
            &[&950_i64],
        )
        .await?;
    println!(
        "query_as: {:?}",
        pricey.iter().map(|p| &p.sku).collect::<Vec<_>>()
    );

    // Optimistic locking: a save based on a stale read is refused.
    let read = products.get_by_id(one.id).await?;
    products
        .save(&Product {
            price_cents: 1,
            ..read.clone()
        })
        .await?;
    match products
        .save(&Product {
            price_cents: 2,
            ..read
        })
        .await
    {
        Err(err) if err.is_conflict() => println!("stale save refused: {err}"),
        other => println!("unexpected: {other:?}"),
    }

    // Soft delete: gone from every read, back with restore.
    products.delete(one.id).await?;
    println!(
        "after delete: found {}, with deleted {}",
        products.find(c.sku.eq("SKU-00042")).count().await?,
        products
            .find(c.sku.eq("SKU-00042"))
            .with_deleted()
            .count()
            .await?
    );
    products.restore(one.id).await?;

    db.connection()
        .await?
        .batch_execute("DROP SCHEMA queries_example CASCADE")
        .await?;
    db.cleanup().await;
    Ok(())
}
