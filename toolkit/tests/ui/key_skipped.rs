use toolkit::Entity;

#[derive(Entity)]
pub struct User {
    #[entity(skip, primary_key)]
    pub id: i64,
    pub name: String,
}

fn main() {}
