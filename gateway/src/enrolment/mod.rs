//! Enrolment: a new hub takes a physician's enrolment code (a QR code's
//! picture or its text) and configures itself (docs/APPLIANCE.md).
//!
//! 1. The code is read and checked: not expired, the consortium the hub is
//!    pinned to (if any), the chain answering with the code's chain id, and
//!    the physician active on it.
//! 2. The hub signs its consent to serve its patient (whose key the hub
//!    made at first boot and keeps) and sends it with the token to the
//!    physician's enrolment node, authenticated by the node id in the code.
//! 3. The node spends the token, offers the patient role on chain and hands
//!    back the consortium's device-id key; the hub checks the key against
//!    the deployment's fingerprint.
//! 4. The patient's key accepts the physician's offer and authorises the
//!    hub (delegating device registration to it).
//! 5. The deployment, the device-id key and `enrolled.toml` are written to
//!    the state directory; the overlay last, since its presence means
//!    enrolled.

pub mod first_boot;

use std::path::{Path, PathBuf};
use std::time::Duration;

use glyco_contracts::keys::{load_or_create_key, load_or_create_secret};
use glyco_contracts::{Address, B256, DeviceIdKey, GlycoClient, Role, UnixSeconds};
use glyco_seal::enrolment::{
    ENROL_ALPN, EnrolAnswer, EnrolRefusal, EnrolRequest, Invitation, InvitationError,
    MAX_ENROL_MESSAGE_BYTES,
};
use iroh::endpoint::presets;
use iroh::{Endpoint, RelayMode};

use crate::config::HubConfig;

/// The patient's Ethereum key on an appliance hub, in the state directory.
pub const PATIENT_ETH_KEY_FILE: &str = "patient.eth";
/// Who enrolled the hub and when, in the state directory.
pub const ENROLMENT_RECORD: &str = "enrolment.json";

#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error(transparent)]
    Invitation(#[from] InvitationError),
    #[error("the QR code: {0}")]
    Picture(#[from] glyco_webkit::qr::QrError),
    #[error("this hub is already enrolled ({0} exists); reset it to enrol again")]
    AlreadyEnrolled(PathBuf),
    #[error("this hub only takes codes for chain {chain_id} and Roles contract {roles}")]
    NotOurConsortium { chain_id: u64, roles: String },
    #[error("the chain at {url} is chain {found}, not the code's {expected}")]
    WrongChain {
        url: String,
        found: u64,
        expected: u64,
    },
    #[error("{0:#x} is not an active physician on chain")]
    NotAPhysician(Address),
    #[error("the enrolment node could not be reached: {0}")]
    Unreachable(String),
    #[error("the physician's enrolment node refused: {0}")]
    Refused(EnrolRefusal),
    #[error("the device-id key from the enrolment node is not the deployment's")]
    WrongDeviceIdKey,
    #[error("the physician's offer did not appear on chain within {0:?}")]
    NoOffer(Duration),
    #[error("the chain: {0}")]
    Chain(#[from] glyco_contracts::ChainError),
    #[error("keys: {0}")]
    Key(#[from] glyco_contracts::keys::KeyError),
    #[error("writing {path}: {detail}")]
    Write { path: PathBuf, detail: String },
    #[error("{0}")]
    Invalid(String),
}

impl EnrolError {
    /// A short machine name, for counts and the page.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Invitation(InvitationError::Expired { .. }) => "expired",
            Self::Invitation(_) | Self::Picture(_) => "unreadable",
            Self::AlreadyEnrolled(_) => "already_enrolled",
            Self::NotOurConsortium { .. } | Self::WrongChain { .. } => "wrong_network",
            Self::NotAPhysician(_) => "not_a_physician",
            Self::Unreachable(_) => "unreachable",
            Self::Refused(EnrolRefusal::TokenSpent) => "token_spent",
            Self::Refused(EnrolRefusal::TokenExpired) => "token_expired",
            Self::Refused(_) => "refused",
            Self::WrongDeviceIdKey => "wrong_device_id_key",
            Self::NoOffer(_) | Self::Chain(_) => "chain",
            Self::Key(_) | Self::Write { .. } | Self::Invalid(_) => "local",
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The hub's identities, made at first boot (all 0600 in the state dir).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubIdentity {
    pub hub: Address,
    pub patient: Address,
    pub node: String,
}

/// The hub's keys: its Ethereum key, the patient's, and its iroh node's.
struct HubKeys {
    hub: glyco_contracts::keys::Signer,
    patient: glyco_contracts::keys::Signer,
    node: B256,
}

/// Loads the hub's keys, making any that is missing (0600).
fn load_or_create_keys(config: &HubConfig) -> Result<HubKeys, EnrolError> {
    std::fs::create_dir_all(&config.state_dir).map_err(|e| EnrolError::Write {
        path: config.state_dir.clone(),
        detail: e.to_string(),
    })?;
    let (hub, _) = load_or_create_key(&config.key_path())?;
    let (patient, _) = load_or_create_key(&config.in_state_dir(Path::new(PATIENT_ETH_KEY_FILE)))?;
    let (node, _) = load_or_create_secret(&config.node_key_path())?;
    Ok(HubKeys { hub, patient, node })
}

/// Makes the hub's Ethereum key, the patient's Ethereum key and the iroh
/// node key if they are missing; returns who they are.
pub fn ensure_keys(config: &HubConfig) -> Result<HubIdentity, EnrolError> {
    let keys = load_or_create_keys(config)?;
    Ok(HubIdentity {
        hub: keys.hub.address(),
        patient: keys.patient.address(),
        node: iroh::SecretKey::from_bytes(&keys.node.0)
            .public()
            .to_string(),
    })
}

/// Reads an enrolment code from what the patient gave: a PNG picture of
/// the QR code, or its text.
pub fn read_code(bytes: &[u8]) -> Result<Invitation, EnrolError> {
    let text = if bytes.starts_with(b"\x89PNG") {
        glyco_webkit::qr::decode_png(bytes)?
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    };
    Ok(Invitation::parse(&text, now_secs())?)
}

/// What an enrolment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub physician: Address,
    pub patient: Address,
    pub hub: Address,
    pub offer_tx: B256,
    pub accept_tx: B256,
    pub authorise_tx: B256,
}

/// Enrols the hub with `invitation` (the steps in the module's comment).
pub async fn enrol(config: &HubConfig, invitation: &Invitation) -> Result<Enrolled, EnrolError> {
    let overlay = config.enrolled_overlay_path();
    if overlay.exists() {
        return Err(EnrolError::AlreadyEnrolled(overlay));
    }
    let deployment = &invitation.deployment;
    let pin = &config.enrolment;
    if (pin.chain_id != 0 && pin.chain_id != deployment.chain_id)
        || pin
            .roles_contract
            .is_some_and(|roles| roles != deployment.contracts.roles)
    {
        return Err(EnrolError::NotOurConsortium {
            chain_id: pin.chain_id,
            roles: pin
                .roles_contract
                .map_or("any".into(), |r| format!("{r:#x}")),
        });
    }
    let HubKeys {
        hub: hub_key,
        patient: patient_key,
        node: node_secret,
    } = load_or_create_keys(config)?;
    let patient = patient_key.address();
    let rpc_url: glyco_contracts::client::RpcUrl = invitation.rpc_urls[0]
        .parse()
        .map_err(|_| EnrolError::Invalid(format!("RPC URL {}", invitation.rpc_urls[0])))?;
    for url in &invitation.rpc_urls {
        let parsed = url
            .parse()
            .map_err(|_| EnrolError::Invalid(format!("RPC URL {url}")))?;
        let found = GlycoClient::read_only(parsed, deployment.clone())
            .chain_id()
            .await?;
        if found != deployment.chain_id {
            return Err(EnrolError::WrongChain {
                url: url.clone(),
                found,
                expected: deployment.chain_id,
            });
        }
    }
    let hub_chain = GlycoClient::new(rpc_url.clone(), hub_key, deployment.clone());
    let patient_chain = GlycoClient::new(rpc_url, patient_key, deployment.clone());
    let physician = invitation.physician;
    if !hub_chain.is_active_physician(physician).await? {
        return Err(EnrolError::NotAPhysician(physician));
    }
    let consent = hub_chain
        .sign_hub_consent(patient, UnixSeconds::now().plus(Duration::from_secs(3600)))
        .await?;

    let answer = ask_physician(node_secret, invitation, consent.clone()).await?;
    let (device_id_key, offer_tx) = match answer {
        EnrolAnswer::Accepted {
            device_id_key,
            offer_tx,
        } => (DeviceIdKey::from_bytes(device_id_key), offer_tx),
        EnrolAnswer::Refused(why) => return Err(EnrolError::Refused(why)),
    };
    if device_id_key.fingerprint() != deployment.device_id_key_fingerprint {
        return Err(EnrolError::WrongDeviceIdKey);
    }
    let wait = Duration::from_secs(60);
    let deadline = tokio::time::Instant::now() + wait;
    while patient_chain.offered_role(patient, physician).await? != Some(Role::Patient) {
        if tokio::time::Instant::now() > deadline {
            return Err(EnrolError::NoOffer(wait));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let accept_tx = patient_chain
        .accept_role(physician, Role::Patient)
        .await?
        .hash;
    let authorise_tx = patient_chain.authorise_hub(&consent, true).await?.hash;
    write_state(config, invitation, &device_id_key, patient)?;
    let enrolled = Enrolled {
        physician,
        patient,
        hub: consent.hub,
        offer_tx,
        accept_tx,
        authorise_tx,
    };
    tracing::info!(
        physician = %physician,
        patient = %patient,
        hub = %consent.hub,
        "enrolled"
    );
    Ok(enrolled)
}

async fn ask_physician(
    node_secret: B256,
    invitation: &Invitation,
    consent: glyco_contracts::SignedHubConsent,
) -> Result<EnrolAnswer, EnrolError> {
    let unreachable = |e: &dyn std::fmt::Display| EnrolError::Unreachable(e.to_string());
    let endpoint = Endpoint::builder(presets::Minimal)
        .secret_key(iroh::SecretKey::from_bytes(&node_secret.0))
        .relay_mode(RelayMode::Disabled)
        .bind()
        .await
        .map_err(|e| unreachable(&e))?;
    let to = invitation.enrol_endpoint()?;
    let request = EnrolRequest {
        token: invitation.token.clone(),
        consent,
    };
    let answer = tokio::time::timeout(
        Duration::from_secs(60),
        glyco_seal::sharing::exchange(&endpoint, to, ENROL_ALPN, &request, MAX_ENROL_MESSAGE_BYTES),
    )
    .await
    .map_err(|_| EnrolError::Unreachable("no answer within 60 s".into()))?
    .map_err(|e| unreachable(&e));
    endpoint.close().await;
    answer
}

/// Whole or not at all, mode 0600.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), EnrolError> {
    glyco_contracts::files::write_atomically(path, bytes).map_err(|e| EnrolError::Write {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

/// Writes what enrolment learnt; `enrolled.toml` last.
fn write_state(
    config: &HubConfig,
    invitation: &Invitation,
    device_id_key: &DeviceIdKey,
    patient: Address,
) -> Result<(), EnrolError> {
    let deployment_path = config.in_state_dir(Path::new("deployment.json"));
    let key_path = config.in_state_dir(Path::new("device-id.key"));
    let json = serde_json::to_vec_pretty(&invitation.deployment)
        .map_err(|e| EnrolError::Invalid(e.to_string()))?;
    write_file(&deployment_path, &json)?;
    write_file(
        &key_path,
        format!("{}\n", device_id_key.to_bytes()).as_bytes(),
    )?;
    let mut chain = toml::Table::new();
    chain.insert("rpc_url".into(), invitation.rpc_urls[0].clone().into());
    chain.insert(
        "extra_rpc_urls".into(),
        toml::Value::Array(
            invitation.rpc_urls[1..]
                .iter()
                .cloned()
                .map(toml::Value::from)
                .collect(),
        ),
    );
    chain.insert(
        "deployment_file".into(),
        deployment_path.display().to_string().into(),
    );
    chain.insert(
        "device_id_key_file".into(),
        key_path.display().to_string().into(),
    );
    chain.insert("patient".into(), format!("{patient:#x}").into());
    let mut seal = toml::Table::new();
    seal.insert(
        "proxies".into(),
        toml::Value::Array(invitation.proxies.iter().cloned().map(Into::into).collect()),
    );
    seal.insert(
        "proxy_threshold".into(),
        i64::from(invitation.proxy_threshold).into(),
    );
    let mut web = toml::Table::new();
    web.insert("patient_key_file".into(), PATIENT_ETH_KEY_FILE.into());
    let mut overlay = toml::Table::new();
    overlay.insert("chain".into(), chain.into());
    overlay.insert("seal".into(), seal.into());
    overlay.insert("web".into(), web.into());
    if let Some(inbox) = &invitation.inbox {
        let mut step = toml::Table::new();
        step.insert("after_secs".into(), 0i64.into());
        step.insert(
            "to".into(),
            toml::Value::Array(vec![
                "patient".into(),
                format!("physician:{:#x}", invitation.physician).into(),
            ]),
        );
        let mut alerts = toml::Table::new();
        alerts.insert("inbox".into(), inbox.clone().into());
        alerts.insert("ladder".into(), toml::Value::Array(vec![step.into()]));
        overlay.insert("alerts".into(), alerts.into());
    }
    let record = serde_json::json!({
        "physician": format!("{:#x}", invitation.physician),
        "patient": format!("{patient:#x}"),
        "chain_id": invitation.deployment.chain_id,
        "enrolled_at": now_secs(),
    });
    write_file(
        &config.in_state_dir(Path::new(ENROLMENT_RECORD)),
        record.to_string().as_bytes(),
    )?;
    let text = format!(
        "# Written by enrolment (docs/APPLIANCE.md); read over the config file.\n{}",
        toml::to_string(&overlay).map_err(|e| EnrolError::Invalid(e.to_string()))?
    );
    write_file(&config.enrolled_overlay_path(), text.as_bytes())
}
