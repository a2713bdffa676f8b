//! The proxy's kfrags: one file per grant (`kfrags/<grant id>.cbor`, mode
//! 0600, written atomically), loaded and verified again at start, indexed
//! in memory by (patient, grantee). A kfrag lets its holder re-encrypt, so
//! the files are as private as keys; it alone opens nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use glyco_contracts::Address;
use glyco_seal::sharing::{self, KfragDelivery};
use parking_lot::RwLock;
use umbral_pre::VerifiedKeyFrag;

#[derive(Debug, thiserror::Error)]
pub enum KfragStoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the proxy holds {0} grants' kfrags, its limit")]
    Full(usize),
}

/// A kept share with what it was delivered for.
#[derive(Debug, Clone)]
pub struct HeldKfrag {
    pub delivery: KfragDelivery,
    pub kfrag: VerifiedKeyFrag,
}

pub struct KfragStore {
    dir: PathBuf,
    limit: usize,
    by_grant: RwLock<HashMap<u64, HeldKfrag>>,
    by_pair: RwLock<HashMap<(Address, Address), u64>>,
}

impl KfragStore {
    /// Opens (creating) `dir` and loads every kept share whose file decodes;
    /// a file that does not is reported and left for an operator.
    pub fn open(dir: &Path, limit: usize) -> Result<(Self, Vec<String>), KfragStoreError> {
        let io = |source| KfragStoreError::Io {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let store = Self {
            dir: dir.to_owned(),
            limit,
            by_grant: RwLock::new(HashMap::new()),
            by_pair: RwLock::new(HashMap::new()),
        };
        let mut problems = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_none_or(|e| e != "cbor") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| sharing::decode::<KfragDelivery>(&b).map_err(|e| e.to_string()))
            {
                // Verified when it was delivered against the chain's keys;
                // the file is the proxy's own (0600), so it is trusted here.
                Ok(delivery) => {
                    let kfrag = delivery.kfrag.clone().skip_verification();
                    store.index(HeldKfrag { delivery, kfrag });
                }
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            }
        }
        Ok((store, problems))
    }

    fn path(&self, grant_id: u64) -> PathBuf {
        self.dir.join(format!("{grant_id}.cbor"))
    }

    fn index(&self, held: HeldKfrag) {
        let d = &held.delivery;
        let (grant_id, pair) = (d.grant_id, (d.patient, d.grantee));
        let mut by_pair = self.by_pair.write();
        // A newer grant to the same grantee replaces the older one.
        if by_pair.get(&pair).is_none_or(|&id| id <= grant_id) {
            by_pair.insert(pair, grant_id);
        }
        self.by_grant.write().insert(grant_id, held);
    }

    /// Keeps a verified share (replacing the same grant's).
    pub fn keep(
        &self,
        delivery: KfragDelivery,
        kfrag: VerifiedKeyFrag,
    ) -> Result<(), KfragStoreError> {
        let known = self.by_grant.read().contains_key(&delivery.grant_id);
        if !known && self.len() >= self.limit {
            return Err(KfragStoreError::Full(self.limit));
        }
        let path = self.path(delivery.grant_id);
        let bytes = sharing::encode(&delivery).map_err(|e| KfragStoreError::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        glyco_contracts::files::write_atomically(&path, &bytes).map_err(|source| {
            KfragStoreError::Io {
                path: path.clone(),
                source,
            }
        })?;
        self.index(HeldKfrag { delivery, kfrag });
        Ok(())
    }

    /// Drops a grant's share; returns whether it was held.
    pub fn drop_grant(&self, grant_id: u64) -> Result<bool, KfragStoreError> {
        let Some(held) = self.by_grant.write().remove(&grant_id) else {
            return Ok(false);
        };
        let pair = (held.delivery.patient, held.delivery.grantee);
        let mut by_pair = self.by_pair.write();
        if by_pair.get(&pair) == Some(&grant_id) {
            by_pair.remove(&pair);
        }
        let path = self.path(grant_id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(source) => Err(KfragStoreError::Io { path, source }),
        }
    }

    /// The share for the patient's latest grant to `grantee`.
    pub fn for_pair(&self, patient: Address, grantee: Address) -> Option<HeldKfrag> {
        let id = *self.by_pair.read().get(&(patient, grantee))?;
        self.by_grant.read().get(&id).cloned()
    }

    pub fn get(&self, grant_id: u64) -> Option<HeldKfrag> {
        self.by_grant.read().get(&grant_id).cloned()
    }

    pub fn grant_ids(&self) -> Vec<u64> {
        self.by_grant.read().keys().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.by_grant.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use glyco_contracts::B256;
    use glyco_seal::sharing::{GrantTarget, make_kfrags};
    use glyco_seal::{PatientKey, PhysicianKey};

    use super::*;

    fn delivery(dir: &Path, grant_id: u64, grantee: Address) -> (KfragDelivery, VerifiedKeyFrag) {
        let (patient, _) = PatientKey::load_or_create(&dir.join("p")).unwrap();
        let (doctor, _) = PhysicianKey::load_or_create(&dir.join("d")).unwrap();
        let kfrag = make_kfrags(
            &patient,
            GrantTarget {
                grant_id,
                policy_id: B256::repeat_byte(1),
                grantee,
                grantee_key: doctor.public(),
            },
            1,
            1,
        )
        .unwrap()
        .remove(0);
        let d = KfragDelivery {
            patient: Address::repeat_byte(0xaa),
            hub: Address::repeat_byte(0xbb),
            grantee,
            grant_id,
            policy_id: B256::repeat_byte(1),
            proxy: Address::repeat_byte(0xcc),
            threshold: 1,
            shares: 1,
            verifying_key: patient
                .kfrag_signer()
                .verifying_key()
                .to_compressed_bytes()
                .into_vec(),
            kfrag: kfrag.clone().unverify(),
        };
        (d, kfrag)
    }

    #[test]
    fn kept_shares_survive_a_restart_are_0600_and_the_newest_grant_wins() {
        let dir = tempfile::tempdir().unwrap();
        let kfrags = dir.path().join("kfrags");
        let doctor = Address::repeat_byte(0xdd);
        let (store, problems) = KfragStore::open(&kfrags, 10).unwrap();
        assert!(problems.is_empty());
        let (first, k1) = delivery(dir.path(), 3, doctor);
        let (second, k2) = delivery(dir.path(), 5, doctor);
        store.keep(second, k2).unwrap();
        store.keep(first, k1).unwrap();
        assert_eq!(
            store
                .for_pair(Address::repeat_byte(0xaa), doctor)
                .unwrap()
                .delivery
                .grant_id,
            5
        );
        let mode = std::fs::metadata(kfrags.join("5.cbor"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(kfrags.join("9.cbor"), b"junk").unwrap();
        drop(store);

        let (store, problems) = KfragStore::open(&kfrags, 10).unwrap();
        assert_eq!(store.len(), 2);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(store.drop_grant(5).unwrap());
        assert!(!kfrags.join("5.cbor").exists());
        assert!(!store.drop_grant(5).unwrap());
        // The older grant's share is not promoted: the pair has no current share.
        assert!(store.for_pair(Address::repeat_byte(0xaa), doctor).is_none());
    }

    #[test]
    fn the_store_refuses_new_grants_beyond_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = KfragStore::open(&dir.path().join("k"), 1).unwrap();
        let (a, ka) = delivery(dir.path(), 1, Address::repeat_byte(1));
        let (b, kb) = delivery(dir.path(), 2, Address::repeat_byte(2));
        store.keep(a.clone(), ka.clone()).unwrap();
        assert!(matches!(store.keep(b, kb), Err(KfragStoreError::Full(1))));
        // The same grant again (a resend) still fits.
        store.keep(a, ka).unwrap();
    }
}
