//! The parameters of a URL (and of the environment) the driver's URL parser does not know: it
//! refuses `verify-ca`, `verify-full`, `sslrootcert` and the recovery-based
//! `target_session_attrs`, and `replicas` is the toolkit's own.

use std::path::PathBuf;
use std::time::Duration;

use super::{DatabaseSettings, SslMode, TargetSessionAttrs};
use crate::{Error, Result};

/// The URL query parameters read here rather than by the driver: libpq's TLS ones it does not
/// know (or knows only in part: `target_session_attrs`), and the toolkit's own `replicas`.
const OWN_PARAMS: [&str; 15] = [
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "replicas",
    "target_session_attrs",
    // Known to the driver, but a `Database` builds its own driver configuration from the
    // fields: these are read into fields here, or refused, never parsed and dropped.
    "options",
    "keepalives",
    "keepalives_idle",
    "tcp_user_timeout",
    "keepalives_interval",
    "keepalives_retries",
    "channel_binding",
    "load_balance_hosts",
    "sslnegotiation",
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
    options: Option<String>,
    /// `Some(None)`: keepalives turned off.
    keepalive: Option<Option<Duration>>,
    tcp_user_timeout: Option<Option<Duration>>,
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

    /// The `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`, `PGTARGETSESSIONATTRS`,
    /// `PGOPTIONS` and `DATABASE_REPLICAS` variables.
    pub(super) fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<OwnParams> {
        let mut params = OwnParams::default();
        for (var, key) in [
            ("PGSSLMODE", "sslmode"),
            ("PGSSLROOTCERT", "sslrootcert"),
            ("PGSSLCERT", "sslcert"),
            ("PGSSLKEY", "sslkey"),
            ("DATABASE_REPLICAS", "replicas"),
            ("PGTARGETSESSIONATTRS", "target_session_attrs"),
            ("PGOPTIONS", "options"),
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
            "options" => self.options = Some(value),
            "keepalives" => match value.as_str() {
                "0" => self.keepalive = Some(None),
                "1" => {}
                _ => return Err(Error::settings("url", "keepalives must be 0 or 1")),
            },
            "keepalives_idle" => {
                let idle = Duration::from_secs(number(key, &value)?);
                // `keepalives=0` anywhere in the query wins.
                if self.keepalive != Some(None) {
                    self.keepalive = Some(Some(idle));
                }
            }
            // libpq: milliseconds, 0 for the system's default.
            "tcp_user_timeout" => {
                let ms = number(key, &value)?;
                self.tcp_user_timeout = Some((ms > 0).then(|| Duration::from_millis(ms)));
            }
            "keepalives_interval" | "keepalives_retries" => {
                return Err(Error::settings(
                    "url",
                    format!(
                        "{key} is not supported: keepalive probes go 5 s apart, 3 of them \
                         (set tcp_keepalive for when they start)"
                    ),
                ))
            }
            "channel_binding" | "load_balance_hosts" | "sslnegotiation" => {
                let default = match key {
                    "channel_binding" => "prefer",
                    "load_balance_hosts" => "disable",
                    _ => "postgres",
                };
                if value != default {
                    return Err(Error::settings(
                        "url",
                        format!("{key}={value} is not supported (only {default}, the default)"),
                    ));
                }
            }
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
            "sslkey" => self.key = Some(value.into()),
            // Only keys of `OWN_PARAMS` come here.
            other => {
                return Err(Error::settings(
                    "url",
                    format!("{other} is not a parameter the toolkit reads"),
                ))
            }
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
        if let Some(options) = self.options {
            settings.options = Some(options);
        }
        if let Some(keepalive) = self.keepalive {
            settings.tcp_keepalive = keepalive;
        }
        if let Some(timeout) = self.tcp_user_timeout {
            settings.tcp_user_timeout = timeout;
        }
    }
}

/// A whole number in a URL parameter.
fn number(key: &str, value: &str) -> Result<u64> {
    value.parse().map_err(|_| {
        Error::settings(
            "url",
            format!("{key} must be a whole number, not {value:?}"),
        )
    })
}
