//! Append throughput of the event store, beside a naive baseline measured in
//! the same run on the same database: one INSERT per transaction, no group
//! commit.
//!
//! `cargo bench -p fangkong-store --bench append`; PostgreSQL is included
//! when `FANGKONG_TEST_POSTGRES` is set. `FANGKONG_BENCH_EVENTS` sets the
//! events per run (default 40,000). The `+merkle` column is the same run
//! with the Merkle index following the log in the background (the run then
//! also checks that it reached the head).

use std::time::{Duration, Instant};

use fangkong_store::testing::TestDb;
use fangkong_store::{EventStore, ExpectedVersion, NewEvent};
use serde_json::json;
use sqlx::Executor;
use uuid::Uuid;

/// About 400 bytes once rendered, like a health check with its metadata.
fn payload(i: usize) -> serde_json::Value {
    json!({
        "returnee_id": Uuid::now_v7(),
        "checked_on": "2020-02-03",
        "temperature": 36.6,
        "symptoms": [],
        "measured_by": {"role": "village_doctor", "name_ref": Uuid::now_v7()},
        "sequence": i,
        "notes": "visited at the door; household members all well; no visitors reported today",
        "location": {"zone": "zone-3", "village": "village-12", "grid": "grid-4"},
    })
}

struct Figure {
    events: usize,
    elapsed: Duration,
}

impl Figure {
    fn per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// `merkle`: with the Merkle index following the log, the run ending when
/// every event is appended and indexed.
async fn fangkong_appends(db: &TestDb, appenders: usize, events: usize, merkle: bool) -> Figure {
    let store = db.open().await.expect("open the store");
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let index =
        merkle.then(|| fangkong_store::merkle::MerkleIndex::spawn(store.clone(), None, shutdown));
    let per_task = events / appenders;
    let started = Instant::now();
    let tasks = (0..appenders).map(|t| {
        let store: EventStore = store.clone();
        tokio::spawn(async move {
            let stream = format!("returnee-{t}");
            for i in 0..per_task {
                store
                    .append(
                        &stream,
                        ExpectedVersion::Exact(i as u64),
                        vec![NewEvent::new("HealthCheckRecorded", payload(i))],
                    )
                    .await
                    .expect("append");
            }
        })
    });
    for task in futures::future::join_all(tasks).await {
        task.expect("appender task");
    }
    let elapsed = started.elapsed();
    // The index follows in the background; it must reach the head.
    if let Some(index) = &index {
        let indexed = index
            .wait_for((per_task * appenders) as u64, Duration::from_secs(600))
            .await;
        assert_eq!(indexed.head.size as usize, per_task * appenders);
    }
    let _ = stop.send(true);
    let report = store.verify(1, None).await.expect("verify");
    assert!(report.is_intact() && report.checked as usize == per_task * appenders);
    store.close().await;
    Figure {
        events: per_task * appenders,
        elapsed,
    }
}

const NAIVE_SQLITE: &str = "CREATE TABLE naive_events (position INTEGER PRIMARY KEY AUTOINCREMENT, \
    stream_id TEXT NOT NULL, event_id BLOB NOT NULL UNIQUE, event_type TEXT NOT NULL, payload TEXT NOT NULL)";
const NAIVE_POSTGRES: &str = "CREATE TABLE naive_events (position BIGSERIAL PRIMARY KEY, \
    stream_id TEXT NOT NULL, event_id UUID NOT NULL UNIQUE, event_type TEXT NOT NULL, payload TEXT NOT NULL)";

/// What a plain handler does: its own transaction and commit per event.
async fn naive_inserts(db: &TestDb, appenders: usize, events: usize) -> Figure {
    let per_task = events / appenders;
    let started;
    if db.backend() == "sqlite" {
        use sqlx::sqlite::{
            SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
        };
        use std::str::FromStr;
        let options = SqliteConnectOptions::from_str(db.url())
            .expect("url")
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(60));
        let pool = SqlitePoolOptions::new()
            .max_connections(appenders as u32)
            .connect_with(options)
            .await
            .expect("pool");
        pool.execute(NAIVE_SQLITE).await.expect("table");
        started = Instant::now();
        let tasks = (0..appenders).map(|t| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
                    sqlx::query("INSERT INTO naive_events (stream_id, event_id, event_type, payload) VALUES (?, ?, ?, ?)")
                        .bind(format!("returnee-{t}"))
                        .bind(Uuid::now_v7())
                        .bind("HealthCheckRecorded")
                        .bind(payload(i).to_string())
                        .execute(&mut *tx)
                        .await
                        .expect("insert");
                    tx.commit().await.expect("commit");
                }
            })
        });
        for task in futures::future::join_all(tasks).await {
            task.expect("task");
        }
    } else {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(appenders as u32)
            .connect(db.url())
            .await
            .expect("pool");
        pool.execute(NAIVE_POSTGRES).await.expect("table");
        started = Instant::now();
        let tasks = (0..appenders).map(|t| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    let mut tx = pool.begin().await.expect("begin");
                    sqlx::query("INSERT INTO naive_events (stream_id, event_id, event_type, payload) VALUES ($1, $2, $3, $4)")
                        .bind(format!("returnee-{t}"))
                        .bind(Uuid::now_v7())
                        .bind("HealthCheckRecorded")
                        .bind(payload(i).to_string())
                        .execute(&mut *tx)
                        .await
                        .expect("insert");
                    tx.commit().await.expect("commit");
                }
            })
        });
        for task in futures::future::join_all(tasks).await {
            task.expect("task");
        }
    }
    Figure {
        events: per_task * appenders,
        elapsed: started.elapsed(),
    }
}

async fn fresh(backend: &str) -> Option<TestDb> {
    match backend {
        "sqlite" => Some(TestDb::sqlite()),
        _ => TestDb::postgres().await,
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else is expected.
    let events: usize = std::env::var("FANGKONG_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000);
    let rendered = serde_json::to_string(&payload(0))
        .map(|s| s.len())
        .unwrap_or(0);
    println!("event store append benchmark: payload {rendered} bytes, {events} events per run at 64 appenders");
    println!(
        "{:<9} {:>9} {:>16} {:>16} {:>8} {:>16} {:>12}",
        "backend",
        "appenders",
        "fangkong ev/s",
        "naive ev/s",
        "ratio",
        "+merkle ev/s",
        "merkle cost"
    );
    for backend in ["sqlite", "postgres"] {
        if backend == "postgres" && std::env::var(fangkong_store::testing::POSTGRES_ENV).is_err() {
            println!("postgres  (skipped: FANGKONG_TEST_POSTGRES not set)");
            continue;
        }
        for appenders in [1usize, 64] {
            // One appender waits for each commit: fewer events keep the run short.
            let n = if appenders == 1 { events / 10 } else { events };
            let Some(db) = fresh(backend).await else {
                continue;
            };
            let ours = fangkong_appends(&db, appenders, n, false).await;
            drop(db);
            let Some(db) = fresh(backend).await else {
                continue;
            };
            let merkle = fangkong_appends(&db, appenders, n, true).await;
            drop(db);
            let Some(db) = fresh(backend).await else {
                continue;
            };
            let naive = naive_inserts(&db, appenders, n / 4).await;
            drop(db);
            println!(
                "{:<9} {:>9} {:>16.0} {:>16.0} {:>7.1}x {:>16.0} {:>11.1}%",
                backend,
                appenders,
                ours.per_second(),
                naive.per_second(),
                ours.per_second() / naive.per_second(),
                merkle.per_second(),
                (1.0 - merkle.per_second() / ours.per_second()) * 100.0
            );
        }
    }
}
