use toolkit::Entity;

#[derive(Entity)]
#[entity(tabel = "users")]
pub struct User {
    pub id: i64,
}

fn main() {}
