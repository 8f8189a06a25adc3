//! The auditor's offline tools, driven through the real `fangkong` binary on
//! both backends: the head they keep, and verification that names the first
//! altered position and exits non-zero.

use std::process::Command;

use fangkong_store::testing::TestDb;
use fangkong_store::{ExpectedVersion, NewEvent};
use serde_json::json;

fn fangkong(args: &[&str], database_url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fangkong"))
        .args(args)
        .env("FANGKONG_DATABASE_URL", database_url)
        .output()
        .expect("the fangkong binary runs")
}

async fn verify_and_head_tell_an_auditor_the_truth(db: &TestDb) {
    let store = db.open().await.expect("open");
    for i in 0..25 {
        store
            .append(
                &format!("returnee-{}", i % 4),
                ExpectedVersion::Any,
                vec![NewEvent::new(
                    "HealthCheckRecorded",
                    json!({"i": i, "temperature": 36.5}),
                )],
            )
            .await
            .expect("append");
    }
    let head = store.head().await.expect("head");
    store.close().await;

    let out = fangkong(&["head"], db.url());
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    let expected: String = head.hash.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(printed.trim(), format!("25 {expected}"));

    // The head at 20, kept earlier, is extended by today's log.
    let kept = db
        .fetch_text("SELECT CAST(position AS TEXT) FROM events WHERE position = 20")
        .await
        .expect("read");
    assert_eq!(kept.as_deref(), Some("20"));
    let out = fangkong(&["head"], db.url());
    let head_25 = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let store = db.open().await.expect("open");
    let kept_hash: String = store
        .hash_at(20)
        .await
        .expect("hash")
        .expect("position 20")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    store.close().await;
    let out = fangkong(
        &["proof", "--position", "20", "--hash", &kept_hash],
        db.url(),
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&head_25),
        "{out:?}"
    );
    let out = fangkong(
        &["proof", "--position", "20", "--hash", &"0".repeat(64)],
        db.url(),
    );
    assert_eq!(out.status.code(), Some(1), "a forged head: {out:?}");

    let out = fangkong(&["verify"], db.url());
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("intact: 25 events checked"));

    db.execute_raw(
        r#"UPDATE events SET payload = '{"i":13,"temperature":37.9}' WHERE position = 14"#,
    )
    .await
    .expect("tamper");
    let out = fangkong(&["verify"], db.url());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("BROKEN at position 14"), "{printed}");
    assert!(printed.contains("13 events verified"), "{printed}");

    let out = fangkong(&["verify", "--to", "13"], db.url());
    assert!(
        out.status.success(),
        "a range before the damage verifies: {out:?}"
    );
    // The edit at 14 lies before the kept head at 20, whose stored hash is
    // untouched: the proof recomputes from position 1 and names it.
    let out = fangkong(
        &["proof", "--position", "20", "--hash", &kept_hash],
        db.url(),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("breaks at position 14"), "{printed}");
}

fangkong_store::each_backend!(threads = 2; [by_ref]; verify_and_head_tell_an_auditor_the_truth);

#[test]
fn an_unsupported_database_url_is_a_clear_error() {
    let out = fangkong(&["head"], "mysql://root@localhost/x");
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("unsupported database url"), "{said}");
}
