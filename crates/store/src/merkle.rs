//! The Merkle tree over the log, kept beside it: leaves are the events'
//! chain hashes, checked against the events as they are indexed, and the
//! roots of perfect subtrees of 16 leaves or more are stored, with the
//! frontier the index resumes from. Proofs read what they need in a query
//! or two and recompute the smaller subtrees from the events' hashes, so
//! they verify only against a head of the log as it really is.

use std::collections::HashMap;
use std::time::Duration;

use fangkong_merkle::{decompose, Frontier, Hash, Subtree};
use tokio::sync::watch;

use crate::{ChainBreak, EventStore, LogFilter, StoreError};

/// Subtrees this high and up are stored; lower ones are recomputed.
pub const STORED_LEVEL: u32 = 4;

/// Events read per step of the index.
const PAGE: usize = 1000;

/// A backlog is stored every this many events, or this often.
const STORE_EVERY_EVENTS: u64 = 20_000;
const STORE_EVERY: Duration = Duration::from_secs(1);

/// How long the index lets appends gather before indexing them: what a
/// signed head may lag the log by.
const COALESCE: Duration = Duration::from_millis(250);

/// The tree over the first `size` events: its root, and the chain hash of
/// the event at `size` (which the root covers, with all before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
    pub chain_hash: Hash,
}

impl TreeHead {
    pub fn empty() -> TreeHead {
        TreeHead {
            size: 0,
            root: fangkong_merkle::empty_root(),
            chain_hash: crate::Head::GENESIS.hash,
        }
    }
}

/// Seals the stored frontier, under a key derived from a secret kept
/// outside the database (the signing key): the index resumes only over a
/// frontier it sealed itself. One forged or patched in the database is
/// not resumed over; the tree is rebuilt from the log instead.
#[derive(Clone)]
pub struct FrontierSeal([u8; 32]);

impl std::fmt::Debug for FrontierSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrontierSeal(..)")
    }
}

impl FrontierSeal {
    /// Derived from `secret` (the signing key's seed), never equal to it.
    pub fn from_secret(secret: &[u8]) -> FrontierSeal {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(b"fangkong.merkle-frontier-seal.v1\0");
        hasher.update(secret);
        FrontierSeal(hasher.finalize().into())
    }

    fn mac(&self, frontier: &[u8], chain_hash: &Hash) -> hmac::Hmac<sha2::Sha256> {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(&(frontier.len() as u64).to_be_bytes());
        mac.update(frontier);
        mac.update(chain_hash);
        mac
    }

    fn seal(&self, frontier: &[u8], chain_hash: &Hash) -> Vec<u8> {
        use hmac::Mac;
        self.mac(frontier, chain_hash)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    fn holds(&self, frontier: &[u8], chain_hash: &Hash, seal: &[u8]) -> bool {
        use hmac::Mac;
        self.mac(frontier, chain_hash).verify_slice(seal).is_ok()
    }
}

fn hash32(bytes: &[u8], what: &str) -> Result<Hash, StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt {
        position: 0,
        reason: format!("{what} is not 32 bytes"),
    })
}

impl EventStore {
    /// The stored frontier and the chain hash at its size, if any; when
    /// `seal` is given, only one it sealed. `Err` names why a stored one is
    /// not used.
    pub async fn merkle_frontier(
        &self,
        seal: Option<&FrontierSeal>,
    ) -> Result<Option<Result<(Frontier, Hash), String>>, StoreError> {
        let stored = dispatch!(&self.inner.backend, b => b.load_merkle().await)?;
        let Some((bytes, chain_hash, sealed)) = stored else {
            return Ok(None);
        };
        let Some(frontier) = Frontier::from_bytes(&bytes) else {
            return Ok(Some(Err("the stored Merkle frontier is misshapen".into())));
        };
        let Ok(chain_hash) = hash32(&chain_hash, "the frontier's chain hash") else {
            return Ok(Some(Err(
                "the stored frontier's chain hash is misshapen".into()
            )));
        };
        if let Some(seal) = seal {
            if !sealed.is_some_and(|s| seal.holds(&bytes, &chain_hash, &s)) {
                return Ok(Some(Err(
                    "the stored Merkle frontier is not sealed by this server's key".into(),
                )));
            }
        }
        Ok(Some(Ok((frontier, chain_hash))))
    }

    /// Stores completed subtrees (those of [`STORED_LEVEL`] and up) and the
    /// frontier after them, in one transaction. A frontier older than the
    /// stored one is not written over it.
    pub async fn save_merkle(
        &self,
        completed: &[(Subtree, Hash)],
        frontier: &Frontier,
        chain_hash: &Hash,
        seal: Option<&FrontierSeal>,
    ) -> Result<(), StoreError> {
        let nodes: Vec<(u32, u64, Hash)> = completed
            .iter()
            .filter(|(s, _)| s.level >= STORED_LEVEL)
            .map(|(s, h)| (s.level, s.index, *h))
            .collect();
        let bytes = frontier.to_bytes();
        let sealed = seal.map(|s| s.seal(&bytes, chain_hash));
        dispatch!(&self.inner.backend, b => b.save_merkle(&nodes, frontier.size(), &bytes, chain_hash, sealed.as_deref()).await)
    }

    /// The hash of each subtree in `needs`: stored ones read, smaller ones
    /// recomputed from the events' chain hashes. A subtree beyond the log,
    /// or not stored yet, is left out.
    pub async fn subtree_hashes(
        &self,
        needs: &[Subtree],
    ) -> Result<HashMap<Subtree, Hash>, StoreError> {
        let mut found = HashMap::new();
        let stored: Vec<(u32, u64)> = needs
            .iter()
            .filter(|s| s.level >= STORED_LEVEL)
            .map(|s| (s.level, s.index))
            .collect();
        if !stored.is_empty() {
            for (level, index, hash) in
                dispatch!(&self.inner.backend, b => b.merkle_nodes(&stored).await)?
            {
                found.insert(Subtree { level, index }, hash32(&hash, "a Merkle node")?);
            }
        }
        for subtree in needs.iter().filter(|s| s.level < STORED_LEVEL) {
            let first = subtree.first_leaf() + 1;
            let last = first + subtree.leaves() - 1;
            let rows = dispatch!(&self.inner.backend, b => b.chain_hashes(first, last).await)?;
            if rows.len() as u64 != subtree.leaves() {
                continue;
            }
            let mut frontier = Frontier::default();
            for (_, hash) in rows {
                frontier.push(&hash, |_, _| {});
            }
            found.insert(*subtree, frontier.root());
        }
        Ok(found)
    }

    /// The stored chain hashes of positions `from ..= to`.
    pub async fn chain_hashes(&self, from: u64, to: u64) -> Result<Vec<(u64, Hash)>, StoreError> {
        dispatch!(&self.inner.backend, b => b.chain_hashes(from, to).await)?
            .into_iter()
            .map(|(position, hash)| Ok((position, hash32(&hash, "a chain hash")?)))
            .collect()
    }

    /// The root of the tree over the first `size` events, from storage.
    pub async fn tree_root(&self, size: u64) -> Result<Option<Hash>, StoreError> {
        if size == 0 {
            return Ok(Some(fangkong_merkle::empty_root()));
        }
        let parts = decompose(0, size);
        let hashes = self.subtree_hashes(&parts).await?;
        let mut folded = parts.iter().rev().map(|s| hashes.get(s).copied());
        let Some(Some(mut root)) = folded.next() else {
            return Ok(None);
        };
        for left in folded {
            let Some(left) = left else { return Ok(None) };
            root = fangkong_merkle::node_hash(&left, &root);
        }
        Ok(Some(root))
    }

    /// The audit path of the event at `position` in the tree of `size`
    /// events. `None` when the position is not in that tree or the tree is
    /// not indexed that far.
    pub async fn inclusion_proof(
        &self,
        position: u64,
        size: u64,
    ) -> Result<Option<Vec<Hash>>, StoreError> {
        let Some(plan) = position
            .checked_sub(1)
            .and_then(|index| fangkong_merkle::inclusion_plan(index, size))
        else {
            return Ok(None);
        };
        let hashes = self.subtree_hashes(&plan.needs()).await?;
        Ok(plan.assemble(|s| hashes.get(&s).copied()))
    }

    /// The proof that the tree of `old` events is a prefix of the tree of
    /// `new` events. `None` unless `0 < old <= new` and indexed that far.
    pub async fn consistency_proof(
        &self,
        old: u64,
        new: u64,
    ) -> Result<Option<Vec<Hash>>, StoreError> {
        let Some(plan) = fangkong_merkle::consistency_plan(old, new) else {
            return Ok(None);
        };
        let hashes = self.subtree_hashes(&plan.needs()).await?;
        Ok(plan.assemble(|s| hashes.get(&s).copied()))
    }

    /// Up to `limit` events after `after`, each checked against the chain
    /// (`previous` is the hash at `after`): their chain hashes up to the
    /// first break, and the break.
    pub async fn verified_chain(
        &self,
        after: u64,
        previous: Hash,
        limit: usize,
    ) -> Result<(Vec<(u64, Hash)>, Option<ChainBreak>), StoreError> {
        let page = dispatch!(&self.inner.backend, b => b.read_all(after, limit, &LogFilter::default()).await)?;
        let mut verified = Vec::with_capacity(page.len());
        let (mut expected, mut previous) = (after + 1, previous);
        for row in page {
            if row.position != expected {
                return Ok((
                    verified,
                    Some(ChainBreak::MissingPosition {
                        expected,
                        found: row.position,
                    }),
                ));
            }
            let stored = row.stored_hash();
            if stored != Some(row.recomputed_hash(&previous)) {
                return Ok((
                    verified,
                    Some(ChainBreak::HashMismatch {
                        position: row.position,
                    }),
                ));
            }
            previous = stored.unwrap_or_default();
            verified.push((row.position, previous));
            expected += 1;
        }
        Ok((verified, None))
    }
}

/// Where the index stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexState {
    pub head: TreeHead,
    /// Why the index stopped: the log no longer matches its chain, or is
    /// not the log the stored tree was built over.
    pub stalled: Option<String>,
    /// Whether the stored frontier has been loaded.
    pub ready: bool,
}

/// Keeps the tree over the log as it grows. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MerkleIndex {
    state: watch::Receiver<IndexState>,
}

impl MerkleIndex {
    /// Starts indexing in the background: loads the stored frontier
    /// (checked against the log), then follows the log until `shutdown`.
    /// Until it has loaded, its state says it is not ready.
    pub fn spawn(
        store: EventStore,
        seal: Option<FrontierSeal>,
        mut shutdown: watch::Receiver<bool>,
    ) -> MerkleIndex {
        let (sender, receiver) = watch::channel(IndexState {
            head: TreeHead::empty(),
            stalled: None,
            ready: false,
        });
        tokio::spawn(async move {
            let mut indexer = loop {
                match Indexer::resume(&store, seal.clone()).await {
                    Ok(indexer) => break indexer,
                    Err(error) => {
                        tracing::warn!(%error, "the Merkle index waits for the store");
                        tokio::select! {
                            _ = shutdown.changed() => return,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
            };
            let mut heads = store.subscribe();
            loop {
                if indexer.stalled.is_none() {
                    match indexer.step(&store).await {
                        // A full page: more is waiting, go on at once.
                        Ok(indexed) if indexed == PAGE => {
                            sender.send_replace(indexer.state());
                            continue;
                        }
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(%error, "the Merkle index waits for the store")
                        }
                    }
                }
                sender.send_replace(indexer.state());
                tokio::select! {
                    _ = heads.changed() => {}
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                if *shutdown.borrow() {
                    return;
                }
                // Appends come in runs: index them together, one stored
                // step for many, instead of one transaction beside each
                // append (a lone writer would pay for two).
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(COALESCE) => {}
                }
            }
        });
        MerkleIndex { state: receiver }
    }

    pub fn state(&self) -> IndexState {
        self.state.borrow().clone()
    }

    /// Waits (up to `limit`) until the tree covers `size` events.
    pub async fn wait_for(&self, size: u64, limit: Duration) -> IndexState {
        let mut state = self.state.clone();
        let _ = tokio::time::timeout(
            limit,
            state.wait_for(|s| s.ready && (s.head.size >= size || s.stalled.is_some())),
        )
        .await;
        self.state()
    }
}

/// The index's working state: the frontier and the chain hash at its size.
#[derive(Debug)]
pub struct Indexer {
    frontier: Frontier,
    chain_hash: Hash,
    stalled: Option<String>,
    /// Completed subtrees not stored yet, and the head as last stored: what
    /// the index vouches for (proofs need the stored subtrees).
    pending: Vec<(Subtree, Hash)>,
    stored: TreeHead,
    stored_at: std::time::Instant,
    seal: Option<FrontierSeal>,
}

impl Indexer {
    /// From the stored frontier, after checking that the log still holds
    /// the chain hash it was built over; from the start otherwise.
    ///
    /// With a `seal`, a stored frontier it did not seal (forged, patched,
    /// misshapen) is not resumed over: it is forgotten and the tree rebuilt
    /// from the log, every event checked on the way.
    pub async fn resume(
        store: &EventStore,
        seal: Option<FrontierSeal>,
    ) -> Result<Indexer, StoreError> {
        let fresh =
            |seal| Indexer::from(Frontier::default(), crate::Head::GENESIS.hash, None, seal);
        let (frontier, chain_hash) = match store.merkle_frontier(seal.as_ref()).await? {
            None => return Ok(fresh(seal)),
            Some(Ok(stored)) => stored,
            Some(Err(why)) => {
                tracing::error!(%why, "the Merkle tree is rebuilt from the log");
                dispatch!(&store.inner.backend, b => b.clear_merkle().await)?;
                return Ok(fresh(seal));
            }
        };
        let stored = store.hash_at(frontier.size()).await?;
        let stalled = (stored != Some(chain_hash)).then(|| {
            format!(
                "the log at position {} is not the log the Merkle tree was built over \
                 (rewritten, re-chained or cut short)",
                frontier.size()
            )
        });
        Ok(Indexer::from(frontier, chain_hash, stalled, seal))
    }

    fn from(
        frontier: Frontier,
        chain_hash: Hash,
        stalled: Option<String>,
        seal: Option<FrontierSeal>,
    ) -> Indexer {
        let stored = TreeHead {
            size: frontier.size(),
            root: frontier.root(),
            chain_hash,
        };
        Indexer {
            frontier,
            chain_hash,
            stalled,
            pending: Vec::new(),
            stored,
            stored_at: std::time::Instant::now(),
            seal,
        }
    }

    /// The head as stored: the one signed, and the largest tree proofs
    /// can be built for.
    pub fn state(&self) -> IndexState {
        IndexState {
            head: self.stored,
            stalled: self.stalled.clone(),
            ready: true,
        }
    }

    /// Stores what was indexed since the last time, with the frontier.
    pub async fn flush(&mut self, store: &EventStore) -> Result<(), StoreError> {
        if self.frontier.size() == self.stored.size {
            return Ok(());
        }
        store
            .save_merkle(
                &self.pending,
                &self.frontier,
                &self.chain_hash,
                self.seal.as_ref(),
            )
            .await?;
        self.pending.clear();
        self.stored = TreeHead {
            size: self.frontier.size(),
            root: self.frontier.root(),
            chain_hash: self.chain_hash,
        };
        self.stored_at = std::time::Instant::now();
        Ok(())
    }

    /// Indexes the next page of events; stores what it completed when
    /// enough has gathered (a long backlog is stored in large steps, not
    /// one transaction a page). Answers how many it indexed.
    pub async fn step(&mut self, store: &EventStore) -> Result<usize, StoreError> {
        let (verified, broken) = store
            .verified_chain(self.frontier.size(), self.chain_hash, PAGE)
            .await?;
        let pending = &mut self.pending;
        for (_, hash) in &verified {
            self.frontier.push(hash, |subtree, node| {
                if subtree.level >= STORED_LEVEL {
                    pending.push((subtree, *node));
                }
            });
            self.chain_hash = *hash;
        }
        let gathered = self.frontier.size() - self.stored.size;
        if verified.len() < PAGE
            || gathered >= STORE_EVERY_EVENTS
            || self.stored_at.elapsed() >= STORE_EVERY
        {
            self.flush(store).await?;
        }
        if let Some(broken) = broken {
            tracing::error!(position = broken.position(), %broken, "the Merkle index stops at a break in the chain");
            self.stalled = Some(format!(
                "the chain breaks at position {}: {broken}",
                broken.position()
            ));
        }
        Ok(verified.len())
    }

    /// Indexes up to the log's head (what a command-line tool does).
    pub async fn catch_up(&mut self, store: &EventStore) -> Result<IndexState, StoreError> {
        while self.stalled.is_none() && self.step(store).await? > 0 {}
        self.flush(store).await?;
        Ok(self.state())
    }
}
