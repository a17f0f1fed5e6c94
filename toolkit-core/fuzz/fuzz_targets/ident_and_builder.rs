//! Fuzzes identifier quoting and statement rendering: any input either fails cleanly or renders
//! SQL whose quoted identifiers unquote to exactly the given names and whose placeholders are
//! `$1..$n` in order, with `n` the reported parameter count.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use toolkit_core::sql::{
    self, col, Condition, Delete, Insert, Order, Query, Select, TableRef, Update,
};
use toolkit_core::Error;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    schema: Option<&'a str>,
    table: &'a str,
    columns: Vec<&'a str>,
    /// A little stack program building the condition tree.
    program: Vec<(u8, &'a str)>,
    kind: u8,
    rows: u8,
    limit: Option<u64>,
}

fuzz_target!(|input: Input<'_>| {
    check_ident(input.table);
    for column in &input.columns {
        check_ident(column);
    }
    let Some(result) = build(&input) else { return };
    match result {
        Ok(query) => check_query(&query, &input),
        Err(Error::InvalidIdentifier { identifier, .. }) => {
            assert!(sql::validate_ident(&identifier).is_err())
        }
        Err(Error::InvalidData { .. }) => {}
        Err(other) => panic!("unexpected error {other:?}"),
    }
});

fn check_ident(name: &str) {
    match sql::quote_ident(name) {
        Ok(quoted) => {
            assert!(sql::validate_ident(name).is_ok());
            let (ident, rest) = take_ident(&quoted).expect("quoted identifier");
            assert_eq!(ident, name);
            assert!(rest.is_empty(), "one token only");
        }
        Err(_) => {
            assert!(name.is_empty() || name.len() > sql::MAX_IDENT_LEN || name.contains('\0'))
        }
    }
}

/// Runs the stack program: opcodes 0..=9 push a comparison, 10/11 AND/OR the top two, 12
/// negates the top; whatever is left is AND-ed.
fn condition<'a>(program: &[(u8, &'a str)]) -> Option<Condition<'a>> {
    let mut stack: Vec<Condition<'a>> = Vec::new();
    for &(op, name) in program.iter().take(64) {
        let c = col(name);
        match op % 13 {
            0 => stack.push(c.eq()),
            1 => stack.push(c.ne()),
            2 => stack.push(c.lt()),
            3 => stack.push(c.gt()),
            4 => stack.push(c.le()),
            5 => stack.push(c.ge()),
            6 => stack.push(c.eq_any()),
            7 => stack.push(c.ne_all()),
            8 => stack.push(c.is_null()),
            9 => stack.push(c.is_not_null()),
            op => {
                let Some(top) = stack.pop() else { continue };
                let combined = match (op, stack.pop()) {
                    (10, Some(below)) => below.and(top),
                    (11, Some(below)) => below.or(top),
                    (_, below) => {
                        stack.extend(below);
                        top.negate()
                    }
                };
                stack.push(combined);
            }
        }
    }
    if stack.is_empty() {
        None
    } else {
        Some(Condition::all(stack))
    }
}

fn build(input: &Input<'_>) -> Option<Result<Query, Error>> {
    let table = match input.schema {
        Some(schema) => TableRef::qualified(schema, input.table),
        None => TableRef::new(input.table),
    };
    let filter = condition(&input.program);
    let columns = &input.columns;
    Some(match input.kind % 6 {
        0 | 1 => {
            let mut q = Select::from(table).columns(columns);
            if let Some(f) = filter {
                q = q.filter(f);
            }
            if let Some(first) = columns.first() {
                q = q.order_by(first, Order::Desc);
            }
            if let Some(limit) = input.limit {
                q = q.limit(limit).offset_param();
            }
            if input.kind % 6 == 0 {
                q.build()
            } else {
                q.build_count()
            }
        }
        2 => {
            let mut q = Insert::into(table)
                .columns(columns)
                .rows(usize::from(input.rows));
            if let Some(first) = columns.first() {
                q = q.on_conflict_do_update(&[first], columns).returning_all();
            }
            q.build()
        }
        3 => {
            let mut q = Update::table(table).set(columns).all_rows();
            if let Some(f) = filter {
                q = q.filter(f);
            }
            q.build()
        }
        4 => {
            let mut q = Delete::from(table).returning(columns);
            if let Some(f) = filter {
                q = q.filter(f);
            }
            q.build()
        }
        _ => {
            let keys: Vec<&str> = input.program.iter().map(|(_, k)| *k).collect();
            let helper = match input.rows % 4 {
                0 => sql::build_select_query(input.table, columns, &keys),
                1 => sql::build_insert_query(input.table, columns, usize::from(input.rows)),
                2 => sql::build_update_query(input.table, columns, &keys),
                _ => sql::build_delete_query(input.table, &keys),
            };
            return match helper {
                Ok(text) => {
                    placeholders(&text, input);
                    None
                }
                Err(_) => None,
            };
        }
    })
}

fn check_query(query: &Query, input: &Input<'_>) {
    let count = placeholders(query.sql(), input);
    assert_eq!(count, query.param_count());
}

/// Walks the SQL outside quoted identifiers: every identifier must be one of the inputs (or the
/// builder's own `counted` alias), every placeholder the next number, and no quote, `;` or
/// comment may appear. Returns the number of placeholders.
fn placeholders(sql_text: &str, input: &Input<'_>) -> usize {
    let mut rest = sql_text;
    let mut next = 1usize;
    while let Some(c) = rest.chars().next() {
        if c == '"' {
            let (ident, after) = take_ident(rest).expect("terminated identifier");
            let known = ident == "counted"
                || ident == input.table
                || input.schema == Some(ident.as_str())
                || input.columns.contains(&ident.as_str())
                || input.program.iter().any(|(_, n)| *n == ident);
            assert!(known, "identifier {ident:?} is not an input");
            rest = after;
        } else if c == '$' {
            let digits: String = rest[1..].chars().take_while(char::is_ascii_digit).collect();
            assert_eq!(digits.parse::<usize>().expect("placeholder number"), next);
            next += 1;
            rest = &rest[1 + digits.len()..];
        } else {
            assert!(
                !matches!(c, '\'' | ';' | '-' | '/' | '\\' | '\0'),
                "{c:?} in {sql_text:?}"
            );
            rest = &rest[c.len_utf8()..];
        }
    }
    next - 1
}

/// Splits a leading `"..."` identifier (with `""` escapes) off `text`, unquoted.
fn take_ident(text: &str) -> Option<(String, &str)> {
    let mut name = String::new();
    let mut chars = text.strip_prefix('"')?.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            if let Some((_, '"')) = chars.peek() {
                chars.next();
                name.push('"');
            } else {
                return Some((name, &text[i + 2..]));
            }
        } else {
            name.push(c);
        }
    }
    None
}
