// Every mistake in one build: an unknown key, a missing directory, a missing fixture, a
// duplicate key.
#[toolkit::test(
    migration = "migrations",
    migrations = "tests/no_such_dir",
    fixtures("tests/no_such_fixture.sql"),
    fixtures("tests/ui")
)]
async fn keys(db: toolkit::Database) {
    drop(db);
}

fn main() {}
