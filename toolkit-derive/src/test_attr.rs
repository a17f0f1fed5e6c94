//! `#[toolkit::test]`: an async test that receives a `Database` on a fresh database, cloned from
//! a template migrated once per test binary, with fixtures applied; see `toolkit::testing`.

use proc_macro2::{Group, Ident, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Generics, LitStr, ReturnType, Token, Type, Visibility, WhereClause};

use crate::ctxt::Ctxt;
use crate::files::{crate_root, in_crate, name_errors, sql_files};

const KEYS: &str = "expected `migrations = \"dir\"` or `fixtures(\"file.sql\", ...)`";

/// The whole attribute on `proc_macro2` tokens.
pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let args = Args::parse(&cx, args);
    let function = match syn::parse2::<TestFn>(item) {
        Ok(function) => Some(function),
        Err(err) => {
            cx.syn_error(err);
            None
        }
    };
    if let Some(function) = &function {
        function.check(&cx);
    }
    match (cx.check(), function) {
        (Ok(()), Some(function)) => function.expand(&args),
        (Err(errors), _) => errors.to_compile_error(),
        (Ok(()), None) => TokenStream::new(),
    }
}

/// `migrations = "dir"` and `fixtures("a.sql", ...)`, paths relative to the crate's
/// `Cargo.toml`, each checked to exist.
#[derive(Default)]
struct Args {
    migrations: Option<LitStr>,
    fixtures: Vec<LitStr>,
}

impl Args {
    fn parse(cx: &Ctxt, tokens: TokenStream) -> Args {
        let mut args = Args::default();
        let mut fixtures_seen = false;
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("migrations") {
                let lit: LitStr = meta.value()?.parse()?;
                if args.migrations.is_some() {
                    cx.error_spanned_by(&meta.path, "duplicate `migrations`");
                } else if check_migrations(cx, &lit) {
                    args.migrations = Some(lit);
                }
            } else if meta.path.is_ident("fixtures") {
                if fixtures_seen {
                    cx.error_spanned_by(
                        &meta.path,
                        "duplicate `fixtures`: list every file in one `fixtures(...)`",
                    );
                }
                fixtures_seen = true;
                let content;
                syn::parenthesized!(content in meta.input);
                let files = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
                if files.is_empty() {
                    cx.error_spanned_by(&meta.path, "`fixtures(...)` lists at least one file");
                }
                for file in files {
                    if check_fixture(cx, &file) {
                        args.fixtures.push(file);
                    }
                }
            } else {
                let key = meta.path.to_token_stream().to_string().replace(' ', "");
                cx.error_spanned_by(&meta.path, format!("unknown key `{key}`: {KEYS}"));
                // Skip its value, so the next key is still read.
                while !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                    let _: proc_macro2::TokenTree = meta.input.parse()?;
                }
            }
            Ok(())
        });
        if let Err(err) = syn::parse::Parser::parse2(parser, tokens) {
            cx.syn_error(err);
        }
        args
    }
}

fn check_migrations(cx: &Ctxt, lit: &LitStr) -> bool {
    match crate_root(lit).and_then(|root| sql_files(lit, &root)) {
        Ok(files) => {
            for why in name_errors(&files) {
                cx.error_spanned_by(lit, why);
            }
            true
        }
        Err(err) => {
            cx.syn_error(err);
            false
        }
    }
}

fn check_fixture(cx: &Ctxt, lit: &LitStr) -> bool {
    match in_crate(lit) {
        Ok(path) if path.is_file() => true,
        Ok(path) => {
            cx.error_spanned_by(
                lit,
                format!(
                    "no fixture file `{}`{} (the path is relative to the directory of the \
                     crate's Cargo.toml)",
                    lit.value(),
                    if path.exists() {
                        ", or it is not a file"
                    } else {
                        ""
                    }
                ),
            );
            false
        }
        Err(err) => {
            cx.syn_error(err);
            false
        }
    }
}

/// The test function, parsed only as far as the expansion needs: its body stays tokens.
struct TestFn {
    attrs: Vec<Attribute>,
    vis: Visibility,
    asyncness: Option<Token![async]>,
    fn_token: Token![fn],
    ident: Ident,
    generics: Generics,
    params: Punctuated<Param, Token![,]>,
    paren: proc_macro2::Span,
    output: ReturnType,
    where_clause: Option<WhereClause>,
    body: Group,
}

/// `db: Database`, `mut db: Database` or `_: Database`.
struct Param {
    mutability: Option<Token![mut]>,
    name: TokenStream,
    ty: Type,
}

impl Parse for TestFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let asyncness = input.parse()?;
        let fn_token = input.parse().map_err(|err| {
            syn::Error::new(err.span(), "`#[toolkit::test]` goes on an `async fn`")
        })?;
        let ident = input.parse()?;
        let generics = input.parse()?;
        let content;
        let paren = syn::parenthesized!(content in input);
        let params = Punctuated::parse_terminated(&content)?;
        let output = input.parse()?;
        let where_clause = input.parse()?;
        let body = input.parse()?;
        Ok(TestFn {
            attrs,
            vis,
            asyncness,
            fn_token,
            ident,
            generics,
            params,
            paren: paren.span.join(),
            output,
            where_clause,
            body,
        })
    }
}

impl Parse for Param {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mutability = input.parse()?;
        let name = if input.peek(Token![_]) {
            input.parse::<Token![_]>()?.into_token_stream()
        } else {
            input
                .parse::<Ident>()
                .map_err(|err| {
                    syn::Error::new(err.span(), "expected a parameter like `db: Database`")
                })?
                .into_token_stream()
        };
        input.parse::<Token![:]>()?;
        let ty = input.parse()?;
        Ok(Param {
            mutability,
            name,
            ty,
        })
    }
}

impl TestFn {
    fn check(&self, cx: &Ctxt) {
        if self.asyncness.is_none() {
            cx.error_spanned_by(
                self.fn_token,
                "a `#[toolkit::test]` function must be `async`",
            );
        }
        if !self.generics.params.is_empty() || self.where_clause.is_some() {
            cx.error_spanned_by(
                &self.generics,
                "a `#[toolkit::test]` function cannot be generic",
            );
        }
        if self.params.len() != 1 {
            cx.syn_error(syn::Error::new(
                self.paren,
                "a `#[toolkit::test]` function takes one parameter, the test's database: \
                 `async fn name(db: toolkit::Database)`",
            ));
        }
    }

    fn expand(self, args: &Args) -> TokenStream {
        let TestFn {
            attrs,
            vis,
            ident,
            params,
            output,
            body,
            ..
        } = self;
        let Some(Param {
            mutability,
            name,
            ty,
        }) = params.into_iter().next()
        else {
            return TokenStream::new();
        };
        let migrations = match &args.migrations {
            Some(lit) => {
                let dir = in_crate(lit)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                quote!(::core::option::Option::Some(#dir))
            }
            None => quote!(::core::option::Option::None),
        };
        let fixtures = args.fixtures.iter().map(|lit| {
            let path = in_crate(lit)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            // `include_str!` makes cargo rebuild the test when a fixture changes.
            quote!((#lit, ::core::include_str!(#path)))
        });
        // The body's type errors (a parameter that is not a `Database`) land on the parameter.
        let body_fn = quote_spanned!(ty.span()=> __toolkit_test_body);
        quote! {
            #(#attrs)*
            #[::core::prelude::v1::test]
            #vis fn #ident() #output {
                async fn __toolkit_test_body(#mutability #name: #ty) #output #body
                ::toolkit::testing::__private::run(
                    ::toolkit::testing::__private::Spec {
                        test: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
                        migrations: #migrations,
                        fixtures: &[#(#fixtures),*],
                    },
                    #body_fn,
                )
            }
        }
    }
}
