#[toolkit::test]
async fn no_database() {}

#[toolkit::test]
async fn two(db: toolkit::Database, other: toolkit::Database) {
    drop((db, other));
}

fn main() {}
