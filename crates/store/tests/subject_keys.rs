//! Data subjects' wrapped keys, on both backends: the first key stored for a
//! subject is the one kept, erasure destroys it once and for good, rewrapping
//! leaves erased rows alone, and on SQLite an erased key's bytes are gone
//! from the database file and its WAL.

use fangkong_store::testing::TestDb;
use fangkong_store::{EventStore, SubjectKey};
use uuid::Uuid;

async fn open(db: &TestDb) -> EventStore {
    db.open().await.expect("the store opens")
}

/// 80 bytes no other test data will contain by chance.
fn wrapped() -> Vec<u8> {
    (0..5)
        .flat_map(|_| Uuid::new_v4().into_bytes())
        .collect::<Vec<u8>>()
}

async fn put(store: &EventStore, subject: &str, kek_id: &str, key: &[u8]) -> SubjectKey {
    store
        .put_subject_key(subject, kek_id, key)
        .await
        .expect("the key is stored")
}

async fn row(store: &EventStore, subject: &str) -> SubjectKey {
    store
        .subject_key(subject)
        .await
        .expect("read")
        .expect("the row is there")
}

async fn a_second_put_for_a_subject_answers_the_first_key(db: &TestDb) {
    let store = open(db).await;
    let (first, second) = (wrapped(), wrapped());
    let stored = put(&store, "returnee-b", "kek-1", &first).await;
    assert_eq!(stored.subject, "returnee-b");
    assert_eq!(stored.kek_id, "kek-1");
    assert_eq!(stored.wrapped.as_deref(), Some(&first[..]));
    assert!(stored.erased_at_us.is_none() && stored.erased_reason.is_none());

    let again = put(&store, "returnee-b", "kek-2", &second).await;
    assert_eq!(again, stored, "the first writer's row is kept and answered");
    assert_eq!(row(&store, "returnee-b").await, stored);

    put(&store, "returnee-a", "kek-1", &second).await;
    let all = store.subject_keys().await.expect("read");
    let subjects: Vec<_> = all.iter().map(|k| k.subject.as_str()).collect();
    assert_eq!(subjects, ["returnee-a", "returnee-b"], "ordered by subject");
    assert_eq!(
        store.subject_key("returnee-c").await.expect("read"),
        None,
        "a subject without a key has no row"
    );
    store.close().await;
}

async fn concurrent_puts_for_one_subject_all_answer_the_one_stored_key(db: &TestDb) {
    let store = open(db).await;
    for round in 0..10 {
        let subject = format!("returnee-race-{round}");
        let puts = (0..8).map(|_| {
            let (store, subject) = (store.clone(), subject.clone());
            tokio::spawn(async move {
                let key = wrapped();
                store.put_subject_key(&subject, "kek-1", &key).await
            })
        });
        let mut answers = Vec::new();
        for put in puts.collect::<Vec<_>>() {
            answers.push(put.await.expect("task").expect("stored"));
        }
        let kept = row(&store, &subject).await;
        assert!(
            answers.iter().all(|a| *a == kept),
            "round {round}: every writer is answered the one stored row"
        );
    }
    store.close().await;
}

async fn erasing_destroys_a_live_key_once_and_keeps_a_tombstone(db: &TestDb) {
    let store = open(db).await;
    put(&store, "returnee-x", "kek-1", &wrapped()).await;
    put(&store, "returnee-y", "kek-1", &wrapped()).await;
    let subjects = vec![
        "returnee-x".to_owned(),
        "returnee-x".to_owned(),
        "returnee-nobody".to_owned(),
    ];
    let erased = store
        .erase_subject_keys(&subjects, "erasure request 17")
        .await
        .expect("erased");
    assert_eq!(erased, 1, "one live key, named twice, one keyless subject");
    let tombstone = row(&store, "returnee-x").await;
    assert!(tombstone.is_erased());
    assert_eq!(tombstone.wrapped, None);
    assert_eq!(tombstone.kek_id, "kek-1");
    assert_eq!(
        tombstone.erased_reason.as_deref(),
        Some("erasure request 17")
    );
    let erased_at = tombstone.erased_at_us.expect("an erasure time");
    assert!(erased_at >= tombstone.created_at_us);
    assert_eq!(
        store.subject_key("returnee-nobody").await.expect("read"),
        None,
        "erasing a keyless subject writes nothing"
    );
    assert!(
        !row(&store, "returnee-y").await.is_erased(),
        "others keep theirs"
    );

    let again = store
        .erase_subject_keys(&subjects, "again")
        .await
        .expect("erased");
    assert_eq!(again, 0, "an erased key is counted once");
    assert_eq!(
        row(&store, "returnee-x").await,
        tombstone,
        "the first erasure stands"
    );

    let revived = put(&store, "returnee-x", "kek-1", &wrapped()).await;
    assert_eq!(revived, tombstone, "no new key over a tombstone");
    store.close().await;
}

async fn rewrapping_replaces_live_keys_and_skips_erased_ones(db: &TestDb) {
    let store = open(db).await;
    for subject in ["returnee-1", "returnee-2", "returnee-3"] {
        put(&store, subject, "old", &wrapped()).await;
    }
    store
        .erase_subject_keys(&["returnee-2".to_owned()], "asked")
        .await
        .expect("erased");
    let replacements: Vec<(String, String, Vec<u8>)> = ["returnee-1", "returnee-2", "returnee-3"]
        .into_iter()
        .map(|s| (s.to_owned(), "new".to_owned(), wrapped()))
        .collect();
    let updated = store
        .rewrap_subject_keys(&replacements)
        .await
        .expect("rewrapped");
    assert_eq!(updated, 2);
    for (subject, _, key) in &replacements {
        let now = row(&store, subject).await;
        if subject == "returnee-2" {
            assert_eq!(now.wrapped, None, "an erased key stays erased");
            assert_eq!(now.kek_id, "old");
        } else {
            assert_eq!(now.wrapped.as_deref(), Some(&key[..]));
            assert_eq!(now.kek_id, "new");
        }
    }
    store.close().await;
}

async fn rows_changed_since_an_instant_are_the_ones_created_or_erased_from_it(db: &TestDb) {
    let store = open(db).await;
    let early = put(&store, "returnee-early", "k", &wrapped()).await;
    let gone = put(&store, "returnee-gone", "k", &wrapped()).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let late = put(&store, "returnee-late", "k", &wrapped()).await;
    assert!(late.created_at_us > early.created_at_us.max(gone.created_at_us));

    let changed = store
        .subject_keys_changed_since(late.created_at_us)
        .await
        .expect("read");
    assert_eq!(changed, vec![late.clone()], "at or after the instant");

    store
        .erase_subject_keys(&["returnee-gone".to_owned()], "asked")
        .await
        .expect("erased");
    let changed = store
        .subject_keys_changed_since(late.created_at_us)
        .await
        .expect("read");
    let subjects: Vec<_> = changed.iter().map(|k| k.subject.as_str()).collect();
    assert_eq!(subjects, ["returnee-gone", "returnee-late"]);
    assert_eq!(
        store
            .subject_keys_changed_since(0)
            .await
            .expect("read")
            .len(),
        3
    );
    store.close().await;
}

async fn a_first_key_is_stored_with_its_events_and_a_second_is_refused(db: &TestDb) {
    use fangkong_store::{ExpectedVersion, NewEvent, NewSubjectKey, StoreError};
    let store = open(db).await;
    let key = |bytes: &[u8]| NewSubjectKey {
        subject: "returnee-k".into(),
        kek_id: "kek-1".into(),
        wrapped: bytes.to_vec(),
    };
    let (first, second) = (wrapped(), wrapped());
    let registered = NewEvent::new(
        "ReturneeRegistered",
        serde_json::json!({"personal": {"sealed": "x"}}),
    );
    let event_id = registered.event_id;
    let outcome = store
        .append_with_key(
            "returnee-k",
            ExpectedVersion::NoStream,
            vec![registered],
            Some(key(&first)),
        )
        .await
        .expect("appended with its key");
    assert_eq!(row(&store, "returnee-k").await.wrapped, Some(first.clone()));
    // Another writer's first key for the same subject: refused, nothing
    // written, the stored key unchanged.
    let refused = store
        .append_with_key(
            "returnee-k",
            ExpectedVersion::Any,
            vec![NewEvent::new(
                "ResponsibilityTeamAssigned",
                serde_json::json!({}),
            )],
            Some(key(&second)),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::SubjectKeyTaken { ref subject }) if subject == "returnee-k"),
        "{refused:?}"
    );
    assert_eq!(
        store.stream_version("returnee-k").await.expect("version"),
        1
    );
    assert_eq!(row(&store, "returnee-k").await.wrapped, Some(first));
    // A retry of the first append (same event id, same key) is answered
    // as the first was, not refused for its key.
    let retried = store
        .append_with_key(
            "returnee-k",
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                "ReturneeRegistered",
                serde_json::json!({"personal": {"sealed": "x"}}),
            )
            .with_id(event_id)],
            Some(key(&second)),
        )
        .await
        .expect("a retry");
    assert!(retried.duplicate);
    assert_eq!(retried.position, outcome.position);
    // An append refused for its version stores no key either.
    let stale = store
        .append_with_key(
            "returnee-other",
            ExpectedVersion::Exact(3),
            vec![NewEvent::new("Happened", serde_json::json!({}))],
            Some(NewSubjectKey {
                subject: "returnee-other".into(),
                kek_id: "kek-1".into(),
                wrapped: wrapped(),
            }),
        )
        .await;
    assert!(matches!(
        stale,
        Err(StoreError::WrongExpectedVersion { .. })
    ));
    assert!(store
        .subject_key("returnee-other")
        .await
        .expect("read")
        .is_none());
    store.close().await;
}

/// Appends sent together (one group commit, as far as the writer gathers
/// them): a new subject's key with its events, a key for a subject that
/// has one, and a retry of a stored event. The key already stored breaks
/// nothing but its own append, the retry is answered as before, and every
/// new subject ends with exactly the key its events were sealed under.
async fn in_one_group_a_taken_key_or_a_retried_event_refuses_only_its_own_append(db: &TestDb) {
    use fangkong_store::{ExpectedVersion, NewEvent, NewSubjectKey, StoreError};
    let store = open(db).await;
    let key = |subject: &str, bytes: &[u8]| NewSubjectKey {
        subject: subject.into(),
        kek_id: "kek-1".into(),
        wrapped: bytes.to_vec(),
    };
    let first = wrapped();
    let stored = NewEvent::new("ReturneeRegistered", serde_json::json!({"n": 0}));
    let stored_id = stored.event_id;
    store
        .append_with_key(
            "returnee-taken",
            ExpectedVersion::NoStream,
            vec![stored],
            Some(key("returnee-taken", &first)),
        )
        .await
        .expect("the first subject");
    for round in 0..5 {
        let mut appends = Vec::new();
        let mut new_keys = Vec::new();
        for i in 0..12 {
            let store = store.clone();
            let (stream, event, subject_key) = match i % 3 {
                0 => (
                    "returnee-taken".to_owned(),
                    NewEvent::new("ResponsibilityTeamAssigned", serde_json::json!({})),
                    Some(key("returnee-taken", &wrapped())),
                ),
                1 => (
                    "returnee-taken".to_owned(),
                    NewEvent::new("ReturneeRegistered", serde_json::json!({"n": 0}))
                        .with_id(stored_id),
                    None,
                ),
                _ => {
                    let subject = format!("returnee-new-{round}-{i}");
                    let bytes = wrapped();
                    new_keys.push((subject.clone(), bytes.clone()));
                    (
                        subject.clone(),
                        NewEvent::new("ReturneeRegistered", serde_json::json!({"n": i})),
                        Some(key(&subject, &bytes)),
                    )
                }
            };
            appends.push(tokio::spawn(async move {
                let expected = if subject_key.is_some() && i % 3 == 2 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Any
                };
                (
                    i,
                    store
                        .append_with_key(&stream, expected, vec![event], subject_key)
                        .await,
                )
            }));
        }
        for append in appends {
            let (i, outcome) = append.await.expect("an append");
            match i % 3 {
                0 => assert!(
                    matches!(outcome, Err(StoreError::SubjectKeyTaken { ref subject }) if subject == "returnee-taken"),
                    "{outcome:?}"
                ),
                1 => assert!(outcome.expect("a retry").duplicate),
                _ => assert!(!outcome.expect("a new subject").duplicate),
            }
        }
        for (subject, bytes) in new_keys {
            assert_eq!(
                row(&store, &subject).await.wrapped,
                Some(bytes),
                "{subject}"
            );
            assert_eq!(store.stream_version(&subject).await.expect("version"), 1);
        }
    }
    assert_eq!(row(&store, "returnee-taken").await.wrapped, Some(first));
    assert_eq!(
        store
            .stream_version("returnee-taken")
            .await
            .expect("version"),
        1
    );
    store.close().await;
}

/// An append longer than one INSERT statement holds (SQLite: 3,000
/// rows), ending in an event id already stored, sent together with two
/// retries of that stored event: the long append is refused whole, with no
/// event and no key left behind, the retries are answered as retries, and
/// all at once (it once left the first statement's rows in place, answered
/// as retries of themselves, or looped holding the write lock).
async fn a_long_append_meeting_a_stored_id_leaves_nothing_behind(db: &TestDb) {
    use fangkong_store::{ExpectedVersion, NewEvent, NewSubjectKey, StoreError};
    let store = open(db).await;
    let stored = || NewEvent::new("Happened", serde_json::json!({}));
    let first = stored();
    let stored_id = first.event_id;
    store
        .append("other-1", ExpectedVersion::Any, vec![first])
        .await
        .expect("the stored event");
    for round in 0..3 {
        let subject = format!("returnee-long-{round}");
        let mut events: Vec<NewEvent> = (0..3000)
            .map(|i| NewEvent::new("ReturneeRegistered", serde_json::json!({ "n": i })))
            .collect();
        events.push(stored().with_id(stored_id));
        let long = {
            let (store, subject) = (store.clone(), subject.clone());
            tokio::spawn(async move {
                store
                    .append_with_key(
                        &subject,
                        ExpectedVersion::NoStream,
                        events,
                        Some(NewSubjectKey {
                            subject: subject.clone(),
                            kek_id: "kek-1".into(),
                            wrapped: wrapped(),
                        }),
                    )
                    .await
            })
        };
        let retries: Vec<_> = (0..2)
            .map(|_| {
                let store = store.clone();
                let retry = stored().with_id(stored_id);
                tokio::spawn(async move {
                    store
                        .append("other-1", ExpectedVersion::Any, vec![retry])
                        .await
                })
            })
            .collect();
        let answered = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            let long = long.await.expect("the long append");
            let mut answers = Vec::new();
            for retry in retries {
                answers.push(retry.await.expect("a retry"));
            }
            (long, answers)
        })
        .await
        .expect("answered, not stuck");
        let (long, retries) = answered;
        assert!(
            matches!(long, Err(StoreError::EventIdReused { .. })),
            "{long:?}"
        );
        for retry in retries {
            assert!(retry.expect("a retry").duplicate);
        }
        assert_eq!(store.stream_version(&subject).await.expect("version"), 0);
        assert!(store.subject_key(&subject).await.expect("read").is_none());
    }
    assert_eq!(store.head().await.expect("head").position, 1);
    store.close().await;
}

fangkong_store::each_backend!(threads = 2; [by_ref];
    a_long_append_meeting_a_stored_id_leaves_nothing_behind,
    in_one_group_a_taken_key_or_a_retried_event_refuses_only_its_own_append,
    a_first_key_is_stored_with_its_events_and_a_second_is_refused,
    a_second_put_for_a_subject_answers_the_first_key,
    concurrent_puts_for_one_subject_all_answer_the_one_stored_key,
    erasing_destroys_a_live_key_once_and_keeps_a_tombstone,
    rewrapping_replaces_live_keys_and_skips_erased_ones,
    rows_changed_since_an_instant_are_the_ones_created_or_erased_from_it,
);

/// Which of the database file and its WAL hold any 16 consecutive bytes of
/// `key`: freeing a cell overwrites only part of it, so a search for the
/// whole key would miss what is left of it.
fn found_in(db_path: &std::path::Path, key: &[u8]) -> Vec<&'static str> {
    let mut wal = db_path.as_os_str().to_owned();
    wal.push("-wal");
    [("database", db_path.to_path_buf()), ("wal", wal.into())]
        .into_iter()
        .filter(|(_, path)| {
            // The WAL may not exist at all: then it holds nothing.
            let bytes = std::fs::read(path).unwrap_or_default();
            key.windows(16)
                .any(|piece| bytes.windows(piece.len()).any(|w| w == piece))
        })
        .map(|(name, _)| name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_key_leaves_no_bytes_in_the_sqlite_file_or_its_wal() {
    let db = TestDb::sqlite();
    let path = db.sqlite_path().expect("a file");
    let store = open(&db).await;
    let key = wrapped();
    put(&store, "returnee-secret", "kek-1", &key).await;
    // Neighbours on the same page, so the page itself lives on.
    for n in 0..20 {
        put(&store, &format!("returnee-{n}"), "kek-1", &wrapped()).await;
    }
    assert!(
        !found_in(&path, &key).is_empty(),
        "the test must see the key where SQLite wrote it"
    );

    let erased = store
        .erase_subject_keys(&["returnee-secret".to_owned()], "asked")
        .await
        .expect("erased");
    assert_eq!(erased, 1);
    assert_eq!(
        found_in(&path, &key),
        Vec::<&str>::new(),
        "the erased key's bytes must be nowhere in the files"
    );
    store.close().await;
    assert_eq!(found_in(&path, &key), Vec::<&str>::new());
}
