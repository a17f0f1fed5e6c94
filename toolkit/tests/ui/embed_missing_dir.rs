fn main() {
    let _ = toolkit::embed_migrations!("tests/no_such_dir");
}
