//! Session configuration, validated before anything touches D-Bus.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::backoff::BackoffPolicy;
use crate::identity::BdAddr;

/// How the BLE sessions run.
#[derive(Debug, Clone, PartialEq)]
pub struct BleConfig {
    /// BlueZ adapter name ("hci0"); `None` takes BlueZ's default ("hci0"
    /// if present, else the first by name).
    pub adapter: Option<String>,
    /// Identity addresses to serve. `None`: every bonded (Paired) device
    /// BlueZ knows. `Some`: exactly these, bonded or not (devices that work
    /// without bonding and have a public or static address).
    pub allow: Option<Vec<BdAddr>>,
    /// Reconnect pacing.
    pub backoff: BackoffPolicy,
    /// Upper bound on one Device1.Connect call.
    pub connect_timeout: Duration,
    /// Upper bound on resolving services and subscribing after a connect.
    pub setup_timeout: Duration,
    /// How long to wait for the RACP's final indication.
    pub racp_timeout: Duration,
    /// How often to re-read BlueZ's device list (picks up devices bonded
    /// after they first appeared). Adapter and device changes are also
    /// followed by signals; this is the safety net, not a poll loop.
    pub rescan_interval: Duration,
    /// Glucose records remembered per connection for de-duplication.
    pub dedupe_window: usize,
    /// CGMs that write their status octets Warning first (some SDKs'
    /// encoders) instead of the SIG order.
    pub cgm_warning_first: Vec<BdAddr>,
    /// Asks the supervision to look at BlueZ's devices now rather than at
    /// the next rescan (a device was just bonded from the hub's page).
    pub rescan_now: RescanNow,
}

/// A shared "look again" signal: the pairing side sends it, the adapter
/// supervision takes it. Every copy is the same signal.
#[derive(Clone, Default)]
pub struct RescanNow(Arc<Notify>);

impl RescanNow {
    /// Asks for a rescan (kept until the supervision takes it).
    pub fn request(&self) {
        self.0.notify_one();
    }

    /// Waits for a request.
    pub async fn requested(&self) {
        self.0.notified().await;
    }
}

impl std::fmt::Debug for RescanNow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RescanNow")
    }
}

/// A signal, not a setting: two configurations do not differ by it.
impl PartialEq for RescanNow {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Default for BleConfig {
    fn default() -> Self {
        BleConfig {
            adapter: None,
            allow: None,
            backoff: BackoffPolicy::default(),
            connect_timeout: Duration::from_secs(30),
            setup_timeout: Duration::from_secs(30),
            racp_timeout: Duration::from_secs(60),
            rescan_interval: Duration::from_secs(30),
            dedupe_window: 4096,
            cgm_warning_first: Vec::new(),
            rescan_now: RescanNow::default(),
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A bad backoff policy.
    #[error("backoff: {0}")]
    Backoff(String),
    /// A zero timeout or interval.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// An adapter name BlueZ could not have (it becomes a D-Bus path).
    #[error("adapter name {0:?} is not a BlueZ adapter name (like hci0)")]
    AdapterName(String),
}

impl BleConfig {
    /// The status-octet order of a CGM's records.
    pub fn cgm_status_order(&self, address: BdAddr) -> crate::profiles::cgm::StatusOrder {
        if self.cgm_warning_first.contains(&address) {
            crate::profiles::cgm::StatusOrder::WarningFirst
        } else {
            crate::profiles::cgm::StatusOrder::Sig
        }
    }

    /// Checks every field; `run` calls it before connecting to D-Bus.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.backoff.validate()?;
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("setup_timeout", self.setup_timeout),
            ("racp_timeout", self.racp_timeout),
            ("rescan_interval", self.rescan_interval),
        ] {
            if d.is_zero() {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.dedupe_window == 0 {
            return Err(ConfigError::Zero("dedupe_window"));
        }
        if let Some(name) = &self.adapter
            && (name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(ConfigError::AdapterName(name.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert_eq!(BleConfig::default().validate(), Ok(()));
        let zero = BleConfig {
            racp_timeout: Duration::ZERO,
            ..BleConfig::default()
        };
        assert_eq!(zero.validate(), Err(ConfigError::Zero("racp_timeout")));
        let bad_name = BleConfig {
            adapter: Some("hci0/../x".into()),
            ..BleConfig::default()
        };
        assert!(matches!(
            bad_name.validate(),
            Err(ConfigError::AdapterName(_))
        ));
        let window = BleConfig {
            dedupe_window: 0,
            ..BleConfig::default()
        };
        assert_eq!(window.validate(), Err(ConfigError::Zero("dedupe_window")));
    }
}
