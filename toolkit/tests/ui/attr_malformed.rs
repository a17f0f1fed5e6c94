use toolkit::Entity;

#[derive(Entity)]
#[entity]
#[entity(crate = "not a path")]
pub struct User {
    #[entity = "id"]
    pub id: i64,
    #[entity(crate = "toolkit")]
    pub name: String,
}

fn main() {}
