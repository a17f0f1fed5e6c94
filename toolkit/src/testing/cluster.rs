//! A throwaway PostgreSQL cluster: initdb + pg_ctl into a temp dir on a free loopback port.

use std::fs;
use std::io::{self, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use toolkit_core::{DatabaseSettings, SslMode};

/// A PostgreSQL cluster of its own, started in a temporary directory on a free port of
/// 127.0.0.1, stopped and removed when dropped.
///
/// The server binaries are found through `TOOLKIT_PG_BIN`, then `PATH`, then
/// `/usr/lib/postgresql/<newest>/bin`. As root (where `initdb` refuses to run) the binaries run
/// as the `postgres` system user. A watchdog process removes the cluster even when the test
/// process dies without running destructors.
///
/// ```no_run
/// use toolkit::testing::TestCluster;
/// let cluster = TestCluster::builder().password("secret").start()?;
/// let settings = cluster.settings(); // user postgres, password secret, database postgres
/// cluster.restart()?;                // pg_ctl restart -m fast
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct TestCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    password: Option<String>,
    /// The authority's certificate, in the cluster's directory, when TLS is on.
    tls_root: Option<PathBuf>,
    run_as: Option<(u32, u32)>,
    watchdog: Option<Child>,
}

/// Options for [`TestCluster`]; see [`TestCluster::builder`].
#[derive(Debug, Default, Clone)]
pub struct TestClusterBuilder {
    password: Option<String>,
    settings: Vec<(String, String)>,
    files: Vec<(String, Vec<u8>)>,
    hba: Vec<String>,
    tls_root: Option<String>,
}

impl TestClusterBuilder {
    /// Require password (SCRAM) authentication for user `postgres` with this password.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Adds a `postgresql.conf` line `name = 'value'`.
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    /// Writes a file into the data directory before the server starts (mode 0600, owned by
    /// the server's user): certificates and keys, e.g. `server.crt` for `ssl_cert_file`.
    pub fn file(mut self, name: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((name.into(), contents.into()));
        self
    }

    /// Puts a `pg_hba.conf` line before initdb's own (the first matching line wins), e.g.
    /// `hostssl all all 127.0.0.1/32 trust clientcert=verify-full`. With any line given,
    /// initdb's TCP lines are dropped, so only these decide over TCP.
    pub fn hba(mut self, line: impl Into<String>) -> Self {
        self.hba.push(line.into());
        self
    }

    /// Turns TLS on with these certificates: `ssl = on`, the server certificate, and the
    /// authority as `ssl_ca_file` (so `clientcert=verify-full` lines can check clients).
    /// [`TestCluster::settings`] then connects with `ssl_mode` verify-full.
    pub fn tls(self, certs: &super::TestCertificates) -> Self {
        let mut builder = self
            .file("server.crt", certs.server().cert_pem.clone())
            .file("server.key", certs.server().key_pem.clone())
            .file("root.crt", certs.ca_pem())
            .setting("ssl", "on")
            .setting("ssl_cert_file", "server.crt")
            .setting("ssl_key_file", "server.key")
            .setting("ssl_ca_file", "root.crt");
        builder.tls_root = Some(certs.ca_pem());
        builder
    }

    /// Runs initdb and starts the server; blocks until it accepts connections.
    pub fn start(self) -> io::Result<TestCluster> {
        TestCluster::launch(self)
    }
}

impl TestCluster {
    /// A trust-auth cluster with default settings.
    pub fn start() -> io::Result<TestCluster> {
        TestCluster::builder().start()
    }

    /// Options for a cluster (password authentication, extra settings).
    pub fn builder() -> TestClusterBuilder {
        TestClusterBuilder::default()
    }

    /// Always `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Settings for user `postgres` on database `postgres` of this cluster; with TLS on,
    /// `ssl_mode` verify-full trusting the cluster's authority.
    pub fn settings(&self) -> DatabaseSettings {
        let tls = match &self.tls_root {
            Some(root) => (SslMode::VerifyFull, Some(root.clone())),
            None => (SslMode::Prefer, None),
        };
        DatabaseSettings {
            host: self.host().into(),
            port: self.port,
            user: "postgres".into(),
            password: self.password.clone().unwrap_or_default(),
            dbname: "postgres".into(),
            ssl_mode: tls.0,
            ssl_root_cert: tls.1,
            ..DatabaseSettings::default()
        }
    }

    /// Stops the server (`pg_ctl stop -m fast`), keeping the data directory.
    pub fn stop(&self) -> io::Result<()> {
        self.pg_ctl(&["stop", "-m", "fast", "-w"]).map(drop)
    }

    /// Starts a stopped server again on the same port.
    pub fn start_again(&self) -> io::Result<()> {
        self.pg_ctl(&["start", "-w", "-t", "60"]).map(drop)
    }

    /// `pg_ctl restart -m fast`: every connection is terminated, the server comes back.
    pub fn restart(&self) -> io::Result<()> {
        self.pg_ctl(&["restart", "-m", "fast", "-w", "-t", "60"])
            .map(drop)
    }

    /// The data directory (for inspecting the server log, `server.log` beside it).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Streams a copy of this running cluster into a new one and starts it as a hot standby:
    /// `pg_basebackup -R -X stream` (so the copy holds `standby.signal` and a
    /// `primary_conninfo` pointing here), on a free port of its own, with a watchdog of its own.
    /// Blocks until the standby accepts (read-only) connections; it may take a moment longer
    /// to start streaming, which `pg_stat_replication` on this cluster shows.
    ///
    /// Needs a cluster whose `pg_hba.conf` lets `postgres` connect for replication from
    /// 127.0.0.1 without TLS: the default one, with or without a password. The standby has the
    /// same settings, files and password as this cluster.
    ///
    /// ```no_run
    /// use toolkit::testing::TestCluster;
    /// let primary = TestCluster::start()?;
    /// let standby = primary.standby()?; // read-only, streaming from the primary
    /// primary.stop()?;
    /// standby.promote()?;               // now it accepts writes
    /// let settings = standby.settings();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn standby(&self) -> io::Result<TestCluster> {
        let mut standby = TestCluster::empty(self.bin.clone(), self.run_as, self.password.clone())?;
        let mut cmd = standby.command_path(&self.tool("pg_basebackup")?);
        cmd.arg("-D")
            .arg(standby.data_dir())
            .args(["-R", "-X", "stream", "-c", "fast", "-h", self.host()])
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-w"]);
        if let Some(password) = &self.password {
            // Also written into `primary_conninfo` by `-R`, so the standby can log in.
            cmd.env("PGPASSWORD", password);
        }
        run(cmd, "pg_basebackup")?;
        // The copy holds our `postgresql.auto.conf` (our port included) with pg_basebackup's
        // `primary_conninfo` appended; the standby's own port goes last, where it wins.
        let conf = fs::read_to_string(standby.data_dir().join("postgresql.auto.conf"))?;
        standby.start_on_free_port(&conf)?;
        Ok(standby)
    }

    /// Promotes a standby to a primary (`pg_ctl promote -w`): it leaves recovery, stops
    /// following its primary and accepts writes. Returns once it does.
    pub fn promote(&self) -> io::Result<()> {
        self.pg_ctl(&["promote", "-w", "-t", "60"]).map(drop)
    }

    fn launch(options: TestClusterBuilder) -> io::Result<TestCluster> {
        let run_as = if effective_uid() == 0 {
            Some(postgres_ids()?)
        } else {
            None
        };
        let mut cluster = TestCluster::empty(find_bin_dir()?, run_as, options.password.clone())?;
        cluster.initdb()?;
        cluster.write_files(&options)?;
        if let Some(ca) = &options.tls_root {
            let path = cluster.dir.path().join("root.crt");
            fs::write(&path, ca)?;
            cluster.tls_root = Some(path);
        }
        let mut conf = String::from(
            "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\nfsync = off\n\
             synchronous_commit = off\nfull_page_writes = off\nmax_connections = 300\n\
             shared_buffers = '64MB'\nlog_min_messages = warning\n",
        );
        for (name, value) in &options.settings {
            conf.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
        }
        cluster.start_on_free_port(&conf)?;
        Ok(cluster)
    }

    /// A cluster with an empty directory (owned by the server's user) and no server yet.
    fn empty(
        bin: PathBuf,
        run_as: Option<(u32, u32)>,
        password: Option<String>,
    ) -> io::Result<TestCluster> {
        let dir = tempfile::Builder::new().prefix("toolkit-pg-").tempdir()?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
        }
        Ok(TestCluster {
            dir,
            bin,
            port: 0,
            password,
            tls_root: None,
            run_as,
            watchdog: None,
        })
    }

    /// Starts the watchdog, then the server on a free port: `postgresql.auto.conf` becomes
    /// `conf` followed by the port.
    fn start_on_free_port(&mut self, conf: &str) -> io::Result<()> {
        self.watchdog = Some(self.spawn_watchdog()?);
        let conf_path = self.data_dir().join("postgresql.auto.conf");
        // Another process may take the port between our probe and the server's bind: retry.
        let mut last_err = None;
        for _ in 0..5 {
            self.port = free_port()?;
            fs::write(&conf_path, format!("{conf}port = {}\n", self.port))?;
            self.chown(&conf_path)?;
            match self.pg_ctl(&["start", "-w", "-t", "60"]) {
                Ok(_) => return Ok(()),
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("server did not start")))
    }

    fn initdb(&self) -> io::Result<()> {
        let data = self.data_dir();
        let mut cmd = self.command("initdb");
        cmd.arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C", "-N"]);
        match &self.password {
            Some(password) => {
                let pwfile = self.dir.path().join("pwfile");
                fs::File::create(&pwfile)?.write_all(password.as_bytes())?;
                self.chown(&pwfile)?;
                cmd.arg(format!("--pwfile={}", pwfile.display()))
                    .args(["-A", "scram-sha-256"]);
            }
            None => {
                cmd.args(["-A", "trust"]);
            }
        }
        run(cmd, "initdb")?;
        Ok(())
    }

    fn write_files(&self, options: &TestClusterBuilder) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        for (name, contents) in &options.files {
            let path = self.data_dir().join(name);
            fs::write(&path, contents)?;
            // The server refuses a private key others can read.
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
            self.chown(&path)?;
        }
        if !options.hba.is_empty() {
            let path = self.data_dir().join("pg_hba.conf");
            let initdb_lines = fs::read_to_string(&path)?;
            let mut hba = options.hba.join("\n");
            hba.push('\n');
            for line in initdb_lines.lines() {
                if !line.trim_start().starts_with("host") {
                    hba.push_str(line);
                    hba.push('\n');
                }
            }
            fs::write(&path, hba)?;
            self.chown(&path)?;
        }
        Ok(())
    }

    fn pg_ctl(&self, args: &[&str]) -> io::Result<Output> {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(args);
        run(cmd, "pg_ctl").map_err(|err| {
            let log = fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            let tail: String = log
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            io::Error::other(format!("{err}\nserver log:\n{tail}"))
        })
    }

    /// A shell that outlives us: once our process is gone it stops the server and removes the
    /// directory, so a crashed or `process::exit`ed test binary leaves nothing running.
    ///
    /// It learns that we are gone from its stdin, a pipe whose only writer is this process
    /// (kept open in the returned `Child`; std opens pipes close-on-exec, so no other child
    /// inherits it): the read ends when the kernel closes our end, however we exit. That is
    /// POSIX, unlike polling `/proc/<pid>`, and needs no permission to signal us (the watchdog
    /// runs as the server's user). A `keep` file in the directory (see
    /// [`TestCluster::keep_after_exit`]) leaves the server running for inspection.
    fn spawn_watchdog(&self) -> io::Result<Child> {
        let dir = self.dir.path().display();
        let script = format!(
            "trap '' INT TERM HUP; cat >/dev/null; [ -e '{dir}/keep' ] && exit 0; \
             '{pg_ctl}' -D '{data}' stop -m immediate >/dev/null 2>&1; rm -rf '{dir}'",
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data_dir().display(),
        );
        let mut cmd = self.command_path(Path::new("/bin/sh"));
        cmd.arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.spawn()
    }

    /// Leaves this cluster running after the test process exits, instead of letting the
    /// watchdog stop and remove it (a cluster that is dropped is still stopped), and returns
    /// how to stop it by hand. For a kept test database on the cluster a test binary shares.
    pub(crate) fn keep_after_exit(&self) -> io::Result<String> {
        fs::write(self.dir.path().join("keep"), b"")?;
        let stop = format!(
            "'{}' -D '{}' stop && rm -rf '{}'",
            self.bin.join("pg_ctl").display(),
            self.data_dir().display(),
            self.dir.path().display()
        );
        Ok(match self.run_as {
            Some(_) => format!("su postgres -c \"{stop}\""),
            None => stop,
        })
    }

    fn command(&self, program: &str) -> Command {
        self.command_path(&self.bin.join(program))
    }

    /// A client program of the server's installation. `bin` may be a directory of links to
    /// only the server programs (e.g. `initdb` and `pg_ctl` in `/usr/local/bin`); the others
    /// are then found beside the file `pg_ctl` links to.
    fn tool(&self, program: &str) -> io::Result<PathBuf> {
        let beside = self.bin.join(program);
        if beside.is_file() {
            return Ok(beside);
        }
        let pg_ctl = fs::canonicalize(self.bin.join("pg_ctl"))?;
        pg_ctl
            .parent()
            .map(|dir| dir.join(program))
            .filter(|path| path.is_file())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "{program} not found in {} nor beside {}",
                        self.bin.display(),
                        pg_ctl.display()
                    ),
                )
            })
    }

    fn command_path(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(self.dir.path())
            .env_remove("PGDATA")
            .env("LC_ALL", "C");
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn chown(&self, path: &Path) -> io::Result<()> {
        match self.run_as {
            Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid)),
            None => Ok(()),
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
        // TempDir removes the directory after this.
    }
}

fn run(mut cmd: Command, what: &str) -> io::Result<Output> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {what}: {e}")))?;
    if output.status.success() {
        return Ok(output);
    }
    Err(io::Error::other(format!(
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )))
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn find_bin_dir() -> io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("TOOLKIT_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(dir) = std::env::split_paths(&path)
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        {
            return Ok(dir);
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, bin)| bin).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql/*/bin; \
             install them (Debian/Ubuntu: apt-get install postgresql) or set TOOLKIT_PG_BIN",
        )
    })
}

/// The effective uid, from the `geteuid` call itself (through rustix's safe wrapper, as the
/// workspace forbids `unsafe`): portable to every Unix, unlike `/proc/self/status`.
fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn postgres_ids() -> io::Result<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .find_map(|line| {
            let mut parts = line.split(':');
            if parts.next()? != "postgres" {
                return None;
            }
            let uid = parts.nth(1)?.parse().ok()?;
            let gid = parts.next()?.parse().ok()?;
            Some((uid, gid))
        })
        .ok_or_else(|| {
            io::Error::other("running as root, but there is no `postgres` system user to run initdb and postgres as")
        })
}
