use toolkit::Entity;

// The derive fails, but the impl and the patch it would generate still exist, so the code
// below adds no errors of its own: only the bad attribute is reported.
#[derive(Entity)]
#[entity(table = "users", tabel = "oops")]
pub struct User {
    pub id: i64,
    pub name: String,
    pub age: Option<i32>,
}

fn uses(user: &User) -> toolkit::Result<()> {
    let meta: &toolkit::entity::EntityMeta = <User as Entity>::META;
    let _ = meta.table;
    let _ = User::statement_slot();
    let id: &i64 = user.id();
    let _ = id;
    let patch = UserPatch {
        name: Some("Bob".into()),
        age: Some(None),
        ..UserPatch::default()
    };
    let _ = User::patch_param(&patch, 1);
    Ok(())
}

// A broken enum still gets a stub impl.
#[derive(Entity)]
pub enum Status {
    Active,
}

fn status() -> &'static toolkit::entity::EntityMeta {
    let _ = StatusPatch::default();
    Status::META
}

fn main() {
    let _ = (uses, status);
}
