//! The model the checks and the code generator work on: the struct, its fields and their
//! parsed attributes, with every name already resolved.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, LitStr, Type, Visibility};

use crate::attr;
use crate::case::snake_case;
use crate::ctxt::Ctxt;

pub struct Container<'a> {
    pub ident: &'a Ident,
    pub vis: &'a Visibility,
    pub attrs: attr::Container,
    /// Table name and the span to report it at: the literal, or the struct name it came from.
    pub table: (String, Span),
    /// `None` for an enum, a union, a tuple or unit struct: there is nothing to map.
    pub fields: Option<Vec<Field<'a>>>,
    /// Generic parameters are not supported; a stub impl could not name the type either.
    pub generic: bool,
}

pub struct Field<'a> {
    pub ident: &'a Ident,
    pub vis: &'a Visibility,
    pub ty: &'a Type,
    pub attrs: attr::Field,
    /// The Rust name without `r#`, as shown in errors at run time.
    pub name: String,
    /// Column name and the span to report it at: the `column` literal or the field name.
    pub column: (String, Span),
}

impl<'a> Container<'a> {
    /// Builds the model, recording in `cx` whatever makes the input unusable; always returns
    /// enough for a stub impl.
    pub fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Self {
        let attrs = attr::Container::from_attrs(cx, &input.attrs);
        let table = match &attrs.table {
            Some(lit) => (lit.value(), lit.span()),
            None => (snake_case(&unraw(&input.ident)), input.ident.span()),
        };
        let generic = !input.generics.params.is_empty() || input.generics.where_clause.is_some();
        if generic {
            cx.error_spanned_by(&input.generics, "`#[derive(Entity)]` does not support generic structs: an entity maps to one table with fixed column types");
        }
        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => Some(
                    named
                        .named
                        .iter()
                        .filter_map(|f| Field::from_ast(cx, f))
                        .collect(),
                ),
                Fields::Unnamed(unnamed) => {
                    cx.error_spanned_by(unnamed, "`#[derive(Entity)]` needs named fields: each field maps to a column by name");
                    None
                }
                Fields::Unit => {
                    cx.error_spanned_by(&input.ident, "`#[derive(Entity)]` needs a struct with named fields, and a unit struct has none");
                    None
                }
            },
            Data::Enum(data) => {
                cx.error_spanned_by(
                    data.enum_token,
                    "`#[derive(Entity)]` supports only structs with named fields, not enums",
                );
                None
            }
            Data::Union(data) => {
                cx.error_spanned_by(
                    data.union_token,
                    "`#[derive(Entity)]` supports only structs with named fields, not unions",
                );
                None
            }
        };
        Container {
            ident: &input.ident,
            vis: &input.vis,
            attrs,
            table,
            fields,
            generic,
        }
    }

    pub fn schema(&self) -> Option<&LitStr> {
        self.attrs.schema.as_ref()
    }

    pub fn krate(&self) -> syn::Path {
        self.attrs
            .krate
            .clone()
            .unwrap_or_else(|| syn::parse_quote!(::toolkit))
    }

    pub fn fields(&self) -> &[Field<'a>] {
        self.fields.as_deref().unwrap_or_default()
    }

    /// Fields that are columns, in order: the position here is the column index.
    pub fn stored(&self) -> impl Iterator<Item = &Field<'a>> {
        self.fields().iter().filter(|f| f.attrs.skip.is_none())
    }

    /// The key: the first `primary_key` field, else a stored field named `id`.
    pub fn key(&self) -> Option<&Field<'a>> {
        let fields = self.fields();
        match fields.iter().find(|f| f.attrs.primary_key.is_some()) {
            Some(key) => Some(key),
            None => fields
                .iter()
                .find(|f| f.name == "id" && f.attrs.skip.is_none()),
        }
    }

    /// Columns `update` may set: stored, neither the key nor generated.
    pub fn updatable(&self) -> impl Iterator<Item = (usize, &Field<'a>)> {
        let key = self.key().map(|k| k.ident);
        self.stored()
            .enumerate()
            .filter(move |(_, f)| Some(f.ident) != key && f.attrs.generated.is_none())
    }
}

impl<'a> Field<'a> {
    fn from_ast(cx: &Ctxt, field: &'a syn::Field) -> Option<Self> {
        let ident = field.ident.as_ref()?;
        let attrs = attr::Field::from_attrs(cx, &field.attrs);
        let name = unraw(ident);
        let column = match &attrs.column {
            Some(lit) => (lit.value(), lit.span()),
            None => (name.clone(), ident.span()),
        };
        Some(Field {
            ident,
            vis: &field.vis,
            ty: &field.ty,
            attrs,
            name,
            column,
        })
    }

    /// For `Option<T>`, `T`: the column is nullable. Decided on the syntax, since a proc macro
    /// cannot resolve types; a type alias of `Option` is not recognised.
    pub fn option_inner(&self) -> Option<&'a Type> {
        option_inner(self.ty)
    }

    /// Where trait errors about this field's type are reported. Only the location is the
    /// type's: names still resolve at the derive's call site, so locals of the generated code
    /// stay visible when the type comes from another macro's context.
    pub fn ty_span(&self) -> Span {
        Span::call_site().located_at(self.ty.span())
    }
}

fn option_inner(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Group(group) => option_inner(&group.elem),
        Type::Paren(paren) => option_inner(&paren.elem),
        Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last()?;
            let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
                return None;
            };
            match (last.ident == "Option", args.args.len(), args.args.first()) {
                (true, 1, Some(syn::GenericArgument::Type(inner))) => Some(inner),
                _ => None,
            }
        }
        _ => None,
    }
}

fn unraw(ident: &Ident) -> String {
    let name = ident.to_string();
    name.strip_prefix("r#").map(str::to_owned).unwrap_or(name)
}
