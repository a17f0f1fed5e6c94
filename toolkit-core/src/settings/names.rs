//! Settings enums spelled as libpq spells them (`sslmode=verify-full`,
//! `target_session_attrs=prefer-standby`): one table of names per enum, read both ways.

use crate::{Error, Result};

/// The value `s` names in `names`, or `InvalidSettings` for `field` listing every name (and
/// `hint`, when there is one for `s`).
pub(super) fn parse<T: Copy>(
    names: &[(&str, T)],
    s: &str,
    field: &'static str,
    hint: &str,
) -> Result<T> {
    names
        .iter()
        .find(|(name, _)| *name == s)
        .map(|&(_, value)| value)
        .ok_or_else(|| {
            let listed: Vec<&str> = names.iter().map(|(name, _)| *name).collect();
            Error::settings(
                field,
                format!("{s:?} is not one of {}{hint}", listed.join(", ")),
            )
        })
}

/// The name of `value` in `names` (every variant has one).
pub(super) fn name_of<T: PartialEq>(names: &[(&'static str, T)], value: &T) -> &'static str {
    names
        .iter()
        .find(|(_, named)| named == value)
        .map_or("", |(name, _)| name)
}
