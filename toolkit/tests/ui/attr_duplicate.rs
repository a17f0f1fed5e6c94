use toolkit::Entity;

#[derive(Entity)]
#[entity(table = "users")]
#[entity(schema = "app", table = "people")]
pub struct User {
    pub id: i64,
    #[entity(json, json)]
    pub profile: serde_json::Value,
    #[entity(column = "a")]
    #[entity(column = "b")]
    pub name: String,
}

fn main() {}
