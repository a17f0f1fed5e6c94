//! Files the macros read at compile time: paths relative to the crate being compiled, and the
//! migration file-name rule (the same rule as `toolkit::migrate::Migration::new`, which is the
//! one that counts; this copy only turns a misnamed file into a compile error early).

use std::path::{Path, PathBuf};

use syn::LitStr;

/// `lit` resolved against the crate's directory ([`crate_root`]), which `include_str!` cannot
/// express.
pub fn in_crate(lit: &LitStr) -> syn::Result<PathBuf> {
    Ok(crate_root(lit)?.join(lit.value()))
}

/// `CARGO_MANIFEST_DIR`: the directory of the `Cargo.toml` of the crate that invokes the macro.
pub fn crate_root(lit: &LitStr) -> syn::Result<PathBuf> {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| {
            syn::Error::new(
                lit.span(),
                "CARGO_MANIFEST_DIR is not set: build with cargo, which sets it",
            )
        })
}

/// Every `.sql` file directly in the directory `lit` names (relative to `root`), as
/// `(file name, absolute path)`, sorted by name; a missing directory is an error at `lit`.
pub fn sql_files(lit: &LitStr, root: &Path) -> syn::Result<Vec<(String, String)>> {
    let dir = root.join(lit.value());
    let entries = std::fs::read_dir(&dir).map_err(|err| {
        syn::Error::new(
            lit.span(),
            format!(
                "cannot read the migrations directory `{}`: {err} (the path is relative to the \
                 directory of the crate's Cargo.toml)",
                lit.value()
            ),
        )
    })?;
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "sql") || !path.is_file() {
            continue;
        }
        let (Some(name), Some(full)) = (path.file_name().and_then(|n| n.to_str()), path.to_str())
        else {
            return Err(syn::Error::new(
                lit.span(),
                format!("the path {} is not UTF-8", path.display()),
            ));
        };
        files.push((name.to_owned(), full.to_owned()));
    }
    files.sort();
    Ok(files)
}

/// The version of a migration file named `<version>_<name>.sql` or `V<version>__<name>.sql`.
pub fn migration_version(file: &str) -> Result<i64, String> {
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
    number
        .parse::<i64>()
        .map_err(|_| format!("the version of `{file}` does not fit a bigint"))
}

/// Why `files` (from [`sql_files`]) cannot be a set of migrations: misnamed files and versions
/// used twice, one message each.
pub fn name_errors(files: &[(String, String)]) -> Vec<String> {
    let mut errors = Vec::new();
    let mut versions: Vec<(i64, &str)> = Vec::new();
    for (file, _) in files {
        match migration_version(file) {
            Ok(version) => match versions.iter().find(|(v, _)| *v == version) {
                Some((_, first)) => {
                    errors.push(format!("`{file}` has the same version as `{first}`"))
                }
                None => versions.push((version, file)),
            },
            Err(why) => errors.push(why),
        }
    }
    errors
}
