//! TLS for every connection the pool opens (and its cancel requests): libpq's `sslmode` on
//! rustls. The driver negotiates (`SSLRequest`, plain fallback under `prefer`); what is checked
//! of the server's certificate is decided here, once per pool, by the verifier we hand rustls.

#[cfg(feature = "tls")]
pub(crate) use with_tls::{connector, Connector};
#[cfg(not(feature = "tls"))]
pub(crate) use without_tls::{connector, Connector};

/// Why a connect failed in TLS, in words a reader can act on, or `None` when TLS is not what
/// failed. The words "unknown issuer", "name mismatch" and "expired" are part of the message
/// on purpose: they are what people search for.
pub(crate) fn explain(err: &tokio_postgres::Error) -> Option<String> {
    use std::error::Error as _;
    let driver = err.to_string();
    if !driver.contains("TLS") {
        return None;
    }
    let mut cur = err.source();
    while let Some(cause) = cur {
        if cause.to_string().contains("server does not support TLS") {
            return Some(
                "TLS is required (ssl_mode require, verify-ca or verify-full) but the server \
                 does not accept TLS connections (ssl = off)"
                    .into(),
            );
        }
        #[cfg(feature = "tls")]
        if let Some(why) = with_tls::explain_rustls(cause) {
            return Some(why);
        }
        cur = cause.source();
    }
    Some("the TLS handshake with the server failed".into())
}

#[cfg(not(feature = "tls"))]
mod without_tls {
    use crate::{DatabaseSettings, Result};

    use tokio_postgres::tls::{MakeTlsConnect, NoTls, NoTlsStream};

    /// `NoTls` under a name of ours, so callers clone it whichever feature is on.
    #[derive(Debug, Clone)]
    pub(crate) struct Connector;

    impl<S> MakeTlsConnect<S> for Connector {
        type Stream = NoTlsStream;
        type TlsConnect = NoTls;
        type Error = std::convert::Infallible;

        fn make_tls_connect(&mut self, _: &str) -> std::result::Result<NoTls, Self::Error> {
            Ok(NoTls)
        }
    }

    pub(crate) fn connector(_: &DatabaseSettings) -> Result<Connector> {
        Ok(Connector)
    }
}

#[cfg(feature = "tls")]
mod with_tls {
    use std::path::Path;
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::client::WebPkiServerVerifier;
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

    use crate::{DatabaseSettings, Error, Result, SslMode};

    pub(crate) type Connector = tokio_postgres_rustls::MakeRustlsConnect;

    /// The connector for every connection of a pool: certificate files are read here, once,
    /// so a missing or unreadable file is an `InvalidSettings` naming its field, not a
    /// connect error at each attempt.
    pub(crate) fn connector(settings: &DatabaseSettings) -> Result<Connector> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match settings.ssl_mode {
            SslMode::VerifyFull => chain_verifier(settings, &provider)?,
            SslMode::VerifyCa => Arc::new(ChainOnly(chain_verifier(settings, &provider)?)),
            // As libpq: `require` with a root certificate given checks the chain.
            SslMode::Require if settings.ssl_root_cert.is_some() => {
                Arc::new(ChainOnly(chain_verifier(settings, &provider)?))
            }
            _ => Arc::new(Unverified(provider.clone())),
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::settings("ssl_mode", format!("TLS setup failed: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&settings.ssl_cert, &settings.ssl_key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs("ssl_cert", cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    Error::settings(
                        "ssl_key",
                        format!("cannot read a private key from {}: {e}", key.display()),
                    )
                })?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    Error::settings(
                        "ssl_key",
                        format!("does not fit the certificate of ssl_cert: {e}"),
                    )
                })?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }

    /// The standard verifier (chain, validity period, host name) over the configured roots.
    fn chain_verifier(
        settings: &DatabaseSettings,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Arc<WebPkiServerVerifier>> {
        let mut roots = RootCertStore::empty();
        match settings.ssl_root_cert.as_deref() {
            Some(path) if path != Path::new("system") => {
                for cert in read_certs("ssl_root_cert", path)? {
                    roots.add(cert).map_err(|e| {
                        Error::settings(
                            "ssl_root_cert",
                            format!("{} holds an unusable certificate: {e}", path.display()),
                        )
                    })?;
                }
            }
            _ => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| Error::settings("ssl_root_cert", format!("cannot verify with it: {e}")))
    }

    fn read_certs(field: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
        let unreadable = |e: &dyn std::fmt::Display| {
            Error::settings(field, format!("cannot read {}: {e}", path.display()))
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| unreadable(&e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| unreadable(&e))?;
        if certs.is_empty() {
            return Err(Error::settings(
                field,
                format!("{} holds no PEM certificate", path.display()),
            ));
        }
        Ok(certs)
    }

    /// `verify-ca`: the chain must be trusted, whatever host it was issued for.
    #[derive(Debug)]
    struct ChainOnly(Arc<WebPkiServerVerifier>);

    impl ServerCertVerifier for ChainOnly {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp_response: &[u8],
            now: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            // The webpki verifier checks the name only after the chain and the validity period
            // passed, so a name mismatch means everything verify-ca asks for held.
            match self.0.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.supported_verify_schemes()
        }
    }

    /// `prefer` and `require` without a root certificate: encrypted, the certificate taken as
    /// it comes (libpq's meaning). The handshake signatures are still checked, so the peer
    /// holds the key of the certificate it showed.
    #[derive(Debug)]
    struct Unverified(Arc<CryptoProvider>);

    impl ServerCertVerifier for Unverified {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// The rustls error behind `cause` (tokio-rustls hands it over inside an `io::Error`,
    /// whose `source()` skips it), explained.
    pub(super) fn explain_rustls(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
        let rustls_err = cause.downcast_ref::<rustls::Error>().or_else(|| {
            cause
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        })?;
        let why = match rustls_err {
            rustls::Error::InvalidCertificate(cert) => match cert {
                CertificateError::UnknownIssuer => format!(
                    "the server's TLS certificate is not signed by a trusted authority \
                     (unknown issuer): set ssl_root_cert (sslrootcert) to the CA that signed \
                     it ({cert})"
                ),
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => format!(
                    "the server's TLS certificate was not issued for the host connected to \
                     (name mismatch): {cert}; connect by a name the certificate lists, or use \
                     ssl_mode verify-ca"
                ),
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    format!("the server's TLS certificate has expired (expired): {cert}")
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    format!("the server's TLS certificate is not valid yet: {cert}")
                }
                other => format!("the server's TLS certificate was refused: {other}"),
            },
            rustls::Error::AlertReceived(alert) => format!(
                "the server ended the TLS handshake ({alert:?}); if it asks for a client \
                 certificate, check ssl_cert and ssl_key (sslcert, sslkey)"
            ),
            other => format!("the TLS handshake failed: {other}"),
        };
        Some(why)
    }
}
