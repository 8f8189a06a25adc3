//! Personal data that can be erased without breaking the chain, end to end
//! on both backends: sealed before hashing, erased by destroying its key
//! (every route, as-of read, rebuild and saved state then shows it erased
//! while figures and verification stand), retention by rule, a wrong or
//! missing key-encryption key refused, rotation, and the record of who
//! read whose data.

mod support;

use std::sync::Arc;

use fangkong_store::testing::TestDb;
use futures::StreamExt;
use serde_json::{json, Value};
use support::{days_ago, id, place, today, Server};

const NAME: &str = "欧阳明月";
const RESIDENT_ID: &str = "11010519491231002X";
const PHONE: &str = "13812345678";
const TEAM_PHONE: &str = "13900007777";
const ADDRESS: &str = "桥头村三组12号";
const HOST: &str = "司马长风家";
const HOST_PHONE: &str = "13700004444";
const STAFF: &str = "上官镇干部";

/// A township date `n` days from now.
fn days_ahead(n: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::hours(8) + chrono::Duration::days(n))
        .format("%Y-%m-%d")
        .to_string()
}

/// A banquet reported by the test's admin, its host family named.
async fn report_banquet(s: &Server, zone: &str, planned_date: &str) -> String {
    id(&s
        .post(
            "/v1/banquets",
            json!({"zone_id": zone, "kind": "wedding", "planned_date": planned_date,
                   "expected_guests": 120, "host": {"name": HOST, "phone": HOST_PHONE}}),
        )
        .await
        .ok())
}

async fn register(
    s: &Server,
    (zone, village, grid): &(String, String, String),
    arrival: &str,
) -> String {
    id(&s
        .post(
            "/v1/returnees",
            json!({
                "zone_id": zone, "village_id": village, "grid_id": grid,
                "arrival_date": arrival,
                "origin": {"region": "湖北省武汉市", "risk": "high"},
                "personal": {"name": NAME, "resident_id": RESIDENT_ID,
                             "phone": PHONE, "address": ADDRESS}
            }),
        )
        .await
        .ok())
}

fn fangkong(db: &TestDb, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_fangkong"))
        .args(args)
        .env("FANGKONG_DATABASE_URL", db.url())
        .envs(support::state_key_env(db))
        .output()
        .expect("fangkong runs")
}

/// Every stored byte, searched for the person's name and ID number: the
/// SQLite file and its WAL, or every table of the PostgreSQL database as text;
/// and the saved read models (the row stored now) decompressed, which no
/// byte search sees into.
async fn plaintext_stored(db: &TestDb) -> Vec<&'static str> {
    plaintext_stored_of(db, &[NAME, RESIDENT_ID, PHONE, ADDRESS]).await
}

async fn plaintext_stored_of(db: &TestDb, needles: &[&'static str]) -> Vec<&'static str> {
    let mut found = vec![];
    let saved_models = db
        .fetch_bytes("SELECT state FROM projection_checkpoints WHERE name = 'read-models'")
        .await
        .expect("the saved state reads")
        .map(|sealed| {
            // The 32-byte seal, then the models' JSON, compressed.
            zstd::stream::decode_all(&sealed[32..]).expect("a compressed state")
        })
        .unwrap_or_default();
    for &needle in needles {
        if saved_models
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            found.push(needle);
            continue;
        }
        let hit = match db.backend() {
            "sqlite" => {
                let path = db
                    .url()
                    .trim_start_matches("sqlite://")
                    .split('?')
                    .next()
                    .expect("a path")
                    .to_owned();
                [path.clone(), format!("{path}-wal")].iter().any(|file| {
                    std::fs::read(file).is_ok_and(|bytes| {
                        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
                    })
                })
            }
            _ => {
                let mut any = false;
                for (table, column) in [
                    ("events", "position"),
                    ("projection_checkpoints", "name"),
                    ("subject_keys", "subject"),
                    ("personal_data_access", "seq"),
                ] {
                    // Rows whose text holds the needle, counted by a no-op
                    // update (the harness runs statements, not queries).
                    let hits = db
                        .execute_raw(&format!(
                            "UPDATE {table} SET {column} = {column} WHERE {table}::text LIKE '%{needle}%'"
                        ))
                        .await
                        .expect("searched");
                    any |= hits > 0;
                }
                any
            }
        };
        if hit {
            found.push(needle);
        }
    }
    found
}

/// Erases on request through `path` (an admin, a reason): the answer
/// holds the `event`, and a second request records nothing more. Answers
/// the erasure's position.
async fn erase_on_request(s: &Server, path: &str, event: &str) -> u64 {
    let erasure = s.post(path, json!({"reason": "本人申请删除"})).await.ok();
    assert_eq!(erasure["events"][0]["type"], event);
    assert_eq!(erasure["events"][0]["data"]["basis"], "request");
    let again = s.post(path, json!({"reason": "本人申请删除"})).await.ok();
    assert_eq!(again["events"], json!([]), "erased once");
    erasure["position"].as_u64().expect("a position")
}

/// The live feed of `category` from the log's start, as the test's admin
/// sees it, read until an `event` arrives (10 s at most).
async fn live_feed_until(s: &Server, category: &str, event: &str) -> String {
    let feed = s
        .client
        .get(s.url(&format!(
            "/v1/events/live?after=0&heartbeat_seconds=1&category={category}"
        )))
        .bearer_auth(&s.token)
        .send()
        .await
        .expect("the feed opens");
    let mut feed = feed.bytes_stream();
    let mut live = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !live.contains(&format!("event: {event}")) {
        let chunk = tokio::time::timeout_at(deadline, feed.next())
            .await
            .expect("the log's events arrive")
            .expect("the feed stays open")
            .expect("bytes");
        live.push_str(&String::from_utf8_lossy(&chunk));
    }
    live
}

fn erased(v: &Value) -> bool {
    v == &json!({"erased": true})
}

async fn an_erased_person_is_unreadable_everywhere_while_the_chain_and_figures_stand(
    db: Arc<TestDb>,
) {
    let s = Server::start_on(db.clone(), &[]);
    let place = place(&s, None, "一片区").await;
    let zone = place.0.clone();
    let r = register(&s, &place, &today(&s).await).await;
    let roles = [
        "village_stationed_cadre",
        "village_cadre",
        "group_leader",
        "village_doctor",
        "auxiliary_police",
    ];
    let members: Vec<Value> = roles
        .iter()
        .map(|role| json!({"role": role, "name": "王五", "phone": TEAM_PHONE}))
        .collect();
    s.put(
        &format!("/v1/returnees/{r}/responsibility-team"),
        json!({"members": members}),
    )
    .await
    .ok();
    s.post(&format!("/v1/returnees/{r}/quarantine"), json!({}))
        .await
        .ok();
    s.post(
        &format!("/v1/returnees/{r}/health-checks"),
        json!({"temperature": 38.6, "symptoms": ["cough"]}),
    )
    .await
    .ok();
    let referred = s
        .post(
            &format!("/v1/returnees/{r}/referrals"),
            json!({"facility": "镇卫生院"}),
        )
        .await
        .ok();
    let before_erasure = referred["position"].as_u64().expect("a position");

    // Written sealed: the log holds no name, ID number or phone.
    assert_eq!(
        plaintext_stored(&db).await,
        Vec::<&str>::new(),
        "sealed before hashing"
    );
    let shown = s.get(&format!("/v1/returnees/{r}")).await.ok();
    assert_eq!(shown["personal"]["name"], NAME, "opened for an admin");
    assert_eq!(shown["team"][0]["phone"], TEAM_PHONE);
    let figures_before = s
        .get(&format!(
            "/v1/zones/{zone}/dashboard?min_position={before_erasure}"
        ))
        .await
        .ok();

    // Erasure: an admin with a reason; a zone worker may not.
    let worker = s.create_token("zone_worker", &[&zone], "片区干部").await;
    let refused = s
        .send(
            s.client
                .post(s.url(&format!("/v1/returnees/{r}/erasure")))
                .bearer_auth(&worker)
                .json(&json!({"reason": "本人申请"})),
        )
        .await;
    assert_eq!(refused.status, 403);
    s.post(&format!("/v1/returnees/{r}/erasure"), json!({}))
        .await
        .problem(422, "invalid_fields");
    let at = erase_on_request(
        &s,
        &format!("/v1/returnees/{r}/erasure"),
        "PersonalDataErased",
    )
    .await;

    // Every route shows the person's fields as erased.
    let mut answers = vec![];
    let one = s.get(&format!("/v1/returnees/{r}")).await.ok();
    assert!(erased(&one["personal"]), "{one}");
    assert!(one["team"]
        .as_array()
        .expect("team")
        .iter()
        .all(|m| erased(&m["phone"])));
    assert_eq!(one["status"], "in_quarantine", "everything else stands");
    answers.push(one);
    let list = s
        .get(&format!("/v1/returnees?min_position={at}"))
        .await
        .ok();
    assert!(erased(&list["items"][0]["personal"]));
    answers.push(list);
    let stream = s.get(&format!("/v1/returnees/{r}/events")).await.ok();
    assert!(erased(&stream[0]["data"]["personal"]), "{}", stream[0]);
    answers.push(stream);
    let log = s.get("/v1/events?category=returnee").await.ok();
    assert!(erased(&log["items"][0]["data"]["personal"]));
    answers.push(log);
    let roster = s
        .get(&format!("/v1/quarantine/roster?min_position={at}"))
        .await
        .ok();
    assert!(erased(&roster["items"][0]["name"]), "{roster}");
    answers.push(roster);
    // As it stood before the erasure: the figures then, the person erased.
    let then = s
        .get(&format!("/v1/quarantine/roster?as_of={before_erasure}"))
        .await
        .ok();
    assert!(erased(&then["items"][0]["name"]), "{then}");
    answers.push(then);
    let report = s
        .get(&format!("/v1/returnees/{r}/personal-data"))
        .await
        .ok();
    assert_eq!(report["erased"], true);
    answers.push(report);
    // The live feed, replayed from the start as an admin sees it.
    let live = live_feed_until(&s, "returnee", "PersonalDataErased").await;
    assert!(live.contains(r#""personal":{"erased":true}"#), "{live}");
    answers.push(Value::String(live));
    for answer in &answers {
        let text = answer.to_string();
        assert!(
            !text.contains(NAME) && !text.contains(RESIDENT_ID) && !text.contains(PHONE),
            "{text}"
        );
    }
    // Every figure as it was.
    let figures_after = s
        .get(&format!("/v1/zones/{zone}/dashboard?min_position={at}"))
        .await
        .ok();
    assert_eq!(figures_after["to_date"], figures_before["to_date"]);
    assert_eq!(figures_after["today"], figures_before["today"]);

    // The record of who read it: the admin's reads before the erasure.
    let record = s.get("/v1/audit/personal-data-access?limit=1000").await;
    let record = record.ok();
    let subject = format!("returnee-{r}");
    let rows = record["items"].as_array().expect("rows");
    assert!(
        rows.iter()
            .any(|row| row["route"] == "GET /v1/returnees/{returnee_id}"
                && row["role"] == "admin"
                && row["subjects"] == json!([subject])),
        "{record}"
    );
    assert!(rows
        .iter()
        .all(|row| row["hash"].as_str().is_some_and(|h| h.len() == 64)));

    assert!(s.stop().success());
    // What the service saved at its stop holds no one in the clear.
    assert_eq!(plaintext_stored(&db).await, Vec::<&str>::new());
    // The chain verifies byte for byte, the access record too; a rebuild
    // equals the saved state; nothing stored holds the person in the clear.
    let verified = fangkong(&db, &["verify"]);
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success() && said.contains("intact"),
        "{said}"
    );
    assert!(
        said.contains("personal data access record intact"),
        "{said}"
    );
    let rebuilt = fangkong(&db, &["rebuild"]);
    let said = String::from_utf8_lossy(&rebuilt.stderr);
    assert!(
        rebuilt.status.success() && said.contains("equals the rebuild"),
        "{said}"
    );
    assert_eq!(plaintext_stored(&db).await, Vec::<&str>::new());
    let restarted = Server::start_on(db.clone(), &[]);
    let one = restarted.get(&format!("/v1/returnees/{r}")).await.ok();
    assert!(erased(&one["personal"]), "after a restart from saved state");
}

async fn a_wrong_or_missing_key_encryption_key_refuses_to_start_and_rotation_keeps_everyone_readable(
    db: Arc<TestDb>,
) {
    let s = Server::start_on(db.clone(), &[]);
    let place = place(&s, None, "一片区").await;
    let r = register(&s, &place, &today(&s).await).await;
    assert!(s.stop().success());

    let wrong = std::process::Command::new(env!("CARGO_BIN_EXE_fangkong"))
        .args(["erase", "--due"])
        .env("FANGKONG_DATABASE_URL", db.url())
        .envs(support::state_key_env(&db))
        .env("FANGKONG_KEK", "77".repeat(32))
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success(), "a wrong KEK is refused");
    assert!(
        said.contains("does not open this store's data keys"),
        "{said}"
    );

    let new_key = std::env::temp_dir().join(format!("fangkong-kek-{}", uuid::Uuid::new_v4()));
    let rotated = match db.backend() {
        "sqlite" => {
            // Without the file the store's keys were made with: refused.
            let dir = std::path::Path::new(db.url().trim_start_matches("sqlite://"))
                .parent()
                .expect("a directory")
                .to_owned();
            let file = dir.join("kek.key");
            let aside = dir.join("kek.key.aside");
            std::fs::rename(&file, &aside).expect("moved aside");
            let missing = fangkong(&db, &["erase", "--due"]);
            let said = String::from_utf8_lossy(&missing.stderr);
            assert!(!missing.status.success(), "a missing KEK is refused");
            assert!(said.contains("no key-encryption key"), "{said}");
            assert!(!file.exists(), "and none is made over the store's keys");
            std::fs::rename(&aside, &file).expect("put back");
            let out = fangkong(&db, &["keys", "rotate-kek"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(dir.join("kek.old").exists(), "the old key kept aside");
            out
        }
        _ => {
            let out = fangkong(
                &db,
                &[
                    "keys",
                    "rotate-kek",
                    "--new-kek-file",
                    new_key.to_str().expect("path"),
                ],
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out
        }
    };
    let said = String::from_utf8_lossy(&rotated.stdout);
    assert!(
        said.contains("rewrapped 2 keys"),
        "one person's and the store's own: {said}"
    );

    // The old KEK no longer opens the store; the new one reads everyone.
    let mut env: Vec<(String, String)> = vec![];
    if db.backend() == "postgres" {
        let old = fangkong(&db, &["erase", "--due"]);
        assert!(
            !old.status.success(),
            "the old KEK is refused after rotation"
        );
        let new = std::fs::read_to_string(&new_key).expect("the new key was written");
        env.push(("FANGKONG_KEK".into(), new.trim().to_owned()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let s = Server::start_env(db.clone(), &env);
    let one = s.get(&format!("/v1/returnees/{r}")).await.ok();
    assert_eq!(one["personal"]["name"], NAME, "readable under the new KEK");
    let _ = std::fs::remove_file(&new_key);
}

async fn the_retention_job_erases_exactly_the_due_subjects(db: Arc<TestDb>) {
    let s = Server::start_on(db.clone(), &[]);
    let place = place(&s, None, "一片区").await;
    let worker = s.create_token("zone_worker", &[&place.0], "片区干部").await;
    // Registered (arrived 40 days ago) and never quarantined.
    let registered = register(&s, &place, &days_ago(40)).await;
    // In quarantine now: never due during one.
    let quarantined = register(&s, &place, &days_ago(40)).await;
    s.post(
        &format!("/v1/returnees/{quarantined}/quarantine"),
        json!({}),
    )
    .await
    .ok();
    // A quarantine a zone worker ended with a date 40 days back: the
    // retention runs from when the end was recorded, not the date sent.
    let ended = register(&s, &place, &days_ago(45)).await;
    s.send(
        s.client
            .post(s.url(&format!("/v1/returnees/{ended}/quarantine")))
            .bearer_auth(&worker)
            .json(&json!({"occurred_at": format!("{}T09:00:00+08:00", days_ago(44))})),
    )
    .await
    .ok();
    s.send(
        s.client
            .post(s.url(&format!("/v1/returnees/{ended}/quarantine/end")))
            .bearer_auth(&worker)
            .json(&json!({"reason": "transferred",
                          "occurred_at": format!("{}T09:00:00+08:00", days_ago(40))})),
    )
    .await
    .ok();
    // Banquets: one whose date has passed, one still ahead (never due
    // while it is).
    let held = report_banquet(&s, &place.0, &days_ago(3)).await;
    let ahead = report_banquet(&s, &place.0, &days_ahead(10)).await;
    // Cancelled: its date no longer matters.
    let called_off = report_banquet(&s, &place.0, &days_ahead(20)).await;
    s.post(
        &format!("/v1/banquets/{called_off}/cancellation"),
        json!({}),
    )
    .await
    .ok();
    // Yesterday's staff checks (a day that is over), recorded now.
    s.post(
        "/v1/staff-health-checks",
        json!({"staff": STAFF, "temperature": 36.5,
               "occurred_at": format!("{}T09:00:00+08:00", days_ago(1))}),
    )
    .await
    .ok();
    // Today's checks: never due while the day lasts.
    s.post(
        "/v1/staff-health-checks",
        json!({"staff": STAFF, "temperature": 36.6}),
    )
    .await
    .ok();
    assert!(s.stop().success());

    // A day's retention: everything was recorded today, nothing is due,
    // whatever dates the arrival or the end were given.
    let out = fangkong(
        &db,
        &["erase", "--due", "--personal-data-retention-days", "1"],
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("erased the personal data of 0 of 8 data subjects"),
        "{said}"
    );
    // None (by hand only; a server needs at least 1): all but the one in
    // quarantine and the banquet still ahead are due.
    let out = fangkong(
        &db,
        &["erase", "--due", "--personal-data-retention-days", "0"],
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("erased the personal data of 5 of 8 data subjects"),
        "{said}"
    );
    let refused = fangkong(&db, &["serve", "--personal-data-retention-days", "0"]);
    assert!(
        !refused.status.success(),
        "a server never erases what it recorded today"
    );

    let s = Server::start_on(db.clone(), &[]);
    for due in [&registered, &ended] {
        assert!(erased(
            &s.get(&format!("/v1/returnees/{due}")).await.ok()["personal"]
        ));
        let events = s.get(&format!("/v1/returnees/{due}/events")).await.ok();
        let last = events
            .as_array()
            .expect("events")
            .last()
            .expect("an event")
            .clone();
        assert_eq!(last["type"], "PersonalDataErased");
        assert_eq!(last["data"]["basis"], "retention");
        assert_eq!(last["data"]["reason"], "retention");
    }
    assert_eq!(
        s.get(&format!("/v1/returnees/{quarantined}")).await.ok()["personal"]["name"],
        NAME
    );
    for due in [&held, &called_off] {
        let banquet = s.get(&format!("/v1/banquets/{due}")).await.ok();
        assert!(erased(&banquet["host"]), "{banquet}");
        assert_eq!(banquet["guests"], 120, "the banquet itself stands");
    }
    // The log opens sealed values with the keys: erased there means the
    // key is gone, not only the state marked.
    let log = s.get("/v1/events?category=banquet&limit=100").await.ok();
    let items = log["items"].as_array().expect("items");
    for item in items {
        let shown = &item["data"]["personal"];
        if item["type"] == "BanquetReported" {
            let due = [&held, &called_off]
                .iter()
                .any(|b| item["stream_id"] == format!("banquet-{b}"));
            assert_eq!(erased(shown), due, "{item}");
        }
    }
    let erasures: Vec<&Value> = items
        .iter()
        .filter(|i| i["type"] == "BanquetHostDataErased")
        .collect();
    assert_eq!(erasures.len(), 2);
    assert!(erasures.iter().all(|e| e["data"]["basis"] == "retention"));
    let staff = s.get("/v1/events?category=staff").await.ok();
    let staff = staff["items"].as_array().expect("items");
    assert!(erased(&staff[0]["data"]["staff"]), "{staff:?}");
    assert_eq!(
        staff[0]["data"]["temperature"], 36.5,
        "the check stays counted"
    );
    let yesterday = format!("staff-{}", days_ago(1));
    let of_yesterday: Vec<&Value> = staff
        .iter()
        .filter(|e| e["stream_id"] == yesterday)
        .collect();
    assert!(erased(&of_yesterday[0]["data"]["staff"]), "{staff:?}");
    assert_eq!(
        of_yesterday[0]["data"]["temperature"], 36.5,
        "the check stays counted"
    );
    assert_eq!(
        of_yesterday.last().expect("events")["type"],
        "StaffNamesErased"
    );
    let of_today = staff
        .iter()
        .find(|e| e["stream_id"] != yesterday)
        .expect("today's check");
    assert_eq!(of_today["data"]["staff"], STAFF, "today is not over");
    // A check backdated to the erased day is refused, in words.
    s.post(
        "/v1/staff-health-checks",
        json!({"staff": STAFF, "temperature": 36.5,
               "occurred_at": format!("{}T10:00:00+08:00", days_ago(1))}),
    )
    .await
    .problem(409, "personal_data_erased");
    assert_eq!(
        s.get(&format!("/v1/banquets/{ahead}")).await.ok()["host"]["name"],
        HOST
    );
    assert!(s.stop().success());
    // Run again: nothing more is due.
    let out = fangkong(
        &db,
        &["erase", "--due", "--personal-data-retention-days", "0"],
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("erased the personal data of 0 of 8 data subjects"),
        "{said}"
    );
}

async fn a_banquet_hosts_erasure_leaves_the_banquet_and_its_figures_but_no_name(db: Arc<TestDb>) {
    let s = Server::start_on(db.clone(), &[]);
    let (zone, ..) = place(&s, None, "一片区").await;
    let (other_zone, ..) = place(&s, None, "二片区").await;
    let b = report_banquet(&s, &zone, &days_ahead(5)).await;
    let postponed = s
        .post(
            &format!("/v1/banquets/{b}/postponement"),
            json!({"new_date": days_ahead(40)}),
        )
        .await
        .ok();
    let before = postponed["position"].as_u64().expect("a position");
    assert_eq!(
        plaintext_stored_of(&db, &[HOST, HOST_PHONE]).await,
        Vec::<&str>::new()
    );
    assert_eq!(
        s.get(&format!("/v1/banquets/{b}")).await.ok()["host"]["name"],
        HOST,
        "opened for an admin"
    );
    let figures_before = s
        .get(&format!("/v1/zones/{zone}/dashboard?min_position={before}"))
        .await
        .ok();

    // Admin only, a reason required, the route as the router chose it.
    let worker = s.create_token("zone_worker", &[&zone], "片区干部").await;
    let other = s
        .create_token("zone_worker", &[&other_zone], "二片区干部")
        .await;
    let auditor = s.create_token("auditor", &[], "审计").await;
    for token in [&worker, &other, &auditor] {
        let refused = s
            .send(
                s.client
                    .post(s.url(&format!("/v1/banquets/{b}/erasure")))
                    .bearer_auth(token)
                    .json(&json!({"reason": "本人申请"})),
            )
            .await;
        assert_eq!(refused.status, 403);
    }
    // However the path is spelled, the route the router chose decides.
    let encoded = |token: Option<&String>| {
        let request = s
            .client
            .post(s.url(&format!("/v1/banquets/{b}/erasur%65")))
            .json(&json!({"reason": "本人申请"}));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    };
    assert_eq!(s.send_raw(encoded(None)).await.status, 401);
    assert_eq!(s.send_raw(encoded(Some(&worker))).await.status, 403);
    s.post(&format!("/v1/banquets/{b}/erasure"), json!({}))
        .await
        .problem(422, "invalid_fields");
    let unknown = uuid::Uuid::now_v7();
    let missing = s
        .post(
            &format!("/v1/banquets/{unknown}/erasure"),
            json!({"reason": "本人申请"}),
        )
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        s.get(&format!("/v1/banquets/{b}")).await.ok()["host"]["name"],
        HOST,
        "refusals changed nothing"
    );

    // The family's subject access report: admin only, everything opened,
    // and the read on record.
    let worker_report = s
        .send(
            s.client
                .get(s.url(&format!("/v1/banquets/{b}/personal-data")))
                .bearer_auth(&worker),
        )
        .await;
    assert_eq!(worker_report.status, 403);
    let report = s.get(&format!("/v1/banquets/{b}/personal-data")).await.ok();
    assert_eq!(report["erased"], false);
    assert_eq!(report["banquet"]["host"]["name"], HOST);
    assert_eq!(report["events"][0]["type"], "BanquetReported");
    assert_eq!(report["events"][0]["data"]["personal"]["phone"], HOST_PHONE);
    assert_eq!(report["events"][1]["type"], "BanquetPostponed");
    let record = s
        .get("/v1/audit/personal-data-access?limit=1000")
        .await
        .ok();
    assert!(
        record["items"]
            .as_array()
            .expect("rows")
            .iter()
            .any(
                |row| row["route"] == "GET /v1/banquets/{banquet_id}/personal-data"
                    && row["subjects"] == json!([format!("banquet-{b}")])
            ),
        "{record}"
    );

    let at = erase_on_request(
        &s,
        &format!("/v1/banquets/{b}/erasure"),
        "BanquetHostDataErased",
    )
    .await;

    let one = s.get(&format!("/v1/banquets/{b}")).await.ok();
    assert!(erased(&one["host"]), "{one}");
    assert_eq!(one["status"], "postponed", "everything else stands");
    let report = s.get(&format!("/v1/banquets/{b}/personal-data")).await.ok();
    assert_eq!(report["erased"], true);
    assert!(erased(&report["events"][0]["data"]["personal"]), "{report}");
    assert!(!report.to_string().contains(HOST), "{report}");
    let list = s
        .get(&format!("/v1/banquets?zone_id={zone}&min_position={at}"))
        .await
        .ok();
    assert!(erased(&list["items"][0]["host"]), "{list}");
    let log = s.get("/v1/events?category=banquet").await.ok();
    assert!(erased(&log["items"][0]["data"]["personal"]), "{log}");
    // The live feed, replayed from the start as an admin sees it.
    let live = live_feed_until(&s, "banquet", "BanquetHostDataErased").await;
    assert!(live.contains(r#""personal":{"erased":true}"#), "{live}");
    assert!(!live.contains(HOST) && !live.contains(HOST_PHONE), "{live}");
    for answer in [&one, &list, &log] {
        let text = answer.to_string();
        assert!(!text.contains(HOST) && !text.contains(HOST_PHONE), "{text}");
    }
    let figures_after = s
        .get(&format!("/v1/zones/{zone}/dashboard?min_position={at}"))
        .await
        .ok();
    assert_eq!(figures_after["to_date"], figures_before["to_date"]);
    assert_eq!(figures_after["today"], figures_before["today"]);
    // A field worker goes on with the banquet: nothing is sealed anew.
    s.send(
        s.client
            .post(s.url(&format!("/v1/banquets/{b}/cancellation")))
            .bearer_auth(&worker)
            .json(&json!({})),
    )
    .await
    .ok();
    assert!(s.stop().success());
    assert_eq!(
        plaintext_stored_of(&db, &[HOST, HOST_PHONE]).await,
        Vec::<&str>::new()
    );
    let verified = fangkong(&db, &["verify"]);
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success() && said.contains("intact"),
        "{said}"
    );
    let restarted = Server::start_on(db.clone(), &[]);
    let one = restarted.get(&format!("/v1/banquets/{b}")).await.ok();
    assert!(erased(&one["host"]), "after a restart from saved state");
}

async fn the_access_record_notes_every_unmasked_read_and_no_other_and_an_edit_is_found(
    db: Arc<TestDb>,
) {
    let s = Server::start_on(db.clone(), &[]);
    let place = place(&s, None, "一片区").await;
    let zone = place.0.clone();
    s.put(
        &format!("/v1/zones/{zone}/leader"),
        json!({"leader": "李镇长", "phone": "13911112222"}),
    )
    .await
    .ok();
    let r = register(&s, &place, &today(&s).await).await;
    let written = s
        .post(&format!("/v1/returnees/{r}/quarantine"), json!({}))
        .await
        .ok();
    let at = written["position"].as_u64().expect("a position");
    let worker = s.create_token("zone_worker", &[&zone], "片区干部").await;
    let county = s.create_token("county", &[], "县疾控").await;
    let auditor = s.create_token("auditor", &[], "审计").await;
    let server = &s;
    let read = |token: String, path: String| async move {
        server
            .send(server.client.get(server.url(&path)).bearer_auth(token))
            .await
    };
    // Unmasked: each of these notes the worker's or the admin's read.
    read(worker.clone(), format!("/v1/returnees/{r}"))
        .await
        .ok();
    read(worker.clone(), format!("/v1/returnees?min_position={at}"))
        .await
        .ok();
    read(worker.clone(), format!("/v1/returnees/{r}/events"))
        .await
        .ok();
    read(
        worker.clone(),
        format!("/v1/quarantine/roster?min_position={at}"),
    )
    .await
    .ok();
    read(worker.clone(), format!("/v1/zones/{zone}")).await.ok();
    read(s.token.clone(), "/v1/events?category=returnee".into())
        .await
        .ok();
    read(s.token.clone(), format!("/v1/returnees/{r}/personal-data"))
        .await
        .ok();
    // Masked or figures only: nothing to note.
    read(county.clone(), format!("/v1/zones/{zone}")).await.ok();
    read(auditor.clone(), "/v1/events?category=returnee".into())
        .await
        .ok();
    read(county.clone(), "/v1/dashboard".into()).await.ok();

    let token_id = |token: &str| {
        token
            .strip_prefix("fk_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|id| uuid::Uuid::try_parse(id).ok())
            .expect("a token id")
            .to_string()
    };
    let subject = format!("returnee-{r}");
    let expected: Vec<(String, String, String)> = [
        (&worker, "GET /v1/returnees/{returnee_id}", subject.clone()),
        (&worker, "GET /v1/returnees", subject.clone()),
        (
            &worker,
            "GET /v1/returnees/{returnee_id}/events",
            subject.clone(),
        ),
        (&worker, "GET /v1/quarantine/roster", subject.clone()),
        (&worker, "GET /v1/zones/{zone_id}", format!("zone-{zone}")),
        (&s.token, "GET /v1/events", subject.clone()),
        (
            &s.token,
            "GET /v1/returnees/{returnee_id}/personal-data",
            subject.clone(),
        ),
    ]
    .into_iter()
    .map(|(token, route, subject)| (token_id(token), route.to_owned(), subject))
    .collect();
    // Written in groups within moments: wait for the last.
    let mut rows = vec![];
    for _ in 0..50 {
        let page = s
            .get("/v1/audit/personal-data-access?limit=1000")
            .await
            .ok();
        rows = page["items"].as_array().expect("rows").clone();
        if rows
            .iter()
            .any(|row| row["route"] == "GET /v1/returnees/{returnee_id}/personal-data")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let reads: Vec<(String, String, String)> = rows
        .iter()
        .filter(|row| row["route"].as_str().is_some_and(|r| r.starts_with("GET")))
        .flat_map(|row| {
            let token = row["token_id"].as_str().expect("token").to_owned();
            let route = row["route"].as_str().expect("route").to_owned();
            row["subjects"]
                .as_array()
                .expect("subjects")
                .iter()
                .map(move |subject| {
                    (
                        token.clone(),
                        route.clone(),
                        subject.as_str().expect("subject").to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        reads, expected,
        "every unmasked read, in order, and nothing else"
    );
    // A write's answer showed its sender their own data: noted too.
    assert!(rows.iter().any(
        |row| row["route"] == "write returnee.register" && row["subjects"] == json!([subject])
    ));

    assert!(s.stop().success());
    assert!(fangkong(&db, &["verify"]).status.success());
    // An edited row, then a removed one: verification names where.
    db.execute_raw("UPDATE personal_data_access SET role = 'county' WHERE seq = 2")
        .await
        .expect("edited");
    let out = fangkong(&db, &["verify"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        said.contains("BROKEN personal data access record at row 2"),
        "{said}"
    );
    db.execute_raw("DELETE FROM personal_data_access WHERE seq = 2")
        .await
        .expect("removed");
    let out = fangkong(&db, &["verify"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        said.contains("BROKEN personal data access record at row 2"),
        "{said}"
    );
}

fangkong_store::each_backend!(
    an_erased_person_is_unreadable_everywhere_while_the_chain_and_figures_stand,
    a_wrong_or_missing_key_encryption_key_refuses_to_start_and_rotation_keeps_everyone_readable,
    the_retention_job_erases_exactly_the_due_subjects,
    a_banquet_hosts_erasure_leaves_the_banquet_and_its_figures_but_no_name,
    the_access_record_notes_every_unmasked_read_and_no_other_and_an_edit_is_found,
);
