//! Append throughput of the event store, beside two baselines measured in
//! the same run on the same database: a naive one (one INSERT per
//! transaction, no group commit) and the raw ceiling (the same rows into the
//! store's schema by one writer, 64 a transaction, nothing else done). The
//! `of it` column is the store's rate as a share of that ceiling (the
//! 64-row ceiling is what 64 appenders can reach; one appender is held to
//! the naive loop instead).
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

/// The raw ceiling the store is held to: the same rows into the store's own
/// schema by one serialised writer, 64 rows a transaction (what 64
/// appenders give the group commit), with nothing else done: for
/// PostgreSQL BEGIN with the writer's lock, one multi-row INSERT, COMMIT;
/// for SQLite the same rows in FULL-sync WAL transactions.
async fn raw_ceiling(db: &TestDb, events: usize) -> Figure {
    const ROWS: usize = 64;
    // The store's schema, made by the store itself.
    db.open().await.expect("open the store").close().await;
    let rows: Vec<(i64, String, i64, Uuid, String)> = (0..events)
        .map(|i| {
            (
                i as i64 + 1,
                format!("returnee-{}", i % 64),
                (i / 64) as i64 + 1,
                Uuid::now_v7(),
                payload(i).to_string(),
            )
        })
        .collect();
    let hash = vec![7u8; 32];
    let started;
    if db.backend() == "sqlite" {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
        use sqlx::{Connection, QueryBuilder};
        use std::str::FromStr;
        let options = SqliteConnectOptions::from_str(db.url())
            .expect("url")
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .expect("connect");
        started = Instant::now();
        for chunk in rows.chunks(ROWS) {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.expect("begin");
            let mut insert = QueryBuilder::new(
                "INSERT INTO events (position, stream_id, stream_version, event_id, \
                 event_type, schema_version, payload, metadata, recorded_at_us, hash) ",
            );
            insert.push_values(chunk, |mut values, row| {
                values
                    .push_bind(row.0)
                    .push_bind(&row.1)
                    .push_bind(row.2)
                    .push_bind(row.3)
                    .push_bind("HealthCheckRecorded")
                    .push_bind(1i64)
                    .push_bind(&row.4)
                    .push_bind("{}")
                    .push_bind(row.0)
                    .push_bind(&hash);
            });
            insert.build().execute(&mut *tx).await.expect("insert");
            tx.commit().await.expect("commit");
        }
    } else {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(db.url())
            .await
            .expect("connect");
        let now = chrono::Utc::now();
        started = Instant::now();
        for chunk in rows.chunks(ROWS) {
            let mut tx = conn
                .begin_with("BEGIN; SELECT pg_advisory_xact_lock(1)")
                .await
                .expect("begin");
            sqlx::query(
                "INSERT INTO events (position, stream_id, stream_version, event_id, \
                 event_type, schema_version, payload, metadata, recorded_at, hash) \
                 SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], \
                 $5::text[], $6::int[], $7::text[], $8::text[], $9::timestamptz[], $10::bytea[])",
            )
            .bind(chunk.iter().map(|r| r.0).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.1.clone()).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.2).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.3).collect::<Vec<_>>())
            .bind(vec!["HealthCheckRecorded"; chunk.len()])
            .bind(vec![1i32; chunk.len()])
            .bind(chunk.iter().map(|r| r.4.clone()).collect::<Vec<_>>())
            .bind(vec!["{}"; chunk.len()])
            .bind(vec![now; chunk.len()])
            .bind(vec![hash.clone(); chunk.len()])
            .execute(&mut *tx)
            .await
            .expect("insert");
            tx.commit().await.expect("commit");
        }
    }
    Figure {
        events,
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
        "{:<9} {:>9} {:>14} {:>12} {:>7} {:>12} {:>7} {:>14} {:>11}",
        "backend",
        "appenders",
        "fangkong ev/s",
        "naive ev/s",
        "ratio",
        "ceiling ev/s",
        "of it",
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
            // One appender's naive loop is as slow as its appends: as many.
            let naive = naive_inserts(&db, appenders, if appenders == 1 { n } else { n / 4 }).await;
            drop(db);
            let Some(db) = fresh(backend).await else {
                continue;
            };
            let ceiling = raw_ceiling(&db, events).await;
            drop(db);
            println!(
                "{:<9} {:>9} {:>14.0} {:>12.0} {:>6.2}x {:>12.0} {:>6.0}% {:>14.0} {:>10.1}%",
                backend,
                appenders,
                ours.per_second(),
                naive.per_second(),
                ours.per_second() / naive.per_second(),
                ceiling.per_second(),
                ours.per_second() / ceiling.per_second() * 100.0,
                merkle.per_second(),
                (1.0 - merkle.per_second() / ours.per_second()) * 100.0
            );
        }
    }
}
