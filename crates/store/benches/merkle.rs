//! Merkle proofs on a large log: a log of `FANGKONG_BENCH_EVENTS` events
//! (default 1,000,000) is written and indexed, then inclusion and
//! consistency proofs at random places are built from storage and verified,
//! and their sizes and times printed. SQLite always; PostgreSQL too when
//! `FANGKONG_TEST_POSTGRES` is set.
//!
//! `cargo bench -p fangkong-store --bench merkle`

use std::time::{Duration, Instant};

use fangkong_merkle::{leaf_hash, verify_consistency, verify_inclusion};
use fangkong_store::merkle::Indexer;
use fangkong_store::testing::TestDb;
use fangkong_store::{ExpectedVersion, NewEvent};
use serde_json::json;

/// A small deterministic generator: the places proved differ per run size
/// but not per run.
struct Places(u64);

impl Places {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn percentile(times: &mut [Duration], p: f64) -> Duration {
    times.sort();
    times[((times.len() as f64 - 1.0) * p) as usize]
}

async fn run(db: &TestDb, events: u64) {
    let store = db.open().await.expect("open");
    let started = Instant::now();
    let mut written = 0;
    while written < events {
        let batch = (events - written).min(1000);
        let stream = format!("venue-{}", written / 1000);
        let batch_events = (0..batch)
            .map(|i| {
                NewEvent::new(
                    "PublicityRecorded",
                    json!({"i": written + i, "channel": "leaflet", "quantity": 20}),
                )
            })
            .collect();
        store
            .append(&stream, ExpectedVersion::Any, batch_events)
            .await
            .expect("append");
        written += batch;
    }
    let wrote = started.elapsed();

    let started = Instant::now();
    let mut indexer = Indexer::resume(&store, None).await.expect("resume");
    let state = indexer.catch_up(&store).await.expect("index");
    let indexed = started.elapsed();
    assert_eq!(state.head.size, events);
    let size = state.head.size;
    let root = state.head.root;

    let started = Instant::now();
    let resumed = Indexer::resume(&store, None).await.expect("resume");
    let resume = started.elapsed();
    assert_eq!(resumed.state().head, state.head);

    let mut places = Places(events);
    let (mut inclusion_times, mut inclusion_sizes) = (vec![], vec![]);
    for _ in 0..200 {
        let position = places.next(size) + 1;
        let started = Instant::now();
        let proof = store
            .inclusion_proof(position, size)
            .await
            .expect("read")
            .expect("a proof");
        let leaf = store.hash_at(position).await.expect("read").expect("there");
        inclusion_times.push(started.elapsed());
        inclusion_sizes.push(proof.len());
        assert!(verify_inclusion(
            position - 1,
            size,
            &leaf_hash(&leaf),
            &proof,
            &root
        ));
    }
    let (mut consistency_times, mut consistency_sizes) = (vec![], vec![]);
    for _ in 0..50 {
        let old = places.next(size) + 1;
        let started = Instant::now();
        let proof = store
            .consistency_proof(old, size)
            .await
            .expect("read")
            .expect("a proof");
        let old_root = store.tree_root(old).await.expect("read").expect("root");
        consistency_times.push(started.elapsed());
        consistency_sizes.push(proof.len());
        assert!(verify_consistency(old, size, &old_root, &root, &proof));
    }
    let max = |v: &[usize]| v.iter().copied().max().unwrap_or(0);
    println!(
        "{:<9} {events} events: written in {:.1} s, indexed in {:.1} s ({:.0} events/s), resumed in {:.1} ms",
        db.backend(),
        wrote.as_secs_f64(),
        indexed.as_secs_f64(),
        events as f64 / indexed.as_secs_f64(),
        resume.as_secs_f64() * 1000.0
    );
    println!(
        "{:<9} inclusion:   {} hashes at most, median {:.2} ms, p99 {:.2} ms (proof, leaf and check)",
        db.backend(),
        max(&inclusion_sizes),
        percentile(&mut inclusion_times, 0.5).as_secs_f64() * 1000.0,
        percentile(&mut inclusion_times, 0.99).as_secs_f64() * 1000.0,
    );
    println!(
        "{:<9} consistency: {} hashes at most, median {:.2} ms, p99 {:.2} ms (proof and old root)",
        db.backend(),
        max(&consistency_sizes),
        percentile(&mut consistency_times, 0.5).as_secs_f64() * 1000.0,
        percentile(&mut consistency_times, 0.99).as_secs_f64() * 1000.0,
    );
    store.close().await;
}

#[tokio::main]
async fn main() {
    let events: u64 = std::env::var("FANGKONG_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    run(&TestDb::sqlite(), events).await;
    match TestDb::postgres().await {
        Some(db) => run(&db, events).await,
        None => println!("postgres  (skipped: FANGKONG_TEST_POSTGRES not set)"),
    }
}
