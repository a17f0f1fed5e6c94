use toolkit::Entity;

#[derive(Entity)]
pub struct User {
    #[entity(primary_key = "x")]
    pub id: i64,
    #[entity(generated(always))]
    pub created: i64,
}

fn main() {}
