use toolkit::Entity;

#[derive(Entity)]
pub struct Membership {
    #[entity(primary_key)]
    pub user_id: i64,
    #[entity(primary_key)]
    pub group_id: i64,
}

fn main() {}
