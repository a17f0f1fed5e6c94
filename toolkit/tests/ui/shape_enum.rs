use toolkit::Entity;

#[derive(Entity)]
pub enum Status {
    Active,
    Banned,
}

fn main() {}
