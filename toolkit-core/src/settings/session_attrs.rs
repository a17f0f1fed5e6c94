//! `target_session_attrs`: which of several hosts may serve a pool.

use std::fmt;
use std::str::FromStr;

use super::names;
use crate::{Error, Result};

/// Which server, among the hosts of [`DatabaseSettings::host`](super::DatabaseSettings::host),
/// a connection may use: libpq's `target_session_attrs`, with its names. Hosts are tried in
/// order at every connect, so when the roles change (a standby is promoted) new connections
/// follow. Default `Any`.
///
/// | value | the connection is kept when the server |
/// |---|---|
/// | `Any` | accepts it |
/// | `ReadWrite` | accepts writes (`transaction_read_only` is off) |
/// | `ReadOnly` | refuses writes (`transaction_read_only` is on) |
/// | `Primary` | is not in recovery |
/// | `Standby` | is in recovery (a hot standby) |
/// | `PreferStandby` | is in recovery; when no host is, the first host that accepts |
///
/// `ReadOnly`, `Standby` and `PreferStandby` make a `Database` that reads: its writes fail
/// with [`Error::is_read_only`]. They cannot be combined with `replicas`, whose primary must
/// take writes. With `PreferStandby`, connections opened while every standby was down stay on
/// the primary until `max_lifetime` replaces them.
///
/// ```
/// use toolkit_core::TargetSessionAttrs;
/// let attrs: TargetSessionAttrs = "prefer-standby".parse().unwrap();
/// assert_eq!(attrs, TargetSessionAttrs::PreferStandby);
/// assert_eq!(TargetSessionAttrs::ReadWrite.to_string(), "read-write");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TargetSessionAttrs {
    /// The first host that accepts the connection.
    #[default]
    Any,
    /// A session that accepts writes: the primary, unless writes are refused there.
    ReadWrite,
    /// A session that refuses writes: a standby, or a server with
    /// `default_transaction_read_only` on.
    ReadOnly,
    /// A server that is not in recovery.
    Primary,
    /// A server in recovery: a hot standby.
    Standby,
    /// A standby when one accepts the connection, otherwise the first host that does.
    PreferStandby,
}

impl TargetSessionAttrs {
    const NAMES: [(&'static str, TargetSessionAttrs); 6] = [
        ("any", TargetSessionAttrs::Any),
        ("read-write", TargetSessionAttrs::ReadWrite),
        ("read-only", TargetSessionAttrs::ReadOnly),
        ("primary", TargetSessionAttrs::Primary),
        ("standby", TargetSessionAttrs::Standby),
        ("prefer-standby", TargetSessionAttrs::PreferStandby),
    ];

    /// Whether a connection chosen this way can take writes (when the server allows them).
    pub fn allows_writes(self) -> bool {
        matches!(
            self,
            TargetSessionAttrs::Any | TargetSessionAttrs::ReadWrite | TargetSessionAttrs::Primary
        )
    }

    /// What the driver checks itself: it knows `transaction_read_only` but not recovery, so
    /// the recovery-based choices are the toolkit's (`pool/dial.rs`) and the driver takes any.
    pub(crate) fn driver(self) -> tokio_postgres::config::TargetSessionAttrs {
        use tokio_postgres::config::TargetSessionAttrs as Driver;
        match self {
            TargetSessionAttrs::ReadWrite => Driver::ReadWrite,
            TargetSessionAttrs::ReadOnly => Driver::ReadOnly,
            _ => Driver::Any,
        }
    }

    /// The role a server must have, by `pg_is_in_recovery()`, when the driver cannot check it:
    /// `Some(true)` a standby, `Some(false)` a primary.
    pub(crate) fn wants_recovery(self) -> Option<bool> {
        match self {
            TargetSessionAttrs::Primary => Some(false),
            TargetSessionAttrs::Standby | TargetSessionAttrs::PreferStandby => Some(true),
            _ => None,
        }
    }
}

impl FromStr for TargetSessionAttrs {
    type Err = Error;

    fn from_str(s: &str) -> Result<TargetSessionAttrs> {
        names::parse(&TargetSessionAttrs::NAMES, s, "target_session_attrs", "")
    }
}

impl fmt::Display for TargetSessionAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(names::name_of(&TargetSessionAttrs::NAMES, self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_libpq_name_parses_and_prints_back() {
        for (name, attrs) in TargetSessionAttrs::NAMES {
            assert_eq!(name.parse::<TargetSessionAttrs>().unwrap(), attrs);
            assert_eq!(attrs.to_string(), name);
        }
        let err = "prefer_standby".parse::<TargetSessionAttrs>().unwrap_err();
        assert!(err.to_string().contains("target_session_attrs"), "{err}");
    }
}
