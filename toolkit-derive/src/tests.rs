//! Expansion tests on `proc_macro2` tokens: what the derive emits for the main attribute
//! combinations, and that bad input yields errors plus a stub, never a panic.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{Item, ItemImpl, ItemStruct};

use crate::case::snake_case;
use crate::expand::derive;

/// The expansion, parsed back: it must be valid Rust items.
fn expand(input: TokenStream) -> syn::File {
    let output = derive(input);
    syn::parse2(output.clone())
        .unwrap_or_else(|e| panic!("expansion does not parse: {e}\n{output}"))
}

/// Tokens without spaces, so tests can look for `table:"users"`.
fn flat(tokens: impl ToTokens) -> String {
    tokens.to_token_stream().to_string().replace(' ', "")
}

fn patch(file: &syn::File) -> &ItemStruct {
    file.items
        .iter()
        .find_map(|item| match item {
            Item::Struct(s) if s.ident.to_string().ends_with("Patch") => Some(s),
            _ => None,
        })
        .expect("a patch struct")
}

fn entity_impl(file: &syn::File) -> &ItemImpl {
    file.items
        .iter()
        .find_map(|item| match item {
            Item::Const(c) => match &*c.expr {
                syn::Expr::Block(block) => block.block.stmts.iter().find_map(|stmt| match stmt {
                    syn::Stmt::Item(Item::Impl(i)) => Some(i),
                    _ => None,
                }),
                _ => None,
            },
            _ => None,
        })
        .expect("an Entity impl inside `const _`")
}

fn errors(file: &syn::File) -> Vec<String> {
    file.items
        .iter()
        .filter_map(|item| match item {
            Item::Macro(m)
                if m.mac
                    .path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "compile_error") =>
            {
                Some(
                    syn::parse2::<syn::LitStr>(m.mac.tokens.clone())
                        .expect("a message")
                        .value(),
                )
            }
            _ => None,
        })
        .collect()
}

fn patch_fields(file: &syn::File) -> Vec<(String, String)> {
    patch(file)
        .fields
        .iter()
        .map(|f| (flat(&f.ident), flat(&f.ty)))
        .collect()
}

fn user() -> TokenStream {
    quote! {
        #[entity(table = "users", schema = "app")]
        pub struct User {
            #[entity(primary_key, generated)] pub id: i64,
            pub name: String,
            #[entity(column = "email_address")] pub email: String,
            pub tags: Vec<String>,
            #[entity(json)] pub profile: Profile,
            pub age: Option<i32>,
            #[entity(generated)] pub created_at: chrono::DateTime<chrono::Utc>,
            #[entity(skip)] pub cache: Vec<u8>,
        }
    }
}

#[test]
fn meta_has_table_schema_and_stored_columns_in_order() {
    let file = expand(user());
    assert!(errors(&file).is_empty());
    let body = flat(entity_impl(&file));
    assert!(
        body.contains(r#"schema:::toolkit::__private::Option::Some("app")"#),
        "{body}"
    );
    assert!(body.contains(r#"table:"users""#));
    assert!(body.contains("key:0"));
    let columns: Vec<_> = body
        .match_indices("name:\"")
        .map(|(i, _)| body[i + 6..].split('"').next().unwrap_or(""))
        .collect();
    assert_eq!(
        columns,
        [
            "id",
            "name",
            "email_address",
            "tags",
            "profile",
            "age",
            "created_at"
        ]
    );
    assert!(body.contains(r#"name:"email_address",field:"email",generated:false,json:false"#));
    assert!(body.contains(r#"name:"profile",field:"profile",generated:false,json:true"#));
    assert!(body.contains(r#"name:"created_at",field:"created_at",generated:true"#));
    assert!(body.contains(
        "nullable:true,accepts:<Option<i32>as::toolkit::__private::FromColumn<'_>>::accepts}"
    ));
    assert!(body.contains("json:true,nullable:false,accepts:::toolkit::__private::accepts_json}"));
    assert!(
        !body.contains(r#"name:"cache""#),
        "skip fields are not columns"
    );
    assert!(body.contains("typeId=i64;"));
    assert!(body.contains("typePatch=UserPatch;"));
    assert!(body.contains("&self.id"));
}

#[test]
fn rows_are_read_by_position_and_skip_uses_default() {
    let body = flat(entity_impl(&expand(user())));
    assert!(body
        .contains("name:<Stringas::toolkit::__private::FromColumn<'_>>::decode(row,at,1,meta)?"));
    assert!(body.contains("profile:::toolkit::__private::decode_json::<Profile>(row,at,4,meta)?"));
    assert!(body.contains(
        "created_at:<chrono::DateTime<chrono::Utc>as::toolkit::__private::FromColumn<'_>>::decode(row,at,6,meta)?"
    ));
    assert!(body.contains("cache:<Vec<u8>as::toolkit::__private::Default>::default()"));
    assert!(body.contains(
        "_=>::toolkit::__private::StdResult::Err(::toolkit::__private::no_such_column(index,meta))"
    ));
}

#[test]
fn patch_has_only_updatable_columns() {
    let file = expand(user());
    let fields = patch_fields(&file);
    let expected = [
        ("name", "::toolkit::__private::Option<String>"),
        ("email", "::toolkit::__private::Option<String>"),
        ("tags", "::toolkit::__private::Option<Vec<String>>"),
        ("profile", "::toolkit::__private::Option<Profile>"),
        ("age", "::toolkit::__private::Option<Option<i32>>"),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    assert_eq!(fields, expected);
    let patch = patch(&file);
    assert!(matches!(patch.vis, syn::Visibility::Public(_)));
    assert!(
        patch.attrs.iter().any(|a| a.path().is_ident("doc")),
        "documented for missing_docs users"
    );
    assert!(patch
        .fields
        .iter()
        .all(|f| f.attrs.iter().any(|a| a.path().is_ident("doc"))));
    let body = flat(entity_impl(&file));
    let arms: Vec<_> = ["1=>", "2=>", "3=>", "4=>", "5=>"]
        .iter()
        .map(|arm| body.matches(arm).count())
        .collect();
    assert_eq!(
        arms,
        [2, 2, 2, 2, 2],
        "each updatable column in `param` and `patch_param`"
    );
    assert_eq!(body.matches("0=>").count(), 1, "the key is not patchable");
    assert_eq!(
        body.matches("6=>").count(),
        1,
        "generated columns are not patchable"
    );
}

#[test]
fn defaults_snake_case_table_implicit_id_key_and_crate_path() {
    let file = expand(quote! {
        #[entity(crate = "crate::reexport")]
        struct HTTPRequest { path: String, id: uuid::Uuid, r#type: String }
    });
    assert!(errors(&file).is_empty(), "{:?}", errors(&file));
    let body = flat(entity_impl(&file));
    assert!(body.contains(r#"table:"http_request""#));
    assert!(body.contains("schema:crate::reexport::__private::Option::None"));
    assert!(body.contains("key:1"));
    assert!(body.contains("typeId=uuid::Uuid;"));
    assert!(
        body.contains(r#"name:"type",field:"type""#),
        "raw identifiers lose `r#`"
    );
    let patch = patch(&file);
    assert!(matches!(patch.vis, syn::Visibility::Inherited));
    assert_eq!(flat(&patch.ident), "HTTPRequestPatch");
    let names: Vec<_> = patch_fields(&file)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["path", "r#type"]);
}

#[test]
fn nullable_json_reads_null_as_none_and_binds_sql_null() {
    let file = expand(quote! {
        struct Doc { id: i64, #[entity(json)] body: Option<serde_json::Value>, #[entity(skip)] seen: bool, #[entity(json)] meta: std::option::Option<Meta> }
    });
    let body = flat(entity_impl(&file));
    assert!(body.contains("decode_json_opt::<serde_json::Value>(row,at,1,meta)?"));
    assert!(body.contains("json_param_opt::<serde_json::Value>("));
    assert!(
        body.contains("decode_json_opt::<Meta>(row,at,2,meta)?"),
        "indices skip the skipped field"
    );
    assert!(body.contains("json_param_opt::<Meta>("));
}

#[test]
fn every_column_generated_gives_an_empty_patch() {
    let file = expand(quote! {
        struct Tick { #[entity(primary_key, generated)] n: i64, #[entity(generated)] at: i64 }
    });
    assert!(patch(&file).fields.is_empty());
    let body = flat(entity_impl(&file));
    assert!(body.contains("_=>{let_=(patch,meta);::toolkit::__private::Option::None}"));
}

fn error_messages(input: TokenStream) -> Vec<String> {
    errors(&expand(input))
}

#[test]
fn attribute_errors_are_all_reported() {
    let messages = error_messages(quote! {
        #[entity(table = "", tabel = "x", table = "y")]
        struct User {
            #[entity(primary_key = "yes")] id: i64,
            #[entity(nullable, column = 5)] name: String,
            #[entity(json, skip)] cache: Vec<u8>,
            #[entity(primary_key)] other: i64,
        }
    });
    let expected = [
        "unknown entity attribute `tabel`, expected one of `table`, `schema`, `crate`",
        "duplicate entity attribute `table`",
        "`primary_key` takes no value; write `#[entity(primary_key)]`",
        "unknown entity attribute `nullable`, expected one of `primary_key`, `generated`, `column`, `json`, `skip`, `version`, `soft_delete`",
        "`column` expects a string literal, like `column = \"...\"`",
        "`skip` cannot be combined with `json`: a skipped field is not stored",
        "invalid table name: must not be empty",
    ];
    assert_eq!(messages, expected);
}

#[test]
fn key_errors() {
    assert_eq!(
        error_messages(quote!(
            struct A {
                user_id: i64,
            }
        )),
        ["no primary key: mark a field `#[entity(primary_key)]` or name it `id`"]
    );
    assert_eq!(
        error_messages(quote!(
            struct A {
                #[entity(skip)]
                id: i64,
            }
        )),
        ["no primary key: mark a field `#[entity(primary_key)]` or name it `id`"],
        "a skipped `id` is not a key"
    );
    assert_eq!(
        error_messages(quote!(
            struct A {
                #[entity(primary_key)]
                a: i64,
                #[entity(primary_key)]
                b: i64,
            }
        )),
        ["a second `primary_key`: an entity has exactly one key column"]
    );
    assert_eq!(
        error_messages(quote!(
            struct A {
                #[entity(primary_key, skip)]
                a: i64,
            }
        )),
        ["`skip` cannot be combined with `primary_key`: a skipped field is not stored"]
    );
    assert_eq!(
        error_messages(quote!(
            struct A {
                id: i64,
                a: i64,
                #[entity(column = "a")]
                b: i64,
            }
        )),
        ["column `a` is already used by field `a`"]
    );
}

#[test]
fn identifier_rules_match_the_runtime() {
    let long = "x".repeat(64);
    let ok = "x".repeat(63);
    assert!(error_messages(quote!(
        #[entity(table = #ok)]
        struct A {
            id: i64,
        }
    ))
    .is_empty());
    assert_eq!(
        error_messages(quote!(#[entity(table = #long)] struct A { id: i64 })),
        ["invalid table name: must be at most 63 bytes (PostgreSQL silently truncates longer names), and this one has 64"]
    );
    assert_eq!(
        error_messages(quote!(
            #[entity(schema = "a\0b")]
            struct A {
                id: i64,
            }
        )),
        ["invalid schema name: must not contain a NUL byte"]
    );
    // Multi-byte: the limit is in bytes, as PostgreSQL counts it.
    let wide = "é".repeat(32);
    assert_eq!(
        error_messages(quote!(
            struct A {
                id: i64,
                #[entity(column = #wide)]
                b: i64,
            }
        ))
        .len(),
        1
    );
}

#[test]
fn shapes_other_than_named_structs_are_errors_with_a_stub() {
    for input in [
        quote!(
            enum E {
                A,
            }
        ),
        quote!(
            struct T(i64);
        ),
        quote!(
            struct U;
        ),
        quote!(union N { a: u32 }),
    ] {
        let file = expand(input.clone());
        assert_eq!(errors(&file).len(), 1, "{input}");
        let body = flat(entity_impl(&file));
        assert!(
            body.contains("typeId=i64;") && body.contains("&0"),
            "stub for {input}: {body}"
        );
        assert!(patch(&file).fields.is_empty());
    }
}

#[test]
fn generic_structs_are_errors_without_a_stub() {
    let file = expand(quote!(
        struct W<T> {
            id: i64,
            value: T,
        }
    ));
    assert_eq!(errors(&file), ["`#[derive(Entity)]` does not support generic structs: an entity maps to one table with fixed column types"]);
    assert_eq!(
        file.items.len(),
        1,
        "only the error: an impl could not name `W<T>`"
    );
}

#[test]
fn stub_keeps_the_patch_and_the_key_type() {
    let file = expand(quote! {
        #[entity(tabel = "x")]
        pub struct User { pub id: String, pub name: String, #[entity(generated)] pub at: i64 }
    });
    assert_eq!(errors(&file).len(), 1);
    let names: Vec<_> = patch_fields(&file)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["name"]);
    let body = flat(entity_impl(&file));
    assert!(body.contains("typeId=String;") && body.contains("&self.id"));
    assert!(
        body.contains("StdResult::Err"),
        "stub bodies return errors, they do not panic"
    );
}

#[test]
fn unparsable_input_is_an_error_not_a_panic() {
    let output = derive(quote!(
        fn not_a_type() {}
    ));
    assert!(output.to_string().contains("compile_error"));
}

#[test]
fn snake_case_keeps_acronyms_together() {
    let cases = [
        ("User", "user"),
        ("UserProfile", "user_profile"),
        ("HTTPRequest", "http_request"),
        ("UserHTTP", "user_http"),
        ("OAuth2Token", "o_auth2_token"),
        ("User2FA", "user2_fa"),
        ("Already_Snake", "already_snake"),
        ("ÉtéData", "été_data"),
    ];
    for (input, expected) in cases {
        assert_eq!(snake_case(input), expected, "{input}");
    }
}

mod migrations {
    //! `embed_migrations!` and the `migrations` key of `#[toolkit::test]` on the directories of
    //! `tests/migrations/` in this crate (trybuild compiles its cases elsewhere, where a
    //! relative directory cannot be found).

    use std::path::Path;

    use quote::quote;
    use syn::LitStr;

    use crate::embed::migrator;
    use crate::files::migration_version;

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    fn lit(path: &str) -> LitStr {
        LitStr::new(path, proc_macro2::Span::call_site())
    }

    #[test]
    fn the_name_rule_matches_the_runtime_one() {
        // The same cases as toolkit-core's `migrate::tests::file_names`.
        assert_eq!(migration_version("0001_create_users.sql"), Ok(1));
        assert_eq!(migration_version("V1__create_users.sql"), Ok(1));
        assert_eq!(migration_version("v12__x.sql"), Ok(12));
        assert_eq!(migration_version("0_zero.sql"), Ok(0));
        for bad in [
            "create_users.sql",
            "1create.sql",
            "1_.sql",
            "_1_x.sql",
            "V1_x.sql",
            "V__x.sql",
            "1_x.SQL",
            "1_x",
            "-1_x.sql",
            "99999999999999999999_big.sql",
        ] {
            assert!(migration_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_misnamed_file_is_reported_at_once() {
        let err = migrator(&lit("tests/migrations/bad"), root()).unwrap_err();
        let messages: Vec<String> = err.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[0].contains("`V1__b.sql` has the same version as `1_a.sql`"));
        assert!(messages[1].contains("not `create_c.sql`"));
    }

    #[test]
    fn embeds_sql_files_in_name_order() {
        let tokens = migrator(&lit("tests/migrations/good"), root()).unwrap();
        let text = tokens.to_string();
        let first = text.find("\"0001_a.sql\"").unwrap();
        let second = text.find("\"V2__b.sql\"").unwrap();
        assert!(first < second, "{text}");
        assert!(!text.contains("README"), "{text}");
        assert!(text.contains(&quote!(::toolkit::migrate::Migrator::__embedded).to_string()));
    }

    #[test]
    fn a_missing_directory_is_named() {
        let err = migrator(&lit("tests/migrations/none"), root()).unwrap_err();
        assert!(err.to_string().contains("`tests/migrations/none`"), "{err}");
    }
}

mod test_attribute {
    //! `#[toolkit::test]` expansions; paths are relative to this crate's directory.

    use quote::quote;

    use crate::test_attr::expand;

    #[test]
    fn expands_to_a_test_that_runs_the_body_on_a_database() {
        let out = expand(
            quote!(
                migrations = "tests/migrations/good",
                fixtures("tests/migrations/good/0001_a.sql")
            ),
            quote! {
                /// Docs stay.
                #[ignore]
                async fn finds(mut db: toolkit::Database) -> toolkit::Result<()> { Ok(()) }
            },
        );
        let file: syn::File = syn::parse2(out.clone()).unwrap();
        let text = out.to_string().replace(' ', "");
        assert_eq!(file.items.len(), 1);
        assert!(text.starts_with("#[doc=r\"Docsstay.\"]#[ignore]#[::core::prelude::v1::test]fnfinds()->toolkit::Result<()>{asyncfn__toolkit_test_body(mutdb:toolkit::Database)"), "{text}");
        assert!(text.contains("tests/migrations/good\")"), "{text}");
        assert!(
            text.contains("(\"tests/migrations/good/0001_a.sql\",::core::include_str!("),
            "{text}"
        );
    }

    #[test]
    fn misnamed_migrations_and_bad_functions_are_all_reported() {
        let out = expand(
            quote!(migrations = "tests/migrations/bad"),
            quote!(
                fn sync<T>(a: u8, b: u8) {}
            ),
        );
        let text = out.to_string();
        for expected in [
            "has the same version",
            "not `create_c.sql`",
            "must be `async`",
            "cannot be generic",
            "takes one parameter",
        ] {
            assert!(text.contains(expected), "{expected}: {text}");
        }
    }
}
