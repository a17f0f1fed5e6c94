use toolkit::Entity;

#[derive(Entity)]
pub struct User {
    pub user_id: i64,
    pub name: String,
}

fn main() {}
