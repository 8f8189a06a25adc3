//! The vault over a real store, on SQLite always and PostgreSQL when
//! `FANGKONG_TEST_POSTGRES` names a server (under `CI` it must).

use fangkong_store::testing::TestDb;
use fangkong_store::EventStore;
use fangkong_vault::{rotate_kek, Kek, Opened, Vault, VaultError, STORE_KEY};
use serde_json::{json, Value};

const CONTEXT: &[u8] = b"ReturneeRegistered/name";

/// Rows of people's keys (the store's own key aside).
async fn people_keys(store: &fangkong_store::EventStore) -> usize {
    store
        .subject_keys()
        .await
        .expect("read")
        .iter()
        .filter(|k| k.subject != fangkong_vault::STORE_KEY)
        .count()
}

async fn store(db: &TestDb) -> EventStore {
    db.open().await.expect("the store opens")
}

async fn vault(store: &EventStore, kek: &Kek) -> Vault {
    Vault::open(store.clone(), same(kek))
        .await
        .expect("the vault opens")
}

/// The same KEK again, as a second process would read it from its file.
fn same(kek: &Kek) -> Kek {
    Kek::from_hex(&kek.to_hex()).expect("a KEK reads back")
}

fn kek() -> Kek {
    Kek::random().expect("randomness")
}

async fn seal(vault: &Vault, subject: &str, value: &Value) -> String {
    vault
        .seal(subject, CONTEXT, value)
        .await
        .expect("the value is sealed")
}

fn open(vault: &Vault, subject: &str, sealed: &str) -> Opened<Value> {
    vault
        .open_sealed(subject, CONTEXT, sealed)
        .expect("the sealed value authenticates")
}

async fn a_sealed_value_opens_to_what_was_sealed(db: &TestDb) {
    let store = store(db).await;
    let vault = vault(&store, &kek()).await;
    assert!(!vault.has_key("returnee-1"));
    for value in [
        json!("张三"),
        json!({"name": "李四", "phone": "13800138000"}),
        json!(null),
        json!(["a", 1, true]),
    ] {
        let sealed = seal(&vault, "returnee-1", &value).await;
        assert!(
            !sealed.contains('=') && !sealed.contains('+') && !sealed.contains('/'),
            "base64url without padding: {sealed}"
        );
        assert_eq!(open(&vault, "returnee-1", &sealed), Opened::Clear(value));
    }
    assert!(vault.has_key("returnee-1"));
    assert!(!vault.is_erased("returnee-1"));
    assert_eq!(
        people_keys(&store).await,
        1,
        "one key per subject, however many values"
    );
    store.close().await;
}

async fn a_value_opened_under_another_context_or_subject_is_damaged(db: &TestDb) {
    let store = store(db).await;
    let vault = vault(&store, &kek()).await;
    let sealed = seal(&vault, "returnee-1", &json!("张三")).await;
    seal(&vault, "returnee-2", &json!("someone else")).await;

    let damaged = |result: Result<Opened<Value>, VaultError>, who: &str| match result {
        Err(VaultError::Damaged { subject }) => assert_eq!(subject, who),
        other => panic!("expected Damaged for {who}, got {other:?}"),
    };
    damaged(
        vault.open_sealed("returnee-1", b"ReturneeRegistered/phone", &sealed),
        "returnee-1",
    );
    damaged(
        vault.open_sealed("returnee-2", CONTEXT, &sealed),
        "returnee-2",
    );
    let mut flipped = sealed.into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    damaged(
        vault.open_sealed("returnee-1", CONTEXT, &flipped),
        "returnee-1",
    );
    damaged(
        vault.open_sealed("returnee-1", CONTEXT, "not base64!"),
        "returnee-1",
    );
    damaged(
        vault.open_sealed("returnee-1", CONTEXT, "AAAA"),
        "returnee-1",
    );
    store.close().await;
}

async fn an_erased_subject_opens_as_erased_and_takes_nothing_new(db: &TestDb) {
    let store = store(db).await;
    let kek = kek();
    let vault = vault(&store, &kek).await;
    let sealed = seal(&vault, "returnee-1", &json!("张三")).await;
    let kept = seal(&vault, "returnee-2", &json!("李四")).await;

    let subjects = ["returnee-1", "returnee-1", "returnee-never"].map(String::from);
    assert_eq!(vault.erase(&subjects, "asked").await.expect("erased"), 1);
    assert_eq!(open(&vault, "returnee-1", &sealed), Opened::Erased);
    assert!(vault.is_erased("returnee-1") && !vault.has_key("returnee-1"));
    match vault.seal("returnee-1", CONTEXT, &json!("again")).await {
        Err(VaultError::Erased { subject }) => assert_eq!(subject, "returnee-1"),
        other => panic!("a seal for an erased subject must be refused, got {other:?}"),
    }
    assert_eq!(
        vault.erase(&subjects, "again").await.expect("erased"),
        0,
        "already erased and keyless subjects count nothing"
    );
    assert_eq!(
        open(&vault, "returnee-2", &kept),
        Opened::Clear(json!("李四"))
    );

    let stored = store
        .subject_key("returnee-1")
        .await
        .expect("read")
        .expect("a tombstone");
    assert_eq!(stored.wrapped, None);
    let reopened = Vault::open(store.clone(), same(&kek)).await.expect("opens");
    assert_eq!(open(&reopened, "returnee-1", &sealed), Opened::Erased);
    assert_eq!(
        open(&reopened, "returnee-2", &kept),
        Opened::Clear(json!("李四"))
    );
    store.close().await;
}

async fn a_second_vault_on_the_same_store_reads_what_the_first_sealed(db: &TestDb) {
    let store = store(db).await;
    let kek = kek();
    let first = vault(&store, &kek).await;
    let sealed = seal(&first, "returnee-1", &json!("张三")).await;

    let second = vault(&store, &kek).await;
    assert_eq!(
        open(&second, "returnee-1", &sealed),
        Opened::Clear(json!("张三"))
    );

    // A key created after the second vault loaded: unknown there until it
    // refreshes; an erasure likewise.
    let later = seal(&first, "returnee-2", &json!("李四")).await;
    assert_eq!(open(&second, "returnee-2", &later), Opened::Unavailable);
    second.refresh().await.expect("refreshed");
    assert_eq!(
        open(&second, "returnee-2", &later),
        Opened::Clear(json!("李四"))
    );

    first
        .erase(&["returnee-2".to_owned()], "asked")
        .await
        .expect("erased");
    assert_eq!(
        open(&second, "returnee-2", &later),
        Opened::Clear(json!("李四")),
        "not yet heard of"
    );
    second.refresh().await.expect("refreshed");
    assert_eq!(open(&second, "returnee-2", &later), Opened::Erased);
    assert_eq!(
        open(&second, "returnee-1", &sealed),
        Opened::Clear(json!("张三"))
    );
    store.close().await;
}

async fn a_wrong_kek_is_refused_naming_both_keks(db: &TestDb) {
    let store = store(db).await;
    let right = kek();
    let wrong = kek();
    // An empty store takes any KEK.
    let vault = Vault::open(store.clone(), same(&right))
        .await
        .expect("opens");
    assert_eq!(vault.kek_id(), right.id());
    seal(&vault, "returnee-1", &json!("张三")).await;

    match Vault::open(store.clone(), same(&wrong)).await {
        Err(VaultError::WrongKek { given, stored }) => {
            assert_eq!(given, wrong.id());
            assert_eq!(stored, right.id());
        }
        other => panic!("a wrong KEK must be refused, got {other:?}"),
    }
    store.close().await;
}

async fn a_store_is_claimed_by_its_first_kek_before_anyone_is_sealed(db: &TestDb) {
    let store = store(db).await;
    let (first, second) = (kek(), kek());
    let vault = Vault::open(store.clone(), same(&first))
        .await
        .expect("opens");
    // No person's key yet, and still a second KEK is refused: two
    // instances started with different keys cannot both write.
    assert!(matches!(
        Vault::open(store.clone(), same(&second)).await,
        Err(VaultError::WrongKek { .. })
    ));
    // The store's own key keys request hashes: the same input hashes alike
    // here, and differently under another store's key.
    let again = Vault::open(store.clone(), same(&first))
        .await
        .expect("reopens");
    let hash = vault
        .keyed_hash(&[b"returnee.register", b"returnee-1"])
        .expect("hashed");
    assert_eq!(
        hash,
        again
            .keyed_hash(&[b"returnee.register", b"returnee-1"])
            .expect("hashed")
    );
    assert_ne!(
        hash,
        vault
            .keyed_hash(&[b"returnee.register", b"returnee-2"])
            .expect("hashed")
    );
    let other_db = TestDb::sqlite();
    let other = other_db.open().await.expect("opens");
    let elsewhere = Vault::open(other.clone(), same(&first))
        .await
        .expect("opens");
    assert_ne!(
        hash,
        elsewhere
            .keyed_hash(&[b"returnee.register", b"returnee-1"])
            .expect("hashed")
    );
    // The store's own key is no person's: never erased.
    assert_eq!(
        vault
            .erase(&[STORE_KEY.to_owned()], "request")
            .await
            .expect("erase"),
        0
    );
    assert!(vault.keyed_hash(&[b"x"]).is_ok());
    other.close().await;
    store.close().await;
}

async fn a_stored_key_that_does_not_unwrap_under_its_kek_is_damaged(db: &TestDb) {
    let store = store(db).await;
    let kek = kek();
    let vault = vault(&store, &kek).await;
    seal(&vault, "returnee-1", &json!("张三")).await;
    seal(&vault, "returnee-2", &json!("李四")).await;
    // Someone with database access moves returnee-1's key to returnee-2:
    // each key is bound to its subject, so it does not unwrap there.
    let moved = store
        .subject_key("returnee-1")
        .await
        .expect("read")
        .and_then(|k| k.wrapped)
        .expect("a live key");
    store
        .rewrap_subject_keys(&[("returnee-2".to_owned(), kek.id(), moved)])
        .await
        .expect("written");
    match Vault::open(store.clone(), same(&kek)).await {
        Err(VaultError::Damaged { subject }) => assert_eq!(subject, "returnee-2"),
        other => panic!("a moved key must be found damaged, got {other:?}"),
    }
    store.close().await;
}

async fn after_rotation_the_new_kek_reads_everything_and_the_old_is_refused(db: &TestDb) {
    let store = store(db).await;
    let (old, new) = (kek(), kek());
    let vault = vault(&store, &old).await;
    let mut sealed = Vec::new();
    for n in 0..5 {
        let subject = format!("returnee-{n}");
        let value = json!({"name": format!("person {n}")});
        sealed.push((subject.clone(), seal(&vault, &subject, &value).await, value));
    }
    vault
        .erase(&["returnee-4".to_owned()], "asked")
        .await
        .expect("erased");

    match rotate_kek(&store, &new, &old).await {
        Err(VaultError::WrongKek { given, stored }) => {
            assert_eq!((given, stored), (new.id(), old.id()));
        }
        other => panic!("rotating from a KEK the keys are not under must fail, got {other:?}"),
    }
    assert_eq!(
        rotate_kek(&store, &old, &new).await.expect("rotated"),
        5,
        "the live keys only (four people's and the store's own)"
    );

    let rotated = Vault::open(store.clone(), same(&new)).await.expect("opens");
    for (subject, text, value) in &sealed {
        let expected = if subject == "returnee-4" {
            Opened::Erased
        } else {
            Opened::Clear(value.clone())
        };
        assert_eq!(open(&rotated, subject, text), expected);
    }
    match Vault::open(store.clone(), same(&old)).await {
        Err(VaultError::WrongKek { given, stored }) => {
            assert_eq!((given, stored), (old.id(), new.id()));
        }
        other => panic!("the old KEK must be refused after rotation, got {other:?}"),
    }
    store.close().await;
}

async fn concurrent_first_seals_for_one_subject_agree_on_one_key(db: &TestDb) {
    let store = store(db).await;
    let kek = kek();
    // Two instances, and two tasks in each, race to create the same keys.
    let a = vault(&store, &kek).await;
    let b = vault(&store, &kek).await;
    for round in 0..10 {
        let subject = format!("returnee-{round}");
        let value = json!({"round": round});
        let (s1, s2, s3, s4) = tokio::join!(
            a.seal(&subject, CONTEXT, &value),
            b.seal(&subject, CONTEXT, &value),
            a.seal(&subject, CONTEXT, &value),
            b.seal(&subject, CONTEXT, &value),
        );
        for sealed in [s1, s2, s3, s4] {
            let sealed = sealed.expect("sealed");
            for vault in [&a, &b] {
                assert_eq!(
                    open(vault, &subject, &sealed),
                    Opened::Clear(value.clone()),
                    "round {round}: every instance opens every result"
                );
            }
        }
    }
    assert_eq!(people_keys(&store).await, 10);
    store.close().await;
}

async fn a_value_sealed_under_a_key_on_its_way_opens_for_readers_and_not_after_it_is_abandoned(
    db: &TestDb,
) {
    let store = store(db).await;
    let kek = kek();
    let vault = vault(&store, &kek).await;
    let value = json!("张三");
    let key = vault.sealing_key("returnee-p").expect("a fresh key");
    assert!(key.pending.is_some(), "the subject had no key");
    let sealed = vault.seal_with(&key, b"ctx", &value).expect("sealed");
    // The append committed; the writer has not noted it yet: a reader of
    // the committed event opens it all the same.
    assert_eq!(
        open_with(&vault, "returnee-p", b"ctx", &sealed),
        Opened::Clear(value.clone())
    );
    assert!(!vault.has_key("returnee-p"), "pending keys seal nothing");
    vault.committed(key);
    assert!(vault.has_key("returnee-p"));
    assert_eq!(
        open_with(&vault, "returnee-p", b"ctx", &sealed),
        Opened::Clear(value.clone())
    );
    // A key whose append failed is forgotten when dropped.
    let abandoned = vault.sealing_key("returnee-q").expect("a fresh key");
    let lost = vault.seal_with(&abandoned, b"ctx", &value).expect("sealed");
    drop(abandoned);
    assert_eq!(
        open_with(&vault, "returnee-q", b"ctx", &lost),
        Opened::Unavailable
    );
    store.close().await;
}

fn open_with(
    vault: &Vault,
    subject: &str,
    context: &[u8],
    sealed: &str,
) -> Opened<serde_json::Value> {
    vault
        .open_sealed(subject, context, sealed)
        .expect("authentic")
}

fangkong_store::each_backend!(threads = 2; [by_ref];
    a_value_sealed_under_a_key_on_its_way_opens_for_readers_and_not_after_it_is_abandoned,
    a_sealed_value_opens_to_what_was_sealed,
    a_value_opened_under_another_context_or_subject_is_damaged,
    an_erased_subject_opens_as_erased_and_takes_nothing_new,
    a_second_vault_on_the_same_store_reads_what_the_first_sealed,
    a_wrong_kek_is_refused_naming_both_keks,
    a_store_is_claimed_by_its_first_kek_before_anyone_is_sealed,
    a_stored_key_that_does_not_unwrap_under_its_kek_is_damaged,
    after_rotation_the_new_kek_reads_everything_and_the_old_is_refused,
    concurrent_first_seals_for_one_subject_agree_on_one_key,
);
