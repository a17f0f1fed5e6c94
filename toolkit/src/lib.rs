#![doc = include_str!("../../README.md")]
#![deny(missing_docs)]

pub use toolkit_core::*;
/// Derives [`Entity`](trait@Entity) for a struct with named fields; see the crate docs.
pub use toolkit_derive::Entity;

#[cfg(feature = "testing")]
pub mod testing;
