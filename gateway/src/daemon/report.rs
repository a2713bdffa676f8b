//! The status report, assembled from every part of the running hub.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use glyco_contracts::{Address, DeviceIdentity};

use crate::analysis::Analysis;
use crate::behaviour::Behaviour;
use crate::ble::BleStatus;
use crate::credentials::CredentialStore;
use crate::journal::Journal;
use crate::mqtt::logins::LoginThrottle;
use crate::mqtt::sessions::Connected;
use crate::mqtt::slots::ConnectionSlots;
use crate::pipeline::Pipeline;
use crate::registry::Registry;
use crate::status::{
    ChainStatus, ConnectionStatus, DeviceStatus, RefusalCount, ServiceStatus, StatusReport,
};
use crate::supervisor::Stages;

/// Everything the status report is drawn from.
pub(super) struct StatusSources {
    pub hub: Address,
    pub started_at: i64,
    pub rpc_url: String,
    pub registry: Registry,
    pub pipeline: Pipeline,
    pub behaviour: Behaviour,
    pub journal: Journal,
    pub credentials: Arc<CredentialStore>,
    pub connected: Connected,
    pub mqtt: ServiceStatus,
    pub ble_enabled: bool,
    pub ble: BleStatus,
    pub analysis: Analysis,
    pub alerts: crate::alerts::Alerts,
    pub quarantine: crate::quarantine::Quarantine,
    pub stages: Stages,
    pub slots: Option<Arc<ConnectionSlots>>,
    pub logins: Arc<LoginThrottle>,
    pub descriptor_limit: u64,
    pub seal: crate::seal::SealState,
    pub web: Arc<parking_lot::Mutex<crate::web::WebStatus>>,
    pub fleet: Arc<parking_lot::Mutex<crate::fleet::FleetStatus>>,
}

impl StatusSources {
    pub fn report(&self) -> StatusReport {
        let mirror = self.registry.snapshot();
        let health = self.registry.health();
        let latest = self.pipeline.latest();
        let connected = self.connected.names();
        let ble_connected = self.ble.connected();
        let mut names: BTreeMap<_, _> = self
            .credentials
            .devices()
            .into_iter()
            .filter_map(|n| DeviceIdentity::name(&n).ok())
            .map(|identity| (self.registry.device_id(&identity), identity))
            .collect();
        for identity in ble_connected.iter().chain(latest.keys()) {
            names.insert(self.registry.device_id(identity), identity.clone());
        }
        let devices = mirror
            .devices
            .iter()
            .map(|(id, device)| {
                let identity = names.get(id);
                DeviceStatus {
                    device_id: *id,
                    identity: identity.map(|i| i.to_string()),
                    kind: device.kind,
                    standing: mirror.standing(id),
                    connected: identity.is_some_and(|i| match i {
                        DeviceIdentity::Name(n) => connected.contains(n),
                        ble @ DeviceIdentity::Ble(_) => ble_connected.contains(ble),
                    }),
                    last_reading: identity.and_then(|i| latest.get(i)).cloned(),
                }
            })
            .collect();
        let behaviour = &self.behaviour;
        StatusReport {
            process: crate::status::ProcessStatus::now(),
            hub: self.hub,
            patient: mirror.patient,
            started_at: self.started_at,
            chain: ChainStatus {
                rpc_url: self.rpc_url.clone(),
                reachable: health.reachable,
                synced_block: mirror.synced_block,
                head: health.head,
                last_error: health.last_error,
                stale: health.stale,
                halted: health.halted,
                endpoints: health.endpoints,
            },
            mqtt: self.mqtt.clone(),
            ble: ServiceStatus {
                enabled: self.ble_enabled,
                state: if self.ble_enabled {
                    self.ble.summary()
                } else {
                    "disabled".into()
                },
                listen: Vec::new(),
            },
            analysis: self.analysis.status(),
            node_watch: behaviour.watch().status(),
            alerts: self.alerts.status(),
            quarantine: self.quarantine.entries(),
            devices,
            readings_stored: self.journal.reading_count().unwrap_or_default(),
            refusals: behaviour
                .counts()
                .into_iter()
                .map(|((transport, reason), count)| RefusalCount {
                    transport,
                    reason,
                    count,
                })
                .collect(),
            refusal_events_dropped: behaviour.dropped(),
            refusals_suppressed: behaviour.suppressed(),
            emergency_accesses: mirror.emergency_accesses.clone(),
            seal: self.seal.snapshot(),
            storage: self.pipeline.storage(),
            web: self.web.lock().clone(),
            fleet: self.fleet.lock().clone(),
            stages: self
                .stages
                .snapshot()
                .into_iter()
                .map(|(name, state)| (name.to_owned(), state))
                .collect(),
            connections: ConnectionStatus {
                held: self.slots.as_ref().map_or(0, |s| s.held()),
                max: self.slots.as_ref().map_or(0, |s| s.max()),
                descriptor_limit: self.descriptor_limit,
            },
            logins: self.logins.status(Instant::now()),
        }
    }
}
