//! `DatabaseSettings`: where to connect and how the pool behaves.

mod names;
mod params;
mod replicas;
mod session_attrs;
mod tls;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::Host;

use params::OwnParams;
pub use session_attrs::TargetSessionAttrs;
pub use tls::SslMode;

use crate::{Error, Result, RetryPolicy};

/// Connection target and pool behaviour. Build it literally with `..Default::default()`,
/// from a URL with [`DatabaseSettings::from_url`], or from the environment with
/// [`DatabaseSettings::from_env`]. Validated by [`Database::new`](crate::Database::new).
///
/// ```
/// use toolkit_core::DatabaseSettings;
/// let settings = DatabaseSettings {
///     host: "localhost".into(),
///     dbname: "mydb".into(),
///     password: "secret".into(),
///     ..DatabaseSettings::default()
/// };
/// assert!(!format!("{settings:?}").contains("secret"));
/// ```
#[derive(Clone, PartialEq)]
pub struct DatabaseSettings {
    /// Server host name, IP address, or the directory of a Unix-domain socket (an absolute
    /// path, e.g. `/var/run/postgresql`). Several hosts are a comma-separated list, each
    /// optionally with its own port (`db1,db2:5433`, `[::1]:5432`): the first that accepts the
    /// connection and matches `target_session_attrs` is used, at every connect, so a promoted
    /// standby is found without restarting the application. Default `localhost`.
    pub host: String,
    /// Server port, for every host that does not name its own. Default `5432`.
    pub port: u16,
    /// libpq's `hostaddr`: the IP address(es) to connect to instead of resolving `host`,
    /// comma-separated, one per entry of `host`. `host` still names the server for TLS
    /// verification (`VerifyFull` checks the certificate against it). Default `None`.
    pub hostaddr: Option<String>,
    /// Which of several hosts may serve the pool, by libpq's `target_session_attrs`: `Any` (the
    /// first that accepts), `ReadWrite` or `Primary` (the primary), `ReadOnly`, `Standby`, or
    /// `PreferStandby` (a standby if one is up, else any). See [`TargetSessionAttrs`].
    /// Default `Any`.
    pub target_session_attrs: TargetSessionAttrs,
    /// Database name. Default `postgres`.
    pub dbname: String,
    /// User name. Default `postgres`.
    pub user: String,
    /// Password; never shown by `Debug` or `Display`. Default empty (no password).
    pub password: String,
    /// Connections the pool keeps open even when idle. Default 5.
    pub min_pool_size: u32,
    /// Hard cap on open pooled connections. Default 20; must be at least 1.
    pub max_pool_size: u32,
    /// Longest wait for a pooled connection before [`Error::Pool`]. Default 30 s; at most
    /// about 24 days, like every duration here.
    pub pool_timeout: Duration,
    /// Longest wait for one TCP connect plus authentication (and, with `target_session_attrs`,
    /// the role check). With several hosts each gets this long, as with libpq's
    /// `connect_timeout`, so a host that goes silent does not starve those after it.
    /// Default 5 s.
    pub connection_timeout: Duration,
    /// Client-side deadline of each statement a repository or transaction sends. When it
    /// expires the query is cancelled on the server, the connection is discarded (a silent
    /// network may have left it half-open) and [`Error::Timeout`] is returned. Default `None`.
    pub query_timeout: Option<Duration>,
    /// TCP keepalive idle time: a peer that stops answering is detected by the kernel after this
    /// plus three probes 5 s apart. Default 15 s; `None` turns keepalives off.
    pub tcp_keepalive: Option<Duration>,
    /// Linux `TCP_USER_TIMEOUT`: the kernel drops a connection whose sent data stays
    /// unacknowledged this long. Default 30 s; `None` leaves the system default (minutes).
    pub tcp_user_timeout: Option<Duration>,
    /// Server-side `statement_timeout` for every pooled connection, set at connect time.
    /// Default `None` (the server's own setting).
    pub statement_timeout: Option<Duration>,
    /// Server-side `idle_in_transaction_session_timeout` for every pooled connection: a backstop
    /// that ends a transaction left idle by a stuck caller. Default 5 minutes; `None` leaves the
    /// server's setting.
    pub idle_in_transaction_timeout: Option<Duration>,
    /// libpq's `options`: command-line options for the server sent when each pooled connection
    /// opens, e.g. `-c search_path=app,public` (also `?options=` in a URL and `PGOPTIONS`).
    /// Sent after the toolkit's own (`statement_timeout`, ...), so its `-c` settings win.
    /// Refused with `StatementMode::Unnamed`: a pooler refuses or drops startup options.
    /// Default `None`.
    pub options: Option<String>,
    /// `application_name` reported to the server (visible in `pg_stat_activity`). Default `toolkit`.
    pub application_name: String,
    /// TLS mode, libpq's `sslmode` (see [`SslMode`]). Default `Prefer`: TLS when the server
    /// offers it, unverified, else plain TCP. Anything beyond `Disable`/`Prefer` needs the
    /// `tls` feature (on by default).
    pub ssl_mode: SslMode,
    /// libpq's `sslrootcert`: a PEM file of the authorities trusted to sign the server's
    /// certificate (`VerifyCa`, `VerifyFull`, and `Require` when set). `None`, or the path
    /// `system`, trusts the Mozilla root set (webpki-roots), as for a managed service with a
    /// public certificate. Default `None`.
    pub ssl_root_cert: Option<PathBuf>,
    /// libpq's `sslcert`: the client certificate (PEM, optionally followed by its chain) for
    /// servers that ask for one (`clientcert=verify-full` in `pg_hba.conf`). Default `None`.
    pub ssl_cert: Option<PathBuf>,
    /// libpq's `sslkey`: the client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    /// Set with `ssl_cert`. Default `None`.
    pub ssl_key: Option<PathBuf>,
    /// How many single statements (repository calls on a `Database` or `Pool`) may share one
    /// connection, pipelined, once every connection is busy and the pool is at
    /// `max_pool_size`. Default 2: on a saturated pool the server then never waits for the
    /// client between statements (10-15% more throughput, see BENCHMARKS.md). A connection
    /// whose statement has run for more than a few milliseconds is not joined, so a fast
    /// statement does not queue behind a slow one; a lost connection fails every statement
    /// pipelined on it, each with an error that [`Error::is_connection_lost`] recognises.
    /// Transactions, `connection()` and COPY never share. 1 turns pipelining off.
    ///
    /// [`Error::is_connection_lost`]: crate::Error::is_connection_lost
    pub pipeline_depth: usize,
    /// A pooled connection older than this is replaced: when it comes back to the pool, or at
    /// its next checkout if it expired while idle (never while a caller holds it). So a pool
    /// follows a failover, a DNS change or a pooler restart instead of keeping its first
    /// connections forever. Default 30 minutes; `None` keeps connections for as long as they
    /// work.
    pub max_lifetime: Option<Duration>,
    /// A connection idle in the pool for longer than this is closed (and, below
    /// `min_pool_size`, replaced) by the pool's background reaper, which runs every 30 s.
    /// Default 10 minutes; `None` keeps idle connections open.
    pub idle_timeout: Option<Duration>,
    /// How statements reach the server. `Prepared` (the default) prepares each statement once
    /// per connection by name and reuses it; `Unnamed` never creates a named statement (each
    /// is one unnamed round trip, its parameter types learned once per pool), so the pool works
    /// behind PgBouncer in transaction pooling mode. `Unnamed` sends no startup `options`:
    /// `statement_timeout` is then refused (set it on the role: `ALTER ROLE .. SET
    /// statement_timeout`, which every server connection inherits), and
    /// `idle_in_transaction_timeout` is applied with `SET LOCAL` in each transaction the
    /// toolkit begins.
    pub statement_mode: StatementMode,
    /// Prepared statements each pooled connection keeps (least recently used evicted first).
    /// `0` disables the cache: every statement is prepared per call. Default 256; at most
    /// 100,000. Memory grows with the statements actually cached, never with this number.
    pub statement_cache_size: usize,
    /// A statement that runs at least this long emits a WARN event (`tracing` feature): one
    /// statement's round trip, from sending it to its last row, not the wait for a connection.
    /// Default 1 s; `None` emits none.
    pub slow_statement_threshold: Option<Duration>,
    /// Records each operation's SQL text as `db.query.text` on its span (`tracing` feature).
    /// The toolkit's own statements carry only `$n` placeholders, never values; SQL a caller
    /// writes is recorded as written. Default `false`.
    pub trace_query_text: bool,
    /// Retry policy of [`Database::ping_postgres`](crate::Database::ping_postgres) and `init_db`.
    /// Default [`RetryPolicy::default`]: 5 attempts, waits drawn under 500 ms doubling up to 8 s.
    pub connect_retry: RetryPolicy,
    /// Retry policy of `run_in_transaction` for serialization failures and deadlocks.
    /// Default: 5 attempts, waits drawn under 20 ms doubling up to 1 s.
    pub transaction_retry: RetryPolicy,
    /// Read replicas (streaming standbys of the primary), each `host` or `host:port`
    /// (`[v6]:port`), reached with the same database, user, password and TLS settings. Reads
    /// through a `Database` go to them (see the README, "Read replicas"); from a URL as
    /// `?replicas=h1:5433,h2`, from the environment as `DATABASE_REPLICAS`. Default empty.
    pub replicas: Vec<String>,
    /// Read-your-writes: how long a read after a write through the same handle waits for the
    /// chosen replica to replay that write before the primary serves it instead. Default 250 ms.
    pub replica_wait: Duration,
    /// A replica further behind than this (time since its last replayed transaction, while it
    /// has WAL left to replay) is skipped until it catches up. Default 5 s; `None` never skips
    /// for lag.
    pub max_replica_lag: Option<Duration>,
    /// How often each replica is probed (reachable, replaying, lag). Default 1 s.
    pub replica_probe_interval: Duration,
}

/// How statements reach the server; see [`DatabaseSettings::statement_mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StatementMode {
    /// Prepared once per connection by name, then one round trip per call.
    #[default]
    Prepared,
    /// Never a named statement: works through PgBouncer's transaction pooling.
    Unnamed,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            host: "localhost".into(),
            port: 5432,
            hostaddr: None,
            target_session_attrs: TargetSessionAttrs::Any,
            dbname: "postgres".into(),
            user: "postgres".into(),
            password: String::new(),
            min_pool_size: 5,
            max_pool_size: 20,
            pool_timeout: Duration::from_secs(30),
            connection_timeout: Duration::from_secs(5),
            query_timeout: None,
            tcp_keepalive: Some(Duration::from_secs(15)),
            tcp_user_timeout: Some(Duration::from_secs(30)),
            statement_timeout: None,
            options: None,
            idle_in_transaction_timeout: Some(Duration::from_secs(300)),
            application_name: "toolkit".into(),
            ssl_mode: SslMode::Prefer,
            ssl_root_cert: None,
            ssl_cert: None,
            ssl_key: None,
            pipeline_depth: 2,
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            idle_timeout: Some(Duration::from_secs(10 * 60)),
            statement_mode: StatementMode::Prepared,
            statement_cache_size: 256,
            slow_statement_threshold: Some(Duration::from_secs(1)),
            trace_query_text: false,
            connect_retry: RetryPolicy::default(),
            transaction_retry: RetryPolicy {
                attempts: 5,
                initial_delay: Duration::from_millis(20),
                factor: 2.0,
                max_delay: Duration::from_secs(1),
            },
            replicas: Vec::new(),
            replica_wait: Duration::from_millis(250),
            max_replica_lag: Some(Duration::from_secs(5)),
            replica_probe_interval: Duration::from_secs(1),
        }
    }
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let password = if self.password.is_empty() {
            ""
        } else {
            "<redacted>"
        };
        f.debug_struct("DatabaseSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("hostaddr", &self.hostaddr)
            .field("target_session_attrs", &self.target_session_attrs)
            .field("dbname", &self.dbname)
            .field("user", &self.user)
            .field("password", &password)
            .field("min_pool_size", &self.min_pool_size)
            .field("max_pool_size", &self.max_pool_size)
            .field("pool_timeout", &self.pool_timeout)
            .field("connection_timeout", &self.connection_timeout)
            .field("query_timeout", &self.query_timeout)
            .field("tcp_keepalive", &self.tcp_keepalive)
            .field("tcp_user_timeout", &self.tcp_user_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("options", &self.options)
            .field(
                "idle_in_transaction_timeout",
                &self.idle_in_transaction_timeout,
            )
            .field("application_name", &self.application_name)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("ssl_cert", &self.ssl_cert)
            .field("ssl_key", &self.ssl_key)
            .field("pipeline_depth", &self.pipeline_depth)
            .field("max_lifetime", &self.max_lifetime)
            .field("idle_timeout", &self.idle_timeout)
            .field("statement_mode", &self.statement_mode)
            .field("statement_cache_size", &self.statement_cache_size)
            .field("slow_statement_threshold", &self.slow_statement_threshold)
            .field("trace_query_text", &self.trace_query_text)
            .field("connect_retry", &self.connect_retry)
            .field("transaction_retry", &self.transaction_retry)
            .field("replicas", &self.replicas)
            .field("replica_wait", &self.replica_wait)
            .field("max_replica_lag", &self.max_replica_lag)
            .field("replica_probe_interval", &self.replica_probe_interval)
            .finish()
    }
}

/// `postgres://user@host:port/dbname`, without the password.
impl fmt::Display for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "postgres://{}@", self.user)?;
        for (i, (host, port)) in self.hosts().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let port = port.unwrap_or(self.port);
            match host.contains(':') {
                true => write!(f, "{sep}[{host}]:{port}")?,
                false => write!(f, "{sep}{host}:{port}")?,
            }
        }
        write!(f, "/{}", self.dbname)
    }
}

impl DatabaseSettings {
    /// Parses a `postgres://` or `postgresql://` URL. User and password may be percent-encoded;
    /// query options such as `application_name`, `connect_timeout`, `target_session_attrs`,
    /// `hostaddr`, `sslmode`, `sslrootcert`, `sslcert` and `sslkey` are honoured.
    /// Pool fields keep their defaults.
    ///
    /// ```
    /// use toolkit_core::DatabaseSettings;
    /// let s = DatabaseSettings::from_url("postgres://u%40x:p%3Ass@db.local:6432/app?application_name=api").unwrap();
    /// assert_eq!((s.user.as_str(), s.password.as_str(), s.port), ("u@x", "p:ss", 6432));
    /// assert_eq!(s.application_name, "api");
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        let (mut settings, params) = Self::parse_url(url)?;
        params.apply(&mut settings);
        Ok(settings)
    }

    /// The settings of a URL but the parameters the driver does not know, and those.
    fn parse_url(url: &str) -> Result<(Self, OwnParams)> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::settings(
                "url",
                "expected a postgres:// or postgresql:// URL",
            ));
        }
        // The driver's parser already handles percent-decoding and libpq's query options; we only
        // lift its result into our fields, so there is one URL grammar, not two. Only the
        // options it does not know (`params.rs`) are read here.
        let (url, params) = OwnParams::split_url(url)?;
        let config = tokio_postgres::Config::from_str(&url).map_err(|e| {
            Error::settings(
                "url",
                format!("cannot parse URL: {}", crate::error::DisplayChain(&e)),
            )
        })?;
        Ok((Self::from_config(&config)?, params))
    }

    fn from_config(config: &tokio_postgres::Config) -> Result<Self> {
        let mut s = DatabaseSettings::default();
        let hosts_given = config.get_hosts().len();
        let mut ports = config.get_ports().to_vec();
        // The URL parser gives each host of the authority a port (5432 when none is written)
        // and appends those of `?port=`: like libpq, the query's port(s) win.
        if hosts_given > 0 && ports.len() > hosts_given {
            let query = ports.split_off(hosts_given);
            ports = match query.len() {
                1 => vec![query[0]; hosts_given],
                _ => query,
            };
        }
        let port_of = |i: usize| ports.get(i).or(ports.first()).copied();
        if let Some(&port) = ports.first() {
            s.port = port;
        }
        let distinct_ports = ports.iter().any(|&p| Some(p) != ports.first().copied());
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let name = match host {
                    Host::Tcp(name) if name.contains(':') => format!("[{name}]"),
                    Host::Tcp(name) => name.clone(),
                    Host::Unix(path) => path.to_string_lossy().into_owned(),
                };
                // A port of its own where the hosts' ports differ.
                match port_of(i) {
                    Some(port) if distinct_ports => format!("{name}:{port}"),
                    _ => name,
                }
            })
            .collect();
        if !hosts.is_empty() {
            s.host = hosts.join(",");
        }
        let addrs: Vec<String> = config
            .get_hostaddrs()
            .iter()
            .map(IpAddr::to_string)
            .collect();
        if !addrs.is_empty() {
            s.hostaddr = Some(addrs.join(","));
        }
        if let Some(user) = config.get_user() {
            s.user = user.to_owned();
        }
        if let Some(password) = config.get_password() {
            s.password = String::from_utf8(password.to_vec())
                .map_err(|_| Error::settings("password", "password is not valid UTF-8"))?;
        }
        if let Some(dbname) = config.get_dbname() {
            s.dbname = dbname.to_owned();
        }
        if let Some(app) = config.get_application_name() {
            s.application_name = app.to_owned();
        }
        if let Some(timeout) = config.get_connect_timeout() {
            s.connection_timeout = *timeout;
        }
        Ok(s)
    }

    /// Reads `DATABASE_URL`; when it is unset, libpq's `PGHOST`, `PGHOSTADDR`, `PGPORT`,
    /// `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGAPPNAME`, `PGTARGETSESSIONATTRS`,
    /// `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT` and `PGSSLKEY`, each falling back to the
    /// default. `PGTARGETSESSIONATTRS` and the `PGSSL*` variables also fill in what a
    /// `DATABASE_URL` leaves out, as with libpq.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let env_params = OwnParams::from_lookup(&lookup)?;
        if let Some(url) = lookup("DATABASE_URL").filter(|u| !u.is_empty()) {
            // The URL's own parameters win over the environment's.
            let (mut s, url_params) = Self::parse_url(&url)?;
            env_params.apply(&mut s);
            url_params.apply(&mut s);
            return Ok(s);
        }
        let mut s = DatabaseSettings::default();
        env_params.apply(&mut s);
        if let Some(host) = lookup("PGHOST") {
            s.host = host;
        }
        if let Some(addr) = lookup("PGHOSTADDR").filter(|a| !a.is_empty()) {
            s.hostaddr = Some(addr);
        }
        if let Some(port) = lookup("PGPORT") {
            s.port = port
                .parse()
                .map_err(|_| Error::settings("PGPORT", format!("not a port number: {port:?}")))?;
        }
        if let Some(user) = lookup("PGUSER") {
            s.user = user;
        }
        if let Some(password) = lookup("PGPASSWORD") {
            s.password = password;
        }
        if let Some(dbname) = lookup("PGDATABASE") {
            s.dbname = dbname;
        }
        if let Some(app) = lookup("PGAPPNAME") {
            s.application_name = app;
        }
        Ok(s)
    }

    /// Checks every field without touching the network; the error names the field at fault.
    pub fn validate(&self) -> Result<()> {
        for (field, value) in [
            ("host", &self.host),
            ("dbname", &self.dbname),
            ("user", &self.user),
        ] {
            if value.trim().is_empty() {
                return Err(Error::settings(field, "must not be empty"));
            }
        }
        for (field, value) in [
            ("host", &self.host),
            ("dbname", &self.dbname),
            ("user", &self.user),
            ("password", &self.password),
            ("application_name", &self.application_name),
            ("options", self.options.as_ref().unwrap_or(&String::new())),
        ] {
            // The startup packet is NUL-terminated: a NUL would cut the value short.
            if value.contains('\0') {
                return Err(Error::settings(field, "must not contain a NUL byte"));
            }
        }
        for entry in self.host.split(',').map(str::trim) {
            if entry.is_empty() {
                return Err(Error::settings(
                    "host",
                    "an entry of the host list is empty",
                ));
            }
            // `name:digits` must be a real port (an IPv6 address goes in brackets).
            let port = entry.rsplit_once(':').map(|(_, port)| port);
            let numeric = port.filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if let Some(port) = numeric {
                if port.parse::<u16>().map_or(true, |p| p == 0) {
                    return Err(Error::settings(
                        "host",
                        format!("{entry:?}: {port} is not a port number"),
                    ));
                }
            }
        }
        if !self.replicas.is_empty() && !self.target_session_attrs.allows_writes() {
            return Err(Error::settings(
                "target_session_attrs",
                format!(
                    "{} cannot be combined with replicas: the primary of a Database with \
                     replicas takes its writes (use any, read-write or primary)",
                    self.target_session_attrs
                ),
            ));
        }
        if self.statement_mode == StatementMode::Unnamed && self.options.is_some() {
            return Err(Error::settings(
                "options",
                "StatementMode::Unnamed sends no startup options, which a pooler such as PgBouncer \
                 refuses or drops; set them for the role on the server instead \
                 (ALTER ROLE .. SET name = ..)",
            ));
        }
        if self.statement_mode == StatementMode::Unnamed && self.statement_timeout.is_some() {
            return Err(Error::settings(
                "statement_timeout",
                "StatementMode::Unnamed sends no startup options, which a pooler such as PgBouncer \
                 refuses or drops; set it for the role on the server instead \
                 (ALTER ROLE .. SET statement_timeout = ..)",
            ));
        }
        if self.statement_cache_size > MAX_STATEMENT_CACHE {
            return Err(Error::settings(
                "statement_cache_size",
                format!(
                    "{} is above the limit of {MAX_STATEMENT_CACHE}",
                    self.statement_cache_size
                ),
            ));
        }
        if self.port == 0 {
            return Err(Error::settings("port", "must not be 0"));
        }
        if self.pipeline_depth == 0 {
            return Err(Error::settings(
                "pipeline_depth",
                "must be at least 1 (1 turns pipelining off)",
            ));
        }
        if self.max_pool_size == 0 {
            return Err(Error::settings("max_pool_size", "must be at least 1"));
        }
        if self.min_pool_size > self.max_pool_size {
            return Err(Error::settings(
                "min_pool_size",
                format!(
                    "{} is larger than max_pool_size {}",
                    self.min_pool_size, self.max_pool_size
                ),
            ));
        }
        for (field, value) in [
            ("pool_timeout", Some(self.pool_timeout)),
            ("connection_timeout", Some(self.connection_timeout)),
            ("query_timeout", self.query_timeout),
            ("tcp_keepalive", self.tcp_keepalive),
            ("tcp_user_timeout", self.tcp_user_timeout),
            ("max_lifetime", self.max_lifetime),
            ("idle_timeout", self.idle_timeout),
            ("replica_wait", Some(self.replica_wait)),
            ("max_replica_lag", self.max_replica_lag),
            ("replica_probe_interval", Some(self.replica_probe_interval)),
        ] {
            // Deadlines are added to `Instant::now()`, and the kernel takes the TCP ones in
            // 32-bit milliseconds: a larger value would overflow, panic or wrap.
            if value.is_some_and(|d| d > MAX_DURATION) {
                return Err(Error::settings(
                    field,
                    "is longer than the supported maximum of about 24 days (2^31 - 1 ms)",
                ));
            }
        }
        if self.pool_timeout.is_zero() {
            return Err(Error::settings("pool_timeout", "must be longer than zero"));
        }
        if self.connection_timeout.is_zero() {
            return Err(Error::settings(
                "connection_timeout",
                "must be longer than zero",
            ));
        }
        for (field, value) in [
            ("query_timeout", self.query_timeout),
            ("tcp_keepalive", self.tcp_keepalive),
            ("tcp_user_timeout", self.tcp_user_timeout),
            ("max_lifetime", self.max_lifetime),
            ("idle_timeout", self.idle_timeout),
        ] {
            if value.is_some_and(|d| d.is_zero()) {
                return Err(Error::settings(
                    field,
                    "must be longer than zero; use None to turn it off",
                ));
            }
        }
        check_server_timeout("statement_timeout", self.statement_timeout)?;
        check_server_timeout(
            "idle_in_transaction_timeout",
            self.idle_in_transaction_timeout,
        )?;
        self.validate_tls()?;
        self.validate_replicas()?;
        self.hostaddrs()?;
        self.connect_retry.validate("connect_retry")?;
        self.transaction_retry.validate("transaction_retry")
    }

    /// The addresses of `hostaddr`, one per entry of `host`.
    fn hostaddrs(&self) -> Result<Vec<IpAddr>> {
        let Some(list) = self.hostaddr.as_deref() else {
            return Ok(Vec::new());
        };
        let addrs = list
            .split(',')
            .map(str::trim)
            .map(|a| {
                a.parse::<IpAddr>()
                    .map_err(|_| Error::settings("hostaddr", format!("{a:?} is not an IP address")))
            })
            .collect::<Result<Vec<_>>>()?;
        let hosts = self.hosts().count();
        if addrs.len() != hosts {
            return Err(Error::settings(
                "hostaddr",
                format!(
                    "{} address(es) for {hosts} host(s): give one per entry of host",
                    addrs.len()
                ),
            ));
        }
        Ok(addrs)
    }

    /// The entries of `host`: each host (or socket directory) and the port it names, if any.
    fn hosts(&self) -> impl Iterator<Item = (&str, Option<u16>)> {
        self.host.split(',').map(str::trim).map(|entry| {
            if entry.starts_with('/') {
                // A socket directory, optionally with its own port: `/run/postgresql:5433`.
                return match entry.rsplit_once(':') {
                    Some((dir, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
                        (dir, port.parse().ok())
                    }
                    _ => (entry, None),
                };
            }
            if let Some(rest) = entry.strip_prefix('[') {
                // `[v6]` or `[v6]:port`
                let (addr, tail) = rest.split_once(']').unwrap_or((rest, ""));
                return (addr, tail.strip_prefix(':').and_then(|p| p.parse().ok()));
            }
            match entry.rsplit_once(':') {
                Some((name, port)) if !name.contains(':') => match port.parse() {
                    Ok(port) => (name, Some(port)),
                    Err(_) => (entry, None),
                },
                _ => (entry, None),
            }
        })
    }

    /// In `Unnamed` mode, the `idle_in_transaction_timeout` that startup options would have
    /// carried, for `SET LOCAL` in each transaction the toolkit begins.
    pub(crate) fn idle_in_transaction_local(&self) -> Option<Duration> {
        self.idle_in_transaction_timeout
            .filter(|_| self.statement_mode == StatementMode::Unnamed)
    }

    /// What the toolkit adds to each `BEGIN` it sends (see `idle_in_transaction_local`).
    pub(crate) fn begin_suffix(&self) -> String {
        begin_suffix(self.idle_in_transaction_local())
    }

    /// The driver configuration for one connection made with these settings: connect timeout,
    /// application name, and the session settings (`statement_timeout`, ...) sent in the startup
    /// packet so that they cost no extra round trip.
    ///
    /// The driver itself checks only `Any`, `ReadWrite` and `ReadOnly`: for `Primary`,
    /// `Standby` and `PreferStandby` this configuration takes any host, and the toolkit's pool
    /// picks among the hosts itself.
    pub fn pg_config(&self) -> tokio_postgres::Config {
        self.pg_config_of(None)
    }

    /// How the pool connects: one driver configuration per host, which the pool walks
    /// itself (`pool/dial.rs`).
    pub(crate) fn dial(&self) -> crate::pool::Dial {
        let each = self
            .hosts()
            .enumerate()
            .map(|(i, (host, port))| {
                let port = port.unwrap_or(self.port);
                (format!("{host}:{port}"), self.pg_config_of(Some(i)))
            })
            .collect();
        crate::pool::Dial::new(each, self.target_session_attrs)
    }

    /// The driver configuration with every host, or with host `only`.
    fn pg_config_of(&self, only: Option<usize>) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        let wanted = |i: usize| only.is_none_or(|only| only == i);
        for (_, (host, port)) in self.hosts().enumerate().filter(|(i, _)| wanted(*i)) {
            config.host(host).port(port.unwrap_or(self.port));
        }
        // Checked by `validate`; a `Database` is never built from settings that fail it.
        let addrs = self.hostaddrs().unwrap_or_default().into_iter().enumerate();
        for (_, addr) in addrs.filter(|(i, _)| wanted(*i)) {
            config.hostaddr(addr);
        }
        config
            .target_session_attrs(self.target_session_attrs.driver())
            .dbname(&self.dbname)
            .user(&self.user)
            .application_name(&self.application_name)
            .connect_timeout(self.connection_timeout)
            .ssl_mode(self.ssl_mode.negotiation())
            .keepalives(self.tcp_keepalive.is_some());
        if let Some(idle) = self.tcp_keepalive {
            config
                .keepalives_idle(idle)
                .keepalives_interval(Duration::from_secs(5))
                .keepalives_retries(3);
        }
        if let Some(timeout) = self.tcp_user_timeout {
            config.tcp_user_timeout(timeout);
        }
        if !self.password.is_empty() {
            config.password(&self.password);
        }
        let mut options = Vec::new();
        if let Some(t) = self.statement_timeout {
            options.push(format!("-c statement_timeout={}", t.as_millis()));
        }
        if let Some(t) = self.idle_in_transaction_timeout {
            options.push(format!(
                "-c idle_in_transaction_session_timeout={}",
                t.as_millis()
            ));
        }
        if let Some(own) = &self.options {
            options.push(own.clone());
        }
        // A pooler does not keep startup options (PgBouncer refuses them): in `Unnamed` mode
        // they are applied another way, or refused by `validate`.
        if !options.is_empty() && self.statement_mode == StatementMode::Prepared {
            config.options(options.join(" "));
        }
        config
    }
}

/// `; SET LOCAL idle_in_transaction_session_timeout = <ms>`, or nothing.
pub(crate) fn begin_suffix(idle_in_transaction: Option<Duration>) -> String {
    match idle_in_transaction {
        Some(t) => format!(
            "; SET LOCAL idle_in_transaction_session_timeout = {}",
            t.as_millis()
        ),
        None => String::new(),
    }
}

/// The longest duration any setting accepts: what PostgreSQL's own timeouts and the kernel's
/// `TCP_USER_TIMEOUT` take (`i32` milliseconds).
const MAX_DURATION: Duration = Duration::from_millis(i32::MAX as u64);

/// The most statements one connection may keep prepared.
const MAX_STATEMENT_CACHE: usize = 100_000;

fn check_server_timeout(field: &'static str, value: Option<Duration>) -> Result<()> {
    match value {
        Some(t) if t.as_millis() == 0 => Err(Error::settings(
            field,
            "must be at least 1 ms; use None to leave the server's setting",
        )),
        Some(t) if t.as_millis() > i32::MAX as u128 => Err(Error::settings(
            field,
            "is longer than PostgreSQL accepts (about 24 days)",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_ports_follow_libpq() {
        let s = DatabaseSettings::from_url("postgres://u@db/app?port=6432").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("db", 6432));
        let s = DatabaseSettings::from_url("postgres://u@db1:5433,%2Ftmp:5434/app").unwrap();
        assert_eq!(s.host, "db1:5433,/tmp:5434");
        let hosts: Vec<_> = s.hosts().collect();
        assert_eq!(hosts, [("db1", Some(5433)), ("/tmp", Some(5434))]);
        let s = DatabaseSettings::from_url("postgres://u@a,b/app?port=7000").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("a,b", 7000));
        let s = DatabaseSettings::from_url("postgres://u@[::1]:5433,db/app").unwrap();
        assert_eq!(s.host, "[::1]:5433,db:5432");
        assert_eq!(
            s.hosts().collect::<Vec<_>>(),
            [("::1", Some(5433)), ("db", Some(5432))]
        );
    }

    fn field_of(err: Error) -> &'static str {
        match err {
            Error::InvalidSettings { field, .. } => field,
            other => panic!("expected InvalidSettings, got {other:?}"),
        }
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = DatabaseSettings::default();
        assert_eq!(
            (s.host.as_str(), s.port, s.dbname.as_str(), s.user.as_str()),
            ("localhost", 5432, "postgres", "postgres")
        );
        assert_eq!((s.min_pool_size, s.max_pool_size), (5, 20));
        assert_eq!(s.pool_timeout, Duration::from_secs(30));
        assert_eq!(s.connection_timeout, Duration::from_secs(5));
        assert_eq!(s.statement_timeout, None);
        s.validate().unwrap();
    }

    #[test]
    fn url_with_percent_encoding_and_options() {
        let s = DatabaseSettings::from_url(
            "postgresql://us%20er:p%40ss%2Fw@example.com:6543/my%20db?sslmode=disable&application_name=svc&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(s.user, "us er");
        assert_eq!(s.password, "p@ss/w");
        assert_eq!(s.host, "example.com");
        assert_eq!(s.port, 6543);
        assert_eq!(s.dbname, "my db");
        assert_eq!(s.application_name, "svc");
        assert_eq!(s.ssl_mode, SslMode::Disable);
        assert_eq!(s.connection_timeout, Duration::from_secs(3));
    }

    #[test]
    fn url_defaults_missing_parts() {
        let s = DatabaseSettings::from_url("postgres://localhost").unwrap();
        assert_eq!(
            (s.port, s.user.as_str(), s.dbname.as_str()),
            (5432, "postgres", "postgres")
        );
    }

    #[test]
    fn bad_urls_are_rejected_naming_url() {
        for url in [
            "mysql://x/y",
            "postgres://h:notaport/db",
            "postgres://h/db?bogus_option=1",
            "",
        ] {
            assert_eq!(
                field_of(DatabaseSettings::from_url(url).unwrap_err()),
                "url",
                "{url}"
            );
        }
    }

    #[test]
    fn env_prefers_database_url_then_pg_vars() {
        let s = DatabaseSettings::from_lookup(|k| match k {
            "DATABASE_URL" => Some("postgres://a@b:1/c".into()),
            "PGHOST" => Some("ignored".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            (s.user.as_str(), s.host.as_str(), s.port, s.dbname.as_str()),
            ("a", "b", 1, "c")
        );

        let s = DatabaseSettings::from_lookup(|k| {
            Some(match k {
                "PGHOST" => "h".into(),
                "PGPORT" => "7".into(),
                "PGUSER" => "u".into(),
                "PGPASSWORD" => "pw".into(),
                "PGDATABASE" => "d".into(),
                _ => return None,
            })
        })
        .unwrap();
        assert_eq!(
            (
                s.host.as_str(),
                s.port,
                s.user.as_str(),
                s.password.as_str(),
                s.dbname.as_str()
            ),
            ("h", 7, "u", "pw", "d")
        );

        let err =
            DatabaseSettings::from_lookup(|k| (k == "PGPORT").then(|| "x".into())).unwrap_err();
        assert_eq!(field_of(err), "PGPORT");
    }

    #[test]
    fn validation_names_the_field() {
        let cases: Vec<(DatabaseSettings, &str)> = vec![
            (
                DatabaseSettings {
                    host: String::new(),
                    ..Default::default()
                },
                "host",
            ),
            (
                DatabaseSettings {
                    dbname: " ".into(),
                    ..Default::default()
                },
                "dbname",
            ),
            (
                DatabaseSettings {
                    user: String::new(),
                    ..Default::default()
                },
                "user",
            ),
            (
                DatabaseSettings {
                    max_pool_size: 0,
                    min_pool_size: 0,
                    ..Default::default()
                },
                "max_pool_size",
            ),
            (
                DatabaseSettings {
                    min_pool_size: 3,
                    max_pool_size: 2,
                    ..Default::default()
                },
                "min_pool_size",
            ),
            (
                DatabaseSettings {
                    pool_timeout: Duration::ZERO,
                    ..Default::default()
                },
                "pool_timeout",
            ),
            (
                DatabaseSettings {
                    statement_timeout: Some(Duration::ZERO),
                    ..Default::default()
                },
                "statement_timeout",
            ),
            (
                DatabaseSettings {
                    ssl_cert: Some("client.crt".into()),
                    ..Default::default()
                },
                "ssl_key",
            ),
            (
                DatabaseSettings {
                    ssl_key: Some("client.key".into()),
                    ..Default::default()
                },
                "ssl_cert",
            ),
            (
                DatabaseSettings {
                    hostaddr: Some("10.0.0.1,10.0.0.2".into()),
                    ..Default::default()
                },
                "hostaddr",
            ),
            (
                DatabaseSettings {
                    hostaddr: Some("db.example.com".into()),
                    ..Default::default()
                },
                "hostaddr",
            ),
            (
                DatabaseSettings {
                    connect_retry: RetryPolicy {
                        attempts: 0,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "connect_retry",
            ),
        ];
        for (settings, field) in cases {
            assert_eq!(field_of(settings.validate().unwrap_err()), field);
        }
    }

    #[test]
    fn password_never_printed() {
        let s = DatabaseSettings {
            password: "hunter2-secret".into(),
            ..Default::default()
        };
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s:#?}").contains("hunter2"));
        assert!(!s.to_string().contains("hunter2"));
    }

    #[test]
    fn session_settings_go_into_the_startup_options() {
        let s = DatabaseSettings {
            statement_timeout: Some(Duration::from_millis(1500)),
            ..Default::default()
        };
        let options = s.pg_config().get_options().unwrap_or_default().to_owned();
        assert!(options.contains("-c statement_timeout=1500"), "{options}");
        assert!(
            options.contains("-c idle_in_transaction_session_timeout=300000"),
            "{options}"
        );
    }

    #[test]
    fn replicas_from_url_environment_and_validation() {
        let s = DatabaseSettings::from_url(
            "postgres://u@primary/app?replicas=r1:5433,%5B::1%5D:5434&application_name=api",
        )
        .unwrap();
        assert_eq!(s.replicas, ["r1:5433", "[::1]:5434"]);
        assert_eq!(s.application_name, "api");
        s.validate().unwrap();
        let replica = s.for_replica("r1:5433");
        assert_eq!(
            (replica.host.as_str(), replica.min_pool_size),
            ("r1:5433", 0)
        );
        assert!(replica.replicas.is_empty());
        let s = DatabaseSettings::from_lookup(|key| {
            (key == "DATABASE_REPLICAS").then(|| "r1, r2:6000".to_owned())
        })
        .unwrap();
        assert_eq!(s.replicas, ["r1", "r2:6000"]);
        for bad in ["", "r1:0", "a,b"] {
            let err = DatabaseSettings {
                replicas: vec![bad.into()],
                ..Default::default()
            }
            .validate()
            .unwrap_err();
            assert_eq!(field_of(err), "replicas", "{bad:?}");
        }
    }

    #[test]
    fn display_lists_every_host_with_its_port() {
        let s = DatabaseSettings {
            host: "db1,db2:5433,[::1]".into(),
            port: 6000,
            ..Default::default()
        };
        assert_eq!(
            s.to_string(),
            "postgres://postgres@db1:6000,db2:5433,[::1]:6000/postgres"
        );
    }

    #[test]
    fn tls_parameters_from_url_and_environment() {
        let s = DatabaseSettings::from_url(
            "postgres://u@db.example.com/app?sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20dir%2Froot.crt\
             &sslcert=/c.crt&sslkey=/c.key&application_name=api&hostaddr=10.0.0.7",
        )
        .unwrap();
        assert_eq!(s.ssl_mode, SslMode::VerifyFull);
        assert_eq!(
            s.ssl_root_cert.as_deref(),
            Some("/etc/ca dir/root.crt".as_ref())
        );
        assert_eq!(s.ssl_cert.as_deref(), Some("/c.crt".as_ref()));
        assert_eq!(s.ssl_key.as_deref(), Some("/c.key".as_ref()));
        assert_eq!(s.application_name, "api");
        assert_eq!(s.hostaddr.as_deref(), Some("10.0.0.7"));
        s.validate().unwrap();
        let config = s.pg_config();
        assert_eq!(
            config.get_hostaddrs(),
            ["10.0.0.7".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );

        for mode in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            let s =
                DatabaseSettings::from_url(&format!("postgres://u@h/d?sslmode={mode}")).unwrap();
            assert_eq!(s.ssl_mode.to_string(), mode);
        }
        match DatabaseSettings::from_url("postgres://u@h/d?sslmode=allow") {
            Err(Error::InvalidSettings { field, message }) => {
                assert_eq!(field, "ssl_mode");
                assert!(message.contains("allow"), "{message}");
            }
            other => panic!("{other:?}"),
        }

        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |key: &str| {
                vars.iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let s = DatabaseSettings::from_lookup(env(&[
            ("PGHOST", "db"),
            ("PGSSLMODE", "verify-ca"),
            ("PGSSLROOTCERT", "/ca.crt"),
            ("PGHOSTADDR", "127.0.0.1"),
            ("PGTARGETSESSIONATTRS", "read-write"),
        ]))
        .unwrap();
        assert_eq!(s.ssl_mode, SslMode::VerifyCa);
        assert_eq!(s.ssl_root_cert.as_deref(), Some("/ca.crt".as_ref()));
        assert_eq!(s.hostaddr.as_deref(), Some("127.0.0.1"));
        assert_eq!(s.target_session_attrs, TargetSessionAttrs::ReadWrite);
        // The URL's own parameters win; the environment fills in the rest, as with libpq.
        let s = DatabaseSettings::from_lookup(env(&[
            ("DATABASE_URL", "postgres://u@h/d?sslmode=require"),
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", "/ca.crt"),
        ]))
        .unwrap();
        assert_eq!(s.ssl_mode, SslMode::Require);
        assert_eq!(s.ssl_root_cert.as_deref(), Some("/ca.crt".as_ref()));
        match DatabaseSettings::from_lookup(env(&[("PGSSLMODE", "strict")])) {
            Err(Error::InvalidSettings { field, .. }) => assert_eq!(field, "PGSSLMODE"),
            other => panic!("{other:?}"),
        }
        // The driver's other parameters become fields, or are refused: never parsed and dropped.
        let s = DatabaseSettings::from_url(
            "postgres://u@h/d?options=-c%20search_path%3Dapp&keepalives_idle=7&tcp_user_timeout=2500",
        )
        .unwrap();
        assert_eq!(s.options.as_deref(), Some("-c search_path=app"));
        assert_eq!(s.tcp_keepalive, Some(Duration::from_secs(7)));
        assert_eq!(s.tcp_user_timeout, Some(Duration::from_millis(2500)));
        let options = s.pg_config().get_options().unwrap_or_default().to_owned();
        assert!(options.ends_with("-c search_path=app"), "{options}");
        let s = DatabaseSettings::from_url(
            "postgres://u@h/d?keepalives=0&keepalives_idle=7&tcp_user_timeout=0",
        )
        .unwrap();
        assert_eq!((s.tcp_keepalive, s.tcp_user_timeout), (None, None));
        for refused in [
            "channel_binding=require",
            "load_balance_hosts=random",
            "keepalives_interval=3",
            "keepalives=yes",
            "tcp_user_timeout=soon",
        ] {
            let url = format!("postgres://u@h/d?{refused}");
            let err = DatabaseSettings::from_url(&url).unwrap_err();
            let key = refused.split('=').next().unwrap();
            assert!(err.to_string().contains(key), "{url}: {err}");
        }
        DatabaseSettings::from_url(
            "postgres://u@h/d?channel_binding=prefer&load_balance_hosts=disable",
        )
        .unwrap();
        let err = DatabaseSettings {
            options: Some("-c search_path=app".into()),
            statement_mode: StatementMode::Unnamed,
            ..DatabaseSettings::default()
        }
        .validate()
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidSettings {
                    field: "options",
                    ..
                }
            ),
            "{err:?}"
        );
        // The recovery-based roles, which the driver's URL parser refuses, from both places.
        let s = DatabaseSettings::from_lookup(env(&[
            (
                "DATABASE_URL",
                "postgres://u@h1,h2/d?target_session_attrs=standby",
            ),
            ("PGTARGETSESSIONATTRS", "read-write"),
        ]))
        .unwrap();
        assert_eq!(s.target_session_attrs, TargetSessionAttrs::Standby);
        let s = DatabaseSettings::from_lookup(env(&[
            ("DATABASE_URL", "postgres://u@h1,h2/d"),
            ("PGTARGETSESSIONATTRS", "prefer-standby"),
        ]))
        .unwrap();
        assert_eq!(s.target_session_attrs, TargetSessionAttrs::PreferStandby);
        match DatabaseSettings::from_lookup(env(&[("PGTARGETSESSIONATTRS", "standby-please")])) {
            Err(Error::InvalidSettings { field, .. }) => assert_eq!(field, "PGTARGETSESSIONATTRS"),
            other => panic!("{other:?}"),
        }
    }
}
