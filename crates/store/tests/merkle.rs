//! The Merkle tree kept beside the log, on both backends: its heads are
//! RFC 6962's over the events' chain hashes, its proofs verify, it resumes
//! from its stored frontier, and it will not resume over a log that was
//! rewritten, re-chained or cut short.

use fangkong_merkle::{leaf_hash, verify_consistency, verify_inclusion};
use fangkong_store::merkle::{Indexer, MerkleIndex};
use fangkong_store::testing::TestDb;
use fangkong_store::{EventStore, ExpectedVersion, NewEvent};
use serde_json::json;

async fn filled(db: &TestDb, events: usize) -> EventStore {
    let store = db.open().await.expect("the store opens");
    for i in 0..events {
        store
            .append(
                &format!("venue-{}", i % 7),
                ExpectedVersion::Any,
                vec![NewEvent::new("PublicityRecorded", json!({"i": i}))],
            )
            .await
            .expect("append");
    }
    store
}

async fn chain_hashes(store: &EventStore, to: u64) -> Vec<[u8; 32]> {
    let mut hashes = vec![];
    for position in 1..=to {
        hashes.push(store.hash_at(position).await.expect("read").expect("there"));
    }
    hashes
}

async fn heads_and_proofs_are_rfc_6962_over_the_chain(db: &TestDb) {
    let store = filled(db, 75).await;
    let mut indexer = Indexer::resume(&store, None).await.expect("resume");
    let state = indexer.catch_up(&store).await.expect("index");
    assert_eq!(state.stalled, None);
    assert_eq!(state.head.size, 75);
    let hashes = chain_hashes(&store, 75).await;
    let refs: Vec<&[u8]> = hashes.iter().map(|h| h.as_slice()).collect();
    assert_eq!(state.head.root, fangkong_merkle::root_of(&refs));
    assert_eq!(state.head.chain_hash, hashes[74]);

    // The same root read back from storage, for this size and older ones.
    for size in [1u64, 16, 17, 32, 50, 64, 75] {
        let stored = store.tree_root(size).await.expect("read").expect("indexed");
        assert_eq!(
            stored,
            fangkong_merkle::root_of(&refs[..size as usize]),
            "size {size}"
        );
    }
    for size in [1u64, 9, 16, 33, 75] {
        let root = store.tree_root(size).await.expect("read").expect("root");
        for position in [1, size / 2 + 1, size] {
            let proof = store
                .inclusion_proof(position, size)
                .await
                .expect("read")
                .expect("a proof");
            let leaf = leaf_hash(&hashes[position as usize - 1]);
            assert!(
                verify_inclusion(position - 1, size, &leaf, &proof, &root),
                "{position} in {size}"
            );
        }
        for old in [1, size / 3 + 1, size] {
            let proof = store
                .consistency_proof(old, 75)
                .await
                .expect("read")
                .expect("a proof");
            let old_root = store.tree_root(old).await.expect("read").expect("root");
            assert!(verify_consistency(
                old,
                75,
                &old_root,
                &state.head.root,
                &proof
            ));
        }
    }
    assert_eq!(store.inclusion_proof(76, 75).await.expect("read"), None);
    assert_eq!(store.consistency_proof(0, 75).await.expect("read"), None);

    // A restart resumes from the stored frontier, without recomputing.
    let resumed = Indexer::resume(&store, None).await.expect("resume");
    assert_eq!(resumed.state().head, state.head);
    store.close().await;
}

async fn the_index_follows_the_log_and_refuses_a_rewritten_one(db: &TestDb) {
    let store = filled(db, 40).await;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let index = MerkleIndex::spawn(store.clone(), None, shutdown.clone());
    let state = index.wait_for(40, std::time::Duration::from_secs(10)).await;
    assert_eq!(state.head.size, 40);
    store
        .append(
            "venue-1",
            ExpectedVersion::Any,
            vec![NewEvent::new("VenueClosed", json!({}))],
        )
        .await
        .expect("append");
    let state = index.wait_for(41, std::time::Duration::from_secs(10)).await;
    assert_eq!(state.head.size, 41, "it follows the log");
    drop(stop);
    store.close().await;

    // An edit in place, behind the stored frontier: resuming does not see
    // it (verification and the offline check do).
    db.execute_raw(r#"UPDATE events SET payload = '{"i":99}' WHERE position = 41"#)
        .await
        .expect("tamper");
    let store = db.open().await.expect("open");
    let fresh = Indexer::resume(&store, None).await.expect("resume");
    assert_eq!(
        fresh.state().stalled,
        None,
        "the stored hashes are untouched"
    );
    // Rebuilt from nothing, the index checks every event's chain hash.
    db.execute_raw("DELETE FROM merkle_frontier")
        .await
        .expect("forget the frontier");
    let mut rebuilt = Indexer::resume(&store, None).await.expect("resume");
    let state = rebuilt.catch_up(&store).await.expect("index");
    assert_eq!(state.head.size, 40, "up to the edited event");
    assert!(state.stalled.expect("stalled").contains("position 41"));
    store.close().await;
}

async fn a_log_cut_short_is_not_resumed_over(db: &TestDb) {
    let store = filled(db, 20).await;
    let mut indexer = Indexer::resume(&store, None).await.expect("resume");
    indexer.catch_up(&store).await.expect("index");
    store.close().await;
    db.execute_raw("DELETE FROM events WHERE position > 17")
        .await
        .expect("truncate");
    let store = db.open().await.expect("open");
    let resumed = Indexer::resume(&store, None).await.expect("resume");
    let stalled = resumed.state().stalled.expect("stalled");
    assert!(stalled.contains("position 20"), "{stalled}");
    store.close().await;
}

async fn a_rechained_log_is_not_resumed_over(db: &TestDb) {
    let store = filled(db, 20).await;
    let mut indexer = Indexer::resume(&store, None).await.expect("resume");
    indexer.catch_up(&store).await.expect("index");
    store.close().await;
    // Whoever rewrites the log and recomputes its chain changes the hash at
    // the frontier's size: the index says so instead of building on it.
    db.execute_raw(
        "UPDATE events SET hash = (SELECT hash FROM events WHERE position = 1) WHERE position = 20",
    )
    .await
    .expect("re-chain");
    let store = db.open().await.expect("open");
    let resumed = Indexer::resume(&store, None).await.expect("resume");
    let stalled = resumed.state().stalled.expect("stalled");
    assert!(stalled.contains("position 20"), "{stalled}");
    store.close().await;
}

/// A frontier patched in the database (its chain hash made to match a
/// rewritten log) is not resumed over when the index seals what it stores:
/// the tree is rebuilt from the log instead.
async fn a_frontier_not_sealed_by_the_server_is_not_resumed_over(db: &TestDb) {
    use fangkong_store::merkle::FrontierSeal;
    let seal = FrontierSeal::from_secret(b"the server's signing key");
    let store = filled(db, 40).await;
    let mut indexer = Indexer::resume(&store, Some(seal.clone()))
        .await
        .expect("resume");
    let built = indexer.catch_up(&store).await.expect("index");
    let resumed = Indexer::resume(&store, Some(seal.clone()))
        .await
        .expect("resume");
    assert_eq!(
        resumed.state().head,
        built.head,
        "its own frontier is resumed"
    );
    store.close().await;

    db.execute_raw(
        "UPDATE merkle_frontier SET chain_hash = (SELECT hash FROM events WHERE position = 1)",
    )
    .await
    .expect("patch");
    let store = db.open().await.expect("open");
    let mut rebuilt = Indexer::resume(&store, Some(seal.clone()))
        .await
        .expect("resume");
    assert_eq!(
        rebuilt.state().head.size,
        0,
        "rebuilt from the log, not resumed"
    );
    let again = rebuilt.catch_up(&store).await.expect("index");
    assert_eq!(again.head, built.head, "the tree over the log as it is");
    // Another key's seal does not hold either.
    let other = FrontierSeal::from_secret(b"another key");
    assert_eq!(
        Indexer::resume(&store, Some(other))
            .await
            .expect("resume")
            .state()
            .head
            .size,
        0
    );
    store.close().await;
}

fangkong_store::each_backend!(threads = 2; [by_ref];
    heads_and_proofs_are_rfc_6962_over_the_chain,
    the_index_follows_the_log_and_refuses_a_rewritten_one,
    a_rechained_log_is_not_resumed_over,
    a_log_cut_short_is_not_resumed_over,
    a_frontier_not_sealed_by_the_server_is_not_resumed_over,
);
