use toolkit::Entity;

#[derive(Entity)]
pub struct User {
    pub id: i64,
    pub name: String,
    #[entity(column = "name")]
    pub display_name: String,
}

fn main() {}
