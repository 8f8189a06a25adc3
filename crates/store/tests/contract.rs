//! The event store contract, run against SQLite always and PostgreSQL when
//! `FANGKONG_TEST_POSTGRES` names a server (under `CI` it must).

use std::collections::HashSet;
use std::time::Duration;

use fangkong_store::testing::TestDb;
use fangkong_store::{
    ChainBreak, Checkpoint, EventStore, ExpectedVersion, LogFilter, NewEvent, StoreError,
};
use serde_json::json;
use uuid::Uuid;

/// A payload of about 400 bytes, like a real command's event.
fn payload(n: usize) -> serde_json::Value {
    json!({
        "returnee_id": Uuid::now_v7(),
        "n": n,
        "temperature": 36.6,
        "measured_by": "village doctor",
        "notes": "x".repeat(300),
    })
}

fn event(n: usize) -> NewEvent {
    NewEvent::new("HealthCheckRecorded", payload(n))
}

async fn open(db: &TestDb) -> EventStore {
    db.open().await.expect("the store opens")
}

async fn two_writers_expecting_the_same_version_exactly_one_wins(db: &TestDb) {
    let store = open(db).await;
    for round in 0..20u64 {
        let expected = if round == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(round)
        };
        let (a, b) = tokio::join!(
            store.append("returnee-race", expected, vec![event(1)]),
            store.append("returnee-race", expected, vec![event(2)]),
        );
        let (won, lost) = match (a, b) {
            (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
            other => panic!("round {round}: exactly one writer must win, got {other:?}"),
        };
        assert_eq!(won.stream_version, round + 1);
        match lost {
            StoreError::WrongExpectedVersion {
                actual,
                expected: e,
                ..
            } => {
                assert_eq!(actual, round + 1, "the loser learns the actual version");
                assert_eq!(e, expected);
            }
            other => panic!("the loser must get a version conflict, got {other:?}"),
        }
    }
    assert_eq!(
        store
            .stream_version("returnee-race")
            .await
            .expect("version"),
        20
    );
    store.close().await;
}

async fn a_version_conflict_names_the_actual_version(db: &TestDb) {
    let store = open(db).await;
    store
        .append(
            "zone-a",
            ExpectedVersion::NoStream,
            vec![event(1), event(2)],
        )
        .await
        .expect("first append");
    let err = store
        .append("zone-a", ExpectedVersion::Exact(1), vec![event(3)])
        .await
        .expect_err("stale expectation");
    assert!(
        matches!(err, StoreError::WrongExpectedVersion { actual: 2, .. }),
        "{err:?}"
    );
    let err = store
        .append("zone-a", ExpectedVersion::NoStream, vec![event(3)])
        .await
        .expect_err("the stream exists");
    assert!(
        matches!(err, StoreError::WrongExpectedVersion { actual: 2, .. }),
        "{err:?}"
    );
    let err = store
        .append("zone-b", ExpectedVersion::Exact(3), vec![event(3)])
        .await
        .expect_err("the stream does not exist");
    assert!(
        matches!(err, StoreError::WrongExpectedVersion { actual: 0, .. }),
        "{err:?}"
    );
    assert_eq!(
        store.head().await.expect("head").position,
        2,
        "conflicts write nothing"
    );
    store.close().await;
}

async fn a_retried_append_returns_the_first_result_and_appends_nothing(db: &TestDb) {
    let store = open(db).await;
    store
        .append("zone-x", ExpectedVersion::Any, vec![event(0)])
        .await
        .expect("an earlier event");
    let events = vec![event(1), event(2)];
    let first = store
        .append("returnee-1", ExpectedVersion::NoStream, events.clone())
        .await
        .expect("first append");
    assert!(!first.duplicate);
    store
        .append("zone-x", ExpectedVersion::Any, vec![event(3)])
        .await
        .expect("a later event");

    // The retry carries the same expectation, now stale: still the original answer.
    let retry = store
        .append("returnee-1", ExpectedVersion::NoStream, events)
        .await
        .expect("a retry is not an error");
    assert!(retry.duplicate);
    assert_eq!(
        (retry.first_position, retry.position, retry.stream_version),
        (first.first_position, first.position, first.stream_version)
    );
    assert_eq!(store.head().await.expect("head").position, 4);
    assert_eq!(
        store.stream_version("returnee-1").await.expect("version"),
        2
    );
    store.close().await;
}

async fn a_retry_expecting_any_version_gets_the_first_answer(db: &TestDb) {
    let store = open(db).await;
    let events = vec![event(1)];
    let first = store
        .append("checkpoint-1", ExpectedVersion::Any, events.clone())
        .await
        .expect("first append");
    store
        .append("checkpoint-1", ExpectedVersion::Any, vec![event(2)])
        .await
        .expect("a later event of the same stream");
    let retry = store
        .append("checkpoint-1", ExpectedVersion::Any, events)
        .await
        .expect("a retry is not an error");
    assert!(retry.duplicate);
    assert_eq!((retry.position, retry.stream_version), (first.position, 1));
    assert_eq!(store.head().await.expect("head").position, 2);
    // The writer is still healthy after the refused insert.
    let next = store
        .append("checkpoint-1", ExpectedVersion::Exact(2), vec![event(3)])
        .await
        .expect("append after a retry");
    assert_eq!((next.position, next.stream_version), (3, 3));
    store.close().await;
}

async fn concurrent_retries_of_one_append_write_it_once(db: &TestDb) {
    let store = open(db).await;
    let events = vec![event(1), event(2), event(3)];
    let tries = (0..8).map(|_| store.append("venue-1", ExpectedVersion::Any, events.clone()));
    let results = futures::future::join_all(tries).await;
    let outcomes: Vec<_> = results
        .into_iter()
        .map(|r| r.expect("every try answers"))
        .collect();
    assert_eq!(outcomes.iter().filter(|o| !o.duplicate).count(), 1);
    assert!(outcomes.iter().all(|o| o.position == outcomes[0].position));
    assert_eq!(store.head().await.expect("head").position, 3);
    store.close().await;
}

async fn an_event_id_reused_for_other_events_is_refused(db: &TestDb) {
    let store = open(db).await;
    let stored = event(1);
    store
        .append("returnee-1", ExpectedVersion::Any, vec![stored.clone()])
        .await
        .expect("first append");
    let err = store
        .append("returnee-2", ExpectedVersion::Any, vec![stored.clone()])
        .await
        .expect_err("same id, another stream");
    assert!(matches!(err, StoreError::EventIdReused { event_id } if event_id == stored.event_id));
    let err = store
        .append(
            "returnee-1",
            ExpectedVersion::Any,
            vec![event(2), stored.clone()],
        )
        .await
        .expect_err("a new event next to a stored one");
    assert!(matches!(err, StoreError::EventIdReused { .. }), "{err:?}");
    assert_eq!(store.head().await.expect("head").position, 1);
    store.close().await;
}

async fn invalid_appends_are_refused_before_touching_the_log(db: &TestDb) {
    let store = open(db).await;
    let dup = event(1);
    for (stream, events) in [
        ("", vec![event(1)]),
        ("zone-1", vec![]),
        ("zone-\u{0}", vec![event(1)]),
        ("zone-1", vec![dup.clone(), dup.clone()]),
        ("zone-1", vec![NewEvent::new("", json!({}))]),
    ] {
        let err = store
            .append(stream, ExpectedVersion::Any, events)
            .await
            .expect_err("invalid");
        assert!(matches!(err, StoreError::InvalidAppend(_)), "{err:?}");
    }
    let long = "z".repeat(fangkong_store::MAX_STREAM_ID_LEN + 1);
    assert!(store
        .append(&long, ExpectedVersion::Any, vec![event(1)])
        .await
        .is_err());
    assert_eq!(store.head().await.expect("head").position, 0);
    store.close().await;
}

async fn a_multi_event_append_lands_whole_and_contiguous(db: &TestDb) {
    let store = open(db).await;
    let events: Vec<_> = (0..5).map(event).collect();
    let ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
    let outcome = store
        .append("banquet-1", ExpectedVersion::NoStream, events)
        .await
        .expect("append");
    assert_eq!((outcome.first_position, outcome.position), (1, 5));
    assert_eq!(outcome.stream_version, 5);
    let read = store.read_stream("banquet-1", 1, 100).await.expect("read");
    assert_eq!(read.iter().map(|e| e.event_id).collect::<Vec<_>>(), ids);
    assert_eq!(
        read.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(read[0].category(), "banquet");

    // A refused multi-event append leaves no trace of any of its events.
    let refused: Vec<_> = (0..3).map(event).collect();
    let refused_ids: HashSet<_> = refused.iter().map(|e| e.event_id).collect();
    assert!(store
        .append("banquet-1", ExpectedVersion::Exact(2), refused)
        .await
        .is_err());
    let all = store
        .read_all(0, 100, &LogFilter::default())
        .await
        .expect("read all");
    assert_eq!(all.len(), 5);
    assert!(all.iter().all(|e| !refused_ids.contains(&e.event_id)));
    store.close().await;
}

async fn the_log_reads_in_pages_and_filters_by_category_and_type(db: &TestDb) {
    let store = open(db).await;
    for i in 0..30 {
        let (stream, kind) = match i % 3 {
            0 => (format!("returnee-{i}"), "ReturneeRegistered"),
            1 => (format!("venue-{i}"), "VenueClosed"),
            _ => (format!("returnee-{}", i - 2), "ReturneeScreened"),
        };
        store
            .append(
                &stream,
                ExpectedVersion::Any,
                vec![NewEvent::new(kind, json!({"i": i}))],
            )
            .await
            .expect("append");
    }
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .read_all(after, 7, &LogFilter::default())
            .await
            .expect("page");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        after = page.last().map(|e| e.position).unwrap_or(after);
        seen.extend(page.into_iter().map(|e| e.position));
    }
    assert_eq!(seen, (1..=30).collect::<Vec<_>>());

    let returnees = LogFilter {
        category: Some("returnee".into()),
        ..Default::default()
    };
    let read = store.read_all(0, 100, &returnees).await.expect("filtered");
    assert_eq!(read.len(), 20);
    assert!(read.iter().all(|e| e.stream_id.starts_with("returnee-")));

    let screened = LogFilter {
        category: Some("returnee".into()),
        event_types: vec!["ReturneeScreened".into()],
        ..Default::default()
    };
    let read = store.read_all(5, 100, &screened).await.expect("filtered");
    assert_eq!(read.len(), 9, "ten screenings, the first at position 3");
    assert!(read
        .iter()
        .all(|e| e.event_type == "ReturneeScreened" && e.position > 5));

    let two_types = LogFilter {
        event_types: vec!["VenueClosed".into(), "ReturneeRegistered".into()],
        ..Default::default()
    };
    assert_eq!(
        store
            .read_all(0, 100, &two_types)
            .await
            .expect("types")
            .len(),
        20
    );

    let stream = store
        .read_stream("returnee-0", 2, 10)
        .await
        .expect("stream");
    assert_eq!(stream.len(), 1);
    assert_eq!(stream[0].event_type, "ReturneeScreened");
    assert!(store
        .read_stream("returnee-none", 1, 10)
        .await
        .expect("empty")
        .is_empty());
    store.close().await;
}

async fn stored_events_read_back_exactly(db: &TestDb) {
    let store = open(db).await;
    let sent = NewEvent::new(
        "ReturneeRegistered",
        json!({"personal": {"name": "张三", "phone": "13800138000"}, "origin": {"region": "湖北省武汉市", "risk": "high"}, "t": 36.55, "big": 9007199254740993u64}),
    )
    .with_metadata(json!({"actor": "token-1", "occurred_at": "2020-02-01T08:00:00+08:00"}))
    .with_schema_version(3);
    let outcome = store
        .append("returnee-9", ExpectedVersion::NoStream, vec![sent.clone()])
        .await
        .expect("append");
    let read = store
        .read_all(0, 10, &LogFilter::default())
        .await
        .expect("read");
    let got = &read[0];
    assert_eq!(got.event_id, sent.event_id);
    assert_eq!(got.payload, sent.payload);
    assert_eq!(got.metadata, sent.metadata);
    assert_eq!(got.schema_version, 3);
    assert_eq!(got.position, outcome.position);
    let head = store.head().await.expect("head");
    assert_eq!((head.position, head.hash), (1, got.hash));
    assert_eq!(store.hash_at(1).await.expect("hash"), Some(got.hash));
    let by_id = store.read_event(sent.event_id).await.expect("by id");
    assert_eq!(by_id.as_ref(), Some(got));
    assert_eq!(store.read_event(Uuid::now_v7()).await.expect("by id"), None);
    assert_eq!(store.hash_at(2).await.expect("hash"), None);
    store.close().await;
}

async fn sixteen_writers_with_a_tailer_see_every_event_once_in_order(db: &TestDb) {
    const WRITERS: usize = 16;
    const APPENDS: usize = 500;
    const TOTAL: u64 = (WRITERS * APPENDS) as u64;
    let store = open(db).await;

    let tailer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut heads = store.subscribe();
            let mut seen = Vec::with_capacity(TOTAL as usize);
            let mut after = 0;
            while after < TOTAL {
                let page = store
                    .read_all(after, 1000, &LogFilter::default())
                    .await
                    .expect("the tailer reads");
                if page.is_empty() {
                    tokio::time::timeout(Duration::from_secs(30), heads.changed())
                        .await
                        .expect("new positions are announced")
                        .expect("the store is open");
                    continue;
                }
                for event in page {
                    assert_eq!(
                        event.position,
                        after + 1,
                        "the tailer never skips a position"
                    );
                    after = event.position;
                    seen.push(event.event_id);
                }
            }
            seen
        })
    };

    let writers = (0..WRITERS).map(|w| {
        let store = store.clone();
        tokio::spawn(async move {
            let stream = format!("returnee-{w}");
            let mut ids = Vec::with_capacity(APPENDS);
            for i in 0..APPENDS {
                let e = event(i);
                ids.push(e.event_id);
                let outcome = store
                    .append(&stream, ExpectedVersion::Exact(i as u64), vec![e])
                    .await
                    .expect("each writer owns its stream");
                assert_eq!(outcome.stream_version, i as u64 + 1);
            }
            ids
        })
    });
    let mut acknowledged = HashSet::new();
    for writer in futures::future::join_all(writers).await {
        acknowledged.extend(writer.expect("writer task"));
    }
    let seen = tokio::time::timeout(Duration::from_secs(120), tailer)
        .await
        .expect("the tailer catches up")
        .expect("tailer task");
    assert_eq!(seen.len() as u64, TOTAL);
    let distinct: HashSet<_> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), seen.len(), "every event exactly once");
    assert_eq!(distinct, acknowledged);

    let report = store.verify(1, None).await.expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.checked, TOTAL);
    assert_eq!(report.verified_head, store.head().await.expect("head"));
    store.close().await;
}

async fn tampering_with_a_payload_is_detected_at_its_position(db: &TestDb) {
    let store = open(db).await;
    for i in 0..10 {
        store
            .append("venue-1", ExpectedVersion::Any, vec![event(i)])
            .await
            .expect("append");
    }
    assert!(store.verify(1, None).await.expect("verify").is_intact());
    let changed = db
        .execute_raw(r#"UPDATE events SET payload = '{"n":0}' WHERE position = 7"#)
        .await
        .expect("plain SQL");
    assert_eq!(changed, 1);
    let report = store.verify(1, None).await.expect("verify");
    assert_eq!(
        report.first_break,
        Some(ChainBreak::HashMismatch { position: 7 })
    );
    assert_eq!(report.checked, 6);
    assert_eq!(report.verified_head.position, 6);
    // A range that ends before the damage verifies.
    assert!(store.verify(2, Some(6)).await.expect("verify").is_intact());
    store.close().await;
}

/// Every column of a stored event is covered: an edit of any one of them,
/// in place, is named by verification at that event's position. (The
/// category is no column: it is read from the stream id.)
async fn an_edit_of_any_column_is_named_by_verification(db: &TestDb) {
    let columns: Vec<(&str, String)> = {
        let sqlite = db.backend() == "sqlite";
        let id = if sqlite {
            "X'00000000000000000000000000000001'"
        } else {
            "'00000000-0000-0000-0000-000000000001'"
        };
        let recorded = if sqlite {
            "recorded_at_us = recorded_at_us + 1".to_owned()
        } else {
            "recorded_at = recorded_at + interval '1 microsecond'".to_owned()
        };
        vec![
            ("stream_id", "stream_id = 'venue-2'".to_owned()),
            (
                "stream_version",
                "stream_version = stream_version + 100".to_owned(),
            ),
            ("event_id", format!("event_id = {id}")),
            ("event_type", "event_type = 'VenueReopened'".to_owned()),
            (
                "schema_version",
                "schema_version = schema_version + 1".to_owned(),
            ),
            ("payload", r#"payload = '{"n":99}'"#.to_owned()),
            ("metadata", r#"metadata = '{"actor":"nobody"}'"#.to_owned()),
            ("recorded_at", recorded),
            (
                "hash",
                "hash = (SELECT hash FROM events WHERE position = 2)".to_owned(),
            ),
            ("position", "position = position + 1000".to_owned()),
        ]
    };
    let store = open(db).await;
    // Every column the table has is in the list: a column added later
    // outside the hash fails here.
    let live = db
        .fetch_text(if db.backend() == "sqlite" {
            "SELECT group_concat(name, ',') FROM pragma_table_info('events')"
        } else {
            "SELECT string_agg(column_name, ',') FROM information_schema.columns \
             WHERE table_name = 'events' AND table_schema = current_schema()"
        })
        .await
        .expect("the table's columns")
        .unwrap_or_default();
    let mut live: Vec<String> = live
        .split(',')
        .map(|c| c.trim_end_matches("_us").to_owned())
        .collect();
    let mut listed: Vec<String> = columns.iter().map(|(c, _)| (*c).to_owned()).collect();
    live.sort();
    listed.sort();
    assert_eq!(live, listed, "every stored column is edited in turn");
    for i in 0..5 {
        store
            .append("venue-1", ExpectedVersion::Any, vec![event(i)])
            .await
            .expect("append");
    }
    store.close().await;
    for (column, set) in columns {
        // Each edit alone: the row is kept aside and put back after.
        db.execute_raw("CREATE TABLE kept AS SELECT * FROM events WHERE position = 3")
            .await
            .expect("keep the row");
        let changed = db
            .execute_raw(&format!("UPDATE events SET {set} WHERE position = 3"))
            .await
            .expect("plain SQL");
        assert_eq!(changed, 1, "{column}");
        let store = open(db).await;
        let report = store.verify(1, None).await.expect("verify");
        store.close().await;
        let named = report.first_break.as_ref().map(|b| b.position());
        assert_eq!(named, Some(3), "an edit of {column} is named: {report:?}");
        db.execute_raw("DELETE FROM events WHERE position = 3 OR position = 1003")
            .await
            .expect("undo");
        db.execute_raw("INSERT INTO events SELECT * FROM kept")
            .await
            .expect("restore");
        db.execute_raw("DROP TABLE kept").await.expect("drop");
        let store = open(db).await;
        assert!(
            store.verify(1, None).await.expect("verify").is_intact(),
            "restored after {column}"
        );
        store.close().await;
    }
}

async fn a_deleted_event_is_detected_as_a_missing_position(db: &TestDb) {
    let store = open(db).await;
    for i in 0..5 {
        store
            .append("venue-1", ExpectedVersion::Any, vec![event(i)])
            .await
            .expect("append");
    }
    db.execute_raw("DELETE FROM events WHERE position = 3")
        .await
        .expect("plain SQL");
    let report = store.verify(1, None).await.expect("verify");
    assert_eq!(
        report.first_break,
        Some(ChainBreak::MissingPosition {
            expected: 3,
            found: 4
        })
    );
    store.close().await;
}

async fn rewriting_a_hash_to_hide_a_change_breaks_the_next_link(db: &TestDb) {
    let store = open(db).await;
    for i in 0..5 {
        store
            .append("venue-1", ExpectedVersion::Any, vec![event(i)])
            .await
            .expect("append");
    }
    let kept = store.head().await.expect("head");
    db.execute_raw(
        "UPDATE events SET hash = (SELECT hash FROM events WHERE position = 2) WHERE position = 3",
    )
    .await
    .expect("plain SQL");
    let report = store.verify(1, None).await.expect("verify");
    assert_eq!(report.first_break.map(|b| b.position()), Some(3));
    assert_eq!(store.hash_at(5).await.expect("hash"), Some(kept.hash));
    store.close().await;
}

async fn reopening_after_close_loses_nothing_acknowledged(db: &TestDb) {
    let store = open(db).await;
    let appends = (0..200).map(|i| {
        let store = store.clone();
        async move {
            store
                .append(
                    &format!("zone-{}", i % 7),
                    ExpectedVersion::Any,
                    vec![event(i)],
                )
                .await
                .expect("append")
        }
    });
    let acknowledged = futures::future::join_all(appends).await;
    let head = store.head().await.expect("head");
    store.close().await;
    assert!(matches!(
        store
            .append("zone-1", ExpectedVersion::Any, vec![event(0)])
            .await,
        Err(StoreError::Closed)
    ));

    let reopened = open(db).await;
    assert_eq!(reopened.head().await.expect("head"), head);
    let all = reopened
        .read_all(0, 1000, &LogFilter::default())
        .await
        .expect("read");
    assert_eq!(all.len(), 200);
    for outcome in acknowledged {
        assert_eq!(
            all[outcome.position as usize - 1].position,
            outcome.position
        );
    }
    let next = reopened
        .append("zone-1", ExpectedVersion::Any, vec![event(0)])
        .await
        .expect("append after reopening");
    assert_eq!(next.position, 201);
    assert!(reopened.verify(1, None).await.expect("verify").is_intact());
    reopened.close().await;
}

async fn two_instances_on_one_database_share_one_chain(db: &TestDb) {
    let first = open(db).await;
    let second = open(db).await;
    let mut heard = first.subscribe();

    let left = (0..100).map(|i| {
        let s = first.clone();
        async move {
            s.append("zone-1", ExpectedVersion::Any, vec![event(i)])
                .await
        }
    });
    let right = (0..100).map(|i| {
        let s = second.clone();
        async move {
            s.append("zone-2", ExpectedVersion::Any, vec![event(i)])
                .await
        }
    });
    let (l, r) = tokio::join!(
        futures::future::join_all(left),
        futures::future::join_all(right)
    );
    assert!(l.into_iter().chain(r).all(|r| r.is_ok()));

    // The first instance hears of the second's appends without writing itself.
    tokio::time::timeout(Duration::from_secs(10), heard.wait_for(|p| *p >= 200))
        .await
        .expect("appends by another instance are announced")
        .expect("open");
    let report = second.verify(1, None).await.expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.checked, 200);
    first.close().await;
    second.close().await;
}

/// Each writer writes a batch in one statement, without the lock or a read
/// of the head, while the head is the one it wrote itself: two instances
/// on one stream prove that another's append is never missed.
async fn two_instances_racing_on_one_stream_keep_one_order(db: &TestDb) {
    let first = open(db).await;
    let second = open(db).await;
    for round in 0..30u64 {
        let expected = if round == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(round)
        };
        let (a, b) = tokio::join!(
            first.append("returnee-race", expected, vec![event(1)]),
            second.append("returnee-race", expected, vec![event(2)]),
        );
        match (a, b) {
            (Ok(won), Err(StoreError::WrongExpectedVersion { actual, .. }))
            | (Err(StoreError::WrongExpectedVersion { actual, .. }), Ok(won)) => {
                assert_eq!(won.stream_version, round + 1, "round {round}");
                assert_eq!(actual, round + 1, "round {round}: the loser learns it");
            }
            other => panic!("round {round}: exactly one instance must win, got {other:?}"),
        }
    }
    // One instance writes alone; the other, whose memory of the stream is
    // now behind, expects the version as it stands, and lands.
    let alone = first
        .append("returnee-race", ExpectedVersion::Exact(30), vec![event(3)])
        .await
        .expect("lands");
    assert_eq!(alone.stream_version, 31);
    let behind = second
        .append("returnee-race", ExpectedVersion::Exact(31), vec![event(4)])
        .await
        .expect("an instance's memory is never taken for the store");
    assert_eq!(behind.stream_version, 32);
    let sends = (0..200).map(|i| {
        let store = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        async move {
            store
                .append("returnee-race", ExpectedVersion::Any, vec![event(i)])
                .await
        }
    });
    let mut versions: Vec<u64> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|answer| answer.expect("every append lands").stream_version)
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (33..=232).collect::<Vec<u64>>());
    let report = second.verify(1, None).await.expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.checked, 232);
    first.close().await;
    second.close().await;
}

/// One instance appending without a pause never shuts another out: every
/// writer takes the append lock before it writes a position, the one that
/// writes on the head it remembers included.
async fn a_busy_instance_never_shuts_another_out(db: &TestDb) {
    let busy = open(db).await;
    let other = open(db).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (busy, stop) = (busy.clone(), stop.clone());
            tokio::spawn(async move {
                let mut written = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    busy.append(
                        &format!("zone-busy-{w}"),
                        ExpectedVersion::Any,
                        vec![event(1)],
                    )
                    .await
                    .expect("the busy instance's append lands");
                    written += 1;
                }
                written
            })
        })
        .collect();
    for i in 0..100 {
        other
            .append("zone-other", ExpectedVersion::Any, vec![event(i)])
            .await
            .unwrap_or_else(|e| panic!("append {i} of the other instance: {e}"));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut busy_written = 0;
    for writer in writers {
        busy_written += writer.await.expect("a writer");
    }
    assert!(busy_written > 0);
    let report = other.verify(1, None).await.expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.checked, busy_written + 100);
    busy.close().await;
    other.close().await;
}

async fn an_unreachable_database_is_an_unavailable_error(db: &TestDb) {
    let store = open(db).await;
    store.close().await;
    let err = store
        .append("zone-1", ExpectedVersion::Any, vec![event(0)])
        .await
        .expect_err("closed");
    assert!(err.is_unavailable());
}

/// PostgreSQL only: every connection of the store is killed server-side (as
/// by a database restart). Appends may fail while that happens, never
/// half-written, and the store recovers on its own.
async fn the_store_recovers_when_its_connections_are_killed(db: &TestDb) {
    let store = open(db).await;
    store
        .append("zone-1", ExpectedVersion::Any, vec![event(0)])
        .await
        .expect("append before");
    db.execute_raw(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .await
    .expect("terminate the store's connections");

    let mut acknowledged = 1;
    let mut failures = 0;
    for i in 1..=5 {
        match store
            .append("zone-1", ExpectedVersion::Any, vec![event(i)])
            .await
        {
            Ok(_) => acknowledged += 1,
            Err(e) => {
                assert!(e.is_unavailable(), "{e:?}");
                failures += 1;
            }
        }
    }
    assert!(
        failures <= 1,
        "only the append on the dead connection may fail"
    );
    let head = store.head().await.expect("reads recover too");
    assert_eq!(head.position, acknowledged);
    assert!(store.verify(1, None).await.expect("verify").is_intact());
    store.close().await;
}

async fn a_saved_checkpoint_reads_back_and_only_a_later_one_replaces_it(db: &TestDb) {
    let store = open(db).await;
    assert_eq!(store.load_checkpoint("board").await.expect("load"), None);
    let saved = |position: u64, state: &str| Checkpoint {
        position,
        hash: [position as u8; 32],
        format: 1,
        state: state.as_bytes().to_vec(),
        saved_at: chrono::DateTime::from_timestamp_micros(1_580_000_000_000_000).expect("instant"),
    };
    assert!(store
        .save_checkpoint("board", &saved(10, "ten"))
        .await
        .expect("save"));
    // Another instance that is behind must not put an older state back.
    assert!(!store
        .save_checkpoint("board", &saved(7, "seven"))
        .await
        .expect("save"));
    assert_eq!(
        store.load_checkpoint("board").await.expect("load"),
        Some(saved(10, "ten"))
    );
    assert!(store
        .save_checkpoint("board", &saved(12, "twelve"))
        .await
        .expect("save"));
    let mut other_format = saved(3, "rebuilt");
    other_format.format = 2;
    assert!(
        store
            .save_checkpoint("board", &other_format)
            .await
            .expect("save"),
        "a state in a new format replaces the old one at any position"
    );
    assert_eq!(
        store.load_checkpoint("board").await.expect("load"),
        Some(other_format)
    );
    assert_eq!(
        store.head().await.expect("head").position,
        0,
        "not in the log"
    );
    store.close().await;
}

async fn the_log_as_it_stood_at_an_instant_is_a_prefix(db: &TestDb) {
    let store = open(db).await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    assert_eq!(store.position_at(before).await.expect("position"), 0);
    let range = |since, until| LogFilter {
        recorded_since: since,
        recorded_until: until,
        ..Default::default()
    };
    store
        .append("returnee-a", ExpectedVersion::Any, vec![event(1), event(2)])
        .await
        .expect("append");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    store
        .append("returnee-a", ExpectedVersion::Any, vec![event(3)])
        .await
        .expect("append");
    assert_eq!(store.position_at(before).await.expect("position"), 0);
    assert_eq!(store.position_at(between).await.expect("position"), 2);
    let positions = |events: Vec<fangkong_store::RecordedEvent>| {
        events.iter().map(|e| e.position).collect::<Vec<_>>()
    };
    assert_eq!(
        positions(
            store
                .read_all(0, 10, &range(None, Some(between)))
                .await
                .expect("read")
        ),
        vec![1, 2]
    );
    assert_eq!(
        positions(
            store
                .read_all(0, 10, &range(Some(between), None))
                .await
                .expect("read")
        ),
        vec![3]
    );
    assert_eq!(
        positions(
            store
                .read_all(0, 10, &range(Some(before), Some(before)))
                .await
                .expect("read")
        ),
        Vec::<u64>::new()
    );
    assert_eq!(
        store
            .position_at(chrono::Utc::now() + chrono::Duration::seconds(5))
            .await
            .expect("position"),
        3
    );
    store.close().await;
}

fangkong_store::each_backend!(threads = 4; [by_ref];

    an_edit_of_any_column_is_named_by_verification,
    two_writers_expecting_the_same_version_exactly_one_wins,
    a_version_conflict_names_the_actual_version,
    a_retried_append_returns_the_first_result_and_appends_nothing,
    a_retry_expecting_any_version_gets_the_first_answer,
    concurrent_retries_of_one_append_write_it_once,
    an_event_id_reused_for_other_events_is_refused,
    invalid_appends_are_refused_before_touching_the_log,
    a_multi_event_append_lands_whole_and_contiguous,
    the_log_reads_in_pages_and_filters_by_category_and_type,
    stored_events_read_back_exactly,
    sixteen_writers_with_a_tailer_see_every_event_once_in_order,
    tampering_with_a_payload_is_detected_at_its_position,
    a_deleted_event_is_detected_as_a_missing_position,
    rewriting_a_hash_to_hide_a_change_breaks_the_next_link,
    reopening_after_close_loses_nothing_acknowledged,
    two_instances_on_one_database_share_one_chain,
    two_instances_racing_on_one_stream_keep_one_order,
    a_busy_instance_never_shuts_another_out,
    an_unreachable_database_is_an_unavailable_error,
    a_saved_checkpoint_reads_back_and_only_a_later_one_replaces_it,
    the_log_as_it_stood_at_an_instant_is_a_prefix,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_recovers_when_its_connections_are_killed() {
    if let Some(db) = TestDb::postgres().await {
        the_store_recovers_when_its_connections_are_killed(&db).await;
    }
}
