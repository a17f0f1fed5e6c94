use toolkit::Entity;

#[derive(Entity)]
pub struct Document {
    #[entity(primary_key, json)]
    pub key: serde_json::Value,
    pub body: String,
}

fn main() {}
