//! The parameters of a URL (and of the environment) the driver's URL parser does not know: it
//! refuses `verify-ca`, `verify-full`, `sslrootcert` and the recovery-based
//! `target_session_attrs`, and `replicas` is the toolkit's own.

use std::path::PathBuf;

use super::{DatabaseSettings, SslMode, TargetSessionAttrs};
use crate::{Error, Result};

/// The URL query parameters read here rather than by the driver: libpq's TLS ones it does not
/// know (or knows only in part: `target_session_attrs`), and the toolkit's own `replicas`.
const OWN_PARAMS: [&str; 6] = [
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "replicas",
    "target_session_attrs",
];

/// The parameters of a URL's query the driver does not know, taken out so it parses the rest.
#[derive(Debug, Default)]
pub(super) struct OwnParams {
    ssl_mode: Option<SslMode>,
    root_cert: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    replicas: Option<Vec<String>>,
    target_session_attrs: Option<TargetSessionAttrs>,
}

impl OwnParams {
    /// Splits `url` into itself without these parameters, and these parameters.
    pub(super) fn split_url(url: &str) -> Result<(String, OwnParams)> {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), OwnParams::default()));
        };
        let mut params = OwnParams::default();
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

    /// The `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`, `PGTARGETSESSIONATTRS` and
    /// `DATABASE_REPLICAS` variables.
    pub(super) fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<OwnParams> {
        let mut params = OwnParams::default();
        for (var, key) in [
            ("PGSSLMODE", "sslmode"),
            ("PGSSLROOTCERT", "sslrootcert"),
            ("PGSSLCERT", "sslcert"),
            ("PGSSLKEY", "sslkey"),
            ("DATABASE_REPLICAS", "replicas"),
            ("PGTARGETSESSIONATTRS", "target_session_attrs"),
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
            "target_session_attrs" => self.target_session_attrs = Some(value.parse()?),
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
        if let Some(attrs) = self.target_session_attrs {
            settings.target_session_attrs = attrs;
        }
    }
}
