//! The built statement handed to the driver.

use std::fmt;

/// A rendered statement: SQL text with `$1..$n` placeholders and the number `n` of values the
/// caller must bind, in placeholder order.
///
/// ```
/// use toolkit_core::sql::{col, Select};
///
/// let q = Select::from("users").filter(col("id").eq()).build()?;
/// assert_eq!(q.sql(), r#"SELECT * FROM "users" WHERE "id" = $1"#);
/// assert_eq!(q.param_count(), 1);
/// # Ok::<(), toolkit_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    sql: String,
    params: usize,
}

impl Query {
    pub(crate) fn new(sql: String, params: usize) -> Self {
        Query { sql, params }
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// How many values must be bound: placeholders run from `$1` to `$n` with no gaps.
    pub fn param_count(&self) -> usize {
        self.params
    }

    /// The SQL text, by value.
    pub fn into_sql(self) -> String {
        self.sql
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql)
    }
}

impl AsRef<str> for Query {
    fn as_ref(&self) -> &str {
        &self.sql
    }
}
