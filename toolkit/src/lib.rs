#![doc = include_str!("../../README.md")]
#![deny(missing_docs)]

pub use toolkit_core::*;

#[cfg(feature = "testing")]
pub mod testing;
