//! `#[derive(Entity)]` on realistic structs, checked through the trait: metadata, statements,
//! row parameters and the patch type. No database needed.
#![deny(missing_docs)]
#![warn(clippy::pedantic)]

use serde::{Deserialize, Serialize};
use toolkit::__private::{JsonParam, Param};
use toolkit::Entity;

/// A JSON document stored in one column.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Profile {
    /// Free text.
    pub bio: String,
}

/// The entity of API.md, with every attribute.
#[derive(Debug, Clone, PartialEq, Entity)]
#[entity(table = "users", schema = "app")]
pub struct User {
    /// Identity key.
    #[entity(primary_key, generated)]
    pub id: i64,
    /// Plain text.
    pub name: String,
    /// Renamed column.
    #[entity(column = "email_address")]
    pub email: String,
    /// Array.
    pub tags: Vec<String>,
    /// JSON.
    #[entity(json)]
    pub profile: Profile,
    /// Nullable JSON.
    #[entity(json)]
    pub settings: Option<Profile>,
    /// Nullable.
    pub age: Option<i32>,
    /// Set by the database.
    #[entity(generated)]
    pub created_at: std::time::SystemTime,
    /// Not stored.
    #[entity(skip)]
    pub cache: Vec<u8>,
}

/// Default table name, implicit `id` key, a raw identifier, private fields.
#[derive(Entity)]
pub struct HTTPRequestLog {
    id: String,
    r#type: String,
}

/// Every non-key column generated: there is nothing to update.
#[derive(Entity)]
#[entity(crate = "toolkit")]
struct Counter {
    #[entity(primary_key, generated)]
    key: i32,
    #[entity(generated)]
    at: std::time::SystemTime,
}

fn user() -> User {
    User {
        id: 7,
        name: "Ann".into(),
        email: "ann@example.com".into(),
        tags: vec!["a".into()],
        profile: Profile { bio: "hi".into() },
        settings: None,
        age: Some(30),
        created_at: std::time::SystemTime::UNIX_EPOCH,
        cache: vec![1],
    }
}

#[test]
fn meta_lists_stored_columns_in_field_order() {
    let meta = User::META;
    assert_eq!(meta.schema, Some("app"));
    assert_eq!(meta.table, "users");
    assert_eq!(meta.key, 0);
    let names: Vec<_> = meta.columns.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "id",
            "name",
            "email_address",
            "tags",
            "profile",
            "settings",
            "age",
            "created_at"
        ]
    );
    let fields: Vec<_> = meta.columns.iter().map(|c| c.field).collect();
    assert_eq!(fields[2], "email");
    let generated: Vec<_> = meta
        .columns
        .iter()
        .filter(|c| c.generated)
        .map(|c| c.name)
        .collect();
    assert_eq!(generated, ["id", "created_at"]);
    let json: Vec<_> = meta
        .columns
        .iter()
        .filter(|c| c.json)
        .map(|c| c.name)
        .collect();
    assert_eq!(json, ["profile", "settings"]);
}

#[test]
fn each_entity_has_one_statement_slot() {
    assert!(
        std::ptr::eq(User::statement_slot(), User::statement_slot()),
        "statements are kept in one static per type, rendered once per process"
    );
    assert!(!std::ptr::eq(
        User::statement_slot(),
        Counter::statement_slot()
    ));
}

#[test]
fn defaults_snake_case_table_and_implicit_id_key() {
    let meta = HTTPRequestLog::META;
    assert_eq!(meta.schema, None);
    assert_eq!(meta.table, "http_request_log");
    assert_eq!(meta.key, 0);
    assert_eq!(meta.columns[1].name, "type");
    let log = HTTPRequestLog {
        id: "k".into(),
        r#type: "GET".into(),
    };
    assert_eq!(log.id(), "k");
    let patch = HTTPRequestLogPatch {
        r#type: Some("POST".into()),
    };
    assert!(HTTPRequestLog::patch_param(&patch, 1).is_some());
    assert!(HTTPRequestLog::patch_param(&patch, 0).is_none());
}

#[test]
fn all_generated_entity_has_an_empty_patch() {
    let CounterPatch {} = CounterPatch::default();
    assert_eq!(Counter::META.columns.len(), 2);
}

#[test]
fn params_bind_by_column_index() {
    let user = user();
    assert_eq!(*user.id(), 7);
    assert!(matches!(user.param(0), Ok(Param::Ref(_))));
    match user.param(4) {
        Ok(Param::Json(json)) => assert_eq!(json.to_string(), r#"{"bio":"hi"}"#),
        other => panic!("profile is JSON: {other:?}"),
    }
    match user.param(5) {
        Ok(Param::Json(json)) => assert!(json.0.is_none(), "None is SQL NULL, not JSON null"),
        other => panic!("settings is JSON: {other:?}"),
    }
    let error = user.param(8).unwrap_err().to_string();
    assert!(error.contains("app.users"), "{error}");
}

#[test]
fn patch_covers_updatable_columns_only() {
    let patch = UserPatch::default();
    for index in 0..User::META.columns.len() {
        assert!(User::patch_param(&patch, index).is_none());
    }
    let patch = UserPatch {
        name: Some("Bob".into()),
        age: Some(None),
        settings: Some(None),
        profile: Some(Profile::default()),
        ..UserPatch::default()
    };
    assert!(matches!(
        User::patch_param(&patch, 1),
        Some(Ok(Param::Ref(_)))
    ));
    assert!(User::patch_param(&patch, 2).is_none());
    assert!(matches!(
        User::patch_param(&patch, 4),
        Some(Ok(Param::Json(_)))
    ));
    assert!(matches!(
        User::patch_param(&patch, 5),
        Some(Ok(Param::Json(JsonParam(None))))
    ));
    assert!(matches!(
        User::patch_param(&patch, 6),
        Some(Ok(Param::Ref(_)))
    ));
    // The key and generated columns are not in the patch at all.
    assert!(User::patch_param(&patch, 0).is_none());
    assert!(User::patch_param(&patch, 7).is_none());
}

macro_rules! keyed {
    ($name:ident, $key:ty, $value:ty) => {
        /// Declared by a macro whose caller supplies the field types.
        #[derive(Entity)]
        pub struct $name {
            /// Key.
            pub id: $key,
            /// Plain column.
            pub label: $key,
            /// Nullable JSON column.
            #[entity(json)]
            pub value: $value,
        }
    };
}

keyed!(Setting, String, Option<Profile>);

#[test]
fn entity_declared_by_macro_rules_with_caller_types() {
    let setting = Setting {
        id: "k".into(),
        label: "l".into(),
        value: None,
    };
    assert_eq!(setting.id(), "k");
    assert!(matches!(setting.param(1), Ok(Param::Ref(_))));
    assert!(matches!(setting.param(2), Ok(Param::Json(JsonParam(None)))));
    assert_eq!(Setting::META.table, "setting");
}
