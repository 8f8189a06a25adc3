//! The runtime over a real store, on SQLite and PostgreSQL: it saves and
//! resumes, a resumed runtime equals a rebuild from position 0, and as-of
//! reads reproduce what the dashboards showed at each earlier position.

mod support;

use std::time::Duration;

use fangkong_domain::Township;
use fangkong_projections::{
    Clock, Projector, ProjectorOptions, ReadModels, Reading, ReportingRules,
};
use fangkong_store::testing::TestDb;
use fangkong_store::{EventStore, ExpectedVersion};
use support::history::{Generator, Pending};

/// Appends events in log order, consecutive events of one stream together.
async fn append_all(store: &EventStore, events: Vec<Pending>) {
    let mut batch: Vec<fangkong_store::NewEvent> = vec![];
    let mut stream = String::new();
    for p in events {
        if p.stream_id != stream && !batch.is_empty() {
            store
                .append(&stream, ExpectedVersion::Any, std::mem::take(&mut batch))
                .await
                .expect("append");
        }
        stream = p.stream_id;
        batch.push(p.event);
    }
    if !batch.is_empty() {
        store
            .append(&stream, ExpectedVersion::Any, batch)
            .await
            .expect("append");
    }
}

/// Saves at every chance, under one key for the whole test (so a second
/// runtime may resume what the first saved).
fn every_time() -> ProjectorOptions {
    ProjectorOptions {
        save_every: Duration::ZERO,
        state_key: fangkong_projections::StateKey::from_bytes([42; 32]),
    }
}

async fn caught_up(projector: &Projector, store: &EventStore) -> u64 {
    let head = store.head().await.expect("head").position;
    projector
        .wait_for(head, Duration::from_secs(60))
        .await
        .expect("the projector catches up")
}

async fn a_resumed_projector_continues_from_its_saved_state_and_equals_a_rebuild(db: &TestDb) {
    let township = Township::default();
    let mut history = Generator::new(5, 3).run(6_000);
    let second_half = history.split_off(history.len() / 2);

    let store = db.open().await.expect("open");
    append_all(&store, history).await;
    let first = Projector::start(store.clone(), township, every_time());
    let saved = caught_up(&first, &store).await;
    assert_eq!(first.save().await.expect("save"), saved);
    store.close().await;

    let store = db.open().await.expect("reopen");
    append_all(&store, second_half).await;
    let second = Projector::start(store.clone(), township, every_time());
    caught_up(&second, &store).await;
    assert_eq!(second.resumed_from(), Some(saved), "resumed, not replayed");
    let incremental = second.read(|m| m.clone());
    let rebuilt = ReadModels::rebuild(&store, &township, None)
        .await
        .expect("rebuild");
    assert_eq!(incremental.position(), rebuilt.position());
    assert!(
        incremental == rebuilt,
        "incremental state differs from a rebuild"
    );
    store.close().await;
}

async fn a_saved_state_from_another_log_is_not_resumed(db: &TestDb) {
    let township = Township::default();
    let store = db.open().await.expect("open");
    append_all(&store, Generator::new(1, 1).run(300)).await;
    let projector = Projector::start(store.clone(), township, every_time());
    caught_up(&projector, &store).await;
    projector.save().await.expect("save");
    // The log is replaced under the saved state (a restore gone wrong).
    db.execute_raw("DELETE FROM events").await.expect("wipe");
    store.close().await;
    let store = db.open().await.expect("reopen");
    append_all(&store, Generator::new(2, 1).run(300)).await;
    let projector = Projector::start(store.clone(), township, every_time());
    caught_up(&projector, &store).await;
    assert_eq!(projector.resumed_from(), Some(0));
    let rebuilt = ReadModels::rebuild(&store, &township, None)
        .await
        .expect("rebuild");
    assert!(projector.read(|m| m.clone()) == rebuilt);
    store.close().await;
}

async fn as_of_reads_reproduce_the_dashboards_as_they_stood(db: &TestDb) {
    let township = Township::default();
    let store = db.open().await.expect("open");
    let projector = Projector::start(store.clone(), township, ProjectorOptions::default());
    let history = Generator::new(9, 2).run(4_000);
    let mut seen = vec![];
    let mut rest = history;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(700));
        append_all(&store, rest).await;
        rest = tail;
        caught_up(&projector, &store).await;
        // What a reader saw then, at the time of the last event.
        let (position, at, dashboard, daily) = projector.read(|m| {
            let at = m.board.recorded_at().expect("events");
            let reading = Reading {
                township: &township,
                rules: ReportingRules::default(),
                clock: Clock::at(at, &township),
            };
            let today = reading.clock.today;
            (
                m.position(),
                at,
                reading.township_dashboard(&m.board, today),
                reading.daily(&m.board, today - chrono::Duration::days(3), today),
            )
        });
        seen.push((position, at, dashboard, daily));
    }
    assert!(seen.len() >= 5);
    for (position, at, dashboard, daily) in seen.iter().rev() {
        let then = projector.as_of(*position).await.expect("as of");
        let reading = Reading {
            township: &township,
            rules: ReportingRules::default(),
            clock: Clock::at(then.board.recorded_at().expect("events"), &township),
        };
        let today = reading.clock.today;
        assert_eq!(&reading.township_dashboard(&then.board, today), dashboard);
        assert_eq!(
            &reading.daily(&then.board, today - chrono::Duration::days(3), today),
            daily
        );
        // The same moment named by time.
        assert_eq!(store.position_at(*at).await.expect("position"), *position);
    }
    assert!(matches!(
        projector.as_of(u64::MAX / 2).await,
        Err(fangkong_projections::ProjectorError::BeyondTheLog { .. })
    ));
    store.close().await;
}

async fn one_requester_walking_back_through_history_leaves_a_slot_to_others(db: &TestDb) {
    let township = Township::default();
    let store = db.open().await.expect("open");
    append_all(&store, Generator::new(3, 2).run(20_000)).await;
    let projector = Projector::start(store.clone(), township, ProjectorOptions::default());
    let head = caught_up(&projector, &store).await;
    let slots = projector.as_of_slots_free();
    assert!(slots >= 2);
    let (token_a, token_b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    // One token asks for many earlier positions at once, each a rebuild.
    let walk = futures::future::join_all((1..=6u64).map(|i| {
        let projector = projector.clone();
        async move {
            projector
                .as_of_for(token_a, head - i * 1_000)
                .await
                .map(|m| m.position())
        }
    }));
    let done = std::sync::atomic::AtomicBool::new(false);
    let watch = async {
        let mut least = slots;
        while !done.load(std::sync::atomic::Ordering::Acquire) {
            least = least.min(projector.as_of_slots_free());
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        least
    };
    let walk = async {
        let walked = walk.await;
        done.store(true, std::sync::atomic::Ordering::Release);
        walked
    };
    let (walked, least) = tokio::join!(walk, watch);
    for (i, walked) in walked.into_iter().enumerate() {
        assert_eq!(walked.expect("as of"), head - (i as u64 + 1) * 1_000);
    }
    assert_eq!(
        least,
        slots - 1,
        "the token's rebuilds ran one at a time, another slot open throughout"
    );
    // Another token is served meanwhile, and the same token again after.
    let (a, b) = tokio::join!(
        projector.as_of_for(token_a, head - 7_000),
        projector.as_of_for(token_b, head / 2),
    );
    assert_eq!(a.expect("as of").position(), head - 7_000);
    assert_eq!(b.expect("as of").position(), head / 2);
    store.close().await;
}

fangkong_store::each_backend!(threads = 2; [by_ref];
    one_requester_walking_back_through_history_leaves_a_slot_to_others,

    a_resumed_projector_continues_from_its_saved_state_and_equals_a_rebuild,
    a_saved_state_from_another_log_is_not_resumed,
    as_of_reads_reproduce_the_dashboards_as_they_stood,
);
