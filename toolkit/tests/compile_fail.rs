//! Compile-fail snapshots of `#[derive(Entity)]`, `embed_migrations!` and `#[toolkit::test]`:
//! each mistake is reported at the offending token, in one build, without follow-on errors at
//! call sites.
//!
//! Regenerate with `TRYBUILD=overwrite cargo test -p toolkit --all-features --test compile_fail`
//! and read every changed `.stderr`; the toolchain is pinned so the text is stable.

#[test]
fn derive_entity_compile_errors() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}

/// The test attribute exists only with the `testing` feature.
#[cfg(feature = "testing")]
#[test]
fn test_attribute_compile_errors() {
    trybuild::TestCases::new().compile_fail("tests/ui_test_attr/*.rs");
}
