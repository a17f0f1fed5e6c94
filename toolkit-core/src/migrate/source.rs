//! Migration files: their names, their checksums, and reading them from a directory.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// One migration: a version, a name and the SQL text, from a file named
/// `<version>_<name>.sql` or `V<version>__<name>.sql`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    version: i64,
    name: String,
    file: String,
    sql: Cow<'static, str>,
    checksum: String,
}

impl Migration {
    /// A migration from a file's name and contents; the name must follow the rule of
    /// [`Migrator`](super::Migrator) (`0001_create_users.sql` or `V1__create_users.sql`),
    /// else [`Error::Migration`] naming the file.
    pub fn new(file: impl Into<String>, sql: impl Into<Cow<'static, str>>) -> Result<Migration> {
        let file = file.into();
        let (version, name) = parse_file_name(&file).map_err(|why| Error::Migration {
            file: file.clone(),
            version: None,
            message: why,
            source: None,
        })?;
        let sql = sql.into();
        Ok(Migration {
            version,
            name,
            checksum: checksum(&sql),
            file,
            sql,
        })
    }

    /// The number the file name starts with; migrations apply in ascending order of it.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The name after the version, without `.sql`: `create_users` for `0001_create_users.sql`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file name, e.g. `0001_create_users.sql`.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The SQL text, sent as it is (several statements, no parameters).
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// SHA-256 of the SQL text (with `\r\n` read as `\n`), in lowercase hex: what is recorded
    /// when the migration is applied, and compared on every later run.
    pub fn checksum(&self) -> &str {
        &self.checksum
    }
}

/// `(version, name)` from `0001_create_users.sql` or `V1__create_users.sql`, else why not.
pub(crate) fn parse_file_name(file: &str) -> std::result::Result<(i64, String), String> {
    let rule = || {
        format!(
            "a migration file is named `<version>_<name>.sql` (e.g. `0001_create_users.sql`) \
             or `V<version>__<name>.sql`, not `{file}`"
        )
    };
    let stem = file.strip_suffix(".sql").ok_or_else(rule)?;
    let (rest, separator) = match stem.strip_prefix(['V', 'v']) {
        Some(rest) => (rest, "__"),
        None => (stem, "_"),
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (number, tail) = rest.split_at(digits);
    let name = tail.strip_prefix(separator).ok_or_else(rule)?;
    if number.is_empty() || name.is_empty() {
        return Err(rule());
    }
    let version = number
        .parse::<i64>()
        .map_err(|_| format!("the version of `{file}` does not fit a bigint"))?;
    Ok((version, name.to_owned()))
}

/// SHA-256 in hex. A standard digest rather than a `Hasher`: the value is stored and compared
/// across releases of this crate and of Rust, and std's hashers promise no stability. `\r\n`
/// counts as `\n`, so a checkout that converts line endings is not an edit.
pub(crate) fn checksum(sql: &str) -> String {
    let mut hasher = Sha256::new();
    for (i, line) in sql.split("\r\n").enumerate() {
        if i > 0 {
            hasher.update(b"\n");
        }
        hasher.update(line.as_bytes());
    }
    hex(&hasher.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Every `.sql` file directly in `dir` (other files and subdirectories are skipped), as
/// `(file name, contents)`.
pub(crate) fn read_dir(dir: &Path) -> Result<Vec<(String, String)>> {
    let fail = |file: &Path, what: &str, err: std::io::Error| Error::Migration {
        file: file.display().to_string(),
        version: None,
        message: format!("{what}: {err}"),
        source: Some(Box::new(err)),
    };
    let entries = std::fs::read_dir(dir).map_err(|e| fail(dir, "cannot read the directory", e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| fail(dir, "cannot read the directory", e))?;
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "sql") || !path.is_file() {
            continue;
        }
        let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
            return Err(Error::Migration {
                file: path.display().to_string(),
                version: None,
                message: "the file name is not UTF-8".into(),
                source: None,
            });
        };
        let sql = std::fs::read_to_string(&path).map_err(|e| fail(&path, "cannot read", e))?;
        files.push((file.to_owned(), sql));
    }
    Ok(files)
}
