//! A PgBouncer of a test's own, in transaction pooling mode, in front of a server the test
//! started: Debian's `pgbouncer` binary, run as the server's user when the tests run as root.

use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running PgBouncer; stopped and its directory removed on drop.
pub struct PgBouncer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

fn binary() -> io::Result<PathBuf> {
    [
        "/usr/sbin/pgbouncer",
        "/usr/bin/pgbouncer",
        "/usr/local/bin/pgbouncer",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .ok_or_else(|| {
        io::Error::other(
            "pgbouncer is not installed: run `apt-get install pgbouncer` (Debian/Ubuntu); \
                 .ci/run installs it when missing",
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// `id -u postgres` or `id -g postgres`.
fn id(flag: &str) -> io::Result<u32> {
    let out = Command::new("id").args([flag, "postgres"]).output()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| io::Error::other("no `postgres` system user to run pgbouncer as"))
}

impl PgBouncer {
    /// Starts PgBouncer on a free loopback port, forwarding every database to
    /// `127.0.0.1:upstream_port` as user `postgres`, `pool_mode = transaction`, with
    /// `default_pool_size` server connections per database.
    pub fn start(upstream_port: u16, default_pool_size: u32) -> io::Result<PgBouncer> {
        let binary = binary()?;
        let dir = tempfile::Builder::new()
            .prefix("toolkit-pgbouncer-")
            .tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let ini = dir.path().join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n* = host=127.0.0.1 port={upstream_port} user=postgres\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
                 unix_socket_dir =\nauth_type = any\npool_mode = transaction\n\
                 default_pool_size = {default_pool_size}\nmax_client_conn = 500\n\
                 logfile = {log}\nserver_reset_query =\n",
                log = dir.path().join("pgbouncer.log").display(),
            ),
        )?;
        let mut command = Command::new(&binary);
        if is_root() {
            // PgBouncer refuses to run as root: it runs as the server's user.
            use std::os::unix::process::CommandExt;
            let (uid, gid) = (id("-u")?, id("-g")?);
            Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()?;
            command.uid(uid).gid(gid);
        }
        let child = command
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let bouncer = PgBouncer {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(io::Error::other(
                    "pgbouncer did not start listening within 10 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(bouncer)
    }

    /// The loopback port PgBouncer listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
