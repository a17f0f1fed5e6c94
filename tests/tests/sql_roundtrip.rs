//! The SQL builder against a real server (issue 3): hundreds of hostile identifiers create
//! tables and columns, rows go in and out through the builder, and the catalog ends up holding
//! exactly those names while nothing else in the database changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashSet};

use futures_util::future::join_all;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;
use toolkit::sql::{self, col, Insert, Order, QualifiedName, Select, TableRef};
use toolkit::testing::TestDatabase;

const INJECTION: &str = "users\"; DROP TABLE victims; --";

/// Pieces that break naive quoting or naive parsing, one way or another.
const FRAGMENTS: &[&str] = &[
    "\"",
    "\"\"",
    "a\"b",
    "\"quoted\"",
    " ",
    "  leading",
    "trailing  ",
    "new\nline",
    "cr\r\nlf",
    "tab\there",
    "back\\slash",
    "\\",
    "\\\"",
    "$1",
    "$$",
    "$tag$",
    "$",
    ";",
    "; DROP TABLE victims; --",
    INJECTION,
    "--",
    "-- comment",
    "/*",
    "*/",
    "'",
    "''",
    "O'Brien",
    "'); DELETE FROM victims; --",
    "user",
    "User",
    "USER",
    "order",
    "select",
    "SELECT",
    "table",
    "from",
    "where",
    "group",
    "limit",
    "null",
    "NULL",
    "default",
    "ünïcödé",
    "日本語",
    "🦀",
    "ǅ",
    "\u{200b}zero-width",
    "Ω≈ç√",
    "U&\"d\\0061t\\+000061\"",
    "E'\\x'",
    "%s",
    "{}",
    "?",
    "*",
    "a.b",
    "public.victims",
    "(",
    ")",
    ",",
    "=",
    "x = 1 OR 1=1",
    "\u{7f}",
    "\u{1}",
    "id",
];

const SEPARATORS: &[&str] = &["", " ", "\"", "_", "\n", "$", ".", "'"];

fn is_valid(name: &str) -> bool {
    sql::validate_ident(name).is_ok()
}

/// `count` distinct valid identifiers: every fragment alone, exactly-63-byte names, then
/// fragment pairs, every seventh one padded to exactly 63 bytes.
fn hostile_names(count: usize) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut names = Vec::new();
    let mut add = |name: String, names: &mut Vec<String>| {
        if is_valid(&name) && seen.insert(name.clone()) {
            names.push(name);
        }
    };
    for fragment in FRAGMENTS {
        add((*fragment).to_owned(), &mut names);
    }
    for long in [
        "x".repeat(63),
        "€".repeat(21),
        "\"".repeat(63),
        "日".repeat(21),
        format!("{}\"", "q".repeat(62)),
    ] {
        assert_eq!(long.len(), 63);
        add(long, &mut names);
    }
    let f = FRAGMENTS.len();
    let mut n = 0usize;
    while names.len() < count {
        let first = FRAGMENTS[n % f];
        let second = FRAGMENTS[(n / f + n * 7 + 1) % f];
        let separator = SEPARATORS[n % SEPARATORS.len()];
        let mut name = format!("{first}{separator}{second}");
        if n.is_multiple_of(7) && name.len() < 63 {
            name.push_str(&"z".repeat(63 - name.len()));
        }
        add(name, &mut names);
        n += 1;
    }
    names
}

/// One table to create, with its columns (all `text`).
struct Spec {
    schema: Option<String>,
    table: String,
    columns: Vec<String>,
}

impl Spec {
    fn table_ref(&self) -> TableRef<'_> {
        match &self.schema {
            Some(schema) => TableRef::qualified(schema, &self.table),
            None => TableRef::new(&self.table),
        }
    }

    fn columns(&self) -> Vec<&str> {
        self.columns.iter().map(String::as_str).collect()
    }

    fn ddl(&self, out: &mut String) {
        let name = match &self.schema {
            Some(schema) => QualifiedName::with_schema(schema.as_str(), self.table.as_str()),
            None => QualifiedName::new(self.table.as_str()),
        }
        .unwrap();
        out.push_str("CREATE TABLE ");
        name.push_quoted(out);
        out.push_str(" (");
        for (i, column) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&sql::quote_ident(column).unwrap());
            out.push_str(" text");
        }
        out.push_str(");\n");
    }
}

/// Tables of 3 to 5 columns using every name once; every tenth table lives in `schema`.
fn specs(names: &[String], schema: &str) -> Vec<Spec> {
    let mut pool = names.iter().cloned();
    let mut specs = Vec::new();
    let mut k = 0;
    while let Some(table) = pool.next() {
        let width = 3 + k % 3;
        let columns: Vec<String> = pool.by_ref().take(width).collect();
        if columns.len() < width {
            break;
        }
        let schema = (k % 10 == 9).then(|| schema.to_owned());
        specs.push(Spec {
            schema,
            table,
            columns,
        });
        k += 1;
    }
    specs
}

/// A value that would do damage if it were ever spliced into the SQL text.
fn value(table: usize, row: usize, column: usize) -> String {
    format!("v{table}/{row}/{column} '); DROP TABLE victims; -- $1 \"x\" \\ {INJECTION}")
}

fn params(values: &[String]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

fn strings(row: &tokio_postgres::Row) -> Vec<String> {
    (0..row.len()).map(|i| row.get::<_, String>(i)).collect()
}

/// Inserts two rows, selects, counts, updates, deletes and checks each result.
async fn roundtrip(client: &Client, k: usize, spec: &Spec) {
    let table = spec.table_ref();
    let cols = spec.columns();
    let width = cols.len();
    let values: Vec<String> = (0..2)
        .flat_map(|r| (0..width).map(move |j| value(k, r, j)))
        .collect();
    let (row0, row1) = values.split_at(width);

    let insert = Insert::into(table)
        .columns(&cols)
        .rows(2)
        .returning(&[cols[0]])
        .build()
        .unwrap();
    assert_eq!(insert.param_count(), 2 * width);
    let returned = client.query(insert.sql(), &params(&values)).await.unwrap();
    let returned: Vec<String> = returned.iter().map(|r| r.get(0)).collect();
    assert_eq!(returned, [row0[0].clone(), row1[0].clone()]);

    // Both rows match the ANY list; only row 0 matches the equality.
    let select = Select::from(table)
        .columns(&cols)
        .filter(col(cols[1]).eq())
        .filter(col(cols[0]).eq_any())
        .order_by(cols[0], Order::Asc)
        .build()
        .unwrap();
    let any = vec![row0[0].clone(), row1[0].clone()];
    let rows = client.query(select.sql(), &[&row0[1], &any]).await.unwrap();
    assert_eq!(
        rows.iter().map(strings).collect::<Vec<_>>(),
        [row0.to_vec()]
    );

    let count = Select::from(table)
        .filter(col(cols[2]).is_not_null())
        .build_count()
        .unwrap();
    let n: i64 = client.query_one(count.sql(), &[]).await.unwrap().get(0);
    assert_eq!(n, 2);

    let mut changed = row1.to_vec();
    changed[2] = format!("changed {}", spec.table);
    let (schema_name, table_name) = (spec.schema.as_deref(), spec.table.as_str());
    let update = match schema_name {
        // The helpers take an unqualified table; qualified ones go through the builder.
        None => sql::build_update_query(table_name, &[cols[2]], &[cols[0]]).unwrap(),
        Some(_) => sql::Update::table(table)
            .set(&[cols[2]])
            .filter(col(cols[0]).eq())
            .build()
            .unwrap()
            .into_sql(),
    };
    assert_eq!(
        client
            .execute(&update, &[&changed[2], &row1[0]])
            .await
            .unwrap(),
        1
    );

    let delete = match schema_name {
        None => sql::build_delete_query(table_name, &[cols[0]]).unwrap(),
        Some(_) => sql::Delete::from(table)
            .filter(col(cols[0]).eq())
            .build()
            .unwrap()
            .into_sql(),
    };
    assert_eq!(client.execute(&delete, &[&row0[0]]).await.unwrap(), 1);

    let remaining = match schema_name {
        None => sql::build_select_query(table_name, &cols, &[]).unwrap(),
        Some(_) => Select::from(table)
            .columns(&cols)
            .build()
            .unwrap()
            .into_sql(),
    };
    let rows = client.query(&remaining, &[]).await.unwrap();
    assert_eq!(rows.iter().map(strings).collect::<Vec<_>>(), [changed]);
}

/// `(schema, relation, relkind)` of every relation outside `pg_toast` (whose toast tables come
/// and go with our text columns).
async fn relations(client: &Client) -> BTreeSet<(String, String, String)> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, c.relkind::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname <> 'pg_toast'",
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn namespaces_and_functions(client: &Client) -> (BTreeSet<String>, i64) {
    let rows = client
        .query("SELECT nspname::text FROM pg_namespace", &[])
        .await
        .unwrap();
    let functions: i64 = client
        .query_one("SELECT count(*) FROM pg_proc", &[])
        .await
        .unwrap()
        .get(0);
    (rows.iter().map(|r| r.get(0)).collect(), functions)
}

/// Columns, in order, of every ordinary table outside the system schemas.
async fn user_columns(client: &Client) -> BTreeMap<(String, String), Vec<String>> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, a.attname::text FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
             ORDER BY c.oid, a.attnum",
            &[],
        )
        .await
        .unwrap();
    let mut map: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for row in &rows {
        map.entry((row.get(0), row.get(1)))
            .or_default()
            .push(row.get(2));
    }
    map
}

/// A fresh database holding `victims`, one row that no statement under test may touch.
async fn with_victims() -> (TestDatabase, Client) {
    let tdb = TestDatabase::create().await.unwrap();
    let client = tdb.connect().await.unwrap();
    client
        .batch_execute("CREATE TABLE victims (id int); INSERT INTO victims VALUES (1);")
        .await
        .unwrap();
    (tdb, client)
}

async fn victims_intact(client: &Client) {
    let n: i64 = client
        .query_one("SELECT count(*) FROM victims", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "victims lost its row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_identifiers_round_trip_and_touch_nothing_else() {
    let (_tdb, client) = with_victims().await;

    let names = hostile_names(600);
    assert!(names.len() >= 600);
    assert!(
        names.iter().filter(|n| n.len() == 63).count() >= 20,
        "too few 63-byte names"
    );
    let schema = "sch\"ema; DROP TABLE victims; --";
    let specs = specs(&names, schema);
    let used = specs.iter().map(|s| 1 + s.columns.len()).sum::<usize>();
    assert!(used >= 500, "only {used} identifiers used");

    let relations_before = relations(&client).await;
    let (namespaces_before, functions_before) = namespaces_and_functions(&client).await;
    let mut columns_expected = user_columns(&client).await;

    // One round trip for all DDL, over the simple protocol, where a quoting bug could stack
    // statements.
    let mut ddl = format!("CREATE SCHEMA {};\n", sql::quote_ident(schema).unwrap());
    for spec in &specs {
        spec.ddl(&mut ddl);
    }
    client.batch_execute(&ddl).await.unwrap();

    // All tables at once: the client pipelines the statements.
    join_all(
        specs
            .iter()
            .enumerate()
            .map(|(k, spec)| roundtrip(&client, k, spec)),
    )
    .await;

    let relations_after = relations(&client).await;
    assert!(
        relations_before.is_subset(&relations_after),
        "a relation disappeared"
    );
    let created: BTreeSet<_> = relations_after
        .difference(&relations_before)
        .cloned()
        .collect();
    let expected: BTreeSet<_> = specs
        .iter()
        .map(|s| {
            (
                s.schema.clone().unwrap_or_else(|| "public".into()),
                s.table.clone(),
                "r".to_owned(),
            )
        })
        .collect();
    assert_eq!(created, expected);

    for spec in &specs {
        let key = (
            spec.schema.clone().unwrap_or_else(|| "public".into()),
            spec.table.clone(),
        );
        columns_expected.insert(key, spec.columns.clone());
    }
    assert_eq!(user_columns(&client).await, columns_expected);

    let (namespaces_after, functions_after) = namespaces_and_functions(&client).await;
    let new_namespaces: Vec<_> = namespaces_after.difference(&namespaces_before).collect();
    assert_eq!(new_namespaces, [schema]);
    assert!(namespaces_before.is_subset(&namespaces_after));
    assert_eq!(functions_after, functions_before);
    victims_intact(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_through_a_table_name_leaves_victims_intact() {
    let (_tdb, client) = with_victims().await;
    let column = "id\" int); DROP TABLE victims; --";
    let ddl = format!(
        "CREATE TABLE {} ({} text)",
        sql::quote_ident(INJECTION).unwrap(),
        sql::quote_ident(column).unwrap()
    );
    client.batch_execute(&ddl).await.unwrap();

    let insert = sql::build_insert_query(INJECTION, &[column], 1).unwrap();
    client
        .execute(&insert, &[&"x'); DROP TABLE victims; --"])
        .await
        .unwrap();

    // The simple protocol runs every statement in the text: a broken quote would drop victims.
    let select = Select::from(INJECTION).columns(&[column]).build().unwrap();
    let messages = client.simple_query(select.sql()).await.unwrap();
    let rows: Vec<_> = messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_owned)),
            _ => None,
        })
        .collect();
    assert_eq!(rows, [Some("x'); DROP TABLE victims; --".to_owned())]);
    let count = Select::from(INJECTION).build_count().unwrap();
    client.simple_query(count.sql()).await.unwrap();
    let exists = Select::from(TableRef::qualified("public", INJECTION))
        .build_exists()
        .unwrap();
    client.simple_query(exists.sql()).await.unwrap();
    victims_intact(&client).await;

    let delete = sql::Delete::from(INJECTION).all_rows().build().unwrap();
    assert_eq!(client.execute(delete.sql(), &[]).await.unwrap(), 1);
    victims_intact(&client).await;
    let names: Vec<String> = client
        .query("SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY relname", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, [INJECTION, "victims"]);
}

#[test]
fn names_postgres_would_mangle_never_reach_the_server() {
    for bad in [
        String::new(),
        "a\0b".to_owned(),
        "x".repeat(64),
        "€".repeat(22),
    ] {
        assert!(sql::quote_ident(&bad).is_err(), "{bad:?}");
        assert!(sql::build_select_query(&bad, &[], &[]).is_err());
        assert!(sql::build_insert_query("t", &[bad.as_str()], 1).is_err());
    }
}
