//! Checks that need the whole struct: the key, name validity, clashing columns.

use std::collections::hash_map::{Entry, HashMap};

use proc_macro2::Span;

use crate::ast::Container;
use crate::ctxt::Ctxt;

/// PostgreSQL's `NAMEDATALEN - 1`.
const MAX_IDENT_LEN: usize = 63;

/// The rules of `toolkit_core::sql::validate_ident`, repeated here because a proc-macro crate
/// must not depend on the runtime it generates code for (it would be built twice, for the host
/// and the target). Keep the two in step; the `toolkit` ui tests pin the messages.
fn validate_ident(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if name.len() > MAX_IDENT_LEN {
        return Err(format!(
            "must be at most {MAX_IDENT_LEN} bytes (PostgreSQL silently truncates longer names), and this one has {}",
            name.len()
        ));
    }
    if name.contains('\0') {
        return Err("must not contain a NUL byte".to_owned());
    }
    Ok(())
}

pub fn check(cx: &Ctxt, cont: &Container<'_>) {
    check_names(cx, cont);
    if cont.fields.is_some() {
        check_key(cx, cont);
        check_columns(cx, cont);
        check_special(cx, cont);
    }
}

fn ident_error(cx: &Ctxt, what: &str, name: &str, span: Span) {
    if let Err(reason) = validate_ident(name) {
        cx.syn_error(syn::Error::new(
            span,
            format!("invalid {what} name: {reason}"),
        ));
    }
}

fn check_names(cx: &Ctxt, cont: &Container<'_>) {
    let (table, span) = &cont.table;
    ident_error(cx, "table", table, *span);
    if let Some(schema) = cont.schema() {
        ident_error(cx, "schema", &schema.value(), schema.span());
    }
    for field in cont.stored() {
        let (column, span) = &field.column;
        ident_error(cx, "column", column, *span);
    }
}

fn check_key(cx: &Ctxt, cont: &Container<'_>) {
    let mut keys = cont
        .fields()
        .iter()
        .filter_map(|f| f.attrs.primary_key.map(|span| (f, span)));
    let first = keys.next();
    for (_, span) in keys {
        cx.syn_error(syn::Error::new(
            span,
            "a second `primary_key`: an entity has exactly one key column",
        ));
    }
    match (first, cont.key()) {
        (Some((field, span)), _) => {
            if field.attrs.json.is_some() {
                cx.syn_error(syn::Error::new(
                    span,
                    "a `json` field cannot be the primary key: the key is compared with `=`",
                ));
            }
        }
        (None, Some(_)) => {}
        (None, None) => cx.error_spanned_by(
            cont.ident,
            "no primary key: mark a field `#[entity(primary_key)]` or name it `id`",
        ),
    }
}

/// Two fields on one column would make INSERT name it twice.
fn check_columns(cx: &Ctxt, cont: &Container<'_>) {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for field in cont.stored() {
        let (column, span) = &field.column;
        match seen.entry(column) {
            Entry::Occupied(first) => {
                let message = format!(
                    "column `{column}` is already used by field `{}`",
                    first.get()
                );
                cx.syn_error(syn::Error::new(*span, message));
            }
            Entry::Vacant(slot) => {
                slot.insert(&field.name);
            }
        }
    }
}

/// `version` and `soft_delete`: at most one of each, on a plain stored column that is not the
/// key; a `soft_delete` field must be an `Option` (NULL while the row is live).
fn check_special(cx: &Ctxt, cont: &Container<'_>) {
    for (key, spans) in [
        (
            "version",
            cont.fields()
                .iter()
                .filter_map(|f| f.attrs.version.map(|s| (f, s)))
                .collect::<Vec<_>>(),
        ),
        (
            "soft_delete",
            cont.fields()
                .iter()
                .filter_map(|f| f.attrs.soft_delete.map(|s| (f, s)))
                .collect(),
        ),
    ] {
        for (_, span) in spans.iter().skip(1) {
            cx.syn_error(syn::Error::new(
                *span,
                format!("a second `{key}` field: an entity has at most one"),
            ));
        }
        for (field, span) in &spans {
            let is_key = cont.key().is_some_and(|k| k.ident == field.ident);
            let clash = [
                ("primary_key", is_key),
                ("json", field.attrs.json.is_some()),
                ("generated", field.attrs.generated.is_some()),
                (
                    "version",
                    key == "soft_delete" && field.attrs.version.is_some(),
                ),
            ]
            .into_iter()
            .find_map(|(other, set)| set.then_some(other));
            if let Some(other) = clash {
                cx.syn_error(syn::Error::new(
                    *span,
                    format!("`{key}` cannot be combined with `{other}`: the toolkit writes this column itself"),
                ));
            }
            if key == "version" && field.option_inner().is_some() {
                cx.syn_error(syn::Error::new(
                    *span,
                    "a `version` field cannot be an `Option`: a NULL version never matches, so every save would conflict",
                ));
            }
            if key == "soft_delete" && field.option_inner().is_none() {
                cx.syn_error(syn::Error::new(
                    *span,
                    "a `soft_delete` field must be an `Option` (e.g. `Option<DateTime<Utc>>`): NULL while the row is live",
                ));
            }
        }
    }
}
