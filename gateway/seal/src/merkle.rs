//! Merkle roots over batch hashes, for anchoring many batches in one
//! transaction, and the inclusion proof each batch keeps.
//!
//! BLAKE3 with domain separation (RFC 6962 style): a leaf is
//! `H(0x00 ‖ batch hash)`, a node `H(0x01 ‖ left ‖ right)`; an odd node at
//! the end of a level is carried up unchanged. A one-batch window's root is
//! therefore `H(0x00 ‖ hash)`, never the blob hash itself, so a leaf can
//! never pass for a node.

use serde::{Deserialize, Serialize};

use crate::BlobHash;

/// Most batches one root may cover (proofs stay at most 12 hashes).
pub const MAX_LEAVES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    #[error("a Merkle root needs 1 to {MAX_LEAVES} batches; got {0}")]
    LeafCount(usize),
    #[error("leaf index {index} is outside a tree of {leaves}")]
    Index { index: usize, leaves: usize },
    #[error("the proof has {got} sibling hashes; a tree of {leaves} needs {want} for leaf {index}")]
    ProofLength {
        index: usize,
        leaves: usize,
        got: usize,
        want: usize,
    },
}

fn leaf(hash: &BlobHash) -> BlobHash {
    let mut h = blake3::Hasher::new();
    h.update(&[0x00]);
    h.update(hash);
    *h.finalize().as_bytes()
}

fn node(left: &BlobHash, right: &BlobHash) -> BlobHash {
    let mut h = blake3::Hasher::new();
    h.update(&[0x01]);
    h.update(left);
    h.update(right);
    *h.finalize().as_bytes()
}

fn check_count(n: usize) -> Result<(), MerkleError> {
    if n == 0 || n > MAX_LEAVES {
        return Err(MerkleError::LeafCount(n));
    }
    Ok(())
}

fn next_level(level: &[BlobHash]) -> Vec<BlobHash> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [l, r] => node(l, r),
            [odd] => *odd,
            _ => unreachable!("chunks(2) yields one or two"),
        })
        .collect()
}

/// The root over `hashes`, in order.
pub fn merkle_root(hashes: &[BlobHash]) -> Result<BlobHash, MerkleError> {
    check_count(hashes.len())?;
    let mut level: Vec<BlobHash> = hashes.iter().map(leaf).collect();
    while level.len() > 1 {
        level = next_level(&level);
    }
    Ok(level[0])
}

/// Where a batch sits under a root, and the sibling hashes up to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    pub index: u32,
    pub leaves: u32,
    pub siblings: Vec<BlobHash>,
}

impl InclusionProof {
    /// The proofs of every leaf of the tree over `hashes`.
    pub fn all(hashes: &[BlobHash]) -> Result<Vec<InclusionProof>, MerkleError> {
        check_count(hashes.len())?;
        let leaves = hashes.len();
        let mut proofs: Vec<InclusionProof> = (0..leaves)
            .map(|i| InclusionProof {
                index: i as u32,
                leaves: leaves as u32,
                siblings: Vec::new(),
            })
            .collect();
        let mut level: Vec<BlobHash> = hashes.iter().map(leaf).collect();
        let mut positions: Vec<usize> = (0..leaves).collect();
        while level.len() > 1 {
            for (proof, pos) in proofs.iter_mut().zip(positions.iter_mut()) {
                let sibling = *pos ^ 1;
                if sibling < level.len() {
                    proof.siblings.push(level[sibling]);
                }
                *pos /= 2;
            }
            level = next_level(&level);
        }
        Ok(proofs)
    }

    /// The root this proof leads to from `hash`.
    pub fn root_from(&self, hash: &BlobHash) -> Result<BlobHash, MerkleError> {
        let leaves = self.leaves as usize;
        let index = self.index as usize;
        check_count(leaves)?;
        if index >= leaves {
            return Err(MerkleError::Index { index, leaves });
        }
        let mut acc = leaf(hash);
        let (mut pos, mut width, mut used) = (index, leaves, 0);
        while width > 1 {
            let sibling = pos ^ 1;
            if sibling < width {
                let Some(s) = self.siblings.get(used) else {
                    return Err(self.length_error(used + 1));
                };
                acc = if pos % 2 == 0 {
                    node(&acc, s)
                } else {
                    node(s, &acc)
                };
                used += 1;
            }
            pos /= 2;
            width = width.div_ceil(2);
        }
        if used != self.siblings.len() {
            return Err(self.length_error(used));
        }
        Ok(acc)
    }

    fn length_error(&self, want: usize) -> MerkleError {
        MerkleError::ProofLength {
            index: self.index as usize,
            leaves: self.leaves as usize,
            got: self.siblings.len(),
            want,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn hashes(n: usize) -> Vec<BlobHash> {
        (0..n)
            .map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes())
            .collect()
    }

    #[test]
    fn small_trees_by_hand() {
        let h = hashes(3);
        assert_eq!(merkle_root(&h[..1]).unwrap(), leaf(&h[0]));
        assert_eq!(
            merkle_root(&h[..2]).unwrap(),
            node(&leaf(&h[0]), &leaf(&h[1]))
        );
        // The odd third leaf is carried up.
        assert_eq!(
            merkle_root(&h).unwrap(),
            node(&node(&leaf(&h[0]), &leaf(&h[1])), &leaf(&h[2]))
        );
        assert_ne!(
            merkle_root(&h[..1]).unwrap(),
            h[0],
            "a leaf is not its hash"
        );
    }

    #[test]
    fn empty_and_oversized_trees_are_refused() {
        assert_eq!(merkle_root(&[]), Err(MerkleError::LeafCount(0)));
        assert_eq!(
            merkle_root(&hashes(MAX_LEAVES + 1)),
            Err(MerkleError::LeafCount(MAX_LEAVES + 1))
        );
    }

    proptest! {
        #[test]
        fn every_proof_leads_to_the_root_and_no_other_leaf_does(n in 1usize..70, pick in 0usize..70) {
            let h = hashes(n);
            let root = merkle_root(&h).unwrap();
            let proofs = InclusionProof::all(&h).unwrap();
            for (i, proof) in proofs.iter().enumerate() {
                prop_assert_eq!(proof.root_from(&h[i]).unwrap(), root);
            }
            let i = pick % n;
            let other = *blake3::hash(b"not in the tree").as_bytes();
            prop_assert_ne!(proofs[i].root_from(&other).unwrap(), root);
            // A proof moved to another index, or cut, does not verify.
            if n > 1 {
                let mut moved = proofs[i].clone();
                moved.index = ((i + 1) % n) as u32;
                prop_assert_ne!(moved.root_from(&h[i]).ok(), Some(root));
                let mut cut = proofs[i].clone();
                cut.siblings.pop();
                prop_assert!(cut.root_from(&h[i]).is_err());
            }
        }
    }

    #[test]
    fn proofs_with_junk_shapes_are_typed_errors() {
        let h = hashes(5);
        let mut proof = InclusionProof::all(&h).unwrap()[2].clone();
        proof.index = 9;
        assert!(matches!(
            proof.root_from(&h[2]),
            Err(MerkleError::Index { .. })
        ));
        proof.index = 2;
        proof.leaves = 0;
        assert!(matches!(
            proof.root_from(&h[2]),
            Err(MerkleError::LeafCount(0))
        ));
        proof.leaves = 5;
        proof.siblings.push([0; 32]);
        assert!(matches!(
            proof.root_from(&h[2]),
            Err(MerkleError::ProofLength { .. })
        ));
    }
}
