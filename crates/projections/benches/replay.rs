//! Replay and read figures of the projections, in process:
//! `cargo bench -p fangkong-projections --bench replay`.
//!
//! Generates a township history of about one million events (the same
//! generator the tests use), folds it into the read models (board and
//! roster) and reports events/s; then, with that history loaded, times
//! zone and township dashboard reads and a week of the county pull, and
//! reports p50/p99. The first fold is a warm-up; the best of three counts.

#[path = "../tests/support/history.rs"]
mod history;

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use fangkong_domain::{EventCodec, Township};
use fangkong_projections::{Clock, ReadModels, Reading, ReportingRules};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn time_reads(label: &str, n: usize, mut read: impl FnMut(usize)) {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        read(i);
        samples.push(started.elapsed());
    }
    samples.sort();
    println!(
        "{label:<34} p50 {:>8.1} µs   p99 {:>8.1} µs   max {:>8.1} µs   ({n} reads)",
        percentile(&samples, 0.50).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e6,
    );
}

/// `events` with every personal field sealed, through the application's own
/// sealing, under keys held in memory (nothing is written).
fn sealed(events: &[fangkong_store::RecordedEvent]) -> Vec<fangkong_store::RecordedEvent> {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let db = fangkong_store::testing::TestDb::sqlite();
    let vault = runtime.block_on(async {
        let store = db.open().await.expect("a store");
        fangkong_vault::Vault::open(store, fangkong_vault::Kek::random().expect("a KEK"))
            .await
            .expect("a vault")
    });
    let started = Instant::now();
    let sealed: Vec<_> = events
        .iter()
        .map(|event| {
            let mut event = event.clone();
            let mut key = None;
            fangkong_app::personal::seal_payload(
                &vault,
                &mut key,
                &event.stream_id,
                &event.event_type,
                &mut event.payload,
            )
            .expect("sealed");
            if let Some(key) = key {
                vault.committed(key);
            }
            event
        })
        .collect();
    println!(
        "sealed the history's personal data in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    sealed
}

fn main() {
    let target: usize = std::env::var("FANGKONG_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let started = Instant::now();
    let generator = history::Generator::new(42, 10);
    let events = history::recorded(generator.run(target));
    println!(
        "generated {} events in {:.1}s",
        events.len(),
        started.elapsed().as_secs_f64()
    );
    let township = Township::default();

    let mut best = f64::MAX;
    let mut models = ReadModels::default();
    for round in 0..4 {
        let mut fresh = ReadModels::default();
        let started = Instant::now();
        for event in &events {
            fresh.apply(event, &township).expect("the demo log applies");
        }
        let seconds = started.elapsed().as_secs_f64();
        if round > 0 {
            best = best.min(seconds);
        }
        println!(
            "replay round {round}: {:.0} events/s{}",
            events.len() as f64 / seconds,
            if round == 0 { " (warm-up)" } else { "" }
        );
        models = fresh;
    }
    println!(
        "replay best: {:.0} events/s over {} events (target >= 1,000,000)",
        events.len() as f64 / best,
        events.len()
    );

    // The least any JSON log reader does, same run: parse each payload,
    // as the store holds it (text), into a `serde_json::Value`. The store
    // hands the projections payloads parsed just so, so a replay from the
    // log costs that parse plus the fold timed above.
    let texts: Vec<String> = events.iter().map(|e| e.payload.to_string()).collect();
    let mut parse_best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        for text in &texts {
            let value: serde_json::Value =
                serde_json::from_str(text).expect("stored payloads are JSON");
            std::hint::black_box(value);
        }
        parse_best = parse_best.min(started.elapsed().as_secs_f64());
    }
    drop(texts);
    println!(
        "parse-only (payload text to serde_json::Value): {:.0} events/s; \
         replay from the log (that parse + the fold): {:.0} events/s, {:.2}x of parse-only \
         (target >= 1.0x, same run)",
        events.len() as f64 / parse_best,
        events.len() as f64 / (parse_best + best),
        parse_best / (parse_best + best)
    );

    // The same history with its personal data sealed, as the log holds it
    // (the read models keep the sealed form and never open it): same run.
    let sealed_events = sealed(&events);
    let mut sealed_best = f64::MAX;
    for _ in 0..3 {
        let mut fresh = ReadModels::default();
        let started = Instant::now();
        for event in &sealed_events {
            fresh
                .apply(event, &township)
                .expect("the sealed log applies");
        }
        sealed_best = sealed_best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "replay of the sealed log: {:.0} events/s ({:+.1}% against the plain log's best, same run)",
        sealed_events.len() as f64 / sealed_best,
        100.0 * (best / sealed_best - 1.0)
    );
    drop(sealed_events);

    // The lists' directory on its own, same run: its share of a replay
    // (returnee events decoded here too, which the full fold shares).
    let mut directory_best = f64::MAX;
    for _ in 0..3 {
        let mut directory = fangkong_projections::Directory::default();
        let started = Instant::now();
        for event in &events {
            let returnee = event
                .stream_id
                .strip_prefix("returnee-")
                .and_then(|id| id.parse::<uuid::Uuid>().ok())
                .and_then(|id| {
                    fangkong_domain::returnee::ReturneeEvent::from_stored_ref(
                        &event.event_type,
                        event.schema_version,
                        &event.payload,
                    )
                    .ok()
                    .map(|e| (id, e))
                });
            directory
                .apply(event, returnee.as_ref())
                .expect("the demo log lists");
        }
        directory_best = directory_best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "directory alone: {:.0} events/s ({:.0}% of the best replay's time)",
        events.len() as f64 / directory_best,
        100.0 * directory_best / best
    );

    // The saved state as stored (the JSON, compressed) beside the plain
    // JSON it was before, written and read back in the same run.
    let started = Instant::now();
    let json = serde_json::to_vec(&models).expect("json renders");
    let json_saved = started.elapsed();
    let started = Instant::now();
    let from_json: ReadModels = serde_json::from_slice(&json).expect("json reads");
    let json_read = started.elapsed();
    assert!(from_json == models);
    let started = Instant::now();
    let state = models.to_state().expect("state renders");
    let saved = started.elapsed();
    let started = Instant::now();
    let resumed = ReadModels::from_state(&state).expect("state reads");
    let read = started.elapsed();
    assert!(resumed == models);
    println!(
        "saved state: {:.1} MB, written in {:.0} ms, read back in {:.0} ms \
         (plain JSON: {:.1} MB, {:.0} ms, {:.0} ms; {:.1}x smaller)",
        state.len() as f64 / 1e6,
        saved.as_secs_f64() * 1e3,
        read.as_secs_f64() * 1e3,
        json.len() as f64 / 1e6,
        json_saved.as_secs_f64() * 1e3,
        json_read.as_secs_f64() * 1e3,
        json.len() as f64 / state.len() as f64
    );

    let now = models.board.recorded_at().expect("events");
    let reading = Reading {
        township: &township,
        rules: ReportingRules::default(),
        clock: Clock::at(now, &township),
    };
    let zones: Vec<_> = models.board.zones().keys().copied().collect();
    let first: NaiveDate = "2020-01-23".parse().expect("date");
    let days = (reading.clock.today - first).num_days().max(1) as usize;
    println!("history spans {days} days, {} zones", zones.len());
    time_reads("zone dashboard (random day)", 20_000, |i| {
        let date = first + chrono::Duration::days((i * 7919 % days) as i64);
        std::hint::black_box(reading.zone_dashboard(&models.board, zones[i % zones.len()], date));
    });
    time_reads("zone dashboard (today)", 20_000, |i| {
        std::hint::black_box(reading.zone_dashboard(
            &models.board,
            zones[i % zones.len()],
            reading.clock.today,
        ));
    });
    time_reads("township dashboard (today)", 5_000, |_| {
        std::hint::black_box(reading.township_dashboard(&models.board, reading.clock.today));
    });
    time_reads("county pull, 7 days", 2_000, |_| {
        std::hint::black_box(reading.daily(
            &models.board,
            reading.clock.today - chrono::Duration::days(6),
            reading.clock.today,
        ));
    });
}
