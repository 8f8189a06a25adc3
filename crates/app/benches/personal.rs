//! What sealing personal data costs appends, and what erasing costs, in
//! one run: `cargo bench -p fangkong-app --bench personal` (PostgreSQL too
//! when `FANGKONG_TEST_POSTGRES` is set; `FANGKONG_BENCH_BACKEND` picks
//! one; `FANGKONG_BENCH_EVENTS` events per run, default 20,000, an eighth
//! of them for one appender; `FANGKONG_BENCH_APPENDERS` the appender
//! counts, default `1,64`; `FANGKONG_BENCH_MIX` one mix, `new` or
//! `record`; `FANGKONG_BENCH_ROUNDS` rounds per figure, default 5;
//! `FANGKONG_BENCH_NO_ERASURE` skips the erasure timings).
//!
//! Each figure appends the same events to a fresh store, by 1 and by 64
//! appenders, once as they are and once sealed through the application's
//! own `seal_payload` (a data key made, wrapped and stored for each new
//! person, then AEAD per personal field), so the ratio is the cost of
//! sealing, taken round by round (each round's plain and sealed runs back
//! to back) and its median printed with its spread. Two mixes: every event
//! a new person's registration (the worst case: one key per event), and a
//! returnee's record as the field makes it
//! (registration, five-for-one team with phones, quarantine, 14 visits:
//! one key and six sealed fields in 17 events). Then the erasure of one
//! person and the retention job over 10,000 due people are timed.

use std::time::Instant;

use fangkong_app::personal::seal_payload;
use fangkong_store::testing::TestDb;
use fangkong_store::{EventStore, ExpectedVersion, NewEvent};
use fangkong_vault::{Kek, Vault};
use serde_json::{json, Value};
use uuid::Uuid;

type Make = fn(Uuid) -> Vec<(&'static str, Value)>;

fn registration(returnee: Uuid) -> (&'static str, Value) {
    (
        "ReturneeRegistered",
        json!({
            "returnee_id": returnee, "zone_id": Uuid::now_v7(), "village_id": Uuid::now_v7(),
            "grid_id": Uuid::now_v7(), "arrival_date": "2020-01-24",
            "origin": {"region": "湖北省武汉市", "risk": "high"},
            "personal": {"name": "张三丰", "resident_id": "11010519491231002X",
                         "phone": "13812345678", "address": "桥头村三组12号"}
        }),
    )
}

fn registration_only(returnee: Uuid) -> Vec<(&'static str, Value)> {
    vec![registration(returnee)]
}

/// A returnee's record: 17 events, the first two carrying personal data.
fn record(returnee: Uuid) -> Vec<(&'static str, Value)> {
    let roles = [
        "village_stationed_cadre",
        "village_cadre",
        "group_leader",
        "village_doctor",
        "auxiliary_police",
    ];
    let members: Vec<Value> = roles
        .iter()
        .map(|r| json!({"role": r, "name": "王五", "phone": "13900001111"}))
        .collect();
    let mut events = vec![
        registration(returnee),
        ("ResponsibilityTeamAssigned", json!({ "members": members })),
        (
            "QuarantineStarted",
            json!({"start_date": "2020-01-24", "planned_days": 14, "planned_end": "2020-02-06"}),
        ),
    ];
    for day in 0..14 {
        events.push((
            "HealthCheckRecorded",
            json!({"date": format!("2020-01-{:02}", 24 + day % 7), "temperature": 36.6,
                   "symptoms": [], "visited_by": "村医"}),
        ));
    }
    events
}

async fn store_and_vault(db: &TestDb) -> (EventStore, Vault) {
    let store = db.open().await.expect("the store opens");
    let vault = Vault::open(store.clone(), Kek::random().expect("a KEK"))
        .await
        .expect("the vault opens");
    (store, vault)
}

/// Bytes the database has written so far: for SQLite, this process's
/// writes (`wchar` of /proc/self/io: the WAL, checkpoints, everything);
/// for PostgreSQL, the server's WAL (how far its write position moved).
/// Unlike a rate, a count the host's load does not move.
async fn bytes_written(db: &TestDb) -> Option<u64> {
    match db.backend() {
        "sqlite" => std::fs::read_to_string("/proc/self/io")
            .ok()?
            .lines()
            .find_map(|line| line.strip_prefix("wchar:"))?
            .trim()
            .parse()
            .ok(),
        _ => db
            .fetch_text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text")
            .await
            .ok()??
            .parse()
            .ok(),
    }
}

/// Events per second, and bytes written per event: `people` records of
/// `make`, spread over `appenders`.
async fn appends(
    db: &TestDb,
    appenders: usize,
    people: usize,
    make: Make,
    sealed: bool,
) -> (f64, f64) {
    let (store, vault) = store_and_vault(db).await;
    let bytes_before = bytes_written(db).await;
    let per_task = people.div_ceil(appenders);
    let started = Instant::now();
    let tasks = (0..appenders).map(|_| {
        let (store, vault) = (store.clone(), vault.clone());
        tokio::spawn(async move {
            let mut appended = 0usize;
            for _ in 0..per_task {
                let returnee = Uuid::now_v7();
                let stream = format!("returnee-{returnee}");
                for (event_type, mut payload) in make(returnee) {
                    let mut sealing = None;
                    if sealed {
                        seal_payload(&vault, &mut sealing, &stream, event_type, &mut payload)
                            .expect("sealed");
                    }
                    let new_key = sealing.as_ref().and_then(|k| k.pending.clone());
                    store
                        .append_with_key(
                            &stream,
                            ExpectedVersion::Any,
                            vec![NewEvent::new(event_type, payload)],
                            new_key,
                        )
                        .await
                        .expect("appended");
                    if let Some(sealing) = sealing {
                        vault.committed(sealing);
                    }
                    appended += 1;
                }
            }
            appended
        })
    });
    let mut events = 0;
    for task in futures::future::join_all(tasks).await {
        events += task.expect("an appender");
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    let bytes = match (bytes_before, bytes_written(db).await) {
        (Some(before), Some(after)) => after.saturating_sub(before) as f64 / events as f64,
        _ => f64::NAN,
    };
    store.close().await;
    (rate, bytes)
}

/// Rounds of each figure unless `FANGKONG_BENCH_ROUNDS` says otherwise:
/// plain and sealed alternate which goes first.
const ROUNDS: usize = 5;

fn median(rates: &mut [f64]) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates.get(rates.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn backend(name: &str) -> Option<TestDb> {
    match name {
        "sqlite" => Some(TestDb::sqlite()),
        _ => TestDb::postgres().await,
    }
}

/// The erasure of one person, then the retention job over 10,000 due.
async fn erasures(db: &TestDb) {
    let (store, vault) = store_and_vault(db).await;
    let app = fangkong_app::Application::new(store.clone(), Default::default(), vault);
    let mut people = Vec::with_capacity(10_001);
    while people.len() < 10_001 {
        let tasks = (0..500).map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let returnee = Uuid::now_v7();
                let stream = format!("returnee-{returnee}");
                let (event_type, mut payload) = registration(returnee);
                let mut sealing = None;
                seal_payload(app.vault(), &mut sealing, &stream, event_type, &mut payload)
                    .expect("sealed");
                app.store()
                    .append_with_key(
                        &stream,
                        ExpectedVersion::NoStream,
                        vec![NewEvent::new(event_type, payload)],
                        sealing.as_ref().and_then(|k| k.pending.clone()),
                    )
                    .await
                    .expect("appended");
                if let Some(sealing) = sealing {
                    app.vault().committed(sealing);
                }
                (stream, returnee)
            })
        });
        for task in futures::future::join_all(tasks).await {
            people.push(task.expect("a registration"));
        }
    }
    let (stream, returnee) = people.pop().expect("one person");
    let started = Instant::now();
    app.erase_personal_data(
        &fangkong_app::Envelope::system(),
        &fangkong_app::Target::new(stream, returnee, "returnee.erase"),
        fangkong_domain::returnee::ErasureBasis::Request,
        fangkong_domain::Text::parse("bench").expect("text"),
    )
    .await
    .expect("erased");
    println!(
        "erasure of one person: {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    // Registered just now and never quarantined: all due with a retention
    // of no days.
    let started = Instant::now();
    let run = app.erase_due(0).await.expect("the retention job runs");
    println!(
        "retention job: {} of {} people erased in {:.2} s",
        run.erased,
        run.considered,
        started.elapsed().as_secs_f64()
    );
    store.close().await;
}

#[tokio::main]
async fn main() {
    let events: usize = std::env::var("FANGKONG_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let mixes: [(&str, &str, Make, usize); 2] = [
        ("new", "every event a new person", registration_only, 1),
        ("record", "a returnee's record (17 events)", record, 17),
    ];
    let only_mix = std::env::var("FANGKONG_BENCH_MIX").ok();
    let rounds: usize = std::env::var("FANGKONG_BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(ROUNDS);
    let appender_counts: Vec<usize> = std::env::var("FANGKONG_BENCH_APPENDERS")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![1, 64]);
    let only = std::env::var("FANGKONG_BENCH_BACKEND").ok();
    for name in ["sqlite", "postgres"] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        println!("== {name}");
        if backend(name).await.is_none() {
            println!("PostgreSQL not configured (FANGKONG_TEST_POSTGRES): skipped");
            continue;
        }
        for (mix_name, mix, make, per_person) in mixes {
            if only_mix.as_deref().is_some_and(|m| m != mix_name) {
                continue;
            }
            for &appenders in &appender_counts {
                // A lone appender commits each event alone: fewer of them.
                let total = if appenders == 1 { events / 8 } else { events };
                let people = (total / per_person).max(appenders);
                // Rounds alternate which goes first, each on fresh stores.
                // The cost is the median over rounds of each round's own
                // pair (plain and sealed run back to back, so under the
                // same load): on a shared machine, runs minutes apart
                // differ by more than the cost measured.
                let (mut plain, mut sealed, mut costs) = (Vec::new(), Vec::new(), Vec::new());
                let mut bytes = [Vec::new(), Vec::new()];
                for round in 0..rounds {
                    let mut pair = [f64::NAN; 2];
                    for seal in [round % 2 == 1, round % 2 == 0] {
                        let Some(db) = backend(name).await else {
                            continue;
                        };
                        let (rate, written) = appends(&db, appenders, people, make, seal).await;
                        pair[usize::from(seal)] = rate;
                        bytes[usize::from(seal)].push(written);
                    }
                    plain.push(pair[0]);
                    sealed.push(pair[1]);
                    costs.push(100.0 * (1.0 - pair[1] / pair[0]));
                }
                let [mut plain_bytes, mut sealed_bytes] = bytes;
                let (plain_bytes, sealed_bytes) =
                    (median(&mut plain_bytes), median(&mut sealed_bytes));
                let (plain, sealed) = (median(&mut plain), median(&mut sealed));
                let cost = median(&mut costs);
                println!(
                    "{mix:<32} {appenders:>2} appender(s): plain {plain:>7.0} events/s, \
                     sealed {sealed:>7.0} events/s (medians), sealing costs {cost:>5.1}% \
                     (median of {rounds} rounds' pairs; from {:.1}% to {:.1}%)",
                    costs.first().copied().unwrap_or(f64::NAN),
                    costs.last().copied().unwrap_or(f64::NAN),
                );
                println!(
                    "{:<32} {appenders:>2} appender(s): written per event, plain {plain_bytes:>5.0} \
                     bytes, sealed {sealed_bytes:>5.0} bytes ({:+.1}%; medians)",
                    "",
                    100.0 * (sealed_bytes / plain_bytes - 1.0),
                );
            }
        }
        if std::env::var("FANGKONG_BENCH_NO_ERASURE").is_ok() {
            continue;
        }
        if let Some(db) = backend(name).await {
            erasures(&db).await;
        }
    }
}
