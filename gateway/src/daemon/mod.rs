//! The daemon: opens the hub's state, starts every stage under a supervisor
//! (journal thread, chain follower, MQTT gatekeeper and ingest, BLE,
//! analysis, behaviour summaries, status socket), and on shutdown stops them
//! in order, draining instead of timing out, so every reading that was
//! acknowledged is on disk. A stage that dies while the hub runs stops the
//! daemon with an error, for systemd to restart it.

mod report;
pub mod service_manager;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use glyco_contracts::keys::load_or_create_key;
use glyco_contracts::{Deployment, DeviceIdKey, GlycoClient};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::Admission;
use crate::alerts::delivery::Delivery;
use crate::alerts::engine::Engine;
use crate::alerts::{AlertSink, AlertStage, Alerts};
use crate::analysis::{self, Analysis, Monitors, WARM_UP_MAX_READINGS};
use crate::behaviour::Behaviour;
use crate::ble::{BleIngest, BleStatus, DeviceClock};
use crate::config::HubConfig;
use crate::credentials::CredentialStore;
use crate::descriptors;
use crate::follower::Follower;
use crate::mqtt::broker::EmbeddedBroker;
use crate::mqtt::gatekeeper::Gatekeeper;
use crate::mqtt::logins::LoginThrottle;
use crate::mqtt::sessions::Connected;
use crate::mqtt::slots::ConnectionSlots;
use crate::mqtt::{ingest, tls};
use crate::nodewatch::{self, NodeWatch};
use crate::pipeline::Pipeline;
use crate::quarantine::Quarantine;
use crate::reading::now_millis;
use crate::registry::{Registry, load_mirror};
use crate::seal::SealState;
use crate::seal::anchorer::Anchorer;
use crate::seal::blobs::BlobStore;
use crate::seal::pruner::Pruner;
use crate::seal::sealer::Sealer;
use crate::seal::serve::{self, NodeGate, ServeParams};
use crate::seal::sharer::Sharer;
use crate::status::{self, ServiceStatus};
use crate::supervisor::Supervisor;
use glyco_seal::PatientKey;

use report::StatusSources;

/// How often suppressed refusals are summarised.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);
/// How long past its own bound a stage's piece of work may run before the
/// service watchdog calls the stage stuck.
const PROGRESS_SLACK: Duration = Duration::from_secs(60);

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
    #[error("the patient's umbral key: {0}")]
    PatientKey(#[from] glyco_seal::KeyError),
    #[error(transparent)]
    Blobs(#[from] crate::seal::blobs::BlobError),
    #[error(transparent)]
    Serve(#[from] crate::seal::serve::ServeError),
    #[error("anomaly-detection models: {0}")]
    Models(#[from] glyco_ml::MlError),
    #[error("background task failed: {0}")]
    Task(String),
    #[error("the {stage} stage stopped while the hub was running: {reason}")]
    StageFailed { stage: &'static str, reason: String },
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

/// Runs the hub until `shutdown` is cancelled, or until a stage fails.
pub async fn run(config: HubConfig, shutdown: CancellationToken) -> Result<(), DaemonError> {
    let patient = config.validate_for_hub()?;
    let deployment = Deployment::load(&config.chain.deployment_file)?;
    let device_ids = load_device_id_key(&config, &deployment)?;
    let mut rpc_urls = Vec::new();
    for url in std::iter::once(&config.chain.rpc_url).chain(&config.chain.extra_rpc_urls) {
        let url: glyco_contracts::client::RpcUrl = url
            .parse()
            .map_err(|_| crate::config::ConfigError::Invalid(format!("chain.rpc_url {url}")))?;
        rpc_urls.push(url);
    }
    // Raised before anything is opened; the connection bound must fit.
    let descriptor_limit = descriptors::raise_limit();
    let fit = descriptors::connections_within(descriptor_limit);
    let max_connections = config.limits.max_connections.min(fit.max(1));
    if max_connections < config.limits.max_connections {
        tracing::warn!(
            configured = config.limits.max_connections,
            max_connections,
            descriptor_limit,
            "fewer connections than configured fit the descriptor limit"
        );
    }
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
    let ble_rescan = ble_sessions.rescan_now.clone();
    let webhooks = crate::alerts::load_webhooks(&config)?;
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
    let (journal, store) = crate::journal::open(&config.journal_path(), config.limits.journal())?;
    let seal_state = SealState::default();
    let sealing = if config.seal.enabled {
        let (patient_key, created) = PatientKey::load_or_create(&config.patient_key_path())?;
        if created {
            tracing::info!(
                public_key = %crate::seal::records::hex(&patient_key.public_bytes()),
                "created the patient's umbral key; its public key goes on chain"
            );
        }
        let gc = Duration::from_secs(config.seal.blob_gc_interval_secs);
        let blobs = BlobStore::open(&config.blob_dir(), Some(gc))
            .await?
            .reserving(config.limits.journal().min_free_bytes);
        Some((Arc::new(patient_key), blobs))
    } else {
        None
    };
    let registry = Registry::new(load_mirror(&journal)?, device_ids.clone());
    let (writer, journal_task) = store.spawn()?;
    // Node behaviour is part of the analysis: on and off with it.
    let (watch, watch_task) = match config.analysis.enabled {
        true => {
            let (watch, task) = NodeWatch::new();
            (watch, Some(task))
        }
        false => (NodeWatch::disabled(), None),
    };
    let behaviour = Behaviour::new(writer.clone(), journal.event_counts()?).with_watch(watch);
    let quarantine = Quarantine::from_entries(match journal.meta(crate::quarantine::META_KEY)? {
        Some(json) => serde_json::from_slice(&json).unwrap_or_default(),
        None => Vec::new(),
    });
    let pipeline = Pipeline::new(
        writer.clone(),
        behaviour.clone(),
        journal.latest_readings()?,
    );
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
    let logins = Arc::new(LoginThrottle::new((&config.limits).into()));
    let tasks = CancellationToken::new();
    let mut supervisor = Supervisor::new(tasks.clone());

    {
        let journal_task = journal_task.clone();
        let token = tasks.clone();
        supervisor.spawn("journal", async move {
            tokio::select! {
                ended = journal_task.wait() => ended,
                _ = token.cancelled() => Ok(()),
            }
        });
    }
    let anchor_url = rpc_urls[0].clone();
    let clients = rpc_urls
        .into_iter()
        .map(|url| {
            GlycoClient::read_only(url, deployment.clone())
                .with_log_chunk_blocks(config.chain.log_chunk_blocks)
        })
        .collect();
    // What the service watchdog watches besides the journal writer.
    let follower_busy = crate::supervisor::Busy::default();
    let analysis_busy = crate::supervisor::Busy::default();
    let analysis_busy_watch = analysis_busy.clone();
    let follower = Follower {
        clients,
        hub,
        patient,
        journal: writer.clone(),
        registry: registry.clone(),
        poll_interval: Duration::from_millis(config.chain.poll_interval_ms),
        chunk_blocks: config.chain.log_chunk_blocks,
        confirmations: config.chain.confirmations,
        stale_after: Duration::from_secs(config.chain.stale_after_secs),
        step_timeout: Duration::from_secs(config.chain.step_timeout_secs),
        busy: follower_busy.clone(),
    };
    supervisor.spawn("chain follower", follower.run(tasks.clone()));

    let connected = Connected::default();
    let mut mqtt_state = ServiceStatus {
        enabled: config.mqtt.enabled,
        state: "disabled".into(),
        listen: Vec::new(),
    };
    let mut slots = None;
    if config.mqtt.enabled {
        let max_payload = config.mqtt.max_payload_bytes;
        let broker = tokio::task::spawn_blocking(move || {
            EmbeddedBroker::start(max_payload + 1024, max_connections)
        })
        .await
        .map_err(|e| DaemonError::Task(e.to_string()))??;
        let connection_slots =
            ConnectionSlots::new(max_connections, config.limits.max_connections_per_address);
        slots = Some(connection_slots.clone());
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
            limits: config.limits,
            slots: connection_slots,
            logins: logins.clone(),
            connections: TaskTracker::new(),
        });
        for listener in &listeners {
            if let Ok(address) = listener.local_addr() {
                mqtt_state.listen.push(address);
            }
        }
        let token = tasks.clone();
        supervisor.spawn("mqtt gatekeeper", async move {
            let mut serving = JoinSet::new();
            for listener in listeners {
                serving.spawn(gatekeeper.clone().serve(listener, token.clone()));
            }
            while let Some(done) = serving.join_next().await {
                done.map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        });
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
        tracing::info!(listen = %addresses.join(", "), max_connections, "MQTT gatekeeper listening");
        supervisor.spawn(
            "mqtt ingest",
            ingest::run(
                broker.link,
                admission.clone(),
                pipeline.clone(),
                tasks.clone(),
            ),
        );
    }
    let ble_status = BleStatus::default();
    if config.ble.enabled {
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
        let token = tasks.clone();
        supervisor.spawn("ble", async move {
            ingest.run(token).await;
            Ok::<_, std::convert::Infallible>(())
        });
    }
    let analysis = Analysis::new(monitors.is_some());
    // Alerts take findings, so they are on only with the analysis.
    let alerts_on = config.alerts.enabled && monitors.is_some();
    let (alert_sink, alert_inputs) = match alerts_on {
        true => {
            let (sink, rx) = AlertSink::channel();
            (sink, Some(rx))
        }
        false => (AlertSink::default(), None),
    };
    let alerts = Alerts::new(alert_sink.clone(), alerts_on, config.alerts.all_inboxes());
    let mut alert_endpoint: Option<iroh::Endpoint> = None;
    if let Some(monitors) = monitors {
        let (analysis, token) = (analysis.clone(), tasks.clone());
        // Findings go into the sealed batches only when there are batches.
        let log = match config.seal.enabled {
            true => Some(analysis::FindingsLog::open(&journal, writer.clone())?),
            false => None,
        };
        let (behaviour_findings, behaviour_rx) = tokio::sync::mpsc::channel(256);
        let quarantine_for_analysis = quarantine.clone();
        if let Some(watch_task) = watch_task {
            let token = tasks.clone();
            let policy =
                config
                    .behaviour
                    .quarantine_at()?
                    .map(|at_least| nodewatch::QuarantinePolicy {
                        quarantine: quarantine.clone(),
                        at_least,
                        journal: journal.clone(),
                        writer: writer.clone(),
                    });
            supervisor.spawn("node behaviour", async move {
                nodewatch::run(watch_task, behaviour_findings, policy, token).await;
                Ok::<_, std::convert::Infallible>(())
            });
        }
        supervisor.spawn("analysis", async move {
            let stage = analysis::AnalysisStage {
                monitors,
                stored: stored_readings,
                behaviour: behaviour_rx,
                analysis,
                log,
                alerts: alert_sink,
                quarantine: quarantine_for_analysis,
                busy: analysis_busy,
            };
            analysis::run(stage, token).await;
            Ok::<_, std::convert::Infallible>(())
        });
    }
    {
        let (behaviour, token) = (behaviour.clone(), tasks.clone());
        supervisor.spawn("behaviour summaries", async move {
            let mut tick = tokio::time::interval(SUMMARY_INTERVAL);
            loop {
                tokio::select! {
                    _ = token.cancelled() => return Ok::<_, std::convert::Infallible>(()),
                    _ = tick.tick() => { behaviour.flush_suppressed(); }
                }
            }
        });
    }

    let mut blob_server = None;
    if let Some((patient_key, blobs)) = &sealing {
        let sealer = Sealer {
            journal: journal.clone(),
            writer: writer.clone(),
            blobs: blobs.clone(),
            key: patient_key.clone(),
            signer: key.clone(),
            patient,
            max_readings: config.seal.max_batch_readings as usize,
            max_wait: Duration::from_secs(config.seal.max_batch_wait_secs),
            state: seal_state.clone(),
            quarantine: quarantine.clone(),
        };
        supervisor.spawn("seal", sealer.run(tasks.clone()));
        let anchorer = Anchorer {
            journal: journal.clone(),
            writer: writer.clone(),
            client: GlycoClient::new(anchor_url.clone(), key.clone(), deployment.clone()),
            patient,
            key: patient_key.clone(),
            interval: Duration::from_secs(config.seal.anchor_interval_secs),
            max_batches: config.seal.max_batches_per_anchor as usize,
            state: seal_state.clone(),
        };
        supervisor.spawn("anchor", anchorer.run(tasks.clone()));
        crate::seal::serve::refresh_replicated(&journal, &seal_state)?;
        if let Err(e) = crate::seal::emergency_kit::restore(blobs, &seal_state).await {
            tracing::error!(error = %e, "the kept emergency kit cannot be read; make a new one");
        }
        let pruner = Pruner {
            journal: journal.clone(),
            writer: writer.clone(),
            blobs: blobs.clone(),
            retention: Duration::from_secs(config.seal.retention_secs),
            state: seal_state.clone(),
        };
        supervisor.spawn("prune", pruner.run(tasks.clone()));
        if config.seal.serve_replicas {
            let gate = NodeGate::new(
                GlycoClient::read_only(anchor_url.clone(), deployment.clone()),
                seal_state.clone(),
            );
            let served = serve::serve(ServeParams {
                node_key: serve::load_or_create_node_key(&config.node_key_path())?,
                bind: config.seal.iroh_listen,
                blobs,
                gate: Arc::new(gate),
                journal: journal.clone(),
                writer: writer.clone(),
                hub,
                patient,
                state: seal_state.clone(),
            })
            .await;
            // Not serving replicas must not stop ingestion: batches wait
            // (and are not pruned) until the hub serves again.
            match served {
                Ok(server) => {
                    let proxies = config.seal.proxy_targets()?;
                    if !proxies.is_empty() {
                        let sharer = Sharer {
                            chain: GlycoClient::read_only(anchor_url.clone(), deployment.clone()),
                            endpoint: server.endpoint(),
                            signer: key.clone(),
                            patient,
                            key: patient_key.clone(),
                            proxies,
                            threshold: config.seal.proxy_threshold as usize,
                            poll: Duration::from_secs(config.seal.share_poll_secs),
                            state: seal_state.clone(),
                        };
                        supervisor.spawn("share", sharer.run(tasks.clone()));
                    }
                    alert_endpoint = Some(server.endpoint());
                    blob_server = Some(server);
                }
                Err(e) => {
                    tracing::error!(error = %e, "not serving replicas");
                    seal_state.update(|s| s.serve_error = Some(e.to_string()));
                }
            }
        }
    }

    let fleet_endpoint = alert_endpoint.clone();
    if let Some(rx) = alert_inputs {
        let inboxes = config.alerts.inbox_peers()?;
        let delivery = match (inboxes.is_empty(), alert_endpoint) {
            (false, Some(endpoint)) => Some(Delivery::new(
                endpoint,
                inboxes,
                key.clone(),
                patient,
                GlycoClient::read_only(anchor_url.clone(), deployment.clone()),
            )),
            (false, None) => {
                tracing::error!(
                    "alerts.inbox is set but the hub's iroh node is not running; physicians are not told"
                );
                None
            }
            _ => None,
        };
        let kept = crate::alerts::load(&journal)?;
        let mut policy = config.alerts.policy()?;
        if let Some(json) = journal.meta(crate::alerts::POLICY_META)? {
            match serde_json::from_slice::<crate::alerts::PolicyInForce>(&json)
                .map_err(|e| e.to_string())
                .and_then(|kept| {
                    let signed_policy = config
                        .alerts
                        .with_policy(&kept.signed.body)
                        .policy()
                        .map_err(|e| e.to_string())?;
                    Ok((kept, signed_policy))
                }) {
                Ok((kept, signed_policy)) => {
                    policy = signed_policy;
                    alerts.restored_policy(kept.version, kept.signer);
                }
                Err(e) => {
                    tracing::error!(error = %e, "the kept signed alert policy no longer applies; the config's is in force")
                }
            }
        }
        let mut engine = Engine::new(policy, hub, kept);
        if let Some(snoozes) = journal.meta(crate::alerts::SNOOZE_META)? {
            engine.restore_snoozes(serde_json::from_slice(&snoozes).unwrap_or_default());
        }
        let stage = AlertStage {
            engine,
            writer: writer.clone(),
            alerts: alerts.clone(),
            delivery,
            webhooks,
            http: reqwest::Client::new(),
            hub,
            patient,
            evidence_next: journal
                .last_in::<crate::alerts::EvidenceRecord>(crate::journal::Outbox::Evidence)?
                .map_or(1, |(no, _)| no + 1),
            ack_poll: Duration::from_millis(config.alerts.ack_poll_ms),
            rx,
        };
        supervisor.spawn("alerts", stage.run(tasks.clone()));
    }

    let seal_state_for_kit = seal_state.clone();
    let web_status = Arc::new(parking_lot::Mutex::new(crate::web::WebStatus::default()));
    let mqtt_port = mqtt_state.listen.first().map(|a| a.port());
    let sources = Arc::new(StatusSources {
        hub,
        started_at: now_millis(),
        rpc_url: config.chain.rpc_url.clone(),
        registry: registry.clone(),
        pipeline: pipeline.clone(),
        behaviour: behaviour.clone(),
        journal: journal.clone(),
        credentials,
        connected,
        mqtt: mqtt_state,
        ble_enabled: config.ble.enabled,
        ble: ble_status,
        analysis,
        alerts: alerts.clone(),
        quarantine: quarantine.clone(),
        stages: supervisor.stages(),
        slots,
        logins,
        descriptor_limit,
        seal: seal_state,
        web: web_status.clone(),
        fleet: Arc::new(parking_lot::Mutex::new(crate::fleet::FleetStatus {
            enabled: config.fleet.enabled,
            node: config.fleet.node.clone().or(config.alerts.inbox.clone()),
            interval_secs: config.fleet.interval_secs,
            remote_config: config.fleet.remote_config,
            remote_log: journal
                .meta(crate::fleet::REMOTE_CONFIG_META)?
                .map(|bytes| crate::fleet::restore_log(&bytes))
                .unwrap_or_default(),
            ..Default::default()
        })),
    });
    if let Some(node) = config.fleet.node_peer(&config.alerts)? {
        match fleet_endpoint {
            Some(endpoint) => {
                let report_sources = sources.clone();
                let sender = crate::fleet::HeartbeatSender {
                    endpoint: endpoint.clone(),
                    node,
                    key: key.clone(),
                    boot_ms: sources.started_at,
                    interval: Duration::from_secs(config.fleet.interval_secs),
                    report: Arc::new(move || report_sources.report()),
                    state_dir: config.state_dir.clone(),
                    status: sources.fleet.clone(),
                    policies: alerts_on.then(|| crate::fleet::PolicyApplier {
                        chain: GlycoClient::read_only(anchor_url.clone(), deployment.clone()),
                        alerts_config: config.alerts.clone(),
                        alerts: alerts.clone(),
                        hub,
                        patient,
                    }),
                    writer: writer.clone(),
                    updater: Some(crate::update::fetch::Updater::new(
                        endpoint,
                        node,
                        config.update.clone(),
                        config.state_dir.clone(),
                        GlycoClient::read_only(anchor_url.clone(), deployment.clone()),
                        crate::fleet::image_release(),
                    )),
                };
                supervisor.spawn("fleet heartbeat", sender.run(tasks.clone()));
            }
            None => {
                tracing::error!(
                    "fleet heartbeats need the hub's iroh node (seal.serve_replicas); the clinic does not hear from this hub"
                );
                sources.fleet.lock().last_error = Some("the hub's iroh node is not running".into());
            }
        }
    }
    let web_sources = sources.clone();
    let web = Box::pin(crate::web::start(
        &config,
        crate::web::WebParts {
            journal: journal.clone(),
            writer: writer.clone(),
            report: Box::new(move || web_sources.report()),
            alerts: alerts.sink().clone(),
            devices: Some(crate::device_admin::DeviceAdmin {
                client: GlycoClient::new(anchor_url.clone(), key.clone(), deployment.clone()),
                patient,
                ids: device_ids,
                credentials_path: config.credentials_path(),
            }),
            mqtt_port,
            sharing: Some(crate::web::sharing::SharingChain {
                patient,
                reader: GlycoClient::read_only(anchor_url.clone(), deployment.clone()),
                patient_key: match config.web_patient_key_path() {
                    Some(path) => Some(GlycoClient::new(
                        anchor_url.clone(),
                        glyco_contracts::keys::load_key(&path)?,
                        deployment.clone(),
                    )),
                    None => None,
                },
            }),
            kits: sealing.as_ref().map(|(_, blobs)| {
                let (journal, blobs, signer, state) = (
                    journal.clone(),
                    blobs.clone(),
                    key.clone(),
                    seal_state_for_kit.clone(),
                );
                let maker: crate::web::family::KitMaker = std::sync::Arc::new(move |request| {
                    let (journal, blobs, signer, state) = (
                        journal.clone(),
                        blobs.clone(),
                        signer.clone(),
                        state.clone(),
                    );
                    Box::pin(async move {
                        crate::seal::emergency_kit::make(crate::seal::emergency_kit::Maker {
                            journal: &journal,
                            blobs: &blobs,
                            signer: &signer,
                            patient,
                            state: &state,
                            request,
                        })
                        .await
                    })
                });
                maker
            }),
            pairing: config.ble.enabled.then(|| {
                std::sync::Arc::new(glyco_ble::pairing::Pairer::new(
                    config.ble.adapter.clone(),
                    ble_rescan.clone(),
                ))
            }),
            status: web_status,
        },
        tasks.clone(),
    ))
    .await;
    let exporting = sealing
        .as_ref()
        .map(|(key, blobs)| (journal.clone(), blobs.clone(), key.clone()));
    let kit_maker = (key.clone(), patient, seal_state_for_kit);
    let releasing = (quarantine.clone(), journal.clone(), writer.clone());
    let policing = crate::fleet::PolicyApplier {
        chain: GlycoClient::read_only(anchor_url.clone(), deployment.clone()),
        alerts_config: config.alerts.clone(),
        alerts: alerts.clone(),
        hub,
        patient,
    };
    let answer =
        move |ask: status::Ask| {
            let exporting = exporting.clone();
            let (signer, patient, state) = kit_maker.clone();
            let alerts = alerts.clone();
            let (quarantine, release_journal, release_writer) = releasing.clone();
            let policing = policing.clone();
            async move {
                let off = || "sealing is off on this hub ([seal] enabled = false)".to_owned();
                match ask {
                status::Ask::Batch { selector } => serde_json::to_vec(&match exporting {
                    Some((journal, blobs, _)) => {
                        crate::seal::export::export(&journal, &blobs, selector).await
                    }
                    None => Err(off()),
                }),
                status::Ask::EmergencyKit(request) => serde_json::to_vec(&match exporting {
                    Some((journal, blobs, _)) => {
                        crate::seal::emergency_kit::make(crate::seal::emergency_kit::Maker {
                            journal: &journal,
                            blobs: &blobs,
                            signer: &signer,
                            patient,
                            state: &state,
                            request,
                        })
                        .await
                    }
                    None => Err(off()),
                }),
                status::Ask::AlertAck { id } => {
                    serde_json::to_vec(&alerts.sink().patient_ack(id).await)
                }
                status::Ask::Release { device } => serde_json::to_vec(&{
                    let last = release_journal.last_journal_seq().unwrap_or(0);
                    let released = quarantine.release(&device, now_millis(), last);
                    if released.is_ok() {
                        tracing::info!(%device, "the patient released the device from quarantine");
                        if let Err(e) = release_writer
                            .save_meta(crate::quarantine::META_KEY, quarantine.to_json())
                            .await
                        {
                            tracing::error!(error = %e, "release not kept in the journal");
                        }
                    }
                    released
                }),
                status::Ask::AlertPolicy(signed) => {
                    serde_json::to_vec(&policing.apply(*signed).await.map(|(version, _)| version))
                }
                status::Ask::AlertSnooze { kind, minutes } => {
                    serde_json::to_vec(&alerts.sink().snooze(kind, minutes).await)
                }
                status::Ask::SelfTest => serde_json::to_vec(&{
                    let sealing = exporting.as_ref().map(|(_, _, key)| (&**key, &signer, patient));
                    let mut report = crate::update::selftest::through_the_pipeline(sealing);
                    let at = now_millis().to_string().into_bytes();
                    report.push(
                        "journal",
                        release_writer
                            .save_meta(crate::update::selftest::META_KEY, at)
                            .await
                            .map_err(|e| e.to_string()),
                    );
                    report
                }),
                status::Ask::Status => Ok(Vec::new()),
            }
            .unwrap_or_default()
            }
        };
    let status_path = config.status_socket();
    let token = tasks.clone();
    supervisor.spawn("status", async move {
        status::serve(&status_path, move || sources.report(), answer, token).await
    });
    tracing::info!(%hub, "hub running");
    service_manager::ready(&format!("hub {hub} running"));
    tokio::spawn(service_manager::watchdog(
        writer.clone(),
        supervisor.stages(),
        vec![
            // A round is cut at its step timeout: longer is a stuck runtime.
            service_manager::Progress {
                stage: "chain follower",
                busy: follower_busy,
                limit: Duration::from_secs(config.chain.step_timeout_secs) + PROGRESS_SLACK,
            },
            service_manager::Progress {
                stage: "analysis",
                busy: analysis_busy_watch,
                limit: PROGRESS_SLACK,
            },
        ],
        tasks.clone(),
    ));

    let failure = tokio::select! {
        _ = shutdown.cancelled() => None,
        failure = supervisor.first_failure() => failure,
    };
    tracing::info!("shutting down");
    service_manager::stopping();
    tasks.cancel();
    if let Some(server) = blob_server {
        server.close().await;
    }
    // The web app finishes the requests it is serving; a client that holds
    // its connection does not hold up the hub's stop.
    if let Some(mut web) = web
        && tokio::time::timeout(Duration::from_secs(5), &mut web)
            .await
            .is_err()
    {
        tracing::warn!("the web app's connections did not close within 5 s; closed");
        web.abort();
    }
    // Every stage drains: the gatekeeper waits for its connections, ingest
    // for the readings it is storing, BLE for its sessions.
    supervisor.drain().await;
    behaviour.flush_suppressed();
    // The journal thread ends once every writer is gone, after writing what
    // it holds.
    drop((pipeline, admission, behaviour, writer, registry));
    let journal_result = journal_task.wait().await;
    if let Some((_, blobs)) = sealing {
        blobs.shutdown().await;
    }
    if let Some(failure) = failure {
        return Err(DaemonError::StageFailed {
            stage: failure.stage,
            reason: failure.reason,
        });
    }
    journal_result?;
    tracing::info!("stopped");
    Ok(())
}
