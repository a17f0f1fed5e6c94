//! Queries beyond the primary key: typed column handles ([`Col`]), conditions ([`Filter`]),
//! ordering ([`OrderBy`]) and keyset pages ([`Page`], [`Cursor`]). Run them with
//! `Repository::find`.

mod col;
mod cursor;
mod filter;

pub use col::{Col, IntoValue, OrderBy};
pub use cursor::{Cursor, Page};
pub use filter::Filter;

pub(crate) use cursor::RawValue;
