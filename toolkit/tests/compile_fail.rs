//! Compile-fail snapshots of `#[derive(Entity)]`: each mistake is reported at the offending
//! token, in one build, without follow-on errors at call sites.
//!
//! Regenerate with `TRYBUILD=overwrite cargo test -p toolkit --test compile_fail` and read every
//! changed `.stderr`; the toolchain is pinned so the text is stable.

#[test]
fn derive_entity_compile_errors() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
