use toolkit::Entity;

#[derive(Entity)]
pub struct User {
    pub id: i64,
    #[entity(json, skip)]
    pub profile: serde_json::Value,
    #[entity(skip, generated)]
    pub created: i64,
    #[entity(skip)]
    #[entity(column = "cached")]
    pub cache: Vec<u8>,
}

fn main() {}
