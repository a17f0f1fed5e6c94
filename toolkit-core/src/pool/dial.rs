//! Opening one connection: to the first host that accepts it and has the role
//! `target_session_attrs` asks for, within one deadline.

use std::time::Duration;

use tokio_postgres::{Client, Config, SimpleQueryMessage};

use super::tls::{self, Connector};
use crate::error::{ConnectFailure, DisplayChain};
use crate::TargetSessionAttrs;

/// Where and how a pool connects (built by `DatabaseSettings::dial`).
#[derive(Clone)]
pub(crate) struct Dial {
    /// Every host, for the driver to try in order: enough for the roles it checks itself.
    all: Config,
    /// One configuration per host, labelled `host:port`, for the roles the toolkit checks by
    /// `pg_is_in_recovery()`; empty otherwise.
    each: Vec<(String, Config)>,
    wanted: TargetSessionAttrs,
}

impl Dial {
    pub(crate) fn new(
        all: Config,
        each: Vec<(String, Config)>,
        wanted: TargetSessionAttrs,
    ) -> Dial {
        Dial { all, each, wanted }
    }
}

/// Opens one connection and spawns its driver task, within `limit` for the whole of it: every
/// host tried, TCP, startup, authentication and the role check. The driver's own
/// `connect_timeout` covers only each TCP connect, so a server (or network) that accepts the
/// socket and then goes silent would otherwise hold the caller for as long as the kernel keeps
/// the socket.
pub(crate) async fn connect(
    dial: &Dial,
    tls: &Connector,
    limit: Duration,
) -> Result<Client, ConnectFailure> {
    let attempt = async {
        match dial.wanted.wants_recovery() {
            None => open(&dial.all, tls).await,
            Some(recovery) => by_role(dial, recovery, tls).await,
        }
    };
    tokio::time::timeout(limit, attempt)
        .await
        .map_err(|_| ConnectFailure::TimedOut(limit))?
}

async fn open(config: &Config, tls: &Connector) -> Result<Client, ConnectFailure> {
    let (client, connection) =
        config
            .connect(tls.clone())
            .await
            .map_err(|err| match tls::explain(&err) {
                Some(why) => ConnectFailure::Tls { why, source: err },
                None => ConnectFailure::Driver(err),
            })?;
    // The task ends by itself once the client is dropped or the socket closes.
    tokio::spawn(connection);
    Ok(client)
}

/// Tries each host in order for one whose recovery state is `recovery`. Under
/// `PreferStandby` the first primary reached is kept open meanwhile and used when no standby
/// is found, which spares the second pass libpq makes.
async fn by_role(dial: &Dial, recovery: bool, tls: &Connector) -> Result<Client, ConnectFailure> {
    let mut fallback = None;
    let mut seen = Vec::new();
    let mut last_error = None;
    for (label, config) in &dial.each {
        let client = match open(config, tls).await {
            Ok(client) => client,
            Err(err) if err.is_permanent() => return Err(err),
            Err(err) => {
                seen.push(format!("{label}: {}", DisplayChain(&err)));
                last_error = Some(err);
                continue;
            }
        };
        match in_recovery(&client).await {
            Ok(state) if state == recovery => return Ok(client),
            Ok(state) => {
                let role = if state { "a standby" } else { "a primary" };
                seen.push(format!("{label} is {role}"));
                if dial.wanted == TargetSessionAttrs::PreferStandby && fallback.is_none() {
                    fallback = Some(client);
                }
            }
            Err(err) => {
                seen.push(format!("{label}: {}", DisplayChain(&err)));
                last_error = Some(ConnectFailure::Driver(err));
            }
        }
    }
    if let Some(client) = fallback {
        return Ok(client);
    }
    // One host, which could not be reached: its own error says it best (and keeps its
    // kind, e.g. a refused connection, for `is_connection_lost`).
    match last_error {
        Some(err) if dial.each.len() == 1 => Err(err),
        _ => Err(ConnectFailure::NoHostMatched {
            wanted: dial.wanted,
            seen: seen.join("; "),
        }),
    }
}

async fn in_recovery(client: &Client) -> Result<bool, tokio_postgres::Error> {
    // A simple query: it leaves no statement behind, which a pooler requires.
    let messages = client
        .simple_query("SELECT pg_catalog.pg_is_in_recovery()")
        .await?;
    Ok(messages
        .iter()
        .any(|message| matches!(message, SimpleQueryMessage::Row(row) if row.get(0) == Some("t"))))
}
