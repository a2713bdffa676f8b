//! The offline emergency kit, made on the patient's request
//! (`glyco-hub emergency-kit`): the patient's profile text and the readings
//! of the last hours, encrypted under a fresh key split among family
//! members (glyco_seal::emergency), kept as a blob under its own tag and
//! listed to replicas, which keep it at the clinic. Making it again splits
//! a new key: the old shares stop opening the new kit.

use alloy::signers::local::PrivateKeySigner;
use glyco_contracts::Address;
use glyco_seal::emergency::{EmergencyData, EmergencyKit, Split};
use glyco_seal::hexcode::hex;
use glyco_seal::replication::KitListing;
use serde::{Deserialize, Serialize};

use super::SealState;
use super::blobs::BlobStore;
use crate::journal::Journal;
use crate::reading::now_millis;

/// The most readings a kit carries (a day of 1-minute CGM is 1,440).
const MAX_KIT_READINGS: usize = 20_000;
/// The longest profile text.
pub const MAX_PROFILE_BYTES: usize = 2_048;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KitRequest {
    pub threshold: u8,
    pub shares: u8,
    /// Readings of the last this many hours go in.
    pub hours: u32,
    pub profile: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KitMade {
    /// BLAKE3 of the kit, hex.
    pub hash: String,
    pub generation: u64,
    pub readings: u64,
    /// The family members' shares, as text (the CLI writes them 0600 and as
    /// QR codes; the hub keeps none of them).
    pub shares: Vec<String>,
}

pub struct Maker<'a> {
    pub journal: &'a Journal,
    pub blobs: &'a BlobStore,
    pub signer: &'a PrivateKeySigner,
    pub patient: Address,
    pub state: &'a SealState,
    pub request: KitRequest,
}

pub async fn make(m: Maker<'_>) -> Result<KitMade, String> {
    let r = &m.request;
    if r.profile.len() > MAX_PROFILE_BYTES {
        return Err(format!("the profile is over {MAX_PROFILE_BYTES} bytes"));
    }
    if !(1..=24 * 90).contains(&r.hours) {
        return Err("hours must be between 1 and 2160".into());
    }
    let now = now_millis();
    let from = now - i64::from(r.hours) * 3_600_000;
    let readings: Vec<_> = m
        .journal
        .recent_readings(MAX_KIT_READINGS)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|reading| reading.measured_at() >= from)
        .collect();
    let data = EmergencyData {
        profile: r.profile.clone(),
        readings,
        findings: Vec::new(),
        from_ms: from,
        to_ms: now,
    };
    // A later split has a larger generation: the time it was made.
    let generation = now.max(0) as u64;
    let Split { kit, shares } = EmergencyKit::create(
        &data,
        m.patient,
        generation,
        now,
        r.threshold,
        r.shares,
        m.signer,
    )
    .map_err(|e| e.to_string())?;
    let bytes = kit.to_bytes().map_err(|e| e.to_string())?;
    let size = bytes.len() as u64;
    let hash = m
        .blobs
        .put_emergency_kit(bytes)
        .await
        .map_err(|e| e.to_string())?;
    let listing = KitListing {
        hash: hex(&hash),
        bytes: size,
        generation,
    };
    m.state.update(|s| s.emergency_kit = Some(listing));
    tracing::info!(
        generation,
        readings = data.readings.len(),
        threshold = r.threshold,
        shares = r.shares,
        "emergency kit made; older shares no longer open it"
    );
    Ok(KitMade {
        hash: hex(&hash),
        generation,
        readings: data.readings.len() as u64,
        shares: shares.iter().map(|s| s.to_text()).collect(),
    })
}

/// Finds the kit kept from an earlier run, for the replicas' listing.
pub async fn restore(blobs: &BlobStore, state: &SealState) -> Result<(), String> {
    let Some(hash) = blobs.emergency_kit().await.map_err(|e| e.to_string())? else {
        return Ok(());
    };
    let bytes = blobs.get(&hash).await.map_err(|e| e.to_string())?;
    let kit = EmergencyKit::from_bytes(&bytes).map_err(|e| e.to_string())?;
    state.update(|s| {
        s.emergency_kit = Some(KitListing {
            hash: hex(&hash),
            bytes: bytes.len() as u64,
            generation: kit.header.generation,
        });
    });
    Ok(())
}
