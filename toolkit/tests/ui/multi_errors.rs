use toolkit::Entity;

// Every mistake below is reported by one build.
#[derive(Entity)]
#[entity(table = "", tabel = "users")]
pub struct User {
    #[entity(primary_key, primary_key)]
    pub user_id: i64,
    #[entity(primary_key)]
    pub other_id: i64,
    #[entity(nullable)]
    pub name: String,
    #[entity(skip, json)]
    pub cache: Vec<u8>,
}

fn main() {}
