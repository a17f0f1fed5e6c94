//! `#[derive(Entity)]`, `embed_migrations!` and `#[toolkit::test]` for the `toolkit` crate. Use it through `toolkit::Entity`; the generated
//! code reaches the runtime only through `toolkit::__private`, which is why `toolkit` pins this
//! crate to its exact version.
//!
//! The pipeline follows `serde_derive`: `attr` parses `#[entity(...)]`, `ast` builds the model,
//! `check` validates it as a whole, `expand` emits code. Every stage reports into one
//! `ctxt::Ctxt`, so a build shows all mistakes at once.

mod ast;
mod attr;
mod case;
mod check;
mod ctxt;
mod embed;
mod expand;
mod files;
mod test_attr;
#[cfg(test)]
mod tests;

use proc_macro::TokenStream;

/// Derives `toolkit::Entity` for a struct with named fields, plus a `<Name>Patch` struct for
/// partial updates.
///
/// Struct attributes, all optional:
///
/// | attribute | meaning |
/// | --- | --- |
/// | `table = "users"` | table name; default: the struct name in `snake_case` (`HTTPRequest` -> `http_request`) |
/// | `schema = "app"` | schema of the table; default: none, the search path decides |
/// | `crate = "path"` | where the `toolkit` facade is; default `::toolkit` |
///
/// Field attributes:
///
/// | attribute | meaning |
/// | --- | --- |
/// | `primary_key` | the key column; without one, a field named `id` is the key |
/// | `generated` | assigned by the database: left out of INSERT and updates, read back |
/// | `column = "name"` | column name; default: the field name |
/// | `json` | stored as `json`/`jsonb` through serde; `Option<T>` maps `None` to SQL NULL |
/// | `skip` | not stored; set with `Default::default()` when a row is read |
///
/// Names are checked at compile time with the rules of `toolkit::sql` identifiers: not empty,
/// no NUL byte, at most 63 bytes. Every mistake in one struct is reported in one build, at the
/// offending token; a field type without the needed traits (`ToSql` and `FromSql`, serde's for
/// `json`, `Default` for `skip`) is reported at that field's type.
///
/// `<Name>Patch` has the struct's visibility and one `Option<T>` per updatable column (neither
/// the key nor generated nor skipped), with the field's own visibility; a nullable column gets
/// `Option<Option<T>>`, where `Some(None)` writes NULL. It implements `Default` only.
#[proc_macro_derive(Entity, attributes(entity))]
pub fn derive_entity(input: TokenStream) -> TokenStream {
    expand::derive(input.into()).into()
}

/// Embeds every migration file of a directory at compile time, as a
/// `toolkit::migrate::Migrator`; the path is relative to the `Cargo.toml` of the crate that
/// uses the macro. A misnamed `.sql` file, two files with one version and a missing directory
/// are compile errors. Cargo rebuilds when an embedded file changes, but not when one is
/// added: add `println!("cargo:rerun-if-changed=migrations");` to a build script for that.
///
/// ```text
/// let migrator = toolkit::embed_migrations!("migrations");
/// migrator.run(&db).await?;
/// ```
#[proc_macro]
pub fn embed_migrations(input: TokenStream) -> TokenStream {
    embed::expand(input.into()).into()
}

/// An async test that receives a `toolkit::Database` on a database of its own; see
/// `toolkit::testing` for what it does and the keys it takes (`migrations = "dir"`,
/// `fixtures("file.sql", ...)`).
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    test_attr::expand(args.into(), item.into()).into()
}
