//! The service under crashes and storage outages: a SIGKILL mid-load loses
//! no acknowledged write and leaves the chain and the read models sound (both
//! backends); PostgreSQL cut off mid-load gets 503s with `Retry-After`, a
//! failing `/readyz`, nothing half-written, and recovery without a restart.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fangkong_store::testing::TestDb;
use serde_json::{json, Value};
use support::{id, Server};

/// A zone and a checkpoint in it.
async fn checkpoint(s: &Server) -> String {
    let zone = id(&s.post("/v1/zones", json!({"name": "一片区"})).await.ok());
    id(&s
        .post(
            "/v1/checkpoints",
            json!({"zone_id": zone, "name": "村口", "kind": "village_entrance"}),
        )
        .await
        .ok())
}

/// What the server acknowledged: position → (type, data).
type Acknowledged = Arc<Mutex<BTreeMap<u64, (String, Value)>>>;

/// Writers posting crossings until told to stop; every 2xx answer recorded.
fn writers(
    s: &Server,
    checkpoint: &str,
    n: usize,
    stop: Arc<AtomicBool>,
    acknowledged: Acknowledged,
    statuses: Arc<Mutex<BTreeMap<u16, u64>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|w| {
            let client = s.client.clone();
            let url = s.url(&format!("/v1/checkpoints/{checkpoint}/crossings"));
            let token = s.token.clone();
            let (stop, acknowledged, statuses) = (stop.clone(), acknowledged.clone(), statuses.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let body = json!({"subject": "person", "people": 1 + (i % 3), "temperature": 36.5,
                                      "destination": format!("writer {w} #{i}"), "outcome": "admitted"});
                    let sent = client
                        .post(&url)
                        .bearer_auth(&token)
                        .timeout(Duration::from_secs(10))
                        .json(&body)
                        .send()
                        .await;
                    let Ok(response) = sent else {
                        // The server is gone (killed) or unreachable.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    let status = response.status().as_u16();
                    *statuses.lock().expect("lock").entry(status).or_default() += 1;
                    if status == 503 {
                        assert!(response.headers().get("retry-after").is_some(), "503 without Retry-After");
                        let problem: Value = response.json().await.expect("problem+json");
                        assert!(problem["code"].is_string());
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    // A crossing is refused for no reason but an unavailable
                    // store: never for another writer's crossing.
                    assert_eq!(status, 200, "writer {w}: {status}");
                    {
                        let written: Value = response.json().await.expect("json");
                        let event = &written["events"][0];
                        acknowledged.lock().expect("lock").insert(
                            event["position"].as_u64().expect("position"),
                            (event["type"].as_str().unwrap_or_default().to_owned(), event["data"].clone()),
                        );
                    }
                }
            })
        })
        .collect()
}

/// The whole log by position.
async fn log(s: &Server) -> BTreeMap<u64, (String, Value)> {
    let mut all = BTreeMap::new();
    let mut cursor = String::new();
    loop {
        let page = s.get(&format!("/v1/events?limit=1000{cursor}")).await.ok();
        for e in page["items"].as_array().expect("items") {
            all.insert(
                e["position"].as_u64().expect("position"),
                (
                    e["type"].as_str().unwrap_or_default().to_owned(),
                    e["data"].clone(),
                ),
            );
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return all,
        }
    }
}

fn rebuild(db: &TestDb) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fangkong"))
        .arg("rebuild")
        .env("FANGKONG_DATABASE_URL", db.url())
        .envs(support::state_key_env(db))
        .output()
        .expect("fangkong rebuild runs");
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{said}");
    said
}

async fn a_killed_server_loses_no_acknowledged_write(db: Arc<TestDb>) {
    let unlimited = ["--rate-limit", "0", "--projection-save-seconds", "1"];
    let s = Server::start_on(db.clone(), &unlimited);
    let post = checkpoint(&s).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Acknowledged = Default::default();
    let statuses = Arc::new(Mutex::new(BTreeMap::new()));
    let tasks = writers(
        &s,
        &post,
        16,
        stop.clone(),
        acknowledged.clone(),
        statuses.clone(),
    );
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    // SIGKILL mid-load: no graceful anything.
    drop(s);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("writer");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() > 50,
        "{} writes acknowledged",
        acknowledged.len()
    );

    let s = Server::start_on(db.clone(), &unlimited);
    let stored = log(&s).await;
    for (position, (kind, data)) in &acknowledged {
        assert_eq!(
            stored.get(position),
            Some(&(kind.clone(), data.clone())),
            "acknowledged write at {position} lost or changed"
        );
    }
    let positions: Vec<u64> = stored.keys().copied().collect();
    assert_eq!(
        positions,
        (1..=positions.len() as u64).collect::<Vec<_>>(),
        "no gaps"
    );
    let verified = s.get("/v1/audit/verify").await.ok();
    assert_eq!(verified["intact"], true, "{verified}");
    // The read models caught up after the crash equal a rebuild.
    let head = *positions.last().expect("events");
    let dashboard = s
        .get(&format!("/v1/dashboard?min_position={head}"))
        .await
        .ok();
    let crossings = stored
        .values()
        .filter(|(k, _)| k == "CrossingRecorded")
        .count() as u64;
    assert_eq!(dashboard["to_date"]["crossings"].as_u64(), Some(crossings));
    assert!(s.stop().success());
    let said = rebuild(&db);
    assert!(
        said.contains(&format!(
            "saved state at position {head} equals the rebuild"
        )),
        "{said}"
    );
}

/// A TCP proxy in front of PostgreSQL that a test can cut and restore:
/// cutting drops every connection and refuses new ones, as a database that
/// went away would.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Default::default();
        let (flag, held) = (up.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    continue; // dropped at once: connection refused, in effect
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                held.lock().expect("lock").push(task.abort_handle());
            }
        });
        Proxy {
            port,
            up,
            connections,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.connections.lock().expect("lock").drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

async fn postgres_going_away_is_a_503_and_coming_back_needs_no_restart(db: Arc<TestDb>) {
    let real = db.url().to_owned();
    let Some(rest) = real
        .strip_prefix("postgres://")
        .or_else(|| real.strip_prefix("postgresql://"))
    else {
        panic!("a postgres url");
    };
    let (authority, path) = rest.split_once('/').expect("a database name");
    let (user, host) = authority
        .rsplit_once('@')
        .map_or(("", authority), |(u, h)| (u, h));
    let proxy = Proxy::start(host.to_owned()).await;
    let via_proxy = if user.is_empty() {
        format!("postgres://127.0.0.1:{}/{path}", proxy.port)
    } else {
        format!("postgres://{user}@127.0.0.1:{}/{path}", proxy.port)
    };
    let s = Server::start_with_url(db.clone(), &via_proxy, &["--rate-limit", "0"]);
    let post = checkpoint(&s).await;
    assert_eq!(s.get("/readyz").await.status, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Acknowledged = Default::default();
    let statuses = Arc::new(Mutex::new(BTreeMap::new()));
    let tasks = writers(
        &s,
        &post,
        8,
        stop.clone(),
        acknowledged.clone(),
        statuses.clone(),
    );
    tokio::time::sleep(Duration::from_millis(1_000)).await;

    proxy.cut();
    // While it is gone: 503s with Retry-After (checked by the writers), and
    // the service says it is not ready.
    let mut not_ready = false;
    for _ in 0..40 {
        let r = s.send_raw(s.client.get(s.url("/readyz"))).await;
        if r.status == 503 {
            assert!(r.headers.get("retry-after").is_some());
            not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(not_ready, "/readyz fails while the database is away");
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let refused = statuses
        .lock()
        .expect("lock")
        .get(&503)
        .copied()
        .unwrap_or(0);
    assert!(
        refused > 0,
        "writes were answered 503: {:?}",
        statuses.lock().expect("lock")
    );

    proxy.restore();
    // Back without a restart.
    let mut ready = false;
    for _ in 0..60 {
        if s.send_raw(s.client.get(s.url("/readyz"))).await.status == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(ready, "/readyz recovers");
    let before = acknowledged.lock().expect("lock").len();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("writer");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() > before,
        "writes land again after the outage"
    );

    // Nothing half-written: every acknowledged write there, no gaps, intact chain.
    let stored = log(&s).await;
    for (position, entry) in &acknowledged {
        assert_eq!(
            stored.get(position),
            Some(entry),
            "acknowledged write at {position}"
        );
    }
    let positions: Vec<u64> = stored.keys().copied().collect();
    assert_eq!(positions, (1..=positions.len() as u64).collect::<Vec<_>>());
    assert_eq!(s.get("/v1/audit/verify").await.ok()["intact"], true);
}

fangkong_store::each_backend!(threads = 4; [owned]; a_killed_server_loses_no_acknowledged_write);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_going_away_is_a_503_and_coming_back_needs_no_restart_test() {
    if let Some(db) = TestDb::postgres().await {
        postgres_going_away_is_a_503_and_coming_back_needs_no_restart(Arc::new(db)).await;
    }
}
