//! Raw SQL fragments: the only door for SQL text that is not an identifier or a placeholder.

use std::borrow::Cow;

/// A fragment of SQL written verbatim into a statement, e.g. `lower("email")` or `now()`.
///
/// Fragments come from `&'static str` literals ([`RawSql::new`]) or, when they must be built at
/// run time, through the deliberately loud [`RawSql::new_unchecked`], so a dynamic string can
/// never reach SQL text by accident and every such place is easy to search for.
///
/// As a second line of defence, building a statement rejects a fragment that is empty, contains a
/// NUL byte or a backslash, has an unterminated `'` or `"` quote, or, outside quotes, contains `;`,
/// `--`, `/*` or `$`. So a fragment can neither end the statement, comment out what follows, nor
/// carry its own `$n` placeholders (which would break the builder's numbering). Values still
/// belong in placeholders.
///
/// ```
/// use toolkit_core::sql::{RawSql, Select};
///
/// const LOWER_EMAIL: RawSql = RawSql::new(r#"lower("email")"#);
/// let q = Select::from("users").column_raw(LOWER_EMAIL).build()?;
/// assert_eq!(q.sql(), r#"SELECT lower("email") FROM "users""#);
/// # Ok::<(), toolkit_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawSql(Cow<'static, str>);

impl RawSql {
    /// A fragment from a string literal (or any other `'static` text compiled into the program).
    pub const fn new(sql: &'static str) -> Self {
        RawSql(Cow::Borrowed(sql))
    }

    /// A fragment assembled at run time. The caller vouches that no untrusted input went into it;
    /// the name exists so reviewers can find every such place.
    pub fn new_unchecked(sql: impl Into<String>) -> Self {
        RawSql(Cow::Owned(sql.into()))
    }

    /// The fragment's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Why this fragment cannot be embedded, if it cannot.
    pub(crate) fn problem(&self) -> Option<&'static str> {
        fragment_problem(&self.0)
    }
}

fn fragment_problem(sql: &str) -> Option<&'static str> {
    if sql.trim().is_empty() {
        return Some("raw SQL fragment is empty");
    }
    let mut quote: Option<char> = None;
    let mut prev = '\0';
    for c in sql.chars() {
        if c == '\0' {
            return Some("raw SQL fragment contains a NUL byte");
        }
        // Backslashes could escape a quote inside E'...' strings, defeating the quote tracking.
        if c == '\\' {
            return Some("raw SQL fragment contains a backslash");
        }
        match quote {
            // A doubled quote closes and reopens, so toggling handles `''` and `""` for free.
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => {
                match c {
                    '\'' | '"' => quote = Some(c),
                    ';' => return Some("raw SQL fragment contains `;`"),
                    '$' => return Some(
                        "raw SQL fragment contains `$` (placeholders are numbered by the builder)",
                    ),
                    '-' if prev == '-' => return Some("raw SQL fragment contains a `--` comment"),
                    '*' if prev == '/' => return Some("raw SQL fragment contains a `/*` comment"),
                    _ => {}
                }
            }
        }
        // Inside quotes the previous character must not pair with the next one after closing.
        prev = if quote.is_some() { '\0' } else { c };
    }
    if quote.is_some() {
        return Some("raw SQL fragment has an unterminated quote");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_expressions() {
        for ok in [
            "now()",
            r#"lower("email")"#,
            "'it''s' || 'x'",
            r#""a""b" + 1"#,
            "count(*) > 0",
            "a - -1",
            "'--' || '/*' || ';' || '$1'",
        ] {
            assert_eq!(fragment_problem(ok), None, "{ok}");
        }
    }

    #[test]
    fn rejects_fragments_that_escape_their_place() {
        for bad in [
            "",
            "   ",
            "1; DROP TABLE victims",
            "1 -- rest",
            "1 /* rest */",
            "$1",
            "$$x$$",
            "'unterminated",
            "\"unterminated",
            r"E'\''",
            "a\0b",
        ] {
            assert!(
                fragment_problem(bad).is_some(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn const_and_unchecked_hold_the_text() {
        const R: RawSql = RawSql::new("now()");
        assert_eq!(R.as_str(), "now()");
        assert_eq!(RawSql::new_unchecked(String::from("1")).as_str(), "1");
    }
}
