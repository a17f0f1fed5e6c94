use toolkit::Entity;

#[derive(Entity)]
#[entity(table = 5, schema)]
pub struct User {
    pub id: i64,
    #[entity(column = name)]
    pub name: String,
}

fn main() {}
