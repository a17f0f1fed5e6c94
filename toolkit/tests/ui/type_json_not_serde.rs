use toolkit::Entity;

pub struct Profile {
    pub bio: String,
}

#[derive(Entity)]
pub struct User {
    pub id: i64,
    #[entity(json)]
    pub profile: Profile,
    // A nullable JSON column is checked at the type inside `Option`.
    #[entity(json)]
    pub previous: Option<std::time::Instant>,
}

fn main() {}
