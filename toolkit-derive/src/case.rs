//! The default table name: the struct name in `snake_case`.

/// `UserProfile` -> `user_profile`, `HTTPRequest` -> `http_request`, `OAuth2Token` ->
/// `o_auth2_token`, `User2FA` -> `user2_fa`.
///
/// A word starts at an uppercase letter that follows a lowercase letter or a digit, or at the
/// last uppercase letter of a run when a lowercase letter follows it (so an acronym stays one
/// word). Names that already contain `_` keep it and gain no doubled underscores.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let boundary =
                prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower);
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}
