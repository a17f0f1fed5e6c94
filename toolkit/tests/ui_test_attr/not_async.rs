#[toolkit::test]
fn not_async(db: toolkit::Database) {
    drop(db);
}

fn main() {}
