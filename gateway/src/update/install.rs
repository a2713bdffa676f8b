//! The installer, run as root by `glyco-update.service` when the hub asks
//! (or by hand). It trusts nothing the hub says: the bundle is copied out
//! of the hub's directory into its own and checked again there (chain,
//! signature, compatibility, version), and must be the one the hub named.
//! RAUC then writes it into the other slot and makes that slot the next to
//! boot; what is pending for the health check is recorded first.

use std::ffi::OsStr;
use std::path::Path;

use glyco_contracts::{B256, GlycoClient};
use glyco_seal::fleet::UpdateOutcome;

use super::UpdateError;
use super::record::{self, CHECKED, INCOMING, InstallRequest, PENDING, Pending, REQUEST};
use crate::config::UpdateConfig;

/// Installs what the hub asked for, if it asked. The request is taken
/// (removed) first, so a failing install is not retried in a loop; the
/// outcome is recorded for the hub's heartbeats either way.
pub async fn install_requested(
    state_dir: &Path,
    config: &UpdateConfig,
    chain: &GlycoClient,
) -> Result<Option<Pending>, UpdateError> {
    let hub_dir = record::hub_dir(state_dir);
    let request_path = hub_dir.join(REQUEST);
    let request = record::read_json::<InstallRequest>(&request_path);
    record::remove(&request_path)?;
    let request = match request {
        Ok(Some(request)) => request,
        Ok(None) => return Ok(None),
        Err(e) => {
            record::remove(&hub_dir.join(INCOMING))?;
            return Err(e);
        }
    };
    // A request left over for the release this slot already runs (asked
    // for again just before the reboot into it): nothing to do, and its
    // record must not turn the update's outcome into a refusal.
    if crate::fleet::image_release().as_deref() == Some(request.version.as_str()) {
        record::remove(&hub_dir.join(INCOMING))?;
        tracing::info!(version = %request.version, "this slot runs the release asked for already");
        return Ok(None);
    }
    let result = install(&hub_dir.join(INCOMING), Some(request.sha256), config, chain).await;
    record::remove(&hub_dir.join(INCOMING))?;
    let outcome = match &result {
        Ok(_) => UpdateOutcome::Installing,
        Err(e) => UpdateOutcome::Refused { why: e.to_string() },
    };
    record::save_outcome(state_dir, &request.version, request.sha256, outcome)?;
    result.map(Some)
}

/// Checks `bundle` on a private copy and installs it into the slot not
/// running; `expected` is the SHA-256 it must have, if one was named.
pub async fn install(
    bundle: &Path,
    expected: Option<B256>,
    config: &UpdateConfig,
    chain: &GlycoClient,
) -> Result<Pending, UpdateError> {
    let checked = super::check(bundle, &config.install_dir, config, chain).await;
    let result = async {
        let checked = checked?;
        if let Some(asked) = expected
            && asked != checked.sha256
        {
            return Err(UpdateError::RequestMismatch {
                asked,
                found: checked.sha256,
            });
        }
        let from_slot = record::booted_slot().ok_or(UpdateError::NoSlots)?;
        let pending = Pending {
            version: checked.version.clone(),
            sha256: checked.sha256,
            to_slot: record::other_slot(&from_slot).to_owned(),
            from_slot,
            installed_at_ms: crate::reading::now_millis(),
        };
        let pending_path = config.install_dir.join(PENDING);
        record::write_json(&pending_path, &pending)?;
        if let Err(e) = rauc_install(&config.rauc, &checked.path).await {
            record::remove(&pending_path)?;
            return Err(e);
        }
        Ok(pending)
    }
    .await;
    record::remove(&config.install_dir.join(CHECKED))?;
    result
}

async fn rauc_install(rauc: &Path, bundle: &Path) -> Result<(), UpdateError> {
    let args = [OsStr::new("install"), bundle.as_os_str()];
    super::rauc::run(rauc, &args, "rauc install failed")
        .await?
        .map_err(UpdateError::Rauc)?;
    Ok(())
}
