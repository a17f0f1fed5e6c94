//! `#[derive(Entity)]` for the `toolkit` crate. Use it through `toolkit::Entity`.
