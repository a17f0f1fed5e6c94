//! The TLS part of the settings: libpq's `sslmode` (read from URLs in `params.rs`) and the
//! checks of the certificate fields.

use std::fmt;
use std::str::FromStr;

use super::{names, DatabaseSettings};
use crate::{Error, Result};

/// TLS mode, with libpq's `sslmode` meaning. Default `Prefer`.
///
/// | mode | encrypted | server certificate checked |
/// |---|---|---|
/// | `Disable` | never | - |
/// | `Prefer` | when the server accepts TLS, else plain | no |
/// | `Require` | always | no; with `ssl_root_cert` set, like `VerifyCa` (as libpq) |
/// | `VerifyCa` | always | signed by a trusted authority |
/// | `VerifyFull` | always | trusted, and issued for the host connected to |
///
/// ```
/// use toolkit_core::SslMode;
/// assert_eq!("verify-full".parse::<SslMode>().unwrap(), SslMode::VerifyFull);
/// assert_eq!(SslMode::VerifyCa.to_string(), "verify-ca");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, plain TCP otherwise; the certificate is not checked.
    #[default]
    Prefer,
    /// TLS or no connection.
    Require,
    /// TLS, and the server's certificate chains to a trusted authority.
    VerifyCa,
    /// TLS, a trusted certificate, and it names the host connected to.
    VerifyFull,
}

impl SslMode {
    const NAMES: [(&'static str, SslMode); 5] = [
        ("disable", SslMode::Disable),
        ("prefer", SslMode::Prefer),
        ("require", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
        ("verify-full", SslMode::VerifyFull),
    ];

    /// TLS or nothing.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }

    /// The mode the driver negotiates with: it knows only whether TLS is off, optional or
    /// required; what is checked of the certificate is the connector's business.
    pub(crate) fn negotiation(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Driver;
        match self {
            SslMode::Disable => Driver::Disable,
            SslMode::Prefer => Driver::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Driver::Require,
        }
    }
}

impl FromStr for SslMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<SslMode> {
        let hint = if s == "allow" {
            " (allow, plain first, is not supported: use prefer)"
        } else {
            ""
        };
        names::parse(&SslMode::NAMES, s, "ssl_mode", hint)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(names::name_of(&SslMode::NAMES, self))
    }
}

impl DatabaseSettings {
    /// The TLS fields that make sense together, without reading any file.
    pub(super) fn validate_tls(&self) -> Result<()> {
        if cfg!(not(feature = "tls")) && self.ssl_mode.requires_tls() {
            return Err(Error::settings(
                "ssl_mode",
                format!(
                    "{} needs TLS, and the toolkit was built without its `tls` feature",
                    self.ssl_mode
                ),
            ));
        }
        match (&self.ssl_cert, &self.ssl_key) {
            (Some(_), None) => Err(Error::settings(
                "ssl_key",
                "ssl_cert (sslcert) is set: its private key must be set too",
            )),
            (None, Some(_)) => Err(Error::settings(
                "ssl_cert",
                "ssl_key (sslkey) is set: the certificate it belongs to must be set too",
            )),
            _ => Ok(()),
        }
    }
}
