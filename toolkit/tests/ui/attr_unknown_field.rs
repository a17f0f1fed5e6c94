use toolkit::Entity;

#[derive(Entity)]
pub struct User {
    #[entity(primary_kye)]
    pub id: i64,
    #[entity(rename = "full_name")]
    pub name: String,
}

fn main() {}
