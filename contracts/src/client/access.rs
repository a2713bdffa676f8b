//! The access log: a physician signs an access request, a proxy records it
//! in the one transaction that also decides it, and anyone reads the log.

use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use serde::{Deserialize, Serialize};

use super::permissions::saturating_u64;
use super::{GlycoClient, event_in};
use crate::bindings::AccessLog;
use crate::consent;
use crate::error::{ChainError, Contract};
use crate::model::{AccessAction, AccessEntry, TxOutcome, UnixSeconds};

/// The longest a signed request is good for (the contract allows an hour;
/// the rest is margin for clock skew between the signer and the chain).
pub const MAX_REQUEST_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// How far back a retry looks for its own log entry, in blocks.
const RETRY_LOOKBACK_BLOCKS: u64 = 4_000;

/// A physician's request to read one anchored batch through one proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    pub patient: Address,
    pub physician: Address,
    pub proxy: Address,
    pub data_id: B256,
    /// Any unused number (random): requests can be used in any order.
    pub nonce: U256,
    pub deadline: UnixSeconds,
}

impl AccessRequest {
    /// Signs the request with the physician's key for the deployment's
    /// AccessLog on `chain_id`.
    pub fn sign(
        &self,
        physician: &alloy::signers::local::PrivateKeySigner,
        chain_id: u64,
        access_log: Address,
    ) -> Result<SignedAccessRequest, consent::SignError> {
        let domain = consent::access_log_domain(chain_id, access_log);
        let signature = consent::sign_typed(physician, &domain, &self.typed())?;
        Ok(SignedAccessRequest {
            request: *self,
            signature,
        })
    }

    fn typed(&self) -> AccessLog::AccessRequest {
        AccessLog::AccessRequest {
            patient: self.patient,
            physician: self.physician,
            proxy: self.proxy,
            dataId: self.data_id,
            nonce: self.nonce,
            deadline: self.deadline.get(),
        }
    }
}

/// A request with the physician's EIP-712 signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAccessRequest {
    pub request: AccessRequest,
    pub signature: Bytes,
}

impl SignedAccessRequest {
    /// Who signed the request for the deployment's AccessLog on `chain_id`
    /// (a proxy checks this before it spends a transaction on it; the
    /// contract checks it again).
    pub fn signer(&self, chain_id: u64, access_log: Address) -> Option<Address> {
        let domain = consent::access_log_domain(chain_id, access_log);
        consent::recover_typed(&domain, &self.request.typed(), &self.signature)
    }
}

/// A recorded access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessOutcome {
    /// `None` when an earlier attempt had already recorded it.
    pub tx: Option<TxOutcome>,
    pub entry: AccessEntry,
}

impl GlycoClient {
    /// The physician (this client's key) signs a request to read `data_id` of
    /// `patient` through `proxy`, good for `lifetime` (at most
    /// [`MAX_REQUEST_LIFETIME`]).
    pub async fn sign_access_request(
        &self,
        patient: Address,
        proxy: Address,
        data_id: B256,
        lifetime: Duration,
    ) -> Result<SignedAccessRequest, ChainError> {
        let call = "signAccessRequest";
        let signer = self.signer(call)?;
        // The chain's clock decides expiry; a quiet dev chain's last block
        // may be old, so take the later of the two clocks.
        let chain_now =
            UnixSeconds::new(self.latest_block_time().await?).unwrap_or(UnixSeconds::now());
        let deadline = UnixSeconds::now()
            .max(chain_now)
            .plus(lifetime.min(MAX_REQUEST_LIFETIME));
        let request = AccessRequest {
            patient,
            physician: signer.address(),
            proxy,
            data_id,
            nonce: random_nonce().map_err(|_| ChainError::Randomness { call })?,
            deadline,
        };
        request
            .sign(
                signer,
                self.deployment.chain_id,
                self.deployment.contracts.access_log,
            )
            .map_err(|source| ChainError::Sign { call, source })
    }

    /// The proxy (this client's key) records the access; the contract checks
    /// signature, nonce, deadline, proxy, anchor and grant first. Safe to
    /// retry: a request already recorded is found in the log, not sent again.
    pub async fn record_access(
        &self,
        signed: &SignedAccessRequest,
    ) -> Result<AccessOutcome, ChainError> {
        let builder = self
            .access_log
            .recordAccess(signed.request.typed(), signed.signature.clone());
        self.record_once("recordAccess", signed, builder).await
    }

    /// The proxy records one access to a set of anchored roots (the
    /// request's `data_id` is [`roots_digest`] of them) in one transaction;
    /// the contract checks every root and one grant covering them all.
    /// Safe to retry like [`GlycoClient::record_access`].
    pub async fn record_access_set(
        &self,
        signed: &SignedAccessRequest,
        roots: &[B256],
    ) -> Result<AccessOutcome, ChainError> {
        let builder = self.access_log.recordAccessSet(
            signed.request.typed(),
            roots.to_vec(),
            signed.signature.clone(),
        );
        self.record_once("recordAccessSet", signed, builder).await
    }

    /// Sends an access's transaction, unless a retry finds the request
    /// already in the log (its nonce used, its entry there).
    async fn record_once<C: alloy::sol_types::SolCall>(
        &self,
        call: &'static str,
        signed: &SignedAccessRequest,
        builder: alloy::contract::SolCallBuilder<&alloy::providers::DynProvider, C>,
    ) -> Result<AccessOutcome, ChainError> {
        let request = &signed.request;
        if self.is_nonce_used(request.physician, request.nonce).await?
            && let Some(entry) = self.find_recorded(request).await?
        {
            return Ok(AccessOutcome { tx: None, entry });
        }
        let (outcome, receipt) = self
            .send_with_receipt(call, Contract::AccessLog, builder)
            .await?;
        let e = event_in::<AccessLog::AccessLogged>(call, &receipt)?;
        Ok(AccessOutcome {
            tx: Some(outcome),
            entry: access_entry(e, outcome.block),
        })
    }

    async fn find_recorded(
        &self,
        request: &AccessRequest,
    ) -> Result<Option<AccessEntry>, ChainError> {
        let head = self.block_number().await?;
        let from = head.saturating_sub(RETRY_LOOKBACK_BLOCKS);
        let entries = self
            .access_entries(
                Some(request.patient),
                Some(request.physician),
                Some(request.data_id),
                from,
                Some(head),
            )
            .await?;
        Ok(entries
            .into_iter()
            .find(|e| e.nonce == request.nonce && e.proxy == request.proxy))
    }

    pub async fn is_nonce_used(&self, physician: Address, nonce: U256) -> Result<bool, ChainError> {
        self.view(
            "isNonceUsed",
            Contract::AccessLog,
            self.access_log.isNonceUsed(physician, nonce),
        )
        .await
    }

    pub async fn access_count(&self, patient: Address) -> Result<u64, ChainError> {
        self.view(
            "accessCount",
            Contract::AccessLog,
            self.access_log.accessCount(patient),
        )
        .await
    }

    /// The patient's access-log entries from `from_block` to the head, in
    /// chain order.
    pub async fn access_log_of(
        &self,
        patient: Address,
        from_block: u64,
    ) -> Result<Vec<AccessEntry>, ChainError> {
        self.access_entries(Some(patient), None, None, from_block, None)
            .await
    }

    /// Every access a physician made, from `from_block` to the head.
    pub async fn accesses_by(
        &self,
        physician: Address,
        from_block: u64,
    ) -> Result<Vec<AccessEntry>, ChainError> {
        self.access_entries(None, Some(physician), None, from_block, None)
            .await
    }

    async fn access_entries(
        &self,
        patient: Option<Address>,
        physician: Option<Address>,
        data_id: Option<B256>,
        from_block: u64,
        to_block: Option<u64>,
    ) -> Result<Vec<AccessEntry>, ChainError> {
        let call = "eth_getLogs(AccessLog)";
        let mut filter = Filter::new()
            .address(self.deployment.contracts.access_log)
            .event_signature(AccessLog::AccessLogged::SIGNATURE_HASH);
        if let Some(patient) = patient {
            filter = filter.topic1(patient.into_word());
        }
        if let Some(physician) = physician {
            filter = filter.topic2(physician.into_word());
        }
        if let Some(data_id) = data_id {
            filter = filter.topic3(data_id);
        }
        let logs = self.logs(call, filter, from_block, to_block).await?;
        logs.iter()
            .map(|log| {
                let block = log.block_number.unwrap_or_default();
                let e = log
                    .log_decode::<AccessLog::AccessLogged>()
                    .map_err(|_| ChainError::UndecodableLog { call, block })?
                    .inner
                    .data;
                Ok(access_entry(e, block))
            })
            .collect()
    }
}

/// The `data_id` of an access to a set of roots (what the contract checks).
pub fn roots_digest(roots: &[B256]) -> B256 {
    let mut bytes = Vec::with_capacity(roots.len() * 32);
    for root in roots {
        bytes.extend_from_slice(root.as_slice());
    }
    alloy::primitives::keccak256(&bytes)
}

/// Unordered nonces: 256 random bits never collide in practice.
fn random_nonce() -> Result<U256, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(U256::from_be_bytes(bytes))
}

fn access_entry(e: AccessLog::AccessLogged, block: u64) -> AccessEntry {
    AccessEntry {
        patient: e.patient,
        physician: e.physician,
        data_id: e.dataId,
        proxy: e.proxy,
        grant_id: saturating_u64(e.grantId),
        action: AccessAction::from_u8(e.action),
        at: e.at,
        seq: e.seq,
        nonce: e.nonce,
        block,
    }
}
