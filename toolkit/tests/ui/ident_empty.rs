use toolkit::Entity;

#[derive(Entity)]
#[entity(table = "")]
pub struct User {
    pub id: i64,
    #[entity(column = "")]
    pub name: String,
}

fn main() {}
