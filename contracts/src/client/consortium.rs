//! The consortium's M-of-N governance: proposals by hospitals, approvals,
//! execution. The proposal's call is any admin act, built with the bindings'
//! call types (for example `Roles::offerPhysicianCall`).

use alloy::primitives::{Address, Bytes};
use alloy::sol_types::SolCall;

use super::permissions::saturating_u64;
use super::{GlycoClient, event_in};
use crate::bindings::Consortium;
use crate::error::{ChainError, Contract};
use crate::model::{ProposalRecord, TxOutcome};

impl GlycoClient {
    /// An active hospital proposes `call` on `target` (its own approval
    /// included); returns the proposal id.
    pub async fn propose<C: SolCall>(
        &self,
        target: Address,
        call: &C,
    ) -> Result<(TxOutcome, u64), ChainError> {
        let name = "propose";
        let consortium = self.consortium(name)?;
        let builder = consortium.propose(target, Bytes::from(call.abi_encode()));
        let (outcome, receipt) = self
            .send_with_receipt(name, Contract::Consortium, builder)
            .await?;
        let event = event_in::<Consortium::Proposed>(name, &receipt)?;
        Ok((outcome, saturating_u64(event.id)))
    }

    pub async fn approve_proposal(&self, id: u64) -> Result<TxOutcome, ChainError> {
        let consortium = self.consortium("approve")?;
        self.send(
            "approve",
            Contract::Consortium,
            consortium.approve(id.try_into().unwrap_or_default()),
        )
        .await
    }

    pub async fn execute_proposal(&self, id: u64) -> Result<TxOutcome, ChainError> {
        let consortium = self.consortium("execute")?;
        self.send(
            "execute",
            Contract::Consortium,
            consortium.execute(id.try_into().unwrap_or_default()),
        )
        .await
    }

    pub async fn cancel_proposal(&self, id: u64) -> Result<TxOutcome, ChainError> {
        let consortium = self.consortium("cancel")?;
        self.send(
            "cancel",
            Contract::Consortium,
            consortium.cancel(id.try_into().unwrap_or_default()),
        )
        .await
    }

    pub async fn consortium_threshold(&self) -> Result<u32, ChainError> {
        let consortium = self.consortium("threshold")?;
        self.view("threshold", Contract::Consortium, consortium.threshold())
            .await
    }

    /// Approvals by hospitals active now.
    pub async fn approval_count(&self, id: u64) -> Result<u64, ChainError> {
        let consortium = self.consortium("approvalCount")?;
        let count = self
            .view(
                "approvalCount",
                Contract::Consortium,
                consortium.approvalCount(id.try_into().unwrap_or_default()),
            )
            .await?;
        Ok(saturating_u64(count))
    }

    pub async fn proposal_of(&self, id: u64) -> Result<ProposalRecord, ChainError> {
        let consortium = self.consortium("proposalOf")?;
        let p = self
            .view(
                "proposalOf",
                Contract::Consortium,
                consortium.proposalOf(id.try_into().unwrap_or_default()),
            )
            .await?;
        Ok(ProposalRecord {
            id,
            proposer: p.proposer,
            target: p.target,
            created_at: p.createdAt,
            executed: p.executed,
            cancelled: p.cancelled,
            data: p.data,
        })
    }
}
