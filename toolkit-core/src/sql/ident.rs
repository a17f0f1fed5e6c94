//! Identifiers: the one place where a name is checked and turned into SQL text.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use crate::{Error, Result};

/// The longest identifier PostgreSQL keeps, in bytes (`NAMEDATALEN - 1`).
///
/// The server silently truncates longer names, so two distinct long names could end up naming the
/// same object; they are rejected instead.
pub const MAX_IDENT_LEN: usize = 63;

/// Checks that `name` can be used as a quoted PostgreSQL identifier.
///
/// A name is valid when it is not empty, is at most [`MAX_IDENT_LEN`] bytes long and contains no
/// NUL byte. Every other character (quotes, spaces, newlines, backslashes, `$`, `;`, Unicode,
/// keywords such as `user`) is allowed, because quoting makes it inert. On failure the reason is
/// returned; [`Ident::new`] wraps it into [`Error::InvalidIdentifier`]. The derive crate applies
/// the same rules at compile time.
///
/// ```
/// use toolkit_core::sql::validate_ident;
///
/// assert!(validate_ident("select").is_ok());
/// assert!(validate_ident("we\"ird name").is_ok());
/// assert!(validate_ident("").is_err());
/// assert!(validate_ident("a\0b").is_err());
/// assert!(validate_ident(&"x".repeat(64)).is_err());
/// ```
pub fn validate_ident(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    // Length first: it is O(1) and bounds the NUL scan below.
    if name.len() > MAX_IDENT_LEN {
        return Err("must be at most 63 bytes (PostgreSQL silently truncates longer names)");
    }
    if name.as_bytes().contains(&0) {
        return Err("must not contain a NUL byte");
    }
    Ok(())
}

/// Validates `name`, turning a failure into [`Error::InvalidIdentifier`] that names the input.
pub(crate) fn check(name: &str) -> Result<()> {
    validate_ident(name).map_err(|reason| Error::InvalidIdentifier {
        identifier: name.to_owned(),
        reason,
    })
}

/// Appends `name` double-quoted with every embedded `"` doubled. The caller has validated it.
pub(crate) fn push_quoted(buf: &mut String, name: &str) {
    buf.reserve(name.len() + 2);
    buf.push('"');
    for (i, part) in name.split('"').enumerate() {
        if i > 0 {
            buf.push_str("\"\"");
        }
        buf.push_str(part);
    }
    buf.push('"');
}

fn fmt_quoted(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    f.write_char('"')?;
    for (i, part) in name.split('"').enumerate() {
        if i > 0 {
            f.write_str("\"\"")?;
        }
        f.write_str(part)?;
    }
    f.write_char('"')
}

/// Validates `name` and returns it as one quoted identifier.
///
/// ```
/// use toolkit_core::sql::quote_ident;
///
/// assert_eq!(quote_ident("a\"b")?, r#""a""b""#);
/// assert_eq!(quote_ident("my users")?, r#""my users""#);
/// assert!(quote_ident("").is_err());
/// # Ok::<(), toolkit_core::Error>(())
/// ```
pub fn quote_ident(name: &str) -> Result<String> {
    check(name)?;
    let mut buf = String::with_capacity(name.len() + 2);
    push_quoted(&mut buf, name);
    Ok(buf)
}

/// A validated identifier (table, column, schema or savepoint name).
///
/// Holding an `Ident` proves the name passed [`validate_ident`]; its [`Display`](fmt::Display)
/// output is the quoted form, ready to be placed in SQL.
///
/// ```
/// use toolkit_core::sql::Ident;
///
/// let id = Ident::new("order")?;
/// assert_eq!(id.as_str(), "order");
/// assert_eq!(id.to_string(), r#""order""#);
/// # Ok::<(), toolkit_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ident(String);

impl Ident {
    /// Validates `name`; fails with [`Error::InvalidIdentifier`] when it is empty, contains NUL or
    /// is longer than [`MAX_IDENT_LEN`] bytes.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        check(&name)?;
        Ok(Ident(name))
    }

    /// The name as given, unquoted.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The quoted form, e.g. `"we""ird"` for `we"ird`.
    pub fn quoted(&self) -> String {
        let mut buf = String::with_capacity(self.0.len() + 2);
        push_quoted(&mut buf, &self.0);
        buf
    }

    /// Appends the quoted form to `buf`, for callers assembling SQL without extra allocations.
    pub fn push_quoted(&self, buf: &mut String) {
        push_quoted(buf, &self.0);
    }

    /// The unquoted name, by value.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_quoted(f, &self.0)
    }
}

impl fmt::Debug for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Ident").field(&self.0).finish()
    }
}

impl AsRef<str> for Ident {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Ident {
    type Error = Error;

    fn try_from(name: &str) -> Result<Self> {
        Ident::new(name)
    }
}

impl TryFrom<String> for Ident {
    type Error = Error;

    fn try_from(name: String) -> Result<Self> {
        Ident::new(name)
    }
}

impl FromStr for Ident {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        Ident::new(name)
    }
}

/// A validated, optionally schema-qualified object name such as `"app"."users"`.
///
/// The schema and the name are two identifiers quoted separately; a dot inside a name is just a
/// character of that name (`"my.table"`), never a separator.
///
/// ```
/// use toolkit_core::sql::QualifiedName;
///
/// let name = QualifiedName::with_schema("app", "users")?;
/// assert_eq!(name.to_string(), r#""app"."users""#);
/// assert_eq!(QualifiedName::new("my.table")?.to_string(), r#""my.table""#);
/// # Ok::<(), toolkit_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QualifiedName {
    schema: Option<Ident>,
    name: Ident,
}

impl QualifiedName {
    /// An unqualified name (resolved through the server's `search_path`).
    pub fn new(name: impl Into<String>) -> Result<Self> {
        Ok(QualifiedName {
            schema: None,
            name: Ident::new(name)?,
        })
    }

    /// A name inside `schema`.
    pub fn with_schema(schema: impl Into<String>, name: impl Into<String>) -> Result<Self> {
        Ok(QualifiedName {
            schema: Some(Ident::new(schema)?),
            name: Ident::new(name)?,
        })
    }

    /// Assembles a name from identifiers that are already validated.
    pub fn from_parts(schema: Option<Ident>, name: Ident) -> Self {
        QualifiedName { schema, name }
    }

    /// The schema, when the name is qualified.
    pub fn schema(&self) -> Option<&Ident> {
        self.schema.as_ref()
    }

    /// The object's own name.
    pub fn name(&self) -> &Ident {
        &self.name
    }

    /// The quoted form, e.g. `"app"."users"`.
    pub fn quoted(&self) -> String {
        let mut buf = String::new();
        self.push_quoted(&mut buf);
        buf
    }

    /// Appends the quoted form to `buf`.
    pub fn push_quoted(&self, buf: &mut String) {
        if let Some(schema) = &self.schema {
            schema.push_quoted(buf);
            buf.push('.');
        }
        self.name.push_quoted(buf);
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{schema}.")?;
        }
        write!(f, "{}", self.name)
    }
}

impl From<Ident> for QualifiedName {
    fn from(name: Ident) -> Self {
        QualifiedName { schema: None, name }
    }
}

/// A borrowed, not yet validated table name for the builders, optionally schema-qualified.
///
/// Builders accept anything convertible into it (`&str`, [`Ident`], [`QualifiedName`]) and
/// validate it when the statement is built. A plain string is always one identifier.
///
/// ```
/// use toolkit_core::sql::{Select, TableRef};
///
/// let q = Select::from(TableRef::qualified("app", "users")).build()?;
/// assert_eq!(q.sql(), r#"SELECT * FROM "app"."users""#);
/// # Ok::<(), toolkit_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TableRef<'a> {
    schema: Option<&'a str>,
    name: &'a str,
}

impl<'a> TableRef<'a> {
    /// An unqualified table name.
    pub const fn new(name: &'a str) -> Self {
        TableRef { schema: None, name }
    }

    /// A table inside `schema`.
    pub const fn qualified(schema: &'a str, name: &'a str) -> Self {
        TableRef {
            schema: Some(schema),
            name,
        }
    }

    /// The schema, when qualified.
    pub fn schema(&self) -> Option<&'a str> {
        self.schema
    }

    /// The table's own name, unquoted.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The name as it appears in error messages: unquoted, `schema.name` when qualified.
    pub(crate) fn label(&self) -> String {
        match self.schema {
            Some(schema) => format!("{schema}.{}", self.name),
            None => self.name.to_owned(),
        }
    }

    pub(crate) fn quoted_len(&self) -> usize {
        self.schema.map_or(0, |s| s.len() + 3) + self.name.len() + 2
    }
}

impl<'a> From<&'a str> for TableRef<'a> {
    fn from(name: &'a str) -> Self {
        TableRef::new(name)
    }
}

impl<'a> From<&'a String> for TableRef<'a> {
    fn from(name: &'a String) -> Self {
        TableRef::new(name)
    }
}

impl<'a> From<&'a Ident> for TableRef<'a> {
    fn from(name: &'a Ident) -> Self {
        TableRef::new(name.as_str())
    }
}

impl<'a> From<&'a QualifiedName> for TableRef<'a> {
    fn from(name: &'a QualifiedName) -> Self {
        TableRef {
            schema: name.schema.as_ref().map(Ident::as_str),
            name: name.name.as_str(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn api_example_quote_ident() {
        assert_eq!(quote_ident("a\"b").unwrap(), r#""a""b""#);
    }

    #[test]
    fn quoting_doubles_every_quote() {
        assert_eq!(quote_ident("\"").unwrap(), r#""""""#);
        assert_eq!(quote_ident("\"\"").unwrap(), r#""""""""#);
        assert_eq!(
            quote_ident("x\"; DROP TABLE t; --").unwrap(),
            r#""x""; DROP TABLE t; --""#
        );
    }

    #[test]
    fn rejects_empty_nul_and_long_names_naming_the_input() {
        for bad in ["", "a\0b", &"x".repeat(64)] {
            match quote_ident(bad) {
                Err(Error::InvalidIdentifier { identifier, .. }) => assert_eq!(identifier, bad),
                other => panic!("expected InvalidIdentifier for {bad:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn exactly_63_bytes_is_accepted_even_multibyte() {
        assert!(validate_ident(&"x".repeat(63)).is_ok());
        let multibyte = "€".repeat(21);
        assert_eq!(multibyte.len(), 63);
        assert!(validate_ident(&multibyte).is_ok());
        assert!(validate_ident(&format!("{multibyte}a")).is_err());
    }

    #[test]
    fn error_message_names_input_and_reason() {
        let err = Ident::new("").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid identifier "": must not be empty"#
        );
    }

    #[test]
    fn ident_display_and_conversions() {
        let id: Ident = "we\"ird".parse().unwrap();
        assert_eq!(id.to_string(), r#""we""ird""#);
        assert_eq!(id.quoted(), id.to_string());
        assert_eq!(Ident::try_from("a").unwrap().as_str(), "a");
        assert!(Ident::try_from(String::new()).is_err());
        assert_eq!(format!("{id:?}"), r#"Ident("we\"ird")"#);
    }

    #[test]
    fn qualified_name_is_two_identifiers() {
        let name = QualifiedName::with_schema("a\"pp", "us.ers").unwrap();
        assert_eq!(name.to_string(), r#""a""pp"."us.ers""#);
        assert_eq!(name.quoted(), name.to_string());
        assert!(QualifiedName::with_schema("", "users").is_err());
        assert!(QualifiedName::with_schema("app", "").is_err());
        let table = TableRef::from(&name);
        assert_eq!(table.schema(), Some("a\"pp"));
        assert_eq!(table.name(), "us.ers");
        assert_eq!(table.label(), "a\"pp.us.ers");
    }
}
