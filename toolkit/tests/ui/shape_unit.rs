use toolkit::Entity;

#[derive(Entity)]
pub struct Marker;

fn main() {}
