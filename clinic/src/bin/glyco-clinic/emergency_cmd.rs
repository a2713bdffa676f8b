//! `glyco-clinic emergency-open`: a physician with family members' shares
//! opens the patient's offline emergency kit (hub not needed).

use std::path::Path;

use anyhow::{Context, Result, bail};
use glyco_clinic::fhir::iso8601;
use glyco_clinic::summary::glucose_summary;
use glyco_seal::emergency::{EmergencyKit, FamilyShare, SHARE_PREFIX};

use crate::Chain;

pub async fn open(kit_path: &Path, shares: &[String], chain: Option<&Chain>) -> Result<()> {
    let bytes =
        std::fs::read(kit_path).with_context(|| format!("reading {}", kit_path.display()))?;
    let kit = EmergencyKit::from_bytes(&bytes)?;
    let signer = kit.signer()?;
    if signer != kit.header.hub {
        bail!("the kit is signed by {signer}, not by the hub it names");
    }
    if let Some(chain) = chain {
        let hub_patient = chain.read_only()?.hub_patient(signer).await?;
        if hub_patient != Some(kit.header.patient) {
            bail!(
                "hub {signer} does not serve patient {} on chain",
                kit.header.patient
            );
        }
    }
    let mut family = Vec::new();
    for share in shares {
        let text = if share.starts_with(SHARE_PREFIX) {
            share.clone()
        } else {
            std::fs::read_to_string(share).with_context(|| format!("reading share file {share}"))?
        };
        family.push(FamilyShare::from_text(&text)?);
    }
    let data = kit.open(&family)?;
    println!(
        "emergency kit of patient {} (generation {}, made {}), opened with {} shares",
        kit.header.patient,
        kit.header.generation,
        iso8601(kit.header.created_at_ms),
        family.len()
    );
    println!("profile: {}", data.profile);
    let readings = data.readings;
    for r in readings.iter().rev().take(10) {
        println!(
            "{:<25} {:<24} {}",
            iso8601(r.measured_at()),
            r.device.to_string(),
            r.measurement.display_value()
        );
    }
    if let Some(summary) = glucose_summary(&readings) {
        println!("{summary}");
    }
    for f in &data.findings {
        println!(
            "finding {} {} at {}: {}",
            f.severity,
            f.kind,
            iso8601(f.at),
            f.explanation
        );
    }
    Ok(())
}
