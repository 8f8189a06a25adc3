//! The auditor's offline check of a kept signed head: against the running
//! service (with nothing but its public key) or against the database
//! itself, for the log and, where the head signed it, the personal data
//! access record beside it. Exits non-zero on any failure and says which.

use std::path::Path;

use fangkong_heads::{PublicKey, SignedHead};
use fangkong_merkle::{leaf_hash, verify_consistency, verify_inclusion};
use fangkong_store::EventStore;

/// What a check found wrong.
#[derive(Debug, thiserror::Error)]
pub enum CheckFailure {
    #[error("the kept head: {0}")]
    KeptHead(String),
    #[error("the service's head: {0}")]
    ServiceHead(String),
    #[error("the log is shorter ({now} events) than the kept head ({kept}): it was cut short")]
    CutShort { kept: u64, now: u64 },
    #[error("the consistency proof from {from} to {to} does not verify: the log's first {from} events are not the ones the kept head signed")]
    Inconsistent { from: u64, to: u64 },
    #[error(
        "the inclusion proof of the event at {position} does not verify against the head of {size}"
    )]
    NotIncluded { position: u64, size: u64 },
    #[error("the chain breaks at position {position}: {reason}")]
    ChainBroken { position: u64, reason: String },
    #[error("the log's first {size} events are not those the head signed (another Merkle root or chain hash): rewritten and re-chained")]
    Rewritten { size: u64 },
    #[error("the service answered {0}")]
    Service(String),
    #[error("the personal data access record ends at row {now}, before the kept head's row {kept}: rows were cut off its end")]
    AccessCutShort { kept: u64, now: u64 },
    #[error(
        "the personal data access record's chain breaks at row {seq}: a row was edited or removed"
    )]
    AccessBroken { seq: u64 },
    #[error("the personal data access record's row {seq} is not the one {whose} signed: rewritten and re-chained")]
    AccessRewritten { seq: u64, whose: &'static str },
}

/// Checks rows of the access record, oldest first from row 1, as they come
/// (from the service's pages or the store): each must sit at the next
/// `seq` and carry the hash of its fields after the previous row's; the
/// row each head names (the kept head's, and the service's current head's
/// when checking against the service) must carry the hash it signed.
struct AccessWalk {
    /// The rows the heads signed: (seq, hash, whose head).
    signed: Vec<(u64, [u8; 32], &'static str)>,
    previous: [u8; 32],
    next: u64,
}

impl AccessWalk {
    fn new(signed: Vec<(u64, [u8; 32], &'static str)>) -> AccessWalk {
        AccessWalk {
            signed,
            previous: [0; 32],
            next: 1,
        }
    }

    /// The last row to reach.
    fn last(&self) -> u64 {
        self.signed.iter().map(|(seq, ..)| *seq).max().unwrap_or(0)
    }

    /// Takes one row; `Ok(true)` once the last signed row was reached.
    fn take(
        &mut self,
        seq: u64,
        hash: [u8; 32],
        note: &fangkong_store::NewDisclosure,
    ) -> Result<bool, CheckFailure> {
        if seq != self.next || hash != fangkong_store::disclosure_link(&self.previous, seq, note) {
            return Err(CheckFailure::AccessBroken { seq: self.next });
        }
        self.previous = hash;
        self.next += 1;
        for &(signed_seq, signed_hash, whose) in &self.signed {
            if seq == signed_seq && hash != signed_hash {
                return Err(CheckFailure::AccessRewritten { seq, whose });
            }
        }
        Ok(seq >= self.last())
    }

    /// The rows ended: fine only if every signed row was reached.
    fn ended(&self) -> Result<String, CheckFailure> {
        let last = self.last();
        if self.next <= last {
            let kept = self
                .signed
                .iter()
                .filter(|(seq, ..)| *seq >= self.next)
                .map(|(seq, ..)| *seq)
                .min()
                .unwrap_or(last);
            return Err(CheckFailure::AccessCutShort {
                kept,
                now: self.next - 1,
            });
        }
        Ok(format!(
            "the personal data access record's chain recomputes from row 1 to row {last}, each head's row with the hash it signed"
        ))
    }
}

/// A kept head: a signed head as `GET /v1/audit/head` answers it in
/// `signed`, or that whole answer.
pub fn read_kept(path: &Path) -> anyhow::Result<SignedHead> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the kept head {}: {e}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("the kept head {} is not JSON: {e}", path.display()))?;
    let head = value.get("signed").cloned().unwrap_or(value);
    serde_json::from_value(head).map_err(|e| {
        anyhow::anyhow!(
            "the kept head {} is not a signed head (tree_size, root_hash, chain_hash, timestamp, key_id, signature): {e}",
            path.display()
        )
    })
}

/// Checks a head against the key it names, among the keys the auditor
/// trusts (the current one and those it replaced).
fn checked(
    head: &SignedHead,
    keys: &[PublicKey],
    whose: fn(String) -> CheckFailure,
) -> Result<([u8; 32], [u8; 32]), CheckFailure> {
    let key = keys
        .iter()
        .find(|k| k.key_id() == head.key_id)
        .or(keys.first())
        .ok_or_else(|| whose("no public key to check it with".into()))?;
    head.verify(key).map_err(|e| whose(e.to_string()))?;
    let root = head.root().map_err(|e| whose(e.to_string()))?;
    let chain = head.chain().map_err(|e| whose(e.to_string()))?;
    Ok((root, chain))
}

/// Against the service: its current head must be signed by `key` and
/// extend the kept one (consistency proof), and each of `events` must be in
/// it (inclusion proofs).
pub async fn against_service(
    kept: &SignedHead,
    keys: &[PublicKey],
    url: &str,
    token: &str,
    events: &[u64],
) -> Result<Vec<String>, CheckFailure> {
    let (kept_root, kept_chain) = checked(kept, keys, CheckFailure::KeptHead)?;
    // A service that stalls is a failure to check, not a wait forever.
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| CheckFailure::Service(e.to_string()))?;
    let base = url.trim_end_matches('/');
    let get = |path: String| {
        let request = client.get(format!("{base}{path}")).bearer_auth(token);
        async move {
            let response = request
                .send()
                .await
                .map_err(|e| CheckFailure::Service(e.to_string()))?;
            let status = response.status();
            let body: serde_json::Value = response
                .json()
                .await
                .map_err(|e| CheckFailure::Service(format!("{status}, not JSON: {e}")))?;
            if !status.is_success() {
                return Err(CheckFailure::Service(format!("{status}: {body}")));
            }
            Ok(body)
        }
    };
    // The service recomputes its chain from its events: an edit in place
    // (which leaves the stored hashes, and so the tree, alone) shows here.
    let verified = get("/v1/audit/verify".into()).await?;
    if verified["intact"] != true {
        return Err(CheckFailure::ChainBroken {
            position: verified["first_break"]["position"]
                .as_u64()
                .unwrap_or_default(),
            reason: verified["first_break"]["reason"]
                .as_str()
                .unwrap_or("the service's verification failed")
                .to_owned(),
        });
    }
    let answer = get("/v1/audit/head".into()).await?;
    let current: SignedHead = serde_json::from_value(answer["signed"].clone()).map_err(|_| {
        CheckFailure::ServiceHead(format!(
            "no signed head ({})",
            answer["unsigned_because"]
                .as_str()
                .unwrap_or("no reason given")
        ))
    })?;
    let (current_root, current_chain) = checked(&current, keys, CheckFailure::ServiceHead)?;
    let mut said = vec![format!(
        "the service's head: {} events, root {}, signed by {}",
        current.tree_size, current.root_hash, current.key_id
    )];
    if current.tree_size < kept.tree_size {
        return Err(CheckFailure::CutShort {
            kept: kept.tree_size,
            now: current.tree_size,
        });
    }
    let (from, to) = (kept.tree_size, current.tree_size);
    let consistent = if from == 0 {
        true
    } else {
        let proof =
            hashes(&get(format!("/v1/audit/consistency?from={from}&to={to}")).await?["proof"])?;
        verify_consistency(from, to, &kept_root, &current_root, &proof)
    };
    if !consistent {
        return Err(CheckFailure::Inconsistent { from, to });
    }
    said.push(format!(
        "consistent: the log of {to} events extends the kept head of {from}"
    ));
    // The roots must be over the chain the heads name: the last leaf of
    // each tree is the chain hash its head signed (a tree kept over a
    // rewritten, re-chained log would carry another).
    for (size, chain) in [(from, kept_chain), (to, current_chain)] {
        if size == 0 {
            continue;
        }
        let answer = get(format!(
            "/v1/audit/inclusion?position={size}&tree_size={to}"
        ))
        .await?;
        let leaf = hashes(&serde_json::json!([answer["chain_hash"]]))?;
        let path = hashes(&answer["audit_path"])?;
        let tied = leaf.first() == Some(&chain)
            && verify_inclusion(size - 1, to, &leaf_hash(&chain), &path, &current_root);
        if !tied {
            return Err(CheckFailure::Rewritten { size });
        }
    }
    // And the chain the service holds today, recomputed from position 1,
    // reaches the kept head's chain hash at its size.
    if from > 0 {
        let proof = get(format!(
            "/v1/audit/proof?position={from}&hash={}",
            kept.chain_hash
        ))
        .await?;
        if proof["extends"] != true {
            return Err(match proof["first_break"]["position"].as_u64() {
                Some(position) => CheckFailure::ChainBroken {
                    position,
                    reason: proof["first_break"]["reason"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                },
                None => CheckFailure::Rewritten { size: from },
            });
        }
        said.push(format!(
            "extends: the chain recomputed from position 1 reaches the kept head's chain hash at {from}"
        ));
    }
    if let Some(kept_access) = kept
        .access()
        .map_err(|e| CheckFailure::KeptHead(e.to_string()))?
    {
        // Today's head must sign the record too, no shorter than the kept
        // one and on the same rows: it is the head the auditor keeps next.
        let current_access = current
            .access()
            .map_err(|e| CheckFailure::ServiceHead(e.to_string()))?
            .ok_or_else(|| {
                CheckFailure::ServiceHead("it does not sign the personal data access record".into())
            })?;
        if current_access.0 < kept_access.0 {
            return Err(CheckFailure::AccessCutShort {
                kept: kept_access.0,
                now: current_access.0,
            });
        }
        let mut walk = AccessWalk::new(vec![
            (kept_access.0, kept_access.1, "the kept head"),
            (current_access.0, current_access.1, "the service's head"),
        ]);
        let last = walk.last();
        let mut cursor = 0u64;
        'pages: while cursor < last {
            let page = get(format!(
                "/v1/audit/personal-data-access?limit=1000&cursor={cursor}"
            ))
            .await?;
            let rows = page["items"].as_array().cloned().unwrap_or_default();
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let (seq, hash, note) = access_row(row)?;
                cursor = seq;
                if walk.take(seq, hash, &note)? {
                    break 'pages;
                }
            }
        }
        said.push(walk.ended()?);
    }
    for &position in events {
        let answer = get(format!(
            "/v1/audit/inclusion?position={position}&tree_size={to}"
        ))
        .await?;
        let chain = hashes(&serde_json::json!([answer["chain_hash"]]))?;
        let path = hashes(&answer["audit_path"])?;
        let included = chain.first().is_some_and(|c| {
            verify_inclusion(position - 1, to, &leaf_hash(c), &path, &current_root)
        });
        if !included {
            return Err(CheckFailure::NotIncluded { position, size: to });
        }
        said.push(format!(
            "included: the event at {position} (chain hash {}) is in the head of {to}",
            answer["chain_hash"].as_str().unwrap_or_default()
        ));
    }
    Ok(said)
}

/// One row of the access record as the service answers it.
fn access_row(
    row: &serde_json::Value,
) -> Result<(u64, [u8; 32], fangkong_store::NewDisclosure), CheckFailure> {
    let malformed = || CheckFailure::Service(format!("a malformed access record row: {row}"));
    let seq = row["seq"].as_u64().ok_or_else(malformed)?;
    let hash = hashes(&serde_json::json!([row["hash"]]))?
        .first()
        .copied()
        .ok_or_else(malformed)?;
    let note = fangkong_store::NewDisclosure {
        at: serde_json::from_value(row["at"].clone()).map_err(|_| malformed())?,
        token_id: serde_json::from_value(row["token_id"].clone()).map_err(|_| malformed())?,
        role: row["role"].as_str().ok_or_else(malformed)?.to_owned(),
        route: row["route"].as_str().ok_or_else(malformed)?.to_owned(),
        subjects: serde_json::from_value(row["subjects"].clone()).map_err(|_| malformed())?,
    };
    Ok((seq, hash, note))
}

fn hashes(value: &serde_json::Value) -> Result<Vec<[u8; 32]>, CheckFailure> {
    value
        .as_array()
        .ok_or_else(|| CheckFailure::Service("a proof that is not a list".into()))?
        .iter()
        .map(|h| {
            let mut bytes = [0u8; 32];
            h.as_str()
                .and_then(|h| hex::decode_to_slice(h, &mut bytes).ok())
                .map(|_| bytes)
                .ok_or_else(|| CheckFailure::Service("a hash that is not 64 hex digits".into()))
        })
        .collect()
}

/// Against the database: the whole chain recomputed from its events, and
/// the Merkle root of its first `tree_size` events recomputed and compared
/// with the one the kept head signed.
pub async fn against_store(
    kept: &SignedHead,
    keys: &[PublicKey],
    store: &EventStore,
) -> anyhow::Result<Result<Vec<String>, CheckFailure>> {
    let (kept_root, kept_chain) = match checked(kept, keys, CheckFailure::KeptHead) {
        Ok(hashes) => hashes,
        Err(failure) => return Ok(Err(failure)),
    };
    let report = store.verify(1, None).await?;
    if let Some(broken) = report.first_break {
        return Ok(Err(CheckFailure::ChainBroken {
            position: broken.position(),
            reason: broken.to_string(),
        }));
    }
    let now = report.verified_head.position;
    if now < kept.tree_size {
        return Ok(Err(CheckFailure::CutShort {
            kept: kept.tree_size,
            now,
        }));
    }
    // Every stored hash equals its recomputation now, so the tree over
    // them is the tree over the events as they are.
    let mut frontier = fangkong_merkle::Frontier::default();
    let mut position = 0;
    while position < kept.tree_size {
        let last = (position + 10_000).min(kept.tree_size);
        for (_, hash) in store.chain_hashes(position + 1, last).await? {
            frontier.push(&hash, |_, _| {});
        }
        position = last;
    }
    let chain_at = store.hash_at(kept.tree_size).await?;
    if frontier.size() != kept.tree_size
        || frontier.root() != kept_root
        || chain_at != Some(kept_chain)
    {
        return Ok(Err(CheckFailure::Rewritten {
            size: kept.tree_size,
        }));
    }
    let mut said = vec![
        format!("intact: the chain of {now} events recomputes from its events"),
        format!(
            "consistent: its first {} events have the Merkle root the kept head signed",
            kept.tree_size
        ),
    ];
    let kept_access = match kept.access() {
        Ok(access) => access,
        Err(e) => return Ok(Err(CheckFailure::KeptHead(e.to_string()))),
    };
    if let Some(kept_access) = kept_access {
        let mut walk = AccessWalk::new(vec![(kept_access.0, kept_access.1, "the kept head")]);
        let mut after = 0u64;
        'pages: while after < kept_access.0 {
            // A row edited so it no longer parses is tampering, named as such.
            let rows = match store.disclosures(after, 2_000).await {
                Ok(rows) => rows,
                Err(fangkong_store::StoreError::Corrupt { position, .. }) => {
                    return Ok(Err(CheckFailure::AccessBroken { seq: position }))
                }
                Err(e) => return Err(e.into()),
            };
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                after = row.seq;
                match walk.take(row.seq, row.hash, &row.note) {
                    Ok(true) => break 'pages,
                    Ok(false) => {}
                    Err(failure) => return Ok(Err(failure)),
                }
            }
        }
        match walk.ended() {
            Ok(line) => said.push(line),
            Err(failure) => return Ok(Err(failure)),
        }
    }
    Ok(Ok(said))
}
