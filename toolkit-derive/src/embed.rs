//! `embed_migrations!("dir")`: every migration file of a directory, checked and included at
//! compile time, as a `toolkit::migrate::Migrator`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::LitStr;

use std::path::Path;

use crate::files::{crate_root, name_errors, sql_files};

/// The whole macro on `proc_macro2` tokens.
pub fn expand(input: TokenStream) -> TokenStream {
    let expanded = syn::parse2::<LitStr>(input)
        .and_then(|lit| crate_root(&lit).and_then(|root| migrator(&lit, &root)));
    match expanded {
        Ok(tokens) => tokens,
        Err(err) => err.to_compile_error(),
    }
}

/// The expansion for the directory `lit` under `root`.
pub fn migrator(lit: &LitStr, root: &Path) -> syn::Result<TokenStream> {
    let files = sql_files(lit, root)?;
    let mut errors = name_errors(&files)
        .into_iter()
        .map(|message| syn::Error::new(lit.span(), message));
    if let Some(mut all) = errors.next() {
        all.extend(errors);
        return Err(all);
    }
    let entries = files.iter().map(|(file, path)| {
        // `include_str!` makes cargo rebuild when a file changes.
        quote!((#file, ::core::include_str!(#path)))
    });
    Ok(quote! {
        ::toolkit::migrate::Migrator::__embedded(&[#(#entries),*])
    })
}
