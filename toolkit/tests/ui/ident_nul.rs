use toolkit::Entity;

#[derive(Entity)]
#[entity(table = "a\0b", schema = "app\0")]
pub struct User {
    pub id: i64,
}

fn main() {}
