//! Parsing of `#[entity(...)]` on the struct and on its fields.
//!
//! A bad key or value is recorded in the [`Ctxt`] and parsing goes on with the next key, so one
//! build reports every mistake.

use proc_macro2::{Span, TokenTree};
use syn::meta::ParseNestedMeta;
use syn::{Attribute, LitStr, Token};

use crate::ctxt::Ctxt;

const CONTAINER_KEYS: &str = "`table`, `schema`, `crate`";
const FIELD_KEYS: &str =
    "`primary_key`, `generated`, `column`, `json`, `skip`, `version`, `soft_delete`";

/// `#[entity(...)]` on the struct.
#[derive(Default)]
pub struct Container {
    pub table: Option<LitStr>,
    pub schema: Option<LitStr>,
    /// Path to the `toolkit` facade; `::toolkit` when absent.
    pub krate: Option<syn::Path>,
}

/// `#[entity(...)]` on one field. Flags keep the span of their keyword for later errors.
#[derive(Default)]
pub struct Field {
    pub primary_key: Option<Span>,
    pub generated: Option<Span>,
    pub json: Option<Span>,
    pub skip: Option<Span>,
    pub column: Option<LitStr>,
    /// Optimistic locking: checked and bumped by `update` and `save`.
    pub version: Option<Span>,
    /// Soft delete: `delete` sets it to `now()`, reads skip rows where it is set.
    pub soft_delete: Option<Span>,
}

impl Container {
    pub fn from_attrs(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut out = Container::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("entity")) {
            let result = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("table") {
                    set_once(cx, &meta, &mut out.table, string_value(cx, &meta, "table")?);
                } else if meta.path.is_ident("schema") {
                    set_once(
                        cx,
                        &meta,
                        &mut out.schema,
                        string_value(cx, &meta, "schema")?,
                    );
                } else if meta.path.is_ident("crate") {
                    let path = string_value(cx, &meta, "crate")?.and_then(|lit| {
                        match lit.parse::<syn::Path>() {
                            Ok(path) => Some(path),
                            Err(_) => {
                                cx.error_spanned_by(
                                    &lit,
                                    "`crate` expects a path, like `crate = \"::toolkit\"`",
                                );
                                None
                            }
                        }
                    });
                    set_once(cx, &meta, &mut out.krate, path);
                } else {
                    unknown(cx, &meta, CONTAINER_KEYS)?;
                }
                Ok(())
            });
            if let Err(error) = result {
                cx.syn_error(error);
            }
        }
        out
    }
}

impl Field {
    pub fn from_attrs(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut out = Field::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("entity")) {
            let result = attr.parse_nested_meta(|meta| {
                let flag = |name| flag_value(cx, &meta, name);
                if meta.path.is_ident("primary_key") {
                    let span = flag("primary_key")?;
                    let why = "a skipped field is not stored, so it cannot be the key";
                    out.conflicts_with_skip(cx, &meta, "primary_key", why);
                    set_once(cx, &meta, &mut out.primary_key, span);
                } else if meta.path.is_ident("generated") {
                    let span = flag("generated")?;
                    out.conflicts_with_skip(cx, &meta, "generated", "a skipped field is not stored");
                    set_once(cx, &meta, &mut out.generated, span);
                } else if meta.path.is_ident("json") {
                    let span = flag("json")?;
                    out.conflicts_with_skip(cx, &meta, "json", "a skipped field is not stored");
                    set_once(cx, &meta, &mut out.json, span);
                } else if meta.path.is_ident("column") {
                    let lit = string_value(cx, &meta, "column")?;
                    out.conflicts_with_skip(cx, &meta, "column", "a skipped field has no column");
                    set_once(cx, &meta, &mut out.column, lit);
                } else if meta.path.is_ident("version") {
                    let span = flag("version")?;
                    out.conflicts_with_skip(cx, &meta, "version", "a skipped field is not stored");
                    set_once(cx, &meta, &mut out.version, span);
                } else if meta.path.is_ident("soft_delete") {
                    let span = flag("soft_delete")?;
                    out.conflicts_with_skip(cx, &meta, "soft_delete", "a skipped field is not stored");
                    set_once(cx, &meta, &mut out.soft_delete, span);
                } else if meta.path.is_ident("skip") {
                    let span = flag("skip")?;
                    if let Some(other) = out.stored_only_key() {
                        let message = format!("`skip` cannot be combined with `{other}`: a skipped field is not stored");
                        cx.error_spanned_by(&meta.path, message);
                    }
                    set_once(cx, &meta, &mut out.skip, span);
                } else {
                    unknown(cx, &meta, FIELD_KEYS)?;
                }
                Ok(())
            });
            if let Err(error) = result {
                cx.syn_error(error);
            }
        }
        out
    }

    /// The first key already given that only makes sense for a stored field.
    fn stored_only_key(&self) -> Option<&'static str> {
        let keys = [
            ("primary_key", self.primary_key.is_some()),
            ("generated", self.generated.is_some()),
            ("json", self.json.is_some()),
            ("column", self.column.is_some()),
            ("version", self.version.is_some()),
            ("soft_delete", self.soft_delete.is_some()),
        ];
        keys.into_iter().find_map(|(key, set)| set.then_some(key))
    }

    /// Reported at the later of the two keys, which is the one that made the pair conflict.
    fn conflicts_with_skip(&self, cx: &Ctxt, meta: &ParseNestedMeta<'_>, key: &str, why: &str) {
        if self.skip.is_some() {
            cx.error_spanned_by(
                &meta.path,
                format!("`{key}` cannot be combined with `skip`: {why}"),
            );
        }
    }
}

/// Stores `value` unless the key was already given; a duplicate is reported at its key.
fn set_once<T>(cx: &Ctxt, meta: &ParseNestedMeta<'_>, slot: &mut Option<T>, value: Option<T>) {
    if slot.is_some() {
        let key = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        cx.error_spanned_by(&meta.path, format!("duplicate entity attribute `{key}`"));
    } else if value.is_some() {
        *slot = value;
    }
}

/// `key = "..."`. Anything else is reported at the value and yields `None`.
fn string_value(cx: &Ctxt, meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<Option<LitStr>> {
    let expected = format!("`{key}` expects a string literal, like `{key} = \"...\"`");
    if !meta.input.peek(Token![=]) {
        cx.error_spanned_by(&meta.path, expected);
        skip_value(meta)?;
        return Ok(None);
    }
    let value = meta.value()?;
    if value.peek(LitStr) {
        return value.parse().map(Some);
    }
    let rest = rest_of_item(meta)?;
    cx.error_spanned_by(rest, expected);
    Ok(None)
}

/// A bare flag such as `json`; `json = ...` or `json(...)` is reported at the extra tokens.
fn flag_value(cx: &Ctxt, meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<Option<Span>> {
    let span = meta
        .path
        .get_ident()
        .map_or_else(Span::call_site, syn::Ident::span);
    let rest = rest_of_item(meta)?;
    if rest.is_empty() {
        return Ok(Some(span));
    }
    cx.error_spanned_by(
        rest,
        format!("`{key}` takes no value; write `#[entity({key})]`"),
    );
    Ok(None)
}

fn unknown(cx: &Ctxt, meta: &ParseNestedMeta<'_>, expected: &str) -> syn::Result<()> {
    let path = &meta.path;
    let key = quote::quote!(#path).to_string().replace(' ', "");
    cx.error_spanned_by(
        &meta.path,
        format!("unknown entity attribute `{key}`, expected one of {expected}"),
    );
    skip_value(meta)
}

fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    rest_of_item(meta).map(drop)
}

/// The tokens after the key up to the next top-level `,`: a value, a list, or nothing.
fn rest_of_item(meta: &ParseNestedMeta<'_>) -> syn::Result<proc_macro2::TokenStream> {
    let mut rest = proc_macro2::TokenStream::new();
    while !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        rest.extend([meta.input.parse::<TokenTree>()?]);
    }
    Ok(rest)
}
