//! The read-replica part of the settings: which nodes, and the settings each node's pool gets.

use super::DatabaseSettings;
use crate::{Error, Result};

impl DatabaseSettings {
    pub(super) fn validate_replicas(&self) -> Result<()> {
        for (i, entry) in self.replicas.iter().enumerate() {
            if entry.trim().is_empty() || entry.contains(',') {
                return Err(Error::settings(
                    "replicas",
                    format!("entry {i} ({entry:?}) must be one host or host:port"),
                ));
            }
            // Same grammar as a `host` entry, checked the same way.
            DatabaseSettings {
                host: entry.clone(),
                replicas: Vec::new(),
                hostaddr: None,
                ..DatabaseSettings::default()
            }
            .validate()
            .map_err(|err| match err {
                Error::InvalidSettings { message, .. } => {
                    Error::settings("replicas", format!("entry {i} ({entry:?}): {message}"))
                }
                other => other,
            })?;
        }
        if self.replica_probe_interval.is_zero() {
            return Err(Error::settings(
                "replica_probe_interval",
                "must be longer than zero",
            ));
        }
        Ok(())
    }

    /// The settings of the pool for replica `entry`: everything but where to connect is the
    /// primary's, and the pool opens connections only when reads need them.
    pub(crate) fn for_replica(&self, entry: &str) -> DatabaseSettings {
        DatabaseSettings {
            host: entry.to_owned(),
            hostaddr: None,
            target_session_attrs: super::TargetSessionAttrs::Any,
            min_pool_size: 0,
            // A replica that does not answer must not hold a read for long: the primary serves it.
            pool_timeout: self.pool_timeout.min(self.connection_timeout),
            // One read per connection: when a replica goes, each connection open to it fails
            // at most one read (a saturated replica pool hands reads to the primary instead).
            pipeline_depth: 1,
            replicas: Vec::new(),
            ..self.clone()
        }
    }
}
