use toolkit::Entity;

// 63 bytes is the limit: this table name is fine, the column (64 bytes) is not.
#[derive(Entity)]
#[entity(table = "t23456789012345678901234567890123456789012345678901234567890123")]
pub struct User {
    pub id: i64,
    #[entity(column = "c234567890123456789012345678901234567890123456789012345678901234")]
    pub name: String,
}

// The default table name is checked too.
#[derive(Entity)]
pub struct AVeryLongStructNameThatTurnsIntoATableNameLongerThanPostgresAllows {
    pub id: i64,
}

fn main() {}
