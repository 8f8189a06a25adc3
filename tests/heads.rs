//! Signed tree heads, Merkle proofs and the auditor's offline check, on
//! both backends, through the real binary: a head kept earlier is checked
//! against the service and against the database, and every tampering (an
//! edit of a column, a deletion, a swap, a cut, a re-chained log, another
//! signing key) is caught and named.

mod support;

use std::sync::Arc;

use fangkong_store::testing::TestDb;
use fangkong_store::{ExpectedVersion, NewEvent};
use futures::StreamExt;
use serde_json::{json, Value};
use support::{place, Server};

fn fangkong(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_fangkong"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("the fangkong binary runs")
}

/// `fangkong audit check` of the `kept` head with public `keys`, against
/// `target` (`--url ...` or `--database-url ...`, and more arguments).
fn audit_check(
    kept: &str,
    keys: &str,
    target: &[&str],
    env: &[(&str, String)],
) -> std::process::Output {
    let mut args = vec!["audit", "check", "--head", kept, "--public-key", keys];
    args.extend_from_slice(target);
    fangkong(&args, env)
}

fn said(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn signed_heads_are_checked_and_every_tampering_is_named(db: Arc<TestDb>) {
    let s = Server::start_on(db.clone(), &[]);
    for name in ["一片区", "二片区", "三片区"] {
        place(&s, None, name).await;
    }
    let keys = s.get("/v1/audit/keys").await.ok();
    let public_key = keys["keys"][0]["public_key"]
        .as_str()
        .expect("a public key")
        .to_owned();
    assert_eq!(keys["keys"][0]["algorithm"], "ed25519");
    let head = s.get("/v1/audit/head").await.ok();
    let signed = head["signed"].clone();
    assert_eq!(signed["tree_size"], head["position"], "{head}");
    assert_eq!(signed["key_id"], keys["keys"][0]["key_id"]);
    let kept_size = signed["tree_size"].as_u64().expect("a size");
    let dir = tempfile::tempdir().expect("a directory");
    let kept = dir.path().join("kept-head.json");
    std::fs::write(&kept, head.to_string()).expect("kept");
    let kept = kept.to_str().expect("utf-8").to_owned();

    // The log grows; the kept head is a prefix of the new one.
    place(&s, None, "四片区").await;
    let now = s.get("/v1/audit/head").await.ok();
    let size = now["signed"]["tree_size"].as_u64().expect("a size");
    assert!(size > kept_size);
    let proof = s
        .get(&format!("/v1/audit/consistency?from={kept_size}&to={size}"))
        .await
        .ok();
    assert!(proof["proof"].as_array().is_some_and(|p| !p.is_empty()));
    let inclusion = s
        .get(&format!("/v1/audit/inclusion?position=2&tree_size={size}"))
        .await
        .ok();
    assert!(inclusion["audit_path"]
        .as_array()
        .is_some_and(|p| p.len() <= 8));
    s.get(&format!(
        "/v1/audit/inclusion?position=2&tree_size={}",
        size + 1000
    ))
    .await
    .problem(409, "tree_not_indexed");
    s.get("/v1/audit/consistency?from=0&to=1")
        .await
        .problem(422, "invalid_fields");

    let url = s.url("");
    let check = |target: &[&str]| {
        audit_check(
            &kept,
            &public_key,
            target,
            &[("FANGKONG_TOKEN", s.token.clone())],
        )
    };
    let out = check(&["--url", &url, "--event", "2", "--event", &size.to_string()]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("included: the event at 2"),
        "{}",
        said(&out)
    );

    // A head printed offline by the command line, with the server's key.
    let env = support::state_key_env(&db)
        .into_iter()
        .chain([("FANGKONG_DATABASE_URL", db.url().to_owned())])
        .collect::<Vec<_>>();
    let out = fangkong(&["head", "--signed"], &env);
    assert!(out.status.success(), "{}", said(&out));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(printed["tree_size"], size);
    assert_eq!(printed["root_hash"], now["signed"]["root_hash"]);
    assert_eq!(printed["key_id"], keys["keys"][0]["key_id"]);

    // Another signing key: the service's heads no longer check.
    assert!(s.stop().success());
    let impostor = Server::start_on(db.clone(), &["--signing-key", &"99".repeat(32)]);
    let out = audit_check(
        &kept,
        &public_key,
        &["--url", &impostor.url("")],
        &[("FANGKONG_TOKEN", impostor.token.clone())],
    );
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("signed by key"), "{}", said(&out));
    assert!(impostor.stop().success());

    // A rotation: the new key signs, the old one is listed as retired, and
    // an auditor who trusts both checks the kept head against the service.
    let rotated = Server::start_on(
        db.clone(),
        &[
            "--signing-key",
            &"99".repeat(32),
            "--retired-signing-key",
            &public_key,
        ],
    );
    let keys = rotated.get("/v1/audit/keys").await.ok();
    let listed: Vec<(String, bool)> = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            (
                k["public_key"].as_str().unwrap_or_default().to_owned(),
                k["current"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(listed.len(), 2, "{keys}");
    assert!(listed.contains(&(public_key.clone(), false)));
    let new_key = listed
        .iter()
        .find(|(_, current)| *current)
        .map(|(k, _)| k.clone())
        .expect("a current key");
    let both = format!("{public_key},{new_key}");
    let out = audit_check(
        &kept,
        &both,
        &["--url", &rotated.url("")],
        &[("FANGKONG_TOKEN", rotated.token.clone())],
    );
    assert!(out.status.success(), "{}", said(&out));
    assert!(rotated.stop().success());

    // Against the database itself: intact first, then each tampering.
    let against_db = || audit_check(&kept, &public_key, &["--database-url", db.url()], &[]);
    let out = against_db();
    assert!(out.status.success(), "{}", said(&out));
    let tamperings: [(&str, String, &str); 3] = [
        (
            "an edit of a column",
            "UPDATE events SET event_type = 'ZoneRenamed' WHERE position = 2".into(),
            "chain breaks at position 2",
        ),
        (
            "a swap of two events",
            "UPDATE events SET position = 1000003 WHERE position = 3; \
             UPDATE events SET position = 3 WHERE position = 4; \
             UPDATE events SET position = 4 WHERE position = 1000003"
                .into(),
            "chain breaks at position 3",
        ),
        (
            "a deletion",
            "DELETE FROM events WHERE position = 3".into(),
            "chain breaks at position 3",
        ),
    ];
    for (what, sql, named) in tamperings {
        db.execute_raw("CREATE TABLE kept_events AS SELECT * FROM events")
            .await
            .expect("keep");
        for statement in sql.split(';') {
            db.execute_raw(statement).await.expect("tamper");
        }
        let out = against_db();
        assert_eq!(out.status.code(), Some(1), "{what}: {}", said(&out));
        assert!(said(&out).contains(named), "{what}: {}", said(&out));
        db.execute_raw("DELETE FROM events").await.expect("undo");
        db.execute_raw("INSERT INTO events SELECT * FROM kept_events")
            .await
            .expect("restore");
        db.execute_raw("DROP TABLE kept_events")
            .await
            .expect("drop");
    }
    // Cut short below the kept head.
    db.execute_raw(&format!("DELETE FROM events WHERE position >= {kept_size}"))
        .await
        .expect("truncate");
    let out = against_db();
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("cut short"), "{}", said(&out));
}

/// One publicity event per number, in order, on one stream.
async fn append_numbered(store: &fangkong_store::EventStore, numbers: Vec<i32>) {
    for i in numbers {
        store
            .append(
                "zone-1",
                ExpectedVersion::Any,
                vec![NewEvent::new("PublicityRecorded", json!({"i": i}))],
            )
            .await
            .expect("append");
    }
}

/// A log rewritten and re-chained from scratch verifies on its own: only
/// the kept head's Merkle root tells it is not the log it signed.
async fn a_rechained_log_fails_against_a_kept_head(db: Arc<TestDb>) {
    let store = db.open().await.expect("open");
    append_numbered(&store, (0..20).collect()).await;
    let key = fangkong_heads::SigningKey::random().expect("a key");
    let mut indexer = fangkong_store::merkle::Indexer::resume(&store, None)
        .await
        .expect("resume");
    let state = indexer.catch_up(&store).await.expect("index");
    // A head as signed before the access record was covered (v1): still
    // checked as it always was.
    let head = key.sign(
        state.head.size,
        &state.head.root,
        &state.head.chain_hash,
        None,
        chrono::Utc::now(),
    );
    store.close().await;
    let dir = tempfile::tempdir().expect("a directory");
    let kept = dir.path().join("kept.json");
    std::fs::write(&kept, serde_json::to_string(&head).expect("json")).expect("kept");
    let kept = kept.to_str().expect("utf-8").to_owned();
    let check =
        |url: &str| audit_check(&kept, &key.public().to_hex(), &["--database-url", url], &[]);
    let out = check(db.url());
    assert!(out.status.success(), "{}", said(&out));

    // The whole log rewritten with one event changed, every hash recomputed.
    let other = if db.backend() == "sqlite" {
        TestDb::sqlite()
    } else {
        TestDb::postgres().await.expect("PostgreSQL")
    };
    let rewritten = other.open().await.expect("open");
    append_numbered(
        &rewritten,
        (0..25).map(|i| if i == 7 { 700 } else { i }).collect(),
    )
    .await;
    assert!(rewritten.verify(1, None).await.expect("verify").is_intact());
    rewritten.close().await;
    let out = check(other.url());
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("re-chained"), "{}", said(&out));

    // The rewritten log served under the same key, with the old tree's
    // frontier in place so the server would resume over it: the check
    // against the service fails all the same.
    let other = Arc::new(other);
    let served = Server::start_on(other.clone(), &["--signing-key", &key.to_hex()]);
    let out = audit_check(
        &kept,
        &key.public().to_hex(),
        &["--url", &served.url("")],
        &[("FANGKONG_TOKEN", served.token.clone())],
    );
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("FAILED"), "{}", said(&out));
    assert!(served.stop().success());
}

/// Heads published to NATS JetStream as the log grows: a witness keeps
/// one, and a later rewrite of the log fails against it.
async fn published_heads_catch_a_later_rewrite(db: Arc<TestDb>) {
    let subject = format!("fangkong.heads.test{}", uuid::Uuid::now_v7().simple());
    // Like PostgreSQL: a machine without NATS skips this test, saying so;
    // under CI a missing NATS is a failure.
    let nats = match async_nats::connect("nats://127.0.0.1:4222").await {
        Ok(nats) => nats,
        Err(error) if std::env::var("CI").is_err() => {
            eprintln!("SKIPPED published_heads_catch_a_later_rewrite: no NATS at 127.0.0.1:4222 ({error})");
            return;
        }
        Err(error) => panic!("NATS with JetStream must run on 127.0.0.1:4222 under CI: {error}"),
    };
    let mut heads = nats.subscribe(subject.clone()).await.expect("subscribe");
    // Every minute: within the test, only the last head, at shutdown.
    let s = Server::start_on(
        db.clone(),
        &["--publish-heads", "60", "--heads-subject", &subject],
    );
    place(&s, None, "一片区").await;
    let public_key = s.get("/v1/audit/keys").await.ok()["keys"][0]["public_key"]
        .as_str()
        .expect("a key")
        .to_owned();
    // Written just before the stop: the last head covers it.
    place(&s, None, "二片区").await;
    let position = s.get("/v1/audit/head").await.ok()["position"]
        .as_u64()
        .expect("a position");
    assert!(s.stop().success());
    let message = tokio::time::timeout(std::time::Duration::from_secs(10), heads.next())
        .await
        .expect("the last head is published at shutdown")
        .expect("the subscription stays open");
    let published: Value = serde_json::from_slice(&message.payload).expect("JSON");
    assert_eq!(
        published["tree_size"], position,
        "every write the server took: {published}"
    );

    let dir = tempfile::tempdir().expect("a directory");
    let kept = dir.path().join("published.json");
    std::fs::write(&kept, published.to_string()).expect("kept");
    let kept = kept.to_str().expect("utf-8").to_owned();
    let check = || audit_check(&kept, &public_key, &["--database-url", db.url()], &[]);
    let out = check();
    assert!(out.status.success(), "{}", said(&out));
    db.execute_raw(r#"UPDATE events SET payload = '{"name":"二片区"}' WHERE position = 1"#)
        .await
        .expect("tamper");
    let out = check();
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(
        said(&out).contains("chain breaks at position 1"),
        "{}",
        said(&out)
    );
}

/// The access record is chained beside the log: a row edited or removed
/// in its middle breaks the chain, but rows cut off its end leave a chain
/// that verifies. A kept head signs the record's last row, so the cut is
/// named, against the service and against the database.
async fn a_kept_head_shows_the_access_record_cut_short(db: Arc<TestDb>) {
    let s = Server::start_on(db.clone(), &[]);
    let (zone, village, grid) = place(&s, None, "一片区").await;
    let registered = s
        .post(
            "/v1/returnees",
            json!({"zone_id": zone, "village_id": village, "grid_id": grid,
                   "arrival_date": "2020-01-24",
                   "origin": {"region": "湖北省武汉市", "risk": "high"},
                   "personal": {"name": "欧阳明月", "resident_id": "11010519491231002X",
                                "phone": "13812345678", "address": "桥头村三组12号"}}),
        )
        .await
        .ok();
    let returnee = support::id(&registered);
    for _ in 0..3 {
        s.get(&format!("/v1/returnees/{returnee}")).await.ok();
    }
    let keys = s.get("/v1/audit/keys").await.ok();
    let public_key = keys["keys"][0]["public_key"]
        .as_str()
        .expect("a public key")
        .to_owned();
    let head = s.get("/v1/audit/head").await.ok();
    let kept_seq = head["signed"]["access"]["seq"].as_u64().expect("signed");
    assert!(kept_seq >= 4, "{head}");
    let dir = tempfile::tempdir().expect("a directory");
    let kept = dir.path().join("kept-head.json");
    std::fs::write(&kept, head.to_string()).expect("kept");
    let kept = kept.to_str().expect("utf-8").to_owned();
    // More reads after it: the record only grows.
    s.get(&format!("/v1/returnees/{returnee}")).await.ok();
    let url = s.url("");
    let token = [("FANGKONG_TOKEN", s.token.clone())];
    let out = audit_check(&kept, &public_key, &["--url", &url], &token);
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("access record's chain recomputes from row 1 to row"),
        "{}",
        said(&out)
    );
    assert!(s.stop().success());
    let against_db = || audit_check(&kept, &public_key, &["--database-url", db.url()], &[]);
    let out = against_db();
    assert!(out.status.success(), "{}", said(&out));

    // Cut the record back to before the kept row: its chain still verifies.
    db.execute_raw(&format!(
        "DELETE FROM personal_data_access WHERE seq >= {kept_seq}"
    ))
    .await
    .expect("cut");
    let env = support::state_key_env(&db)
        .into_iter()
        .chain([("FANGKONG_DATABASE_URL", db.url().to_owned())])
        .collect::<Vec<_>>();
    let verified = fangkong(&["verify"], &env);
    assert!(
        said(&verified).contains("personal data access record intact"),
        "{}",
        said(&verified)
    );
    let out = against_db();
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(
        said(&out).contains(&format!(
            "ends at row {}, before the kept head's row {kept_seq}",
            kept_seq - 1
        )),
        "{}",
        said(&out)
    );
    let s = Server::start_on(db.clone(), &[]);
    let out = audit_check(
        &kept,
        &public_key,
        &["--url", &s.url("")],
        &[("FANGKONG_TOKEN", s.token.clone())],
    );
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("cut off its end"), "{}", said(&out));
    // A head kept from the record as it now stands, for the edit below.
    let later = s.get("/v1/audit/head").await.ok();
    assert_eq!(later["signed"]["access"]["seq"], kept_seq - 1);
    let kept_later = dir.path().join("kept-later.json");
    std::fs::write(&kept_later, later.to_string()).expect("kept");
    let kept_later = kept_later.to_str().expect("utf-8").to_owned();
    assert!(s.stop().success());

    // A row edited in the middle: the chain breaks there.
    db.execute_raw("UPDATE personal_data_access SET route = 'GET /v1/healthz' WHERE seq = 2")
        .await
        .expect("edited");
    let out = against_db();
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(
        said(&out).contains("access record's chain breaks at row 2"),
        "{}",
        said(&out)
    );
    // And against the service, from the rows it serves.
    let s = Server::start_on(db.clone(), &[]);
    let out = audit_check(
        &kept_later,
        &public_key,
        &["--url", &s.url("")],
        &[("FANGKONG_TOKEN", s.token.clone())],
    );
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(
        said(&out).contains("access record's chain breaks at row 2"),
        "{}",
        said(&out)
    );
    assert!(s.stop().success());
}

fangkong_store::each_backend!(threads = 2; [owned];
    a_kept_head_shows_the_access_record_cut_short,
    signed_heads_are_checked_and_every_tampering_is_named,
    a_rechained_log_fails_against_a_kept_head,
    published_heads_catch_a_later_rewrite,
);
