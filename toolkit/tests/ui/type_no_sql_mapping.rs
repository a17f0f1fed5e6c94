use toolkit::Entity;

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Profile {
    pub bio: String,
}

#[derive(Entity)]
pub struct User {
    pub id: i64,
    // Needs `#[entity(json)]`: a plain field must have a SQL type.
    pub profile: Profile,
}

fn main() {}
