//! Releases: the hub bundles the consortium vouches for. The admin (the
//! M-of-N consortium in production) publishes a bundle's SHA-256 with its
//! version, and may withdraw it; a hub installs a bundle only while it is
//! published and not withdrawn (docs/FLEET.md, "Updates").

use alloy::primitives::B256;

use super::GlycoClient;
use crate::bindings::Releases;
use crate::error::{ChainError, Contract};
use crate::model::{ReleaseRecord, TxOutcome};

impl GlycoClient {
    fn releases(
        &self,
        call: &'static str,
    ) -> Result<Releases::ReleasesInstance<alloy::providers::DynProvider>, ChainError> {
        let address = self
            .deployment
            .contracts
            .releases
            .ok_or(ChainError::NoReleases { call })?;
        Ok(Releases::new(address, self.provider.clone()))
    }

    /// The admin vouches for the bundle whose SHA-256 is `bundle_hash`.
    pub async fn publish_release(
        &self,
        bundle_hash: B256,
        version: &str,
    ) -> Result<TxOutcome, ChainError> {
        let releases = self.releases("publish")?;
        self.send(
            "publish",
            Contract::Releases,
            releases.publish(bundle_hash, version.to_owned()),
        )
        .await
    }

    /// The admin withdraws a release: hubs that have not installed it no
    /// longer will.
    pub async fn withdraw_release(&self, bundle_hash: B256) -> Result<TxOutcome, ChainError> {
        let releases = self.releases("withdraw")?;
        self.send(
            "withdraw",
            Contract::Releases,
            releases.withdraw(bundle_hash),
        )
        .await
    }

    /// The release of `bundle_hash`, if it was ever published.
    pub async fn release_of(&self, bundle_hash: B256) -> Result<Option<ReleaseRecord>, ChainError> {
        let releases = self.releases("releaseOf")?;
        let r = self
            .view(
                "releaseOf",
                Contract::Releases,
                releases.releaseOf(bundle_hash),
            )
            .await?;
        if r.publishedAt == 0 {
            return Ok(None);
        }
        Ok(Some(ReleaseRecord {
            bundle_hash,
            version: r.version,
            publisher: r.publisher,
            published_at: r.publishedAt,
            withdrawn_at: (r.withdrawnAt != 0).then_some(r.withdrawnAt),
            seq: r.seq,
        }))
    }

    /// Whether a hub may install the bundle now.
    pub async fn is_installable(&self, bundle_hash: B256) -> Result<bool, ChainError> {
        let releases = self.releases("isInstallable")?;
        self.view(
            "isInstallable",
            Contract::Releases,
            releases.isInstallable(bundle_hash),
        )
        .await
    }
}
