//! Opening one connection: to the first host that accepts it and has the role
//! `target_session_attrs` asks for, each host within its own deadline.

use std::time::Duration;

use tokio_postgres::{Client, Config, SimpleQueryMessage};

use super::tls::{self, Connector};
use crate::error::{ConnectFailure, DisplayChain};
use crate::TargetSessionAttrs;

/// Where and how a pool connects (built by `DatabaseSettings::dial`).
#[derive(Clone)]
pub(crate) struct Dial {
    /// One configuration per host, labelled `host:port`, tried in order; the driver checks
    /// `transaction_read_only` on each (read-write, read-only), the toolkit checks recovery
    /// (primary, standby, prefer-standby).
    each: Vec<(String, Config)>,
    wanted: TargetSessionAttrs,
}

impl Dial {
    pub(crate) fn new(each: Vec<(String, Config)>, wanted: TargetSessionAttrs) -> Dial {
        Dial { each, wanted }
    }
}

/// Opens one connection and spawns its driver task. Each host gets `limit` for the whole of
/// its attempt (TCP, startup, authentication, the role check), as libpq's `connect_timeout`
/// is per host. The driver's own `connect_timeout` covers only the TCP connect, so a server
/// (or network) that accepts the socket and then goes silent would otherwise hold the caller
/// for as long as the kernel keeps the socket; and when the driver walks a host list itself,
/// a silent host leaves nothing of the deadline to the hosts after it.
///
/// Hosts are tried in order. Under `PreferStandby` the first primary reached is kept open
/// meanwhile and used when no standby is found, which spares the second pass libpq makes.
pub(crate) async fn connect(
    dial: &Dial,
    tls: &Connector,
    limit: Duration,
) -> Result<Client, ConnectFailure> {
    let recovery = dial.wanted.wants_recovery();
    let mut fallback = None;
    let mut seen = Vec::new();
    let mut last = None;
    for (label, config) in &dial.each {
        let attempt = within(limit, async {
            let client = open(config, tls).await?;
            let state = match recovery {
                Some(_) => Some(in_recovery(&client).await?),
                None => None,
            };
            Ok((client, state))
        });
        match attempt.await {
            Ok((client, state)) if state == recovery => return Ok(client),
            Ok((client, state)) => {
                let state = state.unwrap_or_default();
                seen.push(format!("{label} is {}", role(state)));
                if dial.wanted == TargetSessionAttrs::PreferStandby && fallback.is_none() {
                    fallback = Some(client);
                }
            }
            Err(err) if err.is_permanent() => return Err(err),
            Err(err) => {
                seen.push(format!("{label}: {}", DisplayChain(&err)));
                last = Some(Box::new(err));
            }
        }
    }
    if let Some(client) = fallback {
        return Ok(client);
    }
    match (last, dial.each.len()) {
        // One host, which could not be reached: its own error says it best.
        (Some(last), 1) => Err(*last),
        (last, _) => Err(ConnectFailure::NoHostMatched {
            wanted: dial.wanted,
            seen: seen.join("; "),
            last,
        }),
    }
}

fn role(in_recovery: bool) -> &'static str {
    if in_recovery {
        "a standby"
    } else {
        "a primary"
    }
}

/// `attempt`, failed as timed out once `limit` has passed.
async fn within<T>(
    limit: Duration,
    attempt: impl std::future::Future<Output = Result<T, ConnectFailure>>,
) -> Result<T, ConnectFailure> {
    tokio::time::timeout(limit, attempt)
        .await
        .unwrap_or(Err(ConnectFailure::TimedOut(limit)))
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

async fn in_recovery(client: &Client) -> Result<bool, ConnectFailure> {
    // A simple query: it leaves no statement behind, which a pooler requires.
    let messages = client
        .simple_query("SELECT pg_catalog.pg_is_in_recovery()")
        .await
        .map_err(ConnectFailure::Driver)?;
    Ok(messages
        .iter()
        .any(|message| matches!(message, SimpleQueryMessage::Row(row) if row.get(0) == Some("t"))))
}
