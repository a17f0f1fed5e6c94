use toolkit::Entity;

#[derive(Entity)]
pub struct UserId(pub i64, pub String);

fn main() {}
