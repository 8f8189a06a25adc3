//! `fangkong-load`: drives the real HTTP service (the same actix app the
//! binary serves) over loopback with 64 connections and prints requests/s
//! and p50/p99 latency per scenario, beside two baselines measured in the
//! same run on the same database: the server's own `GET /healthz` (the
//! HTTP layer's limit) and a naive service doing one INSERT per request.
//!
//! ```sh
//! cargo run --release -p fangkong-load -- --backend both --seconds 10
//! ```
//! PostgreSQL comes from `FANGKONG_TEST_POSTGRES` (a fresh database is made
//! and dropped). Client, server and database share the machine: compare
//! the rows of one run, not runs of different days.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use clap::Parser;
use fangkong_api::{AppState, BodyLimit, Settings};
use fangkong_domain::access::Role;
use fangkong_domain::Township;
use fangkong_store::testing::TestDb;
use fangkong_store::EventStore;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(
    name = "fangkong-load",
    about = "Load benchmark of the fangkong HTTP service"
)]
struct Args {
    /// sqlite, postgres or both.
    #[arg(long, default_value = "both")]
    backend: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Server worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Also measure with wrk (if installed: a C client far lighter than
    /// this one, so the server, not the client, is what is measured).
    #[arg(long)]
    wrk: bool,
    /// Only the batch scenarios (and their setup).
    #[arg(long)]
    batches_only: bool,
}

/// Runs wrk against `url` (POSTing `body` round-robin over `paths` when
/// given) and prints its requests/s and latency percentiles.
fn wrk(label: &str, args: &Args, token: &str, base: &str, paths: &[String], body: Option<&str>) {
    let dir = std::env::temp_dir().join(format!("fangkong-wrk-{}", uuid::Uuid::now_v7()));
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let list: Vec<String> = paths.iter().map(|p| format!("{p:?}")).collect();
    let script = format!(
        "local paths = {{{}}}\nlocal n = 0\nwrk.headers[\"Authorization\"] = \"Bearer {token}\"\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n\
         request = function()\n  n = n + 1\n  local path = paths[(n % #paths) + 1]\n  \
         {}\nend\n",
        list.join(", "),
        match body {
            Some(body) => format!("return wrk.format(\"POST\", path, nil, {body:?})"),
            None => "return wrk.format(\"GET\", path)".to_owned(),
        }
    );
    let script_path = dir.join("mix.lua");
    if std::fs::write(&script_path, script).is_err() {
        return;
    }
    let out = std::process::Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{}", args.connections),
            &format!("-d{}s", args.seconds),
            "--latency",
            "-s",
        ])
        .arg(&script_path)
        .arg(base)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let Ok(out) = out else {
        println!("  {label:<44} (wrk not installed)");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| "?".into())
    };
    let non_2xx = field("Non-2xx or 3xx responses:");
    println!(
        "  {label:<44} {:>9} req/s   p50 {:>9}   p99 {:>9}   {} non-2xx",
        field("Requests/sec:"),
        field("50%"),
        field("99%"),
        if non_2xx == "?" { "0".into() } else { non_2xx }
    );
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let backends: Vec<&str> = match args.backend.as_str() {
        "both" => vec!["sqlite", "postgres"],
        one => vec![one],
    };
    println!(
        "{} connections, {} s per scenario, {} server workers",
        args.connections, args.seconds, args.workers
    );
    for backend in backends {
        runtime.block_on(run_backend(backend, &args))?;
    }
    Ok(())
}

struct Served {
    base: String,
    handle: actix_web::dev::ServerHandle,
    thread: std::thread::JoinHandle<()>,
}

/// Runs an actix app on its own system thread; answers its address. (A
/// macro: actix's app types cannot be named in a function signature.)
macro_rules! serve {
    ($workers:expr, $factory:expr) => {{
        let (tx, rx) = std::sync::mpsc::channel();
        let workers = $workers;
        let factory = $factory;
        let thread = std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let server = match HttpServer::new(factory)
                    .workers(workers)
                    .disable_signals()
                    .bind("127.0.0.1:0")
                {
                    Ok(server) => server,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let addr = server.addrs().first().copied();
                let server = server.run();
                let _ = tx.send(Ok((addr, server.handle())));
                let _ = server.await;
            });
        });
        let (addr, handle) = rx.recv()?.map_err(anyhow::Error::msg)?;
        let addr = addr.ok_or_else(|| anyhow::anyhow!("no address"))?;
        Served {
            base: format!("http://{addr}"),
            handle,
            thread,
        }
    }};
}

/// One measured scenario: how requests are built, counted until the deadline.
struct Outcome {
    ok: u64,
    failed: u64,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

fn report(label: &str, mut o: Outcome) {
    o.latencies.sort();
    println!(
        "  {label:<44} {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   {} failed",
        o.ok as f64 / o.elapsed.as_secs_f64(),
        percentile(&o.latencies, 0.50),
        percentile(&o.latencies, 0.99),
        o.failed
    );
}

/// What a scenario sends: method, URL and body for request `i` of
/// connection `c`.
type Make = Arc<dyn Fn(usize, u64) -> (reqwest::Method, String, Option<Value>) + Send + Sync>;

async fn drive(client: &reqwest::Client, token: &str, args: &Args, make: Make) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.connections)
        .map(|c| {
            let (client, token, make) = (client.clone(), token.to_owned(), make.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed, mut latencies) = (0u64, 0u64, Vec::new());
                let mut i = 0u64;
                while Instant::now() < deadline {
                    i += 1;
                    let (method, url, body) = make(c, i);
                    let mut request = client.request(method, url).bearer_auth(&token);
                    if let Some(body) = body {
                        request = request.json(&body);
                    }
                    let sent = Instant::now();
                    match request.send().await {
                        Ok(response) if response.status().is_success() => {
                            let _ = response.bytes().await;
                            latencies.push(sent.elapsed());
                            ok += 1;
                        }
                        Ok(response) => {
                            let _ = response.bytes().await;
                            failed += 1;
                        }
                        Err(_) => failed += 1,
                    }
                }
                (ok, failed, latencies)
            })
        })
        .collect();
    let mut outcome = Outcome {
        ok: 0,
        failed: 0,
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        if let Ok((ok, failed, latencies)) = task.await {
            outcome.ok += ok;
            outcome.failed += failed;
            outcome.latencies.extend(latencies);
        }
    }
    outcome.elapsed = started.elapsed();
    outcome
}

async fn run_backend(backend: &str, args: &Args) -> anyhow::Result<()> {
    let db = match backend {
        "sqlite" => TestDb::sqlite(),
        "postgres" => TestDb::postgres()
            .await
            .ok_or_else(|| anyhow::anyhow!("set FANGKONG_TEST_POSTGRES for the PostgreSQL run"))?,
        other => anyhow::bail!("unknown backend {other}"),
    };
    println!("\n{backend}:");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .timeout(Duration::from_secs(30))
        .build()?;

    // Baseline: one INSERT per request, same database, same durability.
    let naive = naive_service(db.url(), args.workers).await?;
    let url = format!("{}/naive", naive.base);
    let outcome = drive(
        &client,
        "",
        args,
        Arc::new(move |c, i| {
            (
                reqwest::Method::POST,
                url.clone(),
                Some(
                    json!({"stream_id": format!("crossing-{c}"), "n": i, "subject": "person",
                            "temperature": 36.5, "outcome": "admitted"}),
                ),
            )
        }),
    )
    .await;
    report("baseline: naive, one INSERT per request", outcome);
    naive.handle.stop(true).await;
    let _ = naive.thread.join();

    let store = EventStore::open(db.url()).await?;
    let settings = Settings {
        rate_per_second: 0,
        ..Settings::default()
    };
    let vault = fangkong_vault::Vault::open(store.clone(), fangkong_vault::Kek::random()?).await?;
    let state = web::Data::new(AppState::new(
        store.clone(),
        Township::default(),
        vault,
        settings,
    ));
    let (token, _) = state
        .commands
        .issue_token(&fangkong_app::Envelope::system(), "load", Role::Admin, &[])
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let token = token.token;
    let app_state = state.clone();
    let served = serve!(args.workers, move || {
        fangkong_api::http::app(
            app_state.clone(),
            BodyLimit(fangkong_api::DEFAULT_BODY_LIMIT),
        )
    });
    let base = served.base.clone();
    let setup = Setup::create(&client, &base, &token).await?;

    batches(&client, &token, &base, &setup, args).await;
    if args.batches_only {
        served.handle.stop(true).await;
        let _ = served.thread.join();
        store.close().await;
        return Ok(());
    }

    let url = format!("{base}/healthz");
    report(
        "baseline: GET /healthz (the HTTP layer)",
        drive(
            &client,
            &token,
            args,
            Arc::new(move |_, _| (reqwest::Method::GET, url.clone(), None)),
        )
        .await,
    );

    let crossings: Vec<String> = setup
        .checkpoints
        .iter()
        .map(|c| format!("{base}/v1/checkpoints/{c}/crossings"))
        .collect();
    let c2 = crossings.clone();
    report(
        "crossings (single-event commands)",
        drive(
            &client,
            &token,
            args,
            Arc::new(move |c, _| {
                (
                    reqwest::Method::POST,
                    c2[c % c2.len()].clone(),
                    Some(json!({"subject": "person", "temperature": 36.5, "outcome": "admitted"})),
                )
            }),
        )
        .await,
    );

    // Hot streams: every connection on one stream, as when a township's
    // workers all record at one post or count one zone's leaflets.
    for (label, url, body) in [
        (
            "hot: crossings, all on one checkpoint",
            crossings[0].clone(),
            json!({"subject": "person", "temperature": 36.5, "outcome": "admitted"}),
        ),
        (
            "hot: publicity, all on one zone",
            format!("{base}/v1/zones/{}/publicity", setup.zones[0]),
            json!({"channel": "leaflet", "quantity": 10}),
        ),
        (
            "hot: visits, all on one returnee (ordered)",
            format!("{base}/v1/returnees/{}/health-checks", setup.returnees[0]),
            json!({"temperature": 36.6, "visited_by": "村医"}),
        ),
    ] {
        let make: Make =
            Arc::new(move |_, _| (reqwest::Method::POST, url.clone(), Some(body.clone())));
        report(label, drive(&client, &token, args, make).await);
    }

    let dashboards: Vec<String> = setup
        .zones
        .iter()
        .map(|z| format!("{base}/v1/zones/{z}/dashboard"))
        .collect();
    let d2 = dashboards.clone();
    report(
        "dashboard reads",
        drive(
            &client,
            &token,
            args,
            Arc::new(move |c, _| (reqwest::Method::GET, d2[c % d2.len()].clone(), None)),
        )
        .await,
    );

    let returnees: Vec<String> = setup
        .returnees
        .iter()
        .map(|r| format!("{base}/v1/returnees/{r}"))
        .collect();
    report(
        "mix: 40% crossings, 25% visits, 15% screenings, 20% dashboards",
        drive(
            &client,
            &token,
            args,
            Arc::new(move |c, i| {
                let pick = (c as u64 * 7919 + i * 104_729) % 100;
                // Each connection works its own people and its own post, as a
                // field worker does: no two connections race on one stream.
                let per = (returnees.len() / 64).max(1);
                let n = (c + 64 * (i as usize % per)) % returnees.len();
                if pick < 40 {
                    (
                        reqwest::Method::POST,
                        crossings[c % crossings.len()].clone(),
                        Some(json!({"subject": "person", "temperature": 36.5, "outcome": "admitted"})),
                    )
                } else if pick < 65 {
                    (
                        reqwest::Method::POST,
                        format!("{}/health-checks", returnees[n]),
                        Some(json!({"temperature": 36.6, "visited_by": "村医"})),
                    )
                } else if pick < 80 {
                    (
                        reqwest::Method::POST,
                        format!("{}/screenings", returnees[n]),
                        Some(json!({"temperature": 36.6, "identity_checked": true, "came_from": "武汉", "screened_by": "网格员"})),
                    )
                } else {
                    (reqwest::Method::GET, dashboards[c % dashboards.len()].clone(), None)
                }
            }),
        )
        .await,
    );

    if args.wrk {
        let post_paths: Vec<String> = setup
            .checkpoints
            .iter()
            .map(|c| format!("/v1/checkpoints/{c}/crossings"))
            .collect();
        let dashboard_paths: Vec<String> = setup
            .zones
            .iter()
            .map(|z| format!("/v1/zones/{z}/dashboard"))
            .collect();
        println!("  with wrk:");
        wrk(
            "baseline: GET /healthz",
            args,
            &token,
            &base,
            &["/healthz".to_owned()],
            None,
        );
        wrk(
            "crossings (single-event commands)",
            args,
            &token,
            &base,
            &post_paths,
            Some(r#"{"subject": "person", "temperature": 36.5, "outcome": "admitted"}"#),
        );
        wrk(
            "dashboard reads",
            args,
            &token,
            &base,
            &dashboard_paths,
            None,
        );
    }

    served.handle.stop(true).await;
    let _ = served.thread.join();
    store.close().await;
    Ok(())
}

/// Commands in a batch, as a field app that was offline sends its queue.
const BATCH: usize = 1_000;

/// Offline queues synced through `POST /v1/batches`: 1,000 commands per
/// batch (crossings at the client's own posts, visits to its returnees,
/// leaflets), each with its own idempotency key; one client (the latency a
/// field worker waits) and eight at once (what the service ingests).
async fn batches(client: &reqwest::Client, token: &str, base: &str, setup: &Setup, args: &Args) {
    for clients in [1usize, 8] {
        let deadline = Instant::now() + Duration::from_secs(args.seconds);
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let (client, token) = (client.clone(), token.to_owned());
                let url = format!("{base}/v1/batches");
                // Each client its own posts and people, as one worker's device.
                let posts: Vec<String> = setup
                    .checkpoints
                    .iter()
                    .skip(c)
                    .step_by(8)
                    .cloned()
                    .collect();
                let people: Vec<String> = setup
                    .returnees
                    .iter()
                    .skip(c)
                    .step_by(8)
                    .cloned()
                    .collect();
                let zone = setup.zones[c % setup.zones.len()].clone();
                tokio::spawn(async move {
                    let (mut commands, mut failed, mut latencies) = (0u64, 0u64, Vec::new());
                    let mut round = 0u64;
                    while Instant::now() < deadline {
                        round += 1;
                        let batch: Vec<Value> = (0..BATCH)
                            .map(|n| {
                                let key = format!("load-{clients}-{c}:{round}:{n}");
                                let (path, body) = match n % 10 {
                                    0..=5 => (
                                        format!("/v1/checkpoints/{}/crossings", posts[n % posts.len()]),
                                        json!({"subject": "person", "temperature": 36.5, "outcome": "admitted"}),
                                    ),
                                    6..=8 => (
                                        format!("/v1/returnees/{}/health-checks", people[n % people.len()]),
                                        json!({"temperature": 36.6, "visited_by": "村医"}),
                                    ),
                                    _ => (
                                        format!("/v1/zones/{zone}/publicity"),
                                        json!({"channel": "leaflet", "quantity": 10}),
                                    ),
                                };
                                json!({"method": "POST", "path": path, "idempotency_key": key, "body": body})
                            })
                            .collect();
                        let sent = Instant::now();
                        let answer = client
                            .post(&url)
                            .bearer_auth(&token)
                            .json(&json!({ "commands": batch }))
                            .send()
                            .await;
                        let body: Option<Value> = match answer {
                            Ok(r) if r.status().as_u16() == 207 => r.json().await.ok(),
                            _ => None,
                        };
                        let elapsed = sent.elapsed();
                        let written = body
                            .as_ref()
                            .and_then(|b| b["results"].as_array())
                            .map_or(0, |results| {
                                results.iter().filter(|r| r["status"] == 200).count()
                            }) as u64;
                        if written == BATCH as u64 {
                            latencies.push(elapsed);
                        }
                        commands += written;
                        failed += BATCH as u64 - written;
                    }
                    (commands, failed, latencies)
                })
            })
            .collect();
        let (mut commands, mut failed, mut latencies) = (0u64, 0u64, Vec::new());
        for task in tasks {
            if let Ok((c, f, l)) = task.await {
                commands += c;
                failed += f;
                latencies.extend(l);
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort();
        println!(
            "  {:<44} {:>9.0} cmd/s   p50 {:>7.2} ms   p99 {:>7.2} ms   {} batches, {} commands failed",
            format!("batches of {BATCH}, {clients} client(s)"),
            commands as f64 / elapsed,
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            latencies.len(),
            failed
        );
    }
}

/// Zones, checkpoints (one per connection: a duty post has one recorder)
/// and returnees in quarantine to drive the mix against.
struct Setup {
    zones: Vec<String>,
    checkpoints: Vec<String>,
    returnees: Vec<String>,
}

impl Setup {
    async fn create(client: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<Setup> {
        let post = |path: String, body: Value| {
            let request = client
                .post(format!("{base}{path}"))
                .bearer_auth(token)
                .json(&body);
            async move {
                let response = request.send().await?;
                let status = response.status();
                let body: Value = response.json().await?;
                anyhow::ensure!(status.is_success(), "setup {status}: {body}");
                Ok::<Value, anyhow::Error>(body)
            }
        };
        // The server's day (the township's time zone), for arrival dates.
        let today = Township::default().local_date(chrono::Utc::now());
        let (mut zones, mut checkpoints, mut returnees) = (vec![], vec![], vec![]);
        for z in 0..4 {
            let zone = post(
                "/v1/zones".into(),
                json!({"name": format!("{}片区", z + 1)}),
            )
            .await?["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let village = post(
                format!("/v1/zones/{zone}/villages"),
                json!({"name": "桥头村"}),
            )
            .await?["events"][0]["data"]["village_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let grid = post(
                format!("/v1/zones/{zone}/grids"),
                json!({"village_id": village, "name": "一组"}),
            )
            .await?["events"][0]["data"]["grid_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            for c in 0..16 {
                checkpoints.push(
                    post(
                        "/v1/checkpoints".into(),
                        json!({"zone_id": zone, "name": format!("卡点{c}"), "kind": "road"}),
                    )
                    .await?["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
            for _ in 0..50 {
                let r = post(
                    "/v1/returnees".into(),
                    json!({"zone_id": zone, "village_id": village, "grid_id": grid,
                           "arrival_date": today, "origin": {"region": "武汉", "risk": "high"},
                           "personal": {"name": "张三", "resident_id": "11010519491231002X",
                                        "phone": "13812345678", "address": "一组"}}),
                )
                .await?["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                post(format!("/v1/returnees/{r}/quarantine"), json!({})).await?;
                returnees.push(r);
            }
            zones.push(zone);
        }
        Ok(Setup {
            zones,
            checkpoints,
            returnees,
        })
    }
}

/// The naive service: parses the body and INSERTs it, one statement and
/// one transaction per request, on the same database.
async fn naive_service(url: &str, workers: usize) -> anyhow::Result<Served> {
    let pool = if url.starts_with("sqlite:") {
        use std::str::FromStr;
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30));
        let sqlite = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS naive_events (id INTEGER PRIMARY KEY AUTOINCREMENT, \
             stream_id TEXT NOT NULL, payload TEXT NOT NULL, recorded_at_us INTEGER NOT NULL)",
        )
        .execute(&sqlite)
        .await?;
        Naive::Sqlite(sqlite)
    } else {
        let pg = sqlx::postgres::PgPoolOptions::new()
            .max_connections(16)
            .connect(url)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS naive_events (id BIGSERIAL PRIMARY KEY, \
             stream_id TEXT NOT NULL, payload TEXT NOT NULL, recorded_at TIMESTAMPTZ NOT NULL)",
        )
        .execute(&pg)
        .await?;
        Naive::Postgres(pg)
    };
    let pool = web::Data::new(pool);
    Ok(serve!(workers, move || {
        App::new()
            .app_data(pool.clone())
            .route("/naive", web::post().to(naive_insert))
    }))
}

#[derive(Clone)]
enum Naive {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

async fn naive_insert(pool: web::Data<Naive>, body: web::Json<Value>) -> HttpResponse {
    let stream = body["stream_id"].as_str().unwrap_or("naive").to_owned();
    let payload = body.to_string();
    let done = match pool.get_ref() {
        Naive::Sqlite(p) => sqlx::query(
            "INSERT INTO naive_events (stream_id, payload, recorded_at_us) VALUES (?, ?, ?)",
        )
        .bind(stream)
        .bind(payload)
        .bind(chrono::Utc::now().timestamp_micros())
        .execute(p)
        .await
        .map(|_| ()),
        Naive::Postgres(p) => sqlx::query(
            "INSERT INTO naive_events (stream_id, payload, recorded_at) VALUES ($1, $2, now())",
        )
        .bind(stream)
        .bind(payload)
        .execute(p)
        .await
        .map(|_| ()),
    };
    match done {
        Ok(()) => HttpResponse::Created().json(json!({"ok": true})),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}
