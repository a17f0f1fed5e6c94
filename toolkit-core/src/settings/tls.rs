//! The TLS part of the settings: libpq's `sslmode` and certificate parameters, which the
//! driver's URL parser does not know (it refuses `verify-ca`, `verify-full` and `sslrootcert`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::DatabaseSettings;
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
        SslMode::NAMES
            .iter()
            .find(|(name, _)| *name == s)
            .map(|&(_, mode)| mode)
            .ok_or_else(|| {
                Error::settings(
                    "ssl_mode",
                    format!(
                        "{s:?} is not one of disable, prefer, require, verify-ca, verify-full{}",
                        if s == "allow" {
                            " (allow, plain first, is not supported: use prefer)"
                        } else {
                            ""
                        }
                    ),
                )
            })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = SslMode::NAMES
            .iter()
            .find(|(_, mode)| mode == self)
            .map_or("prefer", |(name, _)| name);
        f.write_str(name)
    }
}

/// The URL query parameters read here rather than by the driver: libpq's TLS ones it does not
/// know, and the toolkit's own `replicas`.
const OWN_PARAMS: [&str; 5] = ["sslmode", "sslrootcert", "sslcert", "sslkey", "replicas"];

/// The parameters of a URL's query the driver does not know, taken out so it parses the rest.
#[derive(Debug, Default)]
pub(super) struct TlsParams {
    ssl_mode: Option<SslMode>,
    root_cert: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    replicas: Option<Vec<String>>,
}

impl TlsParams {
    /// Splits `url` into itself without the TLS parameters, and those parameters.
    pub(super) fn split_url(url: &str) -> Result<(String, TlsParams)> {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), TlsParams::default()));
        };
        let mut params = TlsParams::default();
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            if !OWN_PARAMS.contains(&key) {
                kept.push(pair);
                continue;
            }
            let value = percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| Error::settings("url", format!("{key} is not valid UTF-8")))?
                .into_owned();
            params.set(key, value)?;
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok((rest, params))
    }

    /// The `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT` and `PGSSLKEY` variables.
    pub(super) fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<TlsParams> {
        let mut params = TlsParams::default();
        for (var, key) in [
            ("PGSSLMODE", "sslmode"),
            ("PGSSLROOTCERT", "sslrootcert"),
            ("PGSSLCERT", "sslcert"),
            ("PGSSLKEY", "sslkey"),
            ("DATABASE_REPLICAS", "replicas"),
        ] {
            if let Some(value) = lookup(var).filter(|v| !v.is_empty()) {
                params.set(key, value).map_err(|err| match err {
                    Error::InvalidSettings { message, .. } => Error::settings(var, message),
                    other => other,
                })?;
            }
        }
        Ok(params)
    }

    fn set(&mut self, key: &str, value: String) -> Result<()> {
        match key {
            "sslmode" => self.ssl_mode = Some(value.parse()?),
            "sslrootcert" => self.root_cert = Some(value.into()),
            "sslcert" => self.cert = Some(value.into()),
            "replicas" => {
                self.replicas = Some(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|r| !r.is_empty())
                        .map(str::to_owned)
                        .collect(),
                )
            }
            _ => self.key = Some(value.into()),
        }
        Ok(())
    }

    pub(super) fn apply(self, settings: &mut DatabaseSettings) {
        if let Some(mode) = self.ssl_mode {
            settings.ssl_mode = mode;
        }
        settings.ssl_root_cert = self.root_cert.or(settings.ssl_root_cert.take());
        settings.ssl_cert = self.cert.or(settings.ssl_cert.take());
        settings.ssl_key = self.key.or(settings.ssl_key.take());
        if let Some(replicas) = self.replicas {
            settings.replicas = replicas;
        }
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
