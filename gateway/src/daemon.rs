//! The daemon: opens the hub's state, starts the chain follower, the MQTT
//! gatekeeper and broker, BLE, and the status socket, and stops them in order
//! on shutdown so every reading that was acknowledged is on disk.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use glyco_contracts::keys::load_or_create_key;
use glyco_contracts::{Address, Deployment, DeviceIdKey, GlycoClient};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admission::Admission;
use crate::analysis::{self, Analysis, Monitors, WARM_UP_MAX_READINGS};
use crate::behaviour::Behaviour;
use crate::ble::{BleIngest, BleStatus, DeviceClock};
use crate::config::HubConfig;
use crate::credentials::CredentialStore;
use crate::journal::{Journal, JournalWriter};
use crate::mqtt::broker::EmbeddedBroker;
use crate::mqtt::gatekeeper::{Connected, Gatekeeper};
use crate::mqtt::{ingest, tls};
use crate::pipeline::Pipeline;
use crate::reading::now_millis;
use crate::registry::{Follower, Registry, load_mirror};
use crate::status::{self, ChainStatus, DeviceStatus, RefusalCount, ServiceStatus, StatusReport};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("state directory {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Deployment(#[from] glyco_contracts::deployment::DeploymentFileError),
    #[error(transparent)]
    Key(#[from] glyco_contracts::keys::KeyError),
    #[error(
        "device-id key {path} (fingerprint {found}) is not the consortium's: the deployment file expects {expected}"
    )]
    DeviceIdKeyMismatch {
        path: String,
        found: glyco_contracts::B256,
        expected: glyco_contracts::B256,
    },
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error(transparent)]
    Credentials(#[from] crate::credentials::CredentialsError),
    #[error(transparent)]
    Broker(#[from] crate::mqtt::broker::BrokerError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen for MQTT on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Status(#[from] status::StatusError),
    #[error("anomaly-detection models: {0}")]
    Models(#[from] glyco_ml::MlError),
    #[error("background task failed: {0}")]
    Task(String),
}

/// Everything the status report is drawn from.
struct StatusSources {
    hub: Address,
    started_at: i64,
    rpc_url: String,
    registry: Registry,
    pipeline: Pipeline,
    journal: Journal,
    credentials: Arc<CredentialStore>,
    connected: Connected,
    mqtt: ServiceStatus,
    ble_enabled: bool,
    ble: BleStatus,
    analysis: Analysis,
}

impl StatusSources {
    fn report(&self) -> StatusReport {
        let mirror = self.registry.snapshot();
        let health = self.registry.health();
        let latest = self.pipeline.latest();
        let connected = self.connected.names();
        let ble_connected = self.ble.connected();
        let mut names: std::collections::BTreeMap<_, _> = self
            .credentials
            .devices()
            .into_iter()
            .filter_map(|n| glyco_contracts::DeviceIdentity::name(&n).ok())
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
                        glyco_contracts::DeviceIdentity::Name(n) => connected.contains(n),
                        ble @ glyco_contracts::DeviceIdentity::Ble(_) => {
                            ble_connected.contains(ble)
                        }
                    }),
                    last_reading: identity.and_then(|i| latest.get(i)).cloned(),
                }
            })
            .collect();
        let behaviour = self.pipeline.behaviour();
        StatusReport {
            hub: self.hub,
            patient: mirror.patient,
            started_at: self.started_at,
            chain: ChainStatus {
                rpc_url: self.rpc_url.clone(),
                reachable: health.reachable,
                synced_block: mirror.synced_block,
                head: health.head,
                last_error: health.last_error,
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
            emergency_accesses: mirror.emergency_accesses.clone(),
        }
    }
}

fn prepare_state_dir(config: &HubConfig) -> Result<(), DaemonError> {
    let dir = &config.state_dir;
    let err = |source| DaemonError::StateDir {
        path: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    Ok(())
}

/// Loads the consortium's device-id key and checks it against the deployment.
pub fn load_device_id_key(
    config: &HubConfig,
    deployment: &Deployment,
) -> Result<DeviceIdKey, DaemonError> {
    let path = &config.chain.device_id_key_file;
    let key = DeviceIdKey::load(path)?;
    if key.fingerprint() != deployment.device_id_key_fingerprint {
        return Err(DaemonError::DeviceIdKeyMismatch {
            path: path.display().to_string(),
            found: key.fingerprint(),
            expected: deployment.device_id_key_fingerprint,
        });
    }
    Ok(key)
}

/// Runs the hub until `shutdown` is cancelled.
pub async fn run(config: HubConfig, shutdown: CancellationToken) -> Result<(), DaemonError> {
    let patient = config.validate_for_hub()?;
    let deployment = Deployment::load(&config.chain.deployment_file)?;
    let device_ids = load_device_id_key(&config, &deployment)?;
    let rpc_url: glyco_contracts::client::RpcUrl = config
        .chain
        .rpc_url
        .parse()
        .map_err(|_| crate::config::ConfigError::Invalid("chain.rpc_url".into()))?;
    // Bind device listeners before any state is touched: a port conflict
    // should stop the daemon with nothing half-started.
    let mut listeners = Vec::new();
    if config.mqtt.enabled {
        for address in &config.mqtt.listen {
            let listener =
                TcpListener::bind(address)
                    .await
                    .map_err(|source| DaemonError::Listen {
                        address: address.to_string(),
                        source,
                    })?;
            listeners.push(listener);
        }
    }
    let ble_sessions = config.ble.sessions()?;
    // Models load before any state is touched: a broken model set stops the
    // daemon at once instead of failing on the first reading.
    let models = if config.analysis.enabled {
        Some(Arc::new(match &config.analysis.models_dir {
            Some(dir) => glyco_ml::Models::load_dir(dir)?,
            None => glyco_ml::Models::embedded()?,
        }))
    } else {
        None
    };
    let tls = match (&config.mqtt.tls, config.mqtt.enabled) {
        (Some(tls_config), true) => Some(tls::acceptor(tls_config)?),
        _ => None,
    };

    prepare_state_dir(&config)?;
    let (key, created) = load_or_create_key(&config.key_path())?;
    let hub = key.address();
    if created {
        tracing::info!(%hub, "created a new hub key; the patient must authorise this address");
    }
    let journal = Journal::open(&config.journal_path())?;
    let registry = Registry::new(load_mirror(&journal)?, device_ids);
    let (writer, events, writer_task) = JournalWriter::start(journal.clone());
    let behaviour = Behaviour::new(events, journal.event_counts()?);
    let pipeline = Pipeline::new(writer, behaviour.clone(), journal.latest_readings()?);
    // Subscribed before any device can be served, so no stored reading
    // escapes the analysis.
    let stored_readings = pipeline.subscribe();
    // Warmed up before any device is served, so no reading is seen twice.
    let monitors = match models {
        Some(models) => {
            let mut monitors = Monitors::new(models);
            let replayed = monitors.warm_up(
                &journal.recent_readings(WARM_UP_MAX_READINGS)?,
                now_millis(),
            );
            tracing::info!(replayed, "anomaly monitors warmed up from the journal");
            Some(monitors)
        }
        None => None,
    };
    let admission = Admission::new(
        registry.clone(),
        config.validation.clone(),
        config.mqtt.max_payload_bytes,
    );
    let credentials = Arc::new(CredentialStore::open(config.credentials_path())?);
    let tasks = CancellationToken::new();

    let follower = Follower {
        client: GlycoClient::read_only(rpc_url, deployment),
        hub,
        patient,
        journal: journal.clone(),
        registry: registry.clone(),
        poll_interval: Duration::from_millis(config.chain.poll_interval_ms),
        chunk_blocks: config.chain.log_chunk_blocks,
    };
    let follower_task = tokio::spawn(follower.run(tasks.clone()));

    let connected = Connected::default();
    let mut mqtt_state = ServiceStatus {
        enabled: config.mqtt.enabled,
        state: "disabled".into(),
        listen: Vec::new(),
    };
    let mut ingest_task = None;
    let mut gatekeeper_tasks = Vec::new();
    if config.mqtt.enabled {
        let max_payload = config.mqtt.max_payload_bytes;
        let broker = tokio::task::spawn_blocking(move || EmbeddedBroker::start(max_payload + 1024))
            .await
            .map_err(|e| DaemonError::Task(e.to_string()))??;
        let gatekeeper = Arc::new(Gatekeeper {
            broker_v4: broker.v4,
            broker_v5: broker.v5,
            internal_password: broker.internal_password.clone(),
            credentials: credentials.clone(),
            registry: registry.clone(),
            behaviour: behaviour.clone(),
            max_payload,
            connect_timeout: Duration::from_secs(config.mqtt.connect_timeout_secs),
            connected: connected.clone(),
            tls,
        });
        for listener in listeners {
            if let Ok(address) = listener.local_addr() {
                mqtt_state.listen.push(address);
            }
            gatekeeper_tasks.push(tokio::spawn(
                gatekeeper.clone().serve(listener, tasks.clone()),
            ));
        }
        let addresses: Vec<String> = mqtt_state.listen.iter().map(|a| a.to_string()).collect();
        mqtt_state.state = format!(
            "listening on {}{}",
            addresses.join(", "),
            if config.mqtt.tls.is_some() {
                " (TLS)"
            } else {
                ""
            }
        );
        tracing::info!(listen = %addresses.join(", "), "MQTT gatekeeper listening");
        ingest_task = Some(tokio::spawn(ingest::run(
            broker.link,
            admission.clone(),
            pipeline.clone(),
            tasks.clone(),
        )));
    }
    let ble_status = BleStatus::default();
    let ble_task = config.ble.enabled.then(|| {
        let ingest = BleIngest {
            config: ble_sessions,
            clock: DeviceClock {
                utc_offset_minutes: config.ble.device_clock_utc_offset_minutes,
            },
            admission: admission.clone(),
            pipeline: pipeline.clone(),
            journal: journal.clone(),
            status: ble_status.clone(),
        };
        tokio::spawn(ingest.run(tasks.clone()))
    });
    let analysis = Analysis::new(monitors.is_some());
    let analysis_task = monitors.map(|monitors| {
        tokio::spawn(analysis::run(
            monitors,
            stored_readings,
            analysis.clone(),
            tasks.clone(),
        ))
    });

    let sources = StatusSources {
        hub,
        started_at: now_millis(),
        rpc_url: config.chain.rpc_url.clone(),
        registry: registry.clone(),
        pipeline: pipeline.clone(),
        journal: journal.clone(),
        credentials,
        connected,
        mqtt: mqtt_state,
        ble_enabled: config.ble.enabled,
        ble: ble_status,
        analysis,
    };
    let status_path = config.status_socket();
    let status_task = {
        let tasks = tasks.clone();
        tokio::spawn(
            async move { status::serve(&status_path, move || sources.report(), tasks).await },
        )
    };
    tracing::info!(%hub, "hub running");

    shutdown.cancelled().await;
    tracing::info!("shutting down");
    tasks.cancel();
    for task in gatekeeper_tasks {
        let _ = task.await;
    }
    if let Some(task) = ingest_task {
        match task.await {
            Ok(Err(e)) => tracing::error!(error = %e, "MQTT ingest stopped with an error"),
            Err(e) => tracing::error!(error = %e, "MQTT ingest task failed"),
            Ok(Ok(())) => {}
        }
    }
    if let Some(task) = ble_task {
        let _ = task.await;
    }
    if let Some(task) = analysis_task {
        let _ = task.await;
    }
    let _ = follower_task.await;
    let _ = status_task.await;
    // Every sender of the journal writers is gone now; they finish what they hold.
    drop((pipeline, admission, behaviour));
    // A connection still closing holds the events sender a moment longer.
    match tokio::time::timeout(Duration::from_secs(5), writer_task).await {
        Ok(result) => result.map_err(|e| DaemonError::Task(e.to_string()))?,
        Err(_) => {
            tracing::warn!("journal writer still busy at shutdown; readings were already durable")
        }
    }
    tracing::info!("stopped");
    Ok(())
}
