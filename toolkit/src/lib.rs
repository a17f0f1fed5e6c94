#![doc = include_str!("../../README.md")]
#![deny(missing_docs)]

pub use toolkit_core::*;
/// Derives [`Entity`](trait@Entity) for a struct with named fields; see the crate docs.
pub use toolkit_derive::Entity;

/// Embeds a directory of migrations at compile time; see [`migrate`].
///
/// ```no_run
/// # async fn demo(db: toolkit::Database) -> toolkit::Result<()> {
/// static MIGRATIONS: std::sync::LazyLock<toolkit::migrate::Migrator> =
///     std::sync::LazyLock::new(|| toolkit::embed_migrations!("tests/migrations"));
/// MIGRATIONS.run(&db).await?;
/// # Ok(()) }
/// ```
pub use toolkit_derive::embed_migrations;

/// An async test on a database of its own; see [`testing`] (feature `testing`).
#[cfg(feature = "testing")]
pub use toolkit_derive::test;

#[cfg(feature = "testing")]
pub mod testing;
