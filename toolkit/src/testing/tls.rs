//! Certificates for TLS test clusters: a throwaway authority, a server certificate for
//! `localhost` and `127.0.0.1`, client certificates, and the broken ones a test needs.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct CertifiedKey {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: String,
}

/// A certificate authority made for one test, with the server certificate it signed.
///
/// ```no_run
/// use toolkit::testing::{TestCertificates, TestCluster};
/// let certs = TestCertificates::generate()?;
/// let cluster = TestCluster::builder().tls(&certs).start()?;
/// let settings = cluster.settings(); // ssl_mode verify-full, ssl_root_cert = the authority
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TestCertificates {
    dir: tempfile::TempDir,
    authority: CertifiedIssuer<'static, KeyPair>,
    server: CertifiedKey,
}

impl std::fmt::Debug for TestCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCertificates")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl TestCertificates {
    /// A new authority (its certificate written to [`ca_file`](Self::ca_file)) and a server
    /// certificate for `localhost` and `127.0.0.1`.
    pub fn generate() -> io::Result<TestCertificates> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(other)?;
        // A name of its own: two authorities of one name would make a certificate from the
        // other look forged (bad signature) rather than unknown.
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "toolkit test authority {}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let authority = CertifiedIssuer::self_signed(params, KeyPair::generate().map_err(other)?)
            .map_err(other)?;
        let dir = tempfile::Builder::new().prefix("toolkit-tls-").tempdir()?;
        fs::write(dir.path().join("root.crt"), authority.pem())?;
        let mut certs = TestCertificates {
            dir,
            authority,
            server: CertifiedKey {
                cert_pem: String::new(),
                key_pem: String::new(),
            },
        };
        certs.server = certs.sign(&["localhost", "127.0.0.1"], "localhost", false)?;
        Ok(certs)
    }

    /// The authority's certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.authority.pem()
    }

    /// A file holding the authority's certificate, for `ssl_root_cert`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("root.crt")
    }

    /// The server certificate and key (for `localhost` and `127.0.0.1`).
    pub fn server(&self) -> &CertifiedKey {
        &self.server
    }

    /// A server certificate for the same names that expired in 2020.
    pub fn expired_server(&self) -> io::Result<CertifiedKey> {
        self.sign(&["localhost", "127.0.0.1"], "localhost", true)
    }

    /// A client certificate for `user` (its common name, which `clientcert=verify-full`
    /// compares with the user name), written as `<user>.crt` and `<user>.key` beside
    /// [`ca_file`](Self::ca_file); returns the two paths.
    pub fn client_files(&self, user: &str) -> io::Result<(PathBuf, PathBuf)> {
        let client = self.sign(&[], user, false)?;
        let cert = self.dir.path().join(format!("{user}.crt"));
        let key = self.dir.path().join(format!("{user}.key"));
        fs::write(&cert, client.cert_pem)?;
        write_private(&key, &client.key_pem)?;
        Ok((cert, key))
    }

    fn sign(&self, names: &[&str], common_name: &str, expired: bool) -> io::Result<CertifiedKey> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).map_err(other)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        // rcgen's default period (1975 to 4096) suits every certificate but the expired one.
        if expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let key = KeyPair::generate().map_err(other)?;
        let cert = params.signed_by(&key, &self.authority).map_err(other)?;
        Ok(CertifiedKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Key files readable by their owner only (libpq-style clients refuse others).
fn write_private(path: &Path, contents: &str) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, contents)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
}

fn other(err: rcgen::Error) -> io::Error {
    io::Error::other(format!("cannot make a test certificate: {err}"))
}
