//! Checking a sealed batch from its bytes up to the chain, link by link:
//! blob hash → batch format → hub signature → inclusion proof → root
//! anchored on chain for the batch's patient → hub authorised for that
//! patient. Each failure names the link that broke. Needs no key: the
//! readings stay sealed.

use alloy::primitives::{Address, B256};
use glyco_contracts::{AnchorRecord, ChainError, GlycoClient};

use crate::{BatchError, BatchHeader, BlobCid, BlobHash, InclusionProof, SealedBatch};

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("blob hash: the blob's BLAKE3 is {got}, not the {want} it was asked for")]
    HashMismatch { got: String, want: String },
    #[error("batch format: {0}")]
    Format(#[from] BatchError),
    #[error("hub signature: signed by {signer}, but the header names hub {hub}")]
    SignedByOther { signer: Address, hub: Address },
    #[error("inclusion proof: batch {batch_no} has no proof yet (not anchored)")]
    NotAnchoredYet { batch_no: u64 },
    #[error("inclusion proof: {0}")]
    Proof(String),
    #[error("anchor: root {root} is not anchored on chain for patient {patient}")]
    RootNotOnChain { root: B256, patient: Address },
    #[error(
        "anchor: the on-chain window {start}..{end} s does not cover the batch's {batch_start}..{batch_end} s"
    )]
    OutsideWindow {
        start: u64,
        end: u64,
        batch_start: u64,
        batch_end: u64,
    },
    #[error("hub authorisation: hub {hub} is not authorised for patient {patient} on chain")]
    HubNotAuthorised { hub: Address, patient: Address },
    #[error("chain unreachable while verifying: {0}")]
    Chain(#[from] ChainError),
}

/// What a verified batch is, and where it is anchored.
#[derive(Debug, Clone)]
pub struct Verified {
    pub cid: BlobCid,
    pub header: BatchHeader,
    pub root: B256,
    pub anchor: AnchorRecord,
}

/// Checks `blob` (whose expected hash, when known, is `expected`) against
/// its inclusion proof and the chain.
pub async fn verify_batch(
    blob: &[u8],
    expected: Option<&BlobHash>,
    proof: Option<&InclusionProof>,
    chain: &GlycoClient,
) -> Result<Verified, VerifyError> {
    let hash = *blake3::hash(blob).as_bytes();
    if let Some(want) = expected
        && *want != hash
    {
        return Err(VerifyError::HashMismatch {
            got: BlobCid(hash).to_string(),
            want: BlobCid(*want).to_string(),
        });
    }
    let batch = SealedBatch::from_bytes(blob)?;
    let header = batch.header.clone();
    let signer = batch.signer()?;
    if signer != header.hub {
        return Err(VerifyError::SignedByOther {
            signer,
            hub: header.hub,
        });
    }
    let proof = proof.ok_or(VerifyError::NotAnchoredYet {
        batch_no: header.batch_no,
    })?;
    let root = B256::from(
        proof
            .root_from(&hash)
            .map_err(|e| VerifyError::Proof(e.to_string()))?,
    );
    let anchor =
        chain
            .anchor_of(header.patient, root)
            .await?
            .ok_or(VerifyError::RootNotOnChain {
                root,
                patient: header.patient,
            })?;
    let seconds = |ms: i64| (ms.max(0) / 1000) as u64;
    let (batch_start, batch_end) = (
        seconds(header.window_start_ms),
        seconds(header.window_end_ms),
    );
    if batch_start < anchor.batch.window_start || batch_end > anchor.batch.window_end {
        return Err(VerifyError::OutsideWindow {
            start: anchor.batch.window_start,
            end: anchor.batch.window_end,
            batch_start,
            batch_end,
        });
    }
    if chain.hub_patient(header.hub).await? != Some(header.patient) {
        return Err(VerifyError::HubNotAuthorised {
            hub: header.hub,
            patient: header.patient,
        });
    }
    Ok(Verified {
        cid: BlobCid(hash),
        header,
        root,
        anchor,
    })
}

/// The links of a verified batch, one per line, for people.
pub fn render(v: &Verified) -> String {
    let h = &v.header;
    format!(
        "blob hash       ok  {cid} (BLAKE3 {hash})\n\
         batch format    ok  glyco-batch v{version}, patient {patient}, hub batch {no}, {count} readings\n\
         hub signature   ok  signed by hub {hub}\n\
         inclusion proof ok  leads to root {root}\n\
         root on chain   ok  the patient's anchor no. {seq} on chain (unix time {at}), submitted by {submitter}\n\
         hub authorised  ok  hub {hub} serves patient {patient} on chain\n",
        cid = v.cid,
        hash = crate::hexcode::hex(&v.cid.0),
        version = crate::batch::VERSION,
        patient = h.patient,
        no = h.batch_no,
        count = h.count,
        hub = h.hub,
        root = v.root,
        seq = v.anchor.seq,
        at = v.anchor.anchored_at,
        submitter = v.anchor.submitter,
    )
}
