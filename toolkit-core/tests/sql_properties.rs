//! Property tests of the SQL builder: whatever names it is given, the output either is an error
//! or lexes into keywords, quoted identifiers that unquote to exactly the given names, and
//! placeholders `$1..$n` with `n` the reported parameter count, each `$k` standing where the
//! caller's `k`-th value belongs (the column it was given for, or `LIMIT`/`OFFSET`).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use proptest::prelude::*;
use toolkit_core::sql::{self, col, Condition, Delete, Insert, Order, Select, TableRef, Update};
use toolkit_core::Error;

/// One lexical token of rendered SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Param(usize),
    Word(String),
}

/// Everything the builder may write outside identifiers and placeholders.
const VOCABULARY: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IS",
    "NULL",
    "TRUE",
    "FALSE",
    "ANY",
    "ALL",
    "ORDER",
    "BY",
    "ASC",
    "DESC",
    "LIMIT",
    "OFFSET",
    "INSERT",
    "INTO",
    "VALUES",
    "DEFAULT",
    "UPDATE",
    "SET",
    "DELETE",
    "RETURNING",
    "ON",
    "CONFLICT",
    "DO",
    "NOTHING",
    "EXCLUDED",
    "COUNT",
    "EXISTS",
    "AS",
    "(",
    ")",
    ",",
    ".",
    "*",
    "=",
    "<>",
    "<",
    ">",
    "<=",
    ">=",
];

/// A deliberately small SQL lexer: quoted identifiers (with `""` escapes), `$n`, words, numbers
/// and the operators above. Anything else (a string literal, `;`, a comment) is a lexing error.
fn lex(sql: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == ' ' {
            i += 1;
        } else if c == '"' {
            let mut name = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(format!("unterminated identifier in {sql:?}")),
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        name.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        name.push(other);
                        i += 1;
                    }
                }
            }
            tokens.push(Token::Ident(name));
        } else if c == '$' {
            let start = i + 1;
            i = start;
            while chars.get(i).is_some_and(char::is_ascii_digit) {
                i += 1;
            }
            let digits: String = chars[start..i].iter().collect();
            tokens.push(Token::Param(
                digits
                    .parse()
                    .map_err(|_| format!("bad placeholder in {sql:?}"))?,
            ));
        } else if c.is_ascii_alphanumeric() {
            let start = i;
            while chars.get(i).is_some_and(char::is_ascii_alphanumeric) {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let op = if ["<>", "<=", ">="].contains(&two.as_str()) {
                two
            } else {
                c.to_string()
            };
            if !VOCABULARY.contains(&op.as_str()) {
                return Err(format!("unexpected {op:?} in {sql:?}"));
            }
            i += op.chars().count();
            tokens.push(Token::Word(op));
        }
    }
    Ok(tokens)
}

fn is_valid(name: &str) -> bool {
    !name.is_empty() && name.len() <= 63 && !name.contains('\0')
}

/// Names biased towards the characters that break naive quoting, plus some invalid ones (rare
/// enough that most statements, which hold several names, still build).
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        30 => "[a-zA-Z0-9 \"\\\\$;\\-\n\t*/.,()=<>é€日🦀]{1,20}",
        1 => Just(String::new()),
        1 => "[a-z\"]{1,10}\0[a-z]{0,5}",
        1 => "[a-z\"]{62,64}",
        1 => "[a-zé€]{20,40}",
        3 => prop_oneof![Just("user"), Just("order"), Just("select"), Just("SELECT"), Just("from")]
            .prop_map(String::from),
    ]
}

/// A condition tree mirrored in plain data so the test can count its placeholders.
#[derive(Debug, Clone)]
enum Cond {
    Leaf(String, u8),
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
}

const LEAF_KINDS: u8 = 10;

fn cond() -> impl Strategy<Value = Cond> {
    let leaf = (name(), 0..LEAF_KINDS).prop_map(|(n, k)| Cond::Leaf(n, k));
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Cond::All),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Cond::Any),
            inner.prop_map(|c| Cond::Not(Box::new(c))),
        ]
    })
}

impl Cond {
    fn build(&self) -> Condition<'_> {
        match self {
            Cond::Leaf(n, kind) => {
                let c = col(n);
                match kind {
                    0 => c.eq(),
                    1 => c.ne(),
                    2 => c.lt(),
                    3 => c.gt(),
                    4 => c.le(),
                    5 => c.ge(),
                    6 => c.eq_any(),
                    7 => c.ne_all(),
                    8 => c.is_null(),
                    _ => c.is_not_null(),
                }
            }
            Cond::All(items) => Condition::all(items.iter().map(Cond::build)),
            Cond::Any(items) => Condition::any(items.iter().map(Cond::build)),
            Cond::Not(inner) => inner.build().negate(),
        }
    }

    fn params(&self) -> usize {
        match self {
            Cond::Leaf(_, kind) => usize::from(*kind < 8),
            Cond::All(items) | Cond::Any(items) => items.iter().map(Cond::params).sum(),
            Cond::Not(inner) => inner.params(),
        }
    }

    /// The columns of the leaves that take a value, in the order the tree lists them.
    fn slots<'a>(&'a self, out: &mut Vec<Slot<'a>>) {
        match self {
            Cond::Leaf(n, kind) if *kind < 8 => out.push(Slot::Column(n)),
            Cond::Leaf(..) => {}
            Cond::All(items) | Cond::Any(items) => items.iter().for_each(|c| c.slots(out)),
            Cond::Not(inner) => inner.slots(out),
        }
    }

    fn names<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Cond::Leaf(n, _) => out.push(n),
            Cond::All(items) | Cond::Any(items) => items.iter().for_each(|c| c.names(out)),
            Cond::Not(inner) => inner.names(out),
        }
    }
}

/// A random statement over random names.
#[derive(Debug, Clone)]
struct Stmt {
    kind: u8,
    schema: Option<String>,
    table: String,
    columns: Vec<String>,
    filter: Option<Cond>,
    rows: usize,
    limit: u8,
    returning: Vec<String>,
}

/// What the caller's `k`-th value is for, in the order the builder's API takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot<'a> {
    Column(&'a str),
    Limit,
    Offset,
}

fn stmt() -> impl Strategy<Value = Stmt> {
    (
        0u8..6,
        prop::option::weighted(0.3, name()),
        name(),
        prop::collection::vec(name(), 0..5),
        prop::option::weighted(0.8, cond()),
        1usize..4,
        0u8..4,
        prop::collection::vec(name(), 0..3),
    )
        .prop_map(
            |(kind, schema, table, columns, filter, rows, limit, returning)| Stmt {
                kind,
                schema,
                table,
                columns,
                filter,
                rows,
                limit,
                returning,
            },
        )
}

impl Stmt {
    fn table(&self) -> TableRef<'_> {
        match &self.schema {
            Some(schema) => TableRef::qualified(schema, &self.table),
            None => TableRef::new(&self.table),
        }
    }

    fn columns(&self) -> Vec<&str> {
        self.columns.iter().map(String::as_str).collect()
    }

    fn build(&self) -> Result<sql::Query, Error> {
        let columns = self.columns();
        let returning: Vec<&str> = self.returning.iter().map(String::as_str).collect();
        match self.kind {
            0 | 1 => {
                let mut q = Select::from(self.table()).columns(&columns);
                if let Some(c) = &self.filter {
                    q = q.filter(c.build());
                }
                for c in &columns {
                    q = q.order_by(c, Order::Desc);
                }
                q = match self.limit {
                    0 => q,
                    1 => q.limit(7),
                    2 => q.limit_param().offset(3),
                    _ => q.limit_param().offset_param(),
                };
                if self.kind == 0 {
                    q.build()
                } else {
                    q.build_count()
                }
            }
            2 => {
                let mut q = Insert::into(self.table()).columns(&columns).rows(self.rows);
                if let Some(first) = columns.first() {
                    q = q.on_conflict_do_update(&[first], &columns);
                }
                if !returning.is_empty() {
                    q = q.returning(&returning);
                }
                q.build()
            }
            3 => {
                let mut q = Update::table(self.table()).set(&columns).all_rows();
                if let Some(c) = &self.filter {
                    q = q.filter(c.build());
                }
                q.returning_all().build()
            }
            4 => {
                let mut q = Delete::from(self.table()).all_rows();
                if let Some(c) = &self.filter {
                    q = q.filter(c.build());
                }
                if !returning.is_empty() {
                    q = q.returning(&returning);
                }
                q.build()
            }
            _ => {
                let mut q = Select::from(self.table());
                if let Some(c) = &self.filter {
                    q = q.filter(c.build());
                }
                q.build_exists()
            }
        }
    }

    /// Every name the statement renders.
    fn names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.schema.iter().map(String::as_str).collect();
        out.push(&self.table);
        if self.kind <= 3 {
            out.extend(self.columns.iter().map(String::as_str));
        }
        if let Some(c) = self.filter.as_ref().filter(|_| self.kind != 2) {
            c.names(&mut out);
        }
        if matches!(self.kind, 2 | 4) {
            out.extend(self.returning.iter().map(String::as_str));
        }
        out
    }

    fn expected_params(&self) -> usize {
        let filter = self.filter.as_ref().map_or(0, Cond::params);
        match self.kind {
            0 | 1 => filter + [0, 0, 1, 2][usize::from(self.limit)],
            2 => self.columns.len() * self.rows,
            3 => self.columns.len() + filter,
            _ => filter,
        }
    }

    /// What each value the caller binds is for, in binding order: `slots()[k - 1]` is `$k`.
    fn slots<'a>(&'a self) -> Vec<Slot<'a>> {
        let mut out = Vec::new();
        let filter = |out: &mut Vec<Slot<'a>>| {
            if let Some(c) = &self.filter {
                c.slots(out);
            }
        };
        match self.kind {
            0 | 1 => {
                filter(&mut out);
                out.extend(match self.limit {
                    2 => vec![Slot::Limit],
                    3 => vec![Slot::Limit, Slot::Offset],
                    _ => vec![],
                });
            }
            2 => {
                for _ in 0..self.rows {
                    out.extend(self.columns.iter().map(|c| Slot::Column(c)));
                }
            }
            3 => {
                out.extend(self.columns.iter().map(|c| Slot::Column(c)));
                filter(&mut out);
            }
            _ => filter(&mut out),
        }
        out
    }

    /// Errors that do not come from a name.
    fn structurally_invalid(&self) -> bool {
        match self.kind {
            2 => self.columns.is_empty(),
            3 => self.columns.is_empty(),
            _ => false,
        }
    }
}

/// Each placeholder stands where the caller's value for it belongs: right after the column it
/// was given for (`"c" = $k`, `"c" = ANY($k)`), after `LIMIT`/`OFFSET`, or for an INSERT in the
/// position of its column within its `VALUES` row, the column list being the given columns.
fn check_bindings(s: &Stmt, tokens: &[Token]) -> Result<(), TestCaseError> {
    let slots = s.slots();
    let word = |t: &Token, w: &str| matches!(t, Token::Word(x) if x == w);
    if s.kind == 2 {
        let open = tokens.iter().position(|t| word(t, "(")).unwrap_or(0);
        let listed: Vec<&str> = tokens[open..]
            .iter()
            .take_while(|t| !word(t, ")"))
            .filter_map(|t| match t {
                Token::Ident(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        prop_assert_eq!(&listed, &s.columns(), "INSERT column list");
    }
    for (i, token) in tokens.iter().enumerate() {
        let Token::Param(k) = token else { continue };
        let Some(slot) = slots.get(k - 1) else {
            return Err(TestCaseError::fail(format!("${k} has no value for it")));
        };
        let before = &tokens[..i];
        match slot {
            Slot::Limit => prop_assert!(before.last().is_some_and(|t| word(t, "LIMIT")), "${k}"),
            Slot::Offset => prop_assert!(before.last().is_some_and(|t| word(t, "OFFSET")), "${k}"),
            Slot::Column(name) if s.kind == 2 => {
                // Position within the row: placeholders since the row's opening parenthesis.
                let row_start = before.iter().rposition(|t| word(t, "(")).unwrap_or(0);
                let position = before[row_start..]
                    .iter()
                    .filter(|t| matches!(t, Token::Param(_)))
                    .count();
                prop_assert_eq!(
                    s.columns.get(position).map(String::as_str),
                    Some(*name),
                    "${} is in the VALUES position of another column",
                    k
                );
            }
            Slot::Column(name) => {
                // `"c" <op> $k` or `"c" = ANY($k)`: only an operator between column and value.
                let bound = before.iter().rev().find_map(|t| match t {
                    Token::Ident(n) => Some(Some(n.as_str())),
                    Token::Word(w)
                        if ["=", "<>", "<", ">", "<=", ">=", "ANY", "ALL", "("]
                            .contains(&w.as_str()) =>
                    {
                        None
                    }
                    _ => Some(None),
                });
                prop_assert_eq!(
                    bound.flatten(),
                    Some(*name),
                    "${} does not follow the column its value is for",
                    k
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn identifier_errors_or_renders_one_token_that_unquotes_to_the_input(
        raw in prop_oneof![any::<String>(), name()]
    ) {
        match sql::quote_ident(&raw) {
            Ok(quoted) => {
                prop_assert!(is_valid(&raw));
                prop_assert_eq!(lex(&quoted), Ok(vec![Token::Ident(raw.clone())]));
                prop_assert_eq!(sql::Ident::new(raw.as_str()).unwrap().to_string(), quoted);
            }
            Err(Error::InvalidIdentifier { identifier, .. }) => {
                prop_assert!(!is_valid(&raw));
                prop_assert_eq!(identifier, raw);
            }
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }

    #[test]
    fn statements_lex_to_keywords_given_names_and_numbered_placeholders(s in stmt()) {
        let names = s.names();
        match s.build() {
            Ok(query) => {
                prop_assert!(names.iter().all(|n| is_valid(n)), "accepted an invalid name: {s:?}");
                let tokens = lex(query.sql()).map_err(TestCaseError::fail)?;
                let mut params = Vec::new();
                for token in &tokens {
                    match token {
                        Token::Ident(n) => prop_assert!(
                            names.contains(&n.as_str()) || n == "counted",
                            "identifier {n:?} is not one of the inputs"
                        ),
                        Token::Param(p) => params.push(*p),
                        Token::Word(w) => prop_assert!(
                            VOCABULARY.contains(&w.as_str()) || w.chars().all(|c| c.is_ascii_digit()),
                            "unexpected word {w:?}"
                        ),
                    }
                }
                // Numbered in text order, each used once, no gaps.
                let expected: Vec<usize> = (1..=query.param_count()).collect();
                prop_assert_eq!(&params, &expected);
                prop_assert_eq!(query.param_count(), s.expected_params());
                let distinct: BTreeSet<usize> = params.iter().copied().collect();
                prop_assert_eq!(distinct.len(), query.param_count());
                check_bindings(&s, &tokens)?;
            }
            Err(Error::InvalidIdentifier { identifier, .. }) => {
                prop_assert!(!is_valid(&identifier));
                prop_assert!(names.contains(&identifier.as_str()));
            }
            Err(Error::InvalidData { field, .. }) => {
                prop_assert!(
                    s.structurally_invalid() || field == "condition",
                    "unexpected InvalidData({field}) for {s:?}"
                );
            }
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }

    #[test]
    fn helpers_match_builders(
        table in name(),
        columns in prop::collection::vec(name(), 1..4),
        keys in prop::collection::vec(name(), 1..4),
        rows in 1usize..4,
    ) {
        let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let filter = || Condition::all(keys.iter().map(|k| col(k).eq()));
        let same = |helper: Result<String, Error>, builder: Result<sql::Query, Error>| match (helper, builder) {
            (Ok(h), Ok(b)) => h == b.sql(),
            (Err(_), Err(_)) => true,
            _ => false,
        };
        prop_assert!(same(
            sql::build_select_query(&table, &cols, &keys),
            Select::from(table.as_str()).columns(&cols).filter(filter()).build(),
        ));
        prop_assert!(same(
            sql::build_insert_query(&table, &cols, rows),
            Insert::into(table.as_str()).columns(&cols).rows(rows).build(),
        ));
        prop_assert!(same(
            sql::build_update_query(&table, &cols, &keys),
            Update::table(table.as_str()).set(&cols).filter(filter()).build(),
        ));
        prop_assert!(same(
            sql::build_delete_query(&table, &keys),
            Delete::from(table.as_str()).filter(filter()).build(),
        ));
    }
}

#[test]
fn lexer_rejects_what_the_builder_must_never_emit() {
    assert!(lex("SELECT 'x'").is_err());
    assert!(lex("SELECT 1; DROP").is_err());
    assert!(lex("SELECT 1 -- c").is_err());
    assert!(lex("\"open").is_err());
    assert_eq!(
        lex(r#"SELECT "a""b" FROM "t" WHERE "x" >= $12"#).unwrap(),
        vec![
            Token::Word("SELECT".into()),
            Token::Ident("a\"b".into()),
            Token::Word("FROM".into()),
            Token::Ident("t".into()),
            Token::Word("WHERE".into()),
            Token::Ident("x".into()),
            Token::Word(">=".into()),
            Token::Param(12),
        ]
    );
}
