//! Collects every error of one expansion, so the user sees them all in one build.

use std::cell::RefCell;
use std::fmt::Display;

use quote::ToTokens;

/// Error sink shared (by reference) by every stage of the derive.
///
/// Must be consumed with [`Ctxt::check`]: dropping it unchecked is a bug in the derive (an error
/// would be lost), so `Drop` panics then, as `serde_derive`'s context does.
pub struct Ctxt {
    errors: RefCell<Vec<syn::Error>>,
    checked: bool,
}

impl Ctxt {
    pub fn new() -> Self {
        Ctxt {
            errors: RefCell::new(Vec::new()),
            checked: false,
        }
    }

    /// Records an error covering the tokens of `obj`.
    pub fn error_spanned_by<T: ToTokens, M: Display>(&self, obj: T, message: M) {
        self.errors
            .borrow_mut()
            .push(syn::Error::new_spanned(obj.into_token_stream(), message));
    }

    /// Records an error produced by syn's own parsers.
    pub fn syn_error(&self, error: syn::Error) {
        self.errors.borrow_mut().push(error);
    }

    /// All recorded errors combined into one, in the order they were found.
    pub fn check(mut self) -> syn::Result<()> {
        self.checked = true;
        let mut errors = std::mem::take(self.errors.get_mut()).into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        for error in errors {
            combined.combine(error);
        }
        Err(combined)
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        if !self.checked && !std::thread::panicking() {
            panic!("toolkit-derive bug: Ctxt dropped without check()");
        }
    }
}
