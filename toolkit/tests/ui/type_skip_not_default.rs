use toolkit::Entity;

pub struct Handle(u32);

#[derive(Entity)]
pub struct User {
    pub id: i64,
    #[entity(skip)]
    pub handle: Handle,
}

fn main() {}
