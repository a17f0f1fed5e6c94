use toolkit::Entity;

#[derive(Entity)]
pub struct Wrapper<T> {
    pub id: i64,
    pub value: T,
}

fn main() {}
