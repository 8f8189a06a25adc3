//! Starts the real `fangkong` binary on a free port over a throwaway
//! database, and speaks HTTP to it.

#![allow(dead_code, reason = "each test file uses its own part of the helpers")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fangkong_store::testing::TestDb;
use serde_json::Value;

pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    child: Child,
    /// Shared so a test can stop the server and start another on the same
    /// database.
    pub db: Arc<TestDb>,
    /// An admin token every helper request carries.
    pub token: String,
    /// Tokens the server printed when it started (a new store's first).
    pub printed_tokens: Vec<String>,
}

/// `fangkong token create` on the database: the token it prints.
pub fn create_token(db: &TestDb, role: &str, zones: &[&str], name: &str) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fangkong"));
    command
        .args(["token", "create", "--role", role, "--name", name])
        .env("FANGKONG_DATABASE_URL", db.url())
        .envs(state_key_env(db));
    for zone in zones {
        command.args(["--zone", zone]);
    }
    let out = command.output().expect("fangkong token create runs");
    assert!(
        out.status.success(),
        "token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// The keys for commands on `db` (the state key, the signing key): no file
/// sits beside a PostgreSQL store, so its keys come from the environment (a
/// SQLite store's tests use the key files the server creates beside the
/// database).
/// The PostgreSQL tests' key-encryption key.
pub const KEK: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
/// The PostgreSQL tests' signing seed, one byte repeated.
pub const SIGNING_SEED: &str = "17";

pub fn state_key_env(db: &TestDb) -> Vec<(&'static str, String)> {
    if db.backend() == "postgres" {
        vec![
            ("FANGKONG_STATE_KEY", "42".repeat(32)),
            ("FANGKONG_SIGNING_KEY", SIGNING_SEED.repeat(32)),
            ("FANGKONG_KEK", KEK.to_owned()),
        ]
    } else {
        vec![]
    }
}

impl Server {
    /// `fangkong token create` while this server runs, then waits until the
    /// server knows the token (it learns tokens from the log, by tailing it).
    pub async fn create_token(&self, role: &str, zones: &[&str], name: &str) -> String {
        let token = create_token(&self.db, role, zones, name);
        let token_id = token
            .strip_prefix("fk_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|id| uuid::Uuid::try_parse(id).ok())
            .expect("a token of this service")
            .to_string();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let listed = self.get("/v1/tokens").await;
            // (A rate-limited answer is just another reason to look again.)
            let known = listed.body["items"]
                .as_array()
                .is_some_and(|items| items.iter().any(|t| t["token_id"] == token_id.as_str()));
            if known {
                return token;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not learn of token {token_id} within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn start(db: TestDb, extra: &[&str]) -> Server {
        Self::start_on(Arc::new(db), extra)
    }

    /// Starts with more environment (a key, say), which the harness's
    /// token is made with too.
    #[allow(dead_code, reason = "not every test file starts a server so")]
    pub fn start_env(db: Arc<TestDb>, env: &[(&str, &str)]) -> Server {
        let out = Command::new(env!("CARGO_BIN_EXE_fangkong"))
            .args([
                "token",
                "create",
                "--role",
                "admin",
                "--name",
                "test harness",
            ])
            .env("FANGKONG_DATABASE_URL", db.url())
            .envs(state_key_env(&db))
            .envs(env.iter().copied())
            .output()
            .expect("fangkong token create runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_owned();
        let mut all = vec![("RUST_LOG", "warn")];
        all.extend(env.iter().copied());
        Self::spawn_with(db, &[], &all, Stdio::inherit(), Some(token))
    }

    pub fn start_on(db: Arc<TestDb>, extra: &[&str]) -> Server {
        Self::spawn(db, extra, &[("RUST_LOG", "warn")], Stdio::inherit())
    }

    /// Starts with info-level JSON logs written to `log`.
    pub fn start_logging_json(db: TestDb, log: &std::path::Path) -> Server {
        Self::start_logging(Arc::new(db), log, "json")
    }

    /// Starts with info-level logs in `format` (`json`, or `text`: the
    /// default) written to `log`.
    pub fn start_logging(db: Arc<TestDb>, log: &std::path::Path, format: &str) -> Server {
        let file = std::fs::File::create(log).expect("a log file");
        Self::spawn(
            db,
            &[],
            &[("RUST_LOG", "info"), ("FANGKONG_LOG_FORMAT", format)],
            Stdio::from(file),
        )
    }

    /// Starts with another URL for the same database (through a proxy).
    pub fn start_with_url(db: Arc<TestDb>, url: &str, extra: &[&str]) -> Server {
        let token = create_token(&db, "admin", &[], "test harness");
        let mut server = Self::spawn_with(
            db,
            extra,
            &[("RUST_LOG", "warn"), ("FANGKONG_DATABASE_URL", url)],
            Stdio::inherit(),
            Some(token),
        );
        server.printed_tokens.clear();
        server
    }

    /// Starts on a database as it is: no token is made first, so a new
    /// store prints its first token(s), which become `token`.
    pub fn start_fresh(db: Arc<TestDb>, extra: &[&str]) -> Server {
        Self::spawn_with(db, extra, &[("RUST_LOG", "warn")], Stdio::inherit(), None)
    }

    fn spawn(db: Arc<TestDb>, extra: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Server {
        let token = create_token(&db, "admin", &[], "test harness");
        Self::spawn_with(db, extra, env, stderr, Some(token))
    }

    fn spawn_with(
        db: Arc<TestDb>,
        extra: &[&str],
        env: &[(&str, &str)],
        stderr: Stdio,
        token: Option<String>,
    ) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fangkong"));
        command.arg("serve").args(["--workers", "2"]);
        if !extra.contains(&"--bind") {
            command.args(["--bind", "127.0.0.1:0"]);
        }
        command.envs(state_key_env(&db));
        let mut child = command
            .args(extra)
            .env("FANGKONG_DATABASE_URL", db.url())
            // Later settings win: a test may point at the database another way.
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("the fangkong binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut printed_tokens = vec![];
        let base = loop {
            let line = lines
                .next()
                .expect("the server prints its address before anything else")
                .expect("stdout line");
            if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.trim().to_owned();
            }
            if let Some((_, token)) = line.split_once("): ") {
                printed_tokens.push(token.trim().to_owned());
            }
        };
        let token = token
            .or_else(|| printed_tokens.first().cloned())
            .unwrap_or_default();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            child,
            db,
            token,
            printed_tokens,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.client.post(self.url(path)).json(&body))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(self.client.put(self.url(path)).json(&body)).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path))).await
    }

    /// Sends with the admin token.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        self.send_raw(request.bearer_auth(&self.token)).await
    }

    /// Sends as given: no token added.
    pub async fn send_raw(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        // 503 is an answer (storage unavailable, request timed out) that
        // tests expect on purpose; any other 5xx is a bug.
        assert!(
            status < 500 || status == 503,
            "a 5xx answer: {status} {body}"
        );
        Reply {
            status,
            headers,
            body,
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        self.child.wait().expect("exit status")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    #[track_caller]
    pub fn ok(self) -> Value {
        assert!(
            (200..300).contains(&self.status),
            "expected success, got {} {}",
            self.status,
            self.body
        );
        self.body
    }

    #[track_caller]
    pub fn problem(self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
        assert_eq!(self.body["code"], code, "{}", self.body);
        self.body
    }

    pub fn etag(&self) -> Option<String> {
        self.headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// The entity version an `ETag` names: a write's `"7"` or a read's
    /// `"7.<digest>"`.
    pub fn version(&self) -> Option<u64> {
        let tag = self.etag()?;
        tag.trim_matches('"').split('.').next()?.parse().ok()
    }
}

pub fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

/// A zone (with the id given, when given) with one village and one grid:
/// (zone, village, grid).
pub async fn place(
    s: &Server,
    zone_id: Option<uuid::Uuid>,
    name: &str,
) -> (String, String, String) {
    let mut body = serde_json::json!({"name": name});
    if let Some(zone_id) = zone_id {
        body["zone_id"] = serde_json::json!(zone_id);
    }
    let zone = id(&s.post("/v1/zones", body).await.ok());
    let village = s
        .post(
            &format!("/v1/zones/{zone}/villages"),
            serde_json::json!({"name": "桥头村"}),
        )
        .await
        .ok()["events"][0]["data"]["village_id"]
        .as_str()
        .expect("village")
        .to_owned();
    let grid = s
        .post(
            &format!("/v1/zones/{zone}/grids"),
            serde_json::json!({"village_id": village, "name": "一组"}),
        )
        .await
        .ok()["events"][0]["data"]["grid_id"]
        .as_str()
        .expect("grid")
        .to_owned();
    (zone, village, grid)
}

/// The township-local date `n` days before today (Asia/Shanghai has been
/// UTC+8 without daylight saving since 1991), as YYYY-MM-DD.
pub fn days_ago(n: u64) -> String {
    let local = chrono::Utc::now() + chrono::Duration::hours(8);
    (local - chrono::Duration::days(n as i64))
        .format("%Y-%m-%d")
        .to_string()
}

/// The server's day, township time (from the dashboard it serves).
pub async fn today(s: &Server) -> String {
    s.get("/v1/dashboard").await.ok()["today"]
        .as_str()
        .expect("today")
        .to_owned()
}
