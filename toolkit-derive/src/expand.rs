//! Code generation: the `Entity` impl and the `<Name>Patch` struct, or a stub of both beside
//! the errors so the user's call sites do not fail as well.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::DeriveInput;

use crate::ast::{Container, Field};
use crate::check;
use crate::ctxt::Ctxt;

/// The whole derive on `proc_macro2` tokens, so it can be tested outside a compiler.
pub fn derive(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(error) => return error.to_compile_error(),
    };
    let cx = Ctxt::new();
    let cont = Container::from_ast(&cx, &input);
    check::check(&cx, &cont);
    match cx.check() {
        Ok(()) => entity(&cont).unwrap_or_else(|| stub(&cont)),
        Err(errors) => {
            let mut out = errors.to_compile_error();
            out.extend(stub(&cont));
            out
        }
    }
}

/// `None` only if the checks let through a struct without a stored key, which they do not.
fn entity(cont: &Container<'_>) -> Option<TokenStream> {
    let key = cont.key()?;
    let key_index = cont.stored().position(|f| f.ident == key.ident)?;
    let p = private(cont);
    let key_ty = key.ty;
    let key_ident = key.ident;
    let key_index = Literal::usize_unsuffixed(key_index);
    // Re-quoted from the value: the user's literal may be raw or carry a suffix.
    let schema = match cont.schema().map(syn::LitStr::value) {
        Some(schema) => quote!(#p::Option::Some(#schema)),
        None => quote!(#p::Option::None),
    };
    let table = &cont.table.0;
    let special = |pick: fn(&Field<'_>) -> bool| match cont.stored().position(pick) {
        Some(i) => {
            let i = Literal::usize_unsuffixed(i);
            quote!(#p::Option::Some(#i))
        }
        None => quote!(#p::Option::None),
    };
    let version = special(|f| f.attrs.version.is_some());
    let soft_delete = special(|f| f.attrs.soft_delete.is_some());
    let columns = cont.stored().map(|f| {
        let (name, field) = (&f.column.0, &f.name);
        let (generated, json) = (f.attrs.generated.is_some(), f.attrs.json.is_some());
        let nullable = f.option_inner().is_some();
        // Through the trait `from_row_at` reads with, so a type without `FromSql` is one error.
        let accepts = if json {
            quote!(#p::accepts_json)
        } else {
            let ty = f.ty;
            quote!(<#ty as #p::FromColumn<'_>>::accepts)
        };
        quote!(#p::ColumnMeta { name: #name, field: #field, generated: #generated, json: #json, nullable: #nullable, accepts: #accepts })
    });
    let reads = read_fields(cont, &p);
    let positions = (0..cont.stored().count()).map(Literal::usize_unsuffixed);
    let params = cont.stored().enumerate().map(|(i, f)| {
        let value = param_expr(&p, f, i, false);
        let i = Literal::usize_unsuffixed(i);
        quote!(#i => #value,)
    });
    let patch_params = cont.updatable().map(|(i, f)| {
        let value = param_expr(&p, f, i, true);
        let field = f.ident;
        let i = Literal::usize_unsuffixed(i);
        quote!(#i => #p::Option::map(#p::Option::as_ref(&patch.#field), |value| #value),)
    });
    Some(entity_impl(
        cont,
        &p,
        quote!(#key_ty),
        quote! {
                    const META: &'static #p::EntityMeta = &#p::EntityMeta {
                        schema: #schema,
                        table: #table,
                        columns: &[#(#columns),*],
                        key: #key_index,
                        version: #version,
                        soft_delete: #soft_delete,
                    };

                    fn statement_slot() -> &'static #p::StatementSlot {
                        static SLOT: #p::StatementSlot = #p::StatementSlot::new();
                        &SLOT
                    }

                    fn id(&self) -> &Self::Id {
                        &self.#key_ident
                    }

                    fn from_row(row: &#p::Row) -> #p::Result<Self> {
                        <Self as #p::Entity>::from_row_at(row, &[#(#positions),*])
                    }

                    fn from_row_at(row: &#p::Row, at: &[usize]) -> #p::Result<Self> {
                        let meta = <Self as #p::Entity>::META;
                        #p::StdResult::Ok(Self { #(#reads)* })
                    }

                    fn param(&self, index: usize) -> #p::Result<#p::Param<'_>> {
                        let meta = <Self as #p::Entity>::META;
                        match index {
                            #(#params)*
                            _ => #p::StdResult::Err(#p::no_such_column(index, meta)),
                        }
                    }

                    fn patch_param(patch: &Self::Patch, index: usize) -> #p::Option<#p::Result<#p::Param<'_>>> {
                        let meta = <Self as #p::Entity>::META;
                        match index {
                            #(#patch_params)*
                            _ => {
                                let _ = (patch, meta);
                                #p::Option::None
                            }
                        }
                    }
        },
    ))
}

/// The `Patch` struct and the `Entity` impl around `items`, in the shape every expansion
/// (real or stub) shares: hidden, lint-quiet, reaching the runtime only through `__private`.
fn entity_impl(
    cont: &Container<'_>,
    p: &TokenStream,
    id_ty: TokenStream,
    items: TokenStream,
) -> TokenStream {
    let ident = cont.ident;
    let patch_ident = patch_ident(cont);
    let patch = patch_struct(cont);
    let columns = columns_struct(cont, p);
    quote! {
        #patch

        #columns

        #[doc(hidden)]
        #[allow(non_upper_case_globals, unused_qualifications, clippy::absolute_paths)]
        const _: () = {
            #[automatically_derived]
            impl #p::Entity for #ident {
                type Id = #id_ty;
                type Patch = #patch_ident;

                #items
            }
        };
    }
}

/// `<Name>Columns`, one typed handle per stored column, and `Name::columns()`.
fn columns_struct(cont: &Container<'_>, p: &TokenStream) -> TokenStream {
    if cont.generic {
        return TokenStream::new();
    }
    let (vis, ident) = (cont.vis, cont.ident);
    let columns_ident = format_ident!("{}Columns", cont.ident, span = cont.ident.span());
    let doc = format!(
        "Typed handles of the stored columns of [`{ident}`], for `Repository::find`: `{ident}::columns()`."
    );
    let marker = |f: &Field<'_>| format_ident!("{}_{}", ident, f.name, span = f.ident.span());
    let markers = cont.stored().map(|f| {
        let name = marker(f);
        let doc = format!(
            "Names column `{}` of [`{ident}`] in compile errors.",
            f.column.0
        );
        quote! {
            #[doc = #doc]
            #[doc(hidden)]
            #[allow(non_camel_case_types)]
            #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::fmt::Debug)]
            #vis struct #name;
        }
    });
    let fields = cont.stored().map(|f| {
        let (field, column) = (f.ident, &f.column.0);
        let ty = f.option_inner().unwrap_or(f.ty);
        let name = marker(f);
        let doc = format!("Column `{column}` (field `{}`).", f.name);
        quote!(#[doc = #doc] pub #field: #p::Col<#ident, #ty, #name>,)
    });
    let values = cont.stored().enumerate().map(|(i, f)| {
        let (field, column) = (f.ident, &f.column.0);
        let i = Literal::usize_unsuffixed(i);
        quote!(#field: #p::Col::new(#i, #column),)
    });
    quote! {
        #(#markers)*

        #[doc = #doc]
        #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::fmt::Debug)]
        #vis struct #columns_ident {
            #(#fields)*
        }

        #[automatically_derived]
        impl #ident {
            /// The typed handles of this entity's stored columns, for queries.
            #[allow(dead_code)]
            #vis fn columns() -> #columns_ident {
                #columns_ident { #(#values)* }
            }
        }
    }
}

fn private(cont: &Container<'_>) -> TokenStream {
    let krate = cont.krate();
    quote!(#krate::__private)
}

fn patch_ident(cont: &Container<'_>) -> syn::Ident {
    format_ident!("{}Patch", cont.ident, span = cont.ident.span())
}

/// Reads by position: `from_row` never looks a column up by name. Each call names the field's
/// type explicitly, which makes rustc report a missing trait at that type in the user's struct.
fn read_fields<'a>(
    cont: &'a Container<'_>,
    p: &'a TokenStream,
) -> impl Iterator<Item = TokenStream> + 'a {
    let mut index = 0usize;
    cont.fields().iter().map(move |f| {
        let (field, ty) = (f.ident, f.ty);
        if f.attrs.skip.is_some() {
            return quote!(#field: <#ty as #p::Default>::default(),);
        }
        let i = Literal::usize_unsuffixed(index);
        index += 1;
        let read = match (f.attrs.json.is_some(), f.option_inner()) {
            (true, Some(inner)) => quote!(#p::decode_json_opt::<#inner>(row, at, #i, meta)?),
            (true, None) => quote!(#p::decode_json::<#ty>(row, at, #i, meta)?),
            (false, _) => quote!(<#ty as #p::FromColumn<'_>>::decode(row, at, #i, meta)?),
        };
        quote!(#field: #read,)
    })
}

/// A `Result<Param>` for column `index`, from `&self.field` or, in `patch_param`, from the
/// closure argument `value`. Spelled so that a missing trait is reported at the field's type:
/// JSON helpers name it explicitly, and the `dyn ToSql` coercion carries its span.
fn param_expr(p: &TokenStream, f: &Field<'_>, index: usize, in_patch: bool) -> TokenStream {
    let i = Literal::usize_unsuffixed(index);
    let (ty, field, span) = (f.ty, f.ident, f.ty_span());
    // The same tokens in `param` and `patch_param`, so rustc reports a missing trait once.
    let value = quote_spanned!(span=> value);
    let bind = if in_patch {
        quote!()
    } else {
        quote!(let value = &self.#field;)
    };
    let param = match (f.attrs.json.is_some(), f.option_inner()) {
        (true, Some(inner)) => {
            quote!(#p::json_param_opt::<#inner>(#p::Option::as_ref(#value), #i, meta))
        }
        (true, None) => quote!(#p::json_param::<#ty>(#value, #i, meta)),
        (false, _) => quote_spanned!(span=> #p::StdResult::Ok(#p::Param::Ref(#value))),
    };
    quote!({ #bind #param })
}

fn patch_struct(cont: &Container<'_>) -> TokenStream {
    let p = private(cont);
    let vis = cont.vis;
    let ident = cont.ident;
    let patch_ident = patch_ident(cont);
    let doc = format!(
        "Changes to a [`{ident}`] for `Repository::update`: each `Some` field is written, each `None` field is left as stored."
    );
    let fields = cont.updatable().map(|(_, f)| {
        let (field, vis, ty, column) = (f.ident, f.vis, f.ty, &f.column.0);
        let doc = match f.option_inner() {
            Some(_) => format!(
                "New value of `{}` (column `{column}`); `Some(None)` writes NULL.",
                f.name
            ),
            None => format!("New value of `{}` (column `{column}`).", f.name),
        };
        quote!(#[doc = #doc] #vis #field: #p::Option<#ty>,)
    });
    quote! {
        #[doc = #doc]
        #[derive(::core::default::Default)]
        #[allow(clippy::option_option)]
        #vis struct #patch_ident {
            #(#fields)*
        }
    }
}

/// What is emitted beside the errors: the same `Patch` struct and an `Entity` impl whose bodies
/// only return errors, so `<User as Entity>::META` or `UserPatch { .. }` in the user's code add
/// no errors of their own. Generic input gets none: the impl could not name the type.
fn stub(cont: &Container<'_>) -> TokenStream {
    if cont.generic {
        return TokenStream::new();
    }
    let p = private(cont);
    let (id_ty, id_body) = match cont.key() {
        Some(key) => {
            let (ty, field) = (key.ty, key.ident);
            (quote!(#ty), quote!(&self.#field))
        }
        None => (quote!(i64), quote!(&0)),
    };
    entity_impl(
        cont,
        &p,
        id_ty,
        quote! {
                    const META: &'static #p::EntityMeta = &#p::EntityMeta {
                        schema: #p::Option::None,
                        table: "",
                        columns: &[],
                        key: 0,
                        version: #p::Option::None,
                        soft_delete: #p::Option::None,
                    };

                    fn statement_slot() -> &'static #p::StatementSlot {
                        static SLOT: #p::StatementSlot = #p::StatementSlot::new();
                        &SLOT
                    }

                    fn id(&self) -> &Self::Id {
                        #id_body
                    }

                    fn from_row(_: &#p::Row) -> #p::Result<Self> {
                        #p::StdResult::Err(#p::no_such_column(0, <Self as #p::Entity>::META))
                    }

                    fn from_row_at(_: &#p::Row, _: &[usize]) -> #p::Result<Self> {
                        #p::StdResult::Err(#p::no_such_column(0, <Self as #p::Entity>::META))
                    }

                    fn param(&self, index: usize) -> #p::Result<#p::Param<'_>> {
                        #p::StdResult::Err(#p::no_such_column(index, <Self as #p::Entity>::META))
                    }

                    fn patch_param(_: &Self::Patch, _: usize) -> #p::Option<#p::Result<#p::Param<'_>>> {
                        #p::Option::None
                    }
        },
    )
}
