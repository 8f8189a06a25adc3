//! Merkle trees over the log as RFC 6962 (and RFC 9162, section 2.1)
//! defines them, so an auditor can prove that one event is in the log
//! (inclusion) or that an old head is a prefix of a new one (consistency)
//! with a few dozen hashes instead of the whole chain.
//!
//! Leaf `i` (from 0) is the event at position `i + 1`, its data the event's
//! chain hash, which covers every stored field and the chain before it.
//!
//! Proofs are built in two steps so storage is asked once: a *plan* names
//! the perfect subtrees (`Subtree { level, index }`: leaves
//! `index·2^level .. (index+1)·2^level`) a proof needs, the caller fetches
//! their hashes, and the plan assembles the proof from them.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(data);
    hasher.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// A perfect, aligned subtree: leaves `index << level .. (index + 1) << level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subtree {
    pub level: u32,
    pub index: u64,
}

impl Subtree {
    pub fn first_leaf(self) -> u64 {
        self.index << self.level
    }

    pub fn leaves(self) -> u64 {
        1 << self.level
    }
}

/// The right edge of a growing tree: the roots of its perfect subtrees,
/// largest first. Appending a leaf is O(log n) amortised O(1), and it
/// names every perfect subtree it completes, for storage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// (level, hash), levels strictly decreasing.
    peaks: Vec<(u32, Hash)>,
}

impl Frontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends the leaf with `data`, calling `completed` for each perfect
    /// subtree the append completes (the leaf itself first, at level 0).
    pub fn push(&mut self, data: &[u8], mut completed: impl FnMut(Subtree, &Hash)) {
        let mut hash = leaf_hash(data);
        let mut level = 0;
        let mut index = self.size;
        completed(Subtree { level, index }, &hash);
        while let Some(&(top, left)) = self.peaks.last() {
            if top != level {
                break;
            }
            self.peaks.pop();
            hash = node_hash(&left, &hash);
            level += 1;
            index >>= 1;
            completed(Subtree { level, index }, &hash);
        }
        self.peaks.push((level, hash));
        self.size += 1;
    }

    /// The tree head: RFC 6962's MTH of all leaves so far.
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(&(_, mut root)) = peaks.next() else {
            return empty_root();
        };
        for (_, left) in peaks {
            root = node_hash(left, &root);
        }
        root
    }

    /// The frontier as bytes to store: size, then each peak's level and hash.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = self.size.to_be_bytes().to_vec();
        for (level, hash) in &self.peaks {
            bytes.push(*level as u8);
            bytes.extend_from_slice(hash);
        }
        bytes
    }

    /// A stored frontier, checked for shape (its peaks must be those of
    /// its size).
    pub fn from_bytes(bytes: &[u8]) -> Option<Frontier> {
        let (size, rest) = bytes.split_first_chunk::<8>()?;
        let size = u64::from_be_bytes(*size);
        if rest.len() % 33 != 0 {
            return None;
        }
        let peaks: Vec<(u32, Hash)> = rest
            .chunks_exact(33)
            .map(|c| (u32::from(c[0]), c[1..].try_into().unwrap_or([0; 32])))
            .collect();
        let expected: Vec<u32> = (0..64).rev().filter(|l| size >> l & 1 == 1).collect();
        let levels: Vec<u32> = peaks.iter().map(|(l, _)| *l).collect();
        (levels == expected).then_some(Frontier { size, peaks })
    }
}

/// How a proof is put together from perfect subtrees: each step is the
/// hash of a range of leaves, itself the fold of its perfect subtrees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    steps: Vec<Vec<Subtree>>,
}

impl Plan {
    /// Every perfect subtree the proof needs, once each.
    pub fn needs(&self) -> Vec<Subtree> {
        let mut all: Vec<Subtree> = self.steps.iter().flatten().copied().collect();
        all.sort();
        all.dedup();
        all
    }

    /// The proof, given the hash of each subtree [`Plan::needs`] named.
    /// `None` when one is missing.
    pub fn assemble(&self, hash_of: impl Fn(Subtree) -> Option<Hash>) -> Option<Vec<Hash>> {
        self.steps
            .iter()
            .map(|parts| {
                let mut hashes = parts.iter().rev().map(|s| hash_of(*s));
                let mut acc = hashes.next()??;
                for left in hashes {
                    acc = node_hash(&left?, &acc);
                }
                Some(acc)
            })
            .collect()
    }
}

/// Largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The perfect subtrees whose fold is MTH(D[start:end]), left to right.
/// `start` is aligned to a power of two at least `end - start`, as every
/// range an RFC 6962 proof names is.
pub fn decompose(mut start: u64, end: u64) -> Vec<Subtree> {
    let mut parts = Vec::new();
    while start < end {
        let mut level = 0;
        while level < 63 && start % (2 << level) == 0 && start + (2 << level) <= end {
            level += 1;
        }
        parts.push(Subtree {
            level,
            index: start >> level,
        });
        start += 1 << level;
    }
    parts
}

/// The plan of the audit path of leaf `index` in the tree of `size`
/// leaves (RFC 6962 PATH), leaf-side first. `None` unless `index < size`.
pub fn inclusion_plan(index: u64, size: u64) -> Option<Plan> {
    if index >= size {
        return None;
    }
    let mut steps = Vec::new();
    path(index, 0, size, &mut steps);
    steps.reverse();
    Some(Plan { steps })
}

/// PATH over leaves `offset .. offset + n`, outermost step first.
fn path(m: u64, offset: u64, n: u64, steps: &mut Vec<Vec<Subtree>>) {
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        steps.push(decompose(offset + k, offset + n));
        path(m, offset, k, steps);
    } else {
        steps.push(decompose(offset, offset + k));
        path(m - k, offset + k, n - k, steps);
    }
}

/// The plan of the proof that the tree of `old` leaves is a prefix of the
/// tree of `new` leaves (RFC 6962 PROOF). `None` unless `0 < old <= new`.
pub fn consistency_plan(old: u64, new: u64) -> Option<Plan> {
    if old == 0 || old > new {
        return None;
    }
    let mut steps = Vec::new();
    subproof(old, 0, new, true, &mut steps);
    steps.reverse();
    Some(Plan { steps })
}

/// SUBPROOF over leaves `offset .. offset + n`, outermost step first.
fn subproof(m: u64, offset: u64, n: u64, whole: bool, steps: &mut Vec<Vec<Subtree>>) {
    if m == n {
        if !whole {
            steps.push(decompose(offset, offset + n));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        steps.push(decompose(offset + k, offset + n));
        subproof(m, offset, k, whole, steps);
    } else {
        steps.push(decompose(offset, offset + k));
        subproof(m - k, offset + k, n - k, false, steps);
    }
}

/// Checks an audit path (RFC 9162, 2.1.3.2): that the leaf with hash
/// `leaf` at `index` is in the tree of `size` leaves whose head is `root`.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && &r == root
}

/// Checks a consistency proof (RFC 9162, 2.1.4.2): that the tree of `old`
/// leaves with head `old_root` is a prefix of the tree of `new` leaves with
/// head `new_root`.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old == 0 || old > new {
        return false;
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    let mut path: Vec<Hash> = proof.to_vec();
    // When the old tree is a perfect subtree of the new one, its root is
    // the first node of the path.
    if old.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    &fr == old_root && &sr == new_root && s == 0
}

/// MTH over the leaves of `data`, computed directly: what tests and small
/// offline checks compare against.
pub fn root_of(data: &[&[u8]]) -> Hash {
    let mut frontier = Frontier::default();
    for d in data {
        frontier.push(d, |_, _| {});
    }
    frontier.root()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The reference leaves of RFC 6962's test tree (certificate
    /// transparency), and the roots of its first 1 to 8 leaves.
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn leaves(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| match LEAVES.get(i) {
                Some(hex) => hex::decode(hex).expect("hex"),
                None => (i as u64).to_be_bytes().to_vec(),
            })
            .collect()
    }

    /// Every perfect subtree's hash for a tree of `n` leaves.
    fn subtrees(data: &[Vec<u8>]) -> HashMap<Subtree, Hash> {
        let mut all = HashMap::new();
        let mut frontier = Frontier::default();
        for d in data {
            frontier.push(d, |s, h| {
                all.insert(s, *h);
            });
        }
        all
    }

    fn hex32(s: &str) -> Hash {
        hex::decode(s).expect("hex").try_into().expect("32 bytes")
    }

    #[test]
    fn roots_match_the_rfc_6962_reference_tree() {
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let data = leaves(8);
        for n in 1..=8 {
            let refs: Vec<&[u8]> = data[..n].iter().map(Vec::as_slice).collect();
            assert_eq!(hex::encode(root_of(&refs)), ROOTS[n - 1], "tree size {n}");
        }
    }

    #[test]
    fn proofs_match_the_rfc_6962_reference_proofs() {
        let data = leaves(8);
        let nodes = subtrees(&data);
        let inclusion = inclusion_plan(0, 8)
            .expect("plan")
            .assemble(|s| nodes.get(&s).copied())
            .expect("proof");
        assert_eq!(
            inclusion,
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]
            .map(hex32)
        );
        let cases: [(u64, u64, &[&str]); 3] = [
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (old, new, expected) in cases {
            let proof = consistency_plan(old, new)
                .expect("plan")
                .assemble(|s| nodes.get(&s).copied())
                .expect("proof");
            let expected: Vec<Hash> = expected.iter().map(|h| hex32(h)).collect();
            assert_eq!(proof, expected, "consistency {old} -> {new}");
        }
    }

    #[test]
    fn every_proof_up_to_70_leaves_verifies_and_no_altered_one_does() {
        let data = leaves(70);
        let nodes = subtrees(&data);
        let roots: Vec<Hash> = (0..=70)
            .map(|n| {
                let refs: Vec<&[u8]> = data[..n].iter().map(Vec::as_slice).collect();
                root_of(&refs)
            })
            .collect();
        for size in 1..=70u64 {
            let root = roots[size as usize];
            for index in 0..size {
                let leaf = leaf_hash(&data[index as usize]);
                let proof = inclusion_plan(index, size)
                    .expect("plan")
                    .assemble(|s| nodes.get(&s).copied())
                    .expect("proof");
                assert!(
                    verify_inclusion(index, size, &leaf, &proof, &root),
                    "{index} in {size}"
                );
                assert!(!verify_inclusion(
                    index,
                    size,
                    &leaf_hash(b"forged"),
                    &proof,
                    &root
                ));
                if let Some(first) = proof.first() {
                    let mut bent = proof.clone();
                    bent[0] = node_hash(first, first);
                    assert!(!verify_inclusion(index, size, &leaf, &bent, &root));
                }
                // The leaf's place is part of the proof: another index
                // of the same tree does not verify.
                if size > 1 {
                    let other = (index + 1) % size;
                    if leaf_hash(&data[other as usize]) != leaf {
                        assert!(!verify_inclusion(other, size, &leaf, &proof, &root));
                    }
                }
            }
            for old in 1..=size {
                let proof = consistency_plan(old, size)
                    .expect("plan")
                    .assemble(|s| nodes.get(&s).copied())
                    .expect("proof");
                let (old_root, new_root) = (roots[old as usize], root);
                assert!(
                    verify_consistency(old, size, &old_root, &new_root, &proof),
                    "{old} -> {size}"
                );
                if old < size {
                    assert!(!verify_consistency(
                        old,
                        size,
                        &leaf_hash(b"x"),
                        &new_root,
                        &proof
                    ));
                    assert!(!verify_consistency(
                        old,
                        size,
                        &old_root,
                        &leaf_hash(b"x"),
                        &proof
                    ));
                }
            }
        }
    }

    #[test]
    fn a_frontier_survives_storage_and_refuses_a_misshapen_one() {
        let data = leaves(13);
        let mut frontier = Frontier::default();
        for d in &data {
            frontier.push(d, |_, _| {});
        }
        let again = Frontier::from_bytes(&frontier.to_bytes()).expect("stored");
        assert_eq!(again, frontier);
        assert_eq!(again.root(), frontier.root());
        let mut bytes = frontier.to_bytes();
        bytes[7] = 12; // another size, the same peaks
        assert!(Frontier::from_bytes(&bytes).is_none());
        assert!(Frontier::from_bytes(&[1, 2, 3]).is_none());
    }

    #[test]
    fn a_proof_needs_a_logarithmic_number_of_subtrees() {
        let size = 1_000_000;
        let plan = inclusion_plan(123_456, size).expect("plan");
        assert!(plan.needs().len() <= 2 * 20, "{}", plan.needs().len());
        let plan = consistency_plan(654_321, size).expect("plan");
        assert!(plan.needs().len() <= 2 * 20, "{}", plan.needs().len());
    }
}
