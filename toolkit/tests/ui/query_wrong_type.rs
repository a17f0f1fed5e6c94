use toolkit::{Entity, Filter};

#[derive(Entity)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub age: Option<i32>,
}

fn main() {
    let c = User::columns();
    // A text value for an integer column, and an integer for a text column.
    let _: Filter<User> = c.age.ge("18");
    let _: Filter<User> = c.email.eq(42_i64);
    // `like` exists only on text columns.
    let _: Filter<User> = c.age.like("1%");
}
