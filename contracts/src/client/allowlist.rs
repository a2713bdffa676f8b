//! The accounts allowed to send transactions on the production network
//! (Besu's account permissioning): every key that holds a live role, keys
//! with a pending offer (they must send `acceptRole`), and the admin. Derived
//! from the Roles contract's events and checked against its current state.

use std::collections::BTreeSet;

use alloy::primitives::Address;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;

use super::GlycoClient;
use crate::bindings::Roles;
use crate::error::{ChainError, Contract};
use crate::model::Role;

impl GlycoClient {
    /// Every account that may send a transaction now, sorted.
    pub async fn allowed_senders(&self) -> Result<Vec<Address>, ChainError> {
        let call = "eth_getLogs(Roles)";
        let filter = Filter::new()
            .address(self.deployment.contracts.roles)
            .event_signature(vec![
                Roles::RoleOffered::SIGNATURE_HASH,
                Roles::PatientKeyRotated::SIGNATURE_HASH,
                Roles::HubAuthorised::SIGNATURE_HASH,
            ]);
        let logs = self
            .logs(call, filter, self.deployment.deployed_at_block, None)
            .await?;
        let mut offers = BTreeSet::new();
        let mut candidates = BTreeSet::new();
        for log in &logs {
            let block = log.block_number.unwrap_or_default();
            let undecodable = |_| ChainError::UndecodableLog { call, block };
            match log.topic0() {
                Some(&Roles::RoleOffered::SIGNATURE_HASH) => {
                    let e = log
                        .log_decode::<Roles::RoleOffered>()
                        .map_err(undecodable)?;
                    offers.insert((e.inner.data.account, e.inner.data.offeredBy));
                    candidates.insert(e.inner.data.account);
                }
                Some(&Roles::PatientKeyRotated::SIGNATURE_HASH) => {
                    let e = log
                        .log_decode::<Roles::PatientKeyRotated>()
                        .map_err(undecodable)?;
                    candidates.insert(e.inner.data.newKey);
                }
                Some(&Roles::HubAuthorised::SIGNATURE_HASH) => {
                    let e = log
                        .log_decode::<Roles::HubAuthorised>()
                        .map_err(undecodable)?;
                    candidates.insert(e.inner.data.hub);
                }
                _ => return Err(ChainError::UndecodableLog { call, block }),
            }
        }
        let mut allowed = BTreeSet::new();
        // The admin sends admin acts (unless it is the Consortium contract,
        // whose acts the hospitals send).
        allowed.insert(self.admin().await?);
        if let Some(pending) = self.pending_admin().await? {
            allowed.insert(pending);
        }
        for account in candidates {
            if self.holds_live_role(account).await? {
                allowed.insert(account);
            }
        }
        let now = self.latest_block_time().await?;
        for (account, offered_by) in offers {
            let offer = self
                .view(
                    "offerOf",
                    Contract::Roles,
                    self.roles.offerOf(account, offered_by),
                )
                .await?;
            let retired = self.role_of(account).await? == Some(Role::Retired);
            if offer.role != 0 && offer.expiresAt >= now && !retired {
                allowed.insert(account);
            }
        }
        if let Some(consortium) = self.deployment.contracts.consortium {
            allowed.remove(&consortium);
        }
        Ok(allowed.into_iter().collect())
    }

    async fn holds_live_role(&self, account: Address) -> Result<bool, ChainError> {
        Ok(match self.role_of(account).await? {
            Some(Role::Entity) => self.entity_of(account).await?.active,
            Some(Role::Physician) => self.is_active_physician(account).await?,
            Some(Role::Proxy) => self.is_active_proxy(account).await?,
            Some(Role::Patient) => self.patient_of_key(account).await?.is_some(),
            Some(Role::Hub) => self.hub_patient(account).await?.is_some(),
            Some(Role::None | Role::Retired) | None => false,
        })
    }
}

/// Besu's accounts permissioning file (`--permissions-accounts-config-file`).
pub fn besu_accounts_allowlist(accounts: &[Address]) -> String {
    let mut out = String::from(
        "# Written by `glyco-chain allowlist`: the keys that may send transactions.\n\
         # Reload with the perm_reloadPermissionsFromFile JSON-RPC call.\n\
         accounts-allowlist=[\n",
    );
    for account in accounts {
        out.push_str(&format!("  \"{account}\",\n"));
    }
    out.push_str("]\n");
    out
}
