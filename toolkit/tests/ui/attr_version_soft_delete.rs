use toolkit::Entity;

#[derive(Entity)]
pub struct Doc {
    pub id: i64,
    #[entity(version)]
    pub version: i32,
    // A NULL version would never match: not an `Option`.
    #[entity(version)]
    pub revision: Option<i32>,
    // NULL means live: it must be an `Option`.
    #[entity(soft_delete)]
    pub deleted: bool,
    #[entity(soft_delete, json)]
    pub gone: Option<String>,
}

fn main() {}
