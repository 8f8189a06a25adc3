//! Who may see and do what, end to end on both backends: every route of
//! the contract with every role, zone scoping, tokens issued and revoked
//! (API and CLI), the first tokens of a new store, failed-attempt limits,
//! CORS, the live feed, and personal data kept out of errors.

mod support;

use std::sync::Arc;
use std::time::Duration;

use fangkong_store::testing::TestDb;
use futures::StreamExt;
use serde_json::{json, Value};
use support::{id, place, today, Server};

fn registration((zone, village, grid): &(String, String, String), arrival: &str) -> Value {
    json!({
        "zone_id": zone, "village_id": village, "grid_id": grid,
        "arrival_date": arrival,
        "origin": {"region": "湖北省武汉市", "risk": "high"},
        "personal": {"name": "张三", "resident_id": "11010519491231002X",
                     "phone": "13812345678", "address": "桥头村三组12号"}
    })
}

/// Everything one zone has: a returnee, a checkpoint, a venue, a banquet.
struct Entities {
    zone: String,
    returnee: String,
    checkpoint: String,
    venue: String,
    banquet: String,
}

async fn entities(s: &Server, name: &str, day: &str) -> Entities {
    let geo = place(s, None, name).await;
    let returnee = id(&s.post("/v1/returnees", registration(&geo, day)).await.ok());
    let checkpoint = id(&s
        .post(
            "/v1/checkpoints",
            json!({"zone_id": geo.0, "name": "路口", "kind": "road"}),
        )
        .await
        .ok());
    let venue = id(&s
        .post(
            "/v1/venues",
            json!({"zone_id": geo.0, "kind": "mahjong_parlour", "name": "麻将馆"}),
        )
        .await
        .ok());
    let banquet = id(&s
        .post(
            "/v1/banquets",
            json!({"zone_id": geo.0, "kind": "wedding", "planned_date": "2099-05-01",
                   "expected_guests": 100, "host": {"name": "王五"}}),
        )
        .await
        .ok());
    Entities {
        zone: geo.0,
        returnee,
        checkpoint,
        venue,
        banquet,
    }
}

/// The roles each route admits, as designed (API.md): written here, apart
/// from the server's own table, so either one drifting fails the test.
fn designed(method: &str, path: &str) -> Option<&'static [&'static str]> {
    const ALL: &[&str] = &["admin", "zone_worker", "county", "auditor"];
    const FIELD: &[&str] = &["admin", "zone_worker"];
    const ADMIN: &[&str] = &["admin"];
    const AUDIT: &[&str] = &["admin", "auditor"];
    const PUBLIC: &[&str] = &[];
    Some(match (method, path) {
        ("get", "/healthz" | "/readyz" | "/metrics") => PUBLIC,
        (_, p) if p.starts_with("/v1/tokens") => ADMIN,
        // Erasing a person, and their subject access report: admin only.
        ("post", "/v1/returnees/{returnee_id}/erasure" | "/v1/banquets/{banquet_id}/erasure")
        | (
            "get",
            "/v1/returnees/{returnee_id}/personal-data" | "/v1/banquets/{banquet_id}/personal-data",
        ) => ADMIN,
        ("post", "/v1/zones")
        | ("put", "/v1/zones/{zone_id}/leader" | "/v1/zones/{zone_id}/dhis2-org-unit") => ADMIN,
        ("get", "/v1/zones" | "/v1/zones/{zone_id}") => ALL,
        (
            "get",
            "/v1/zones/{zone_id}/dashboard"
            | "/v1/dashboard"
            | "/v1/dashboard/live"
            | "/v1/reports/daily"
            | "/v1/caller",
        )
        | ("post", "/v1/dashboard/live/tickets") => ALL,
        ("get", p) if p.starts_with("/v1/events") || p.starts_with("/v1/audit/") => AUDIT,
        ("post", "/v1/events/live/tickets") => AUDIT,
        ("get" | "post" | "put", p)
            if [
                "/v1/zones/",
                "/v1/returnees",
                "/v1/checkpoints",
                "/v1/venues",
                "/v1/banquets",
                "/v1/staff-health-checks",
                "/v1/batches",
                "/v1/quarantine/roster",
            ]
            .iter()
            .any(|prefix| p.starts_with(prefix)) =>
        {
            FIELD
        }
        _ => return None,
    })
}

/// Only the status matters; the live feed never ends, so no body is read.
async fn status_of(request: reqwest::RequestBuilder) -> u16 {
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    assert!(status < 500, "{}: {status}", response.url());
    status
}

async fn every_route_admits_exactly_the_roles_it_was_designed_for(db: Arc<TestDb>) {
    let s = Server::start_on(db, &[]);
    let day = today(&s).await;
    let a = entities(&s, "一片区", &day).await;
    let tokens: Vec<(&str, String)> = vec![
        ("admin", s.token.clone()),
        (
            "zone_worker",
            s.create_token("zone_worker", &[&a.zone], "村医").await,
        ),
        ("county", s.create_token("county", &[], "县疾控").await),
        ("auditor", s.create_token("auditor", &[], "审计").await),
    ];
    let doomed = s
        .post("/v1/tokens", json!({"name": "to revoke", "role": "county"}))
        .await
        .ok()["token_id"]
        .as_str()
        .expect("token id")
        .to_owned();
    let spec = s.get("/openapi.json").await.ok();
    let paths = spec["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (path, item) in paths {
        for method in item.as_object().expect("operations").keys() {
            let allowed = designed(method, path)
                .unwrap_or_else(|| panic!("no designed roles for {method} {path}: add them here"));
            let concrete = path
                .replace("{zone_id}", &a.zone)
                .replace("{returnee_id}", &a.returnee)
                .replace("{checkpoint_id}", &a.checkpoint)
                .replace("{venue_id}", &a.venue)
                .replace("{banquet_id}", &a.banquet)
                .replace("{token_id}", &doomed)
                .replace("{date}", &day);
            let request = |token: Option<&str>| {
                let mut r = s.client.request(
                    method.to_uppercase().parse().expect("method"),
                    s.url(&concrete),
                );
                if method != "get" && method != "delete" {
                    r = r.json(&json!({}));
                }
                if let Some(token) = token {
                    r = r.bearer_auth(token);
                }
                r
            };
            let anonymous = status_of(request(None)).await;
            if allowed.is_empty() {
                assert!(anonymous < 400, "{method} {path} is public: {anonymous}");
                continue;
            }
            assert_eq!(anonymous, 401, "{method} {path} without a token");
            for (role, token) in &tokens {
                let got = status_of(request(Some(token))).await;
                if allowed.contains(role) {
                    assert!(
                        got != 401 && got != 403,
                        "{method} {path} must admit {role}: {got}"
                    );
                } else {
                    assert_eq!(got, 403, "{method} {path} must refuse {role}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 50, "{checked} routes checked");
}

async fn a_zone_worker_sees_and_works_in_its_zones_only(db: Arc<TestDb>) {
    let s = Server::start_on(db, &[]);
    let day = today(&s).await;
    let a = entities(&s, "一片区", &day).await;
    let b = entities(&s, "二片区", &day).await;
    let worker = s
        .create_token("zone_worker", &[&a.zone], "一片区网格员")
        .await;
    let as_worker = |method: reqwest::Method, path: &str| {
        s.client.request(method, s.url(path)).bearer_auth(&worker)
    };
    let get = |path: String| s.send_raw(as_worker(reqwest::Method::GET, &path));

    // Its own zone: in full.
    let mine = get(format!("/v1/returnees/{}", a.returnee)).await.ok();
    assert_eq!(mine["personal"]["name"], "张三");
    // Another zone's entities do not exist for it.
    for path in [
        format!("/v1/returnees/{}", b.returnee),
        format!("/v1/returnees/{}/events", b.returnee),
        format!("/v1/checkpoints/{}", b.checkpoint),
        format!("/v1/venues/{}", b.venue),
        format!("/v1/banquets/{}", b.banquet),
        format!("/v1/zones/{}", b.zone),
        format!("/v1/zones/{}/dashboard", b.zone),
        format!("/v1/zones/{}/daily-reports/{day}", b.zone),
    ] {
        get(path.clone()).await.problem(404, "not_found");
    }
    // ...nor in its lists.
    for (list, key) in [
        ("/v1/returnees", "returnee_id"),
        ("/v1/checkpoints", "checkpoint_id"),
        ("/v1/venues", "venue_id"),
        ("/v1/banquets", "banquet_id"),
        ("/v1/zones", "zone_id"),
    ] {
        let items = get(list.to_owned()).await.ok()["items"].clone();
        let items = items.as_array().expect("items");
        assert_eq!(items.len(), 1, "{list}: {items:?}");
        assert!(items
            .iter()
            .all(|i| i[key].is_string() && i["zone_id"] == a.zone));
    }
    // It writes in its zone, and cannot in another, directly or in a batch.
    let quarantine = |r: &str| format!("/v1/returnees/{r}/quarantine");
    s.send_raw(
        as_worker(reqwest::Method::POST, &quarantine(&a.returnee))
            .header("X-Correlation-Id", "sync-batch-7")
            .header("X-Request-Id", "req-worker-1")
            .json(&json!({})),
    )
    .await
    .ok();
    s.send_raw(as_worker(reqwest::Method::POST, &quarantine(&b.returnee)).json(&json!({})))
        .await
        .problem(404, "not_found");
    let elsewhere = (
        b.zone.clone(),
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    let refused = s
        .send_raw(
            as_worker(reqwest::Method::POST, "/v1/returnees").json(&registration(&elsewhere, &day)),
        )
        .await
        .problem(422, "invalid_fields");
    assert_eq!(
        refused["errors"][0]["field"], "zone_id",
        "as if zone B did not exist"
    );
    let batch = s
        .send_raw(as_worker(reqwest::Method::POST, "/v1/batches").json(&json!({"commands": [
            {"method": "POST", "path": format!("/v1/venues/{}/closure", a.venue), "body": {"notice_posted": true}},
            {"method": "POST", "path": format!("/v1/venues/{}/closure", b.venue), "body": {"notice_posted": true}},
            {"method": "POST", "path": "/v1/zones", "body": {"name": "三片区"}},
        ]})))
        .await;
    assert_eq!(batch.status, 207);
    let results = batch.body["results"].as_array().expect("results").clone();
    assert_eq!(results[0]["status"], 200);
    assert_eq!(results[1]["status"], 404);
    assert_eq!(results[2]["status"], 403);
    let b_venue = s.get(&format!("/v1/venues/{}", b.venue)).await.ok();
    assert_eq!(b_venue["status"], "open", "nothing written in zone B");
    // Its roster and county pull hold its zone's rows only.
    let roster = get("/v1/quarantine/roster".into()).await.ok();
    assert!(roster["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|i| i["zone_id"] == a.zone));
    let pull = get(format!("/v1/reports/daily?date={day}")).await.ok();
    assert!(pull["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .all(|r| r["zone_id"] == a.zone));
    // Its writes carry it as the actor.
    let events = s
        .get(&format!("/v1/returnees/{}/events", a.returnee))
        .await
        .ok();
    let last = events
        .as_array()
        .and_then(|e| e.last())
        .expect("events")
        .clone();
    assert_eq!(last["type"], "QuarantineStarted");
    let logged = s.get("/v1/events?type=QuarantineStarted").await.ok();
    assert_eq!(
        logged["items"][0]["metadata"]["actor"]["name"],
        "一片区网格员"
    );
    assert_eq!(
        logged["items"][0]["metadata"]["actor"]["role"],
        "zone_worker"
    );
    assert!(logged["items"][0]["metadata"]["actor"]["token_id"].is_string());
    assert_eq!(
        logged["items"][0]["metadata"]["correlation_id"],
        "sync-batch-7"
    );
    assert_eq!(logged["items"][0]["metadata"]["request_id"], "req-worker-1");
}

async fn tokens_are_issued_listed_and_revoked_through_the_api_and_the_cli(db: Arc<TestDb>) {
    // A new store prints its one admin token, once.
    let s = Server::start_fresh(db.clone(), &[]);
    assert_eq!(s.printed_tokens.len(), 1);
    let admin = s.printed_tokens[0].clone();
    assert!(admin.starts_with("fk_"));
    s.get("/v1/zones").await.ok();

    // 401 without a token, with a bad one, with a forged one.
    let anonymous = s.send_raw(s.client.get(s.url("/v1/zones"))).await;
    assert_eq!(
        anonymous
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    anonymous.problem(401, "unauthenticated");
    let forged = format!("{}{}", &admin[..admin.len() - 4], "0000");
    s.send_raw(s.client.get(s.url("/v1/zones")).bearer_auth(&forged))
        .await
        .problem(401, "unauthenticated");
    s.send_raw(s.client.get(s.url("/v1/zones")).bearer_auth("nonsense"))
        .await
        .problem(401, "unauthenticated");

    // Issued through the API: shown once, listed without secrets.
    let issued = s
        .post(
            "/v1/tokens",
            json!({"name": "县疾控中心", "role": "county"}),
        )
        .await;
    assert_eq!(issued.status, 201);
    let county = issued.body["token"].as_str().expect("token").to_owned();
    let county_id = issued.body["token_id"].as_str().expect("id").to_owned();
    s.send_raw(s.client.get(s.url("/v1/dashboard")).bearer_auth(&county))
        .await
        .ok();
    let list = s.get("/v1/tokens").await.ok();
    let listed = list["items"].as_array().expect("items");
    assert_eq!(listed.len(), 2, "the first admin and the county's: {list}");
    assert!(
        !list.to_string().contains(&county),
        "secrets are never listed"
    );
    s.post("/v1/tokens", json!({"name": "x", "role": "zone_worker"}))
        .await
        .problem(409, "token_zones_mismatch");
    s.post("/v1/tokens", json!({"name": "x", "role": "mayor"}))
        .await
        .problem(422, "invalid_fields");

    // Revoked: refused from the answer on.
    s.send(s.client.delete(s.url(&format!("/v1/tokens/{county_id}"))))
        .await
        .ok();
    s.send_raw(s.client.get(s.url("/v1/dashboard")).bearer_auth(&county))
        .await
        .problem(401, "unauthenticated");
    s.send(s.client.delete(s.url(&format!("/v1/tokens/{county_id}"))))
        .await
        .problem(409, "token_already_revoked");

    // The CLI, while the server runs on the same store.
    let auditor = s.create_token("auditor", &[], "审计局").await;
    s.send_raw(s.client.get(s.url("/v1/audit/head")).bearer_auth(&auditor))
        .await
        .ok();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fangkong"))
        .args(["token", "list"])
        .env("FANGKONG_DATABASE_URL", s.db.url())
        .output()
        .expect("token list runs");
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listing.contains("审计局") && listing.contains("revoked"),
        "{listing}"
    );
    assert!(!listing.contains(&auditor));
    let auditor_id = listing
        .lines()
        .find(|l| l.contains("审计局"))
        .and_then(|l| l.split('\t').next())
        .expect("the auditor's id")
        .to_owned();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fangkong"))
        .args(["token", "revoke", &auditor_id])
        .env("FANGKONG_DATABASE_URL", s.db.url())
        .envs(support::state_key_env(&s.db))
        .output()
        .expect("token revoke runs");
    assert!(out.status.success());
    let mut refused = false;
    for _ in 0..50 {
        let r = s
            .send_raw(s.client.get(s.url("/v1/audit/head")).bearer_auth(&auditor))
            .await;
        if r.status == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        refused,
        "a revocation from the CLI reaches the running server"
    );
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_fangkong"))
        .args([
            "token",
            "create",
            "--role",
            "zone_worker",
            "--name",
            "x",
            "--zone",
            &uuid::Uuid::now_v7().to_string(),
        ])
        .env("FANGKONG_DATABASE_URL", s.db.url())
        .envs(support::state_key_env(&s.db))
        .output()
        .expect("token create runs");
    assert!(!bad.status.success(), "an unknown zone is refused");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("zone"),
        "refused for the zone: {}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(bad.stdout.is_empty());
}

async fn failed_attempts_are_limited_and_browsers_are_held_to_the_allowed_origins(db: Arc<TestDb>) {
    let s = Server::start_on(db, &["--cors-origin", "https://field.example.org"]);
    // CORS: the allowed origin's preflight passes without a token; another
    // origin gets no permission.
    let preflight = |origin: &str| {
        s.client
            .request(reqwest::Method::OPTIONS, s.url("/v1/returnees"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type, idempotency-key",
            )
    };
    let allowed = s.send_raw(preflight("https://field.example.org")).await;
    assert!(allowed.status < 300, "{}", allowed.status);
    assert_eq!(
        allowed
            .headers
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://field.example.org")
    );
    let other = s.send_raw(preflight("https://evil.example.com")).await;
    assert!(other.headers.get("access-control-allow-origin").is_none());
    let get = s
        .send(
            s.client
                .get(s.url("/v1/zones"))
                .header("Origin", "https://field.example.org"),
        )
        .await;
    assert_eq!(
        get.headers
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://field.example.org")
    );

    // Guessing tokens: after 20 failures a minute the address waits.
    let mut last = 0;
    for i in 0..25 {
        let r = s
            .send_raw(
                s.client
                    .get(s.url("/v1/zones"))
                    .bearer_auth(format!("fk_guess{i}")),
            )
            .await;
        last = r.status;
        if r.status == 429 {
            assert!(r.headers.get("retry-after").is_some());
            r.problem(429, "too_many_failed_attempts");
            break;
        }
        assert_eq!(r.status, 401);
    }
    assert_eq!(last, 429);
    // A valid token from the same address is never held back: one client
    // guessing behind a NAT cannot lock out the township, admin included.
    s.get("/v1/zones").await.ok();
    let auditor = s.create_token("auditor", &[], "同一出口的审计员").await;
    let mine = s
        .send_raw(s.client.get(s.url("/v1/events")).bearer_auth(&auditor))
        .await;
    assert_eq!(mine.status, 200);
    // ...while guesses from it still wait, with the request's id on the refusal.
    let guess = s
        .send_raw(
            s.client
                .get(s.url("/v1/zones"))
                .bearer_auth("fk_guess-again"),
        )
        .await;
    assert!(guess.headers.get("x-request-id").is_some());
    guess.problem(429, "too_many_failed_attempts");
}

/// What a live feed sends until `needle` has come (within 10 s a chunk).
async fn read_until(
    feed: &mut (impl futures::Stream<Item = reqwest::Result<actix_web::web::Bytes>> + Unpin),
    needle: &str,
) -> String {
    let mut text = String::new();
    while !text.contains(needle) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), feed.next())
            .await
            .expect("the rest arrives")
            .expect("open")
            .expect("bytes");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

async fn the_live_feed_follows_the_log_resumes_and_ends_at_shutdown(db: Arc<TestDb>) {
    let s = Server::start_on(db, &[]);
    let auditor = s.create_token("auditor", &[], "审计").await;
    let head = s.get("/v1/audit/head").await.ok()["position"]
        .as_u64()
        .expect("head");
    let response = s
        .client
        .get(s.url(&format!("/v1/events/live?after={head}&heartbeat_seconds=1")))
        .bearer_auth(&auditor)
        .send()
        .await
        .expect("the feed opens");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut feed = response.bytes_stream();
    let geo = place(&s, None, "一片区").await;
    let day = today(&s).await;
    s.post("/v1/returnees", registration(&geo, &day)).await.ok();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !text.contains("event: ReturneeRegistered") || !text.contains(": heartbeat") {
        let chunk = tokio::time::timeout_at(deadline, feed.next())
            .await
            .expect("events and a heartbeat arrive")
            .expect("the feed stays open")
            .expect("bytes");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains(&format!("id: {}", head + 1)), "{text}");
    assert!(text.contains("event: ZoneEstablished"));
    assert!(
        text.contains("\"name\":\"张*\""),
        "an auditor's feed is masked: {text}"
    );
    assert!(!text.contains("张三"));

    // Resumed with Last-Event-ID: exactly what came after.
    let resumed = s
        .client
        .get(s.url("/v1/events/live?heartbeat_seconds=1"))
        .bearer_auth(&auditor)
        .header("Last-Event-ID", (head + 3).to_string())
        .send()
        .await
        .expect("the feed reopens");
    let mut feed = resumed.bytes_stream();
    let text = read_until(&mut feed, "event: ReturneeRegistered").await;
    assert!(!text.contains(&format!("id: {}\n", head + 3)), "{text}");
    assert!(text.contains(&format!("id: {}\n", head + 4)), "{text}");

    // For a browser: a reconnection delay, and unnamed events its
    // `onmessage` receives, each carrying its type in `data`.
    assert!(text.starts_with("retry: "), "{text}");
    let unnamed = s
        .client
        .get(s.url("/v1/events/live?heartbeat_seconds=1&named=false"))
        .bearer_auth(&auditor)
        .header("Last-Event-ID", (head + 3).to_string())
        .send()
        .await
        .expect("the feed reopens");
    let mut plain = unnamed.bytes_stream();
    let text = read_until(&mut plain, "\"type\":\"ReturneeRegistered\"").await;
    assert!(!text.contains("event: "), "{text}");
    assert!(
        text.contains(&format!("id: {}\ndata: ", head + 4)),
        "{text}"
    );
    drop(plain);

    // A browser's EventSource sends no Authorization: it opens the feed
    // with a ticket, once.
    let issued = s
        .send_raw(
            s.client
                .post(s.url("/v1/events/live/tickets"))
                .bearer_auth(&auditor),
        )
        .await;
    assert_eq!(issued.status, 201, "{}", issued.body);
    let url = issued.body["url"].as_str().expect("a url").to_owned();
    assert_eq!(issued.headers["location"], url.as_str());
    let ticket = issued.body["ticket"].as_str().expect("a ticket").to_owned();
    // A ticket opens the feed and nothing else: it is no bearer token.
    s.send_raw(s.client.get(s.url("/v1/events")).bearer_auth(&ticket))
        .await
        .problem(401, "unauthenticated");
    let by_ticket = s
        .client
        .get(s.url(&format!("{url}&heartbeat_seconds=1&named=false")))
        .header("Last-Event-ID", (head + 3).to_string())
        .send()
        .await
        .expect("the feed opens");
    assert_eq!(by_ticket.status(), 200);
    let mut ticketed = by_ticket.bytes_stream();
    let text = read_until(&mut ticketed, "\"type\":\"ReturneeRegistered\"").await;
    assert!(
        !text.contains("张三"),
        "the auditor's masking holds: {text}"
    );
    // One connection at a time: while it is open, the ticket opens no other.
    s.send_raw(
        s.client
            .get(s.url(&url))
            .header("Last-Event-ID", (head + 3).to_string()),
    )
    .await
    .problem(401, "unauthenticated");
    drop(ticketed);
    // Used: it opens no fresh feed, and a made-up ticket opens nothing.
    for url in [url.clone(), "/v1/events/live?ticket=fkt_00".into()] {
        s.send_raw(s.client.get(s.url(&url)))
            .await
            .problem(401, "unauthenticated");
    }
    // But a browser's EventSource reconnects to the same URL with
    // Last-Event-ID when a feed ends, and resumes exactly there.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let resumed = loop {
        let response = s
            .client
            .get(s.url(&format!("{url}&heartbeat_seconds=1&named=false")))
            .header("Last-Event-ID", (head + 3).to_string())
            .send()
            .await
            .expect("an answer");
        // The server lets go of the ticket once it notices the close.
        if response.status() == 200 || tokio::time::Instant::now() > deadline {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(resumed.status(), 200, "the ticket resumes its feed");
    let mut again = resumed.bytes_stream();
    let text = read_until(&mut again, "\"type\":\"ReturneeRegistered\"").await;
    assert!(
        text.contains(&format!("id: {}\ndata: ", head + 4)),
        "{text}"
    );
    drop(again);
    // A ticket is for the roles the feed admits, and dies with its token.
    let worker = s.create_token("county", &[], "县").await;
    s.send_raw(
        s.client
            .post(s.url("/v1/events/live/tickets"))
            .bearer_auth(&worker),
    )
    .await
    .problem(403, "forbidden");
    let other = s.create_token("auditor", &[], "审计二").await;
    let pending = s
        .send_raw(
            s.client
                .post(s.url("/v1/events/live/tickets"))
                .bearer_auth(&other),
        )
        .await
        .ok();
    let other_id = other
        .strip_prefix("fk_")
        .and_then(|t| t.split('_').next())
        .expect("a token id")
        .to_owned();
    let other_id = uuid::Uuid::parse_str(&other_id).expect("a uuid");
    s.send(s.client.delete(s.url(&format!("/v1/tokens/{other_id}"))))
        .await
        .ok();
    s.send_raw(s.client.get(s.url(pending["url"].as_str().expect("url"))))
        .await
        .problem(401, "unauthenticated");

    // A shutdown ends the feed instead of waiting on it.
    let started = std::time::Instant::now();
    let stopping = std::thread::spawn(move || s.stop());
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(chunk) = feed.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the feed ended");
    assert!(stopping.join().expect("stopped").success());
    assert!(started.elapsed() < Duration::from_secs(15));
}

async fn personal_data_stays_out_of_errors(db: Arc<TestDb>) {
    let s = Server::start_on(db, &[]);
    let geo = place(&s, None, "一片区").await;
    let day = today(&s).await;
    let mut bad = registration(&geo, &day);
    bad["personal"]["resident_id"] = json!("110105194912310021");
    bad["personal"]["phone"] = json!("12345678901");
    let problem = s
        .post("/v1/returnees", bad)
        .await
        .problem(422, "invalid_fields");
    let text = problem.to_string();
    assert!(!text.contains("110105194912310021"), "{text}");
    assert!(!text.contains("12345678901"), "{text}");
    assert!(!text.contains("张三"), "{text}");
}

async fn a_token_over_its_rate_or_a_request_over_time_is_told_when_to_retry(db: Arc<TestDb>) {
    let s = Server::start_on(
        db,
        &[
            "--rate-limit",
            "2",
            "--rate-burst",
            "3",
            "--request-timeout-ms",
            "300",
        ],
    );
    for _ in 0..3 {
        s.get("/v1/zones").await.ok();
    }
    let limited = s.get("/v1/zones").await;
    assert_eq!(
        limited
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    limited.problem(429, "rate_limited");
    // Another token has its own allowance.
    let county = s.create_token("county", &[], "县").await;
    s.send_raw(s.client.get(s.url("/v1/dashboard")).bearer_auth(&county))
        .await
        .ok();
    // A read waiting (up to 2 s) for a position that never comes outlasts
    // the 300 ms limit.
    let slow = s
        .send_raw(
            s.client
                .get(s.url("/v1/dashboard?min_position=999999"))
                .bearer_auth(&county),
        )
        .await;
    assert!(slow.headers.get("retry-after").is_some());
    slow.problem(503, "request_timeout");
    // After the refill the first token is served again.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    s.get("/v1/zones").await.ok();
}

async fn the_command_centre_is_served_public_with_a_strict_policy_and_nothing_else(
    db: Arc<TestDb>,
) {
    let s = Server::start_on(db, &[]);
    let page = s.client.get(s.url("/")).send().await.expect("the page");
    assert_eq!(page.status(), 200);
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(header(&page, "content-type").starts_with("text/html"));
    let policy = header(&page, "content-security-policy");
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    assert_eq!(header(&page, "cache-control"), "no-cache");
    let tag = header(&page, "etag");
    let html = page.text().await.expect("html");
    assert!(html.contains("/console/app.js"), "{html}");
    // Revalidated cheaply.
    let again = s
        .client
        .get(s.url("/"))
        .header("If-None-Match", &tag)
        .send()
        .await
        .expect("again");
    assert_eq!(again.status(), 304);
    let script = s
        .client
        .get(s.url("/console/app.js"))
        .send()
        .await
        .expect("the script");
    assert_eq!(script.status(), 200);
    assert!(header(&script, "content-type").starts_with("text/javascript"));
    // Only the embedded files, by their exact names: nothing from the
    // disk, however the path is spelled.
    for probe in [
        "/console/",
        "/console/APP.JS",
        "/console/..%2FCargo.toml",
        "/console/%2e%2e/Cargo.toml",
        "/console/../Cargo.toml",
        "/console/app.js/",
        "/console/app.js%00",
        "/index.html",
        "/console",
    ] {
        let got = s.client.get(s.url(probe)).send().await.expect("an answer");
        assert_eq!(got.status(), 404, "{probe}");
        let body = got.text().await.unwrap_or_default();
        assert!(!body.contains("[workspace]"), "{probe}: {body}");
    }
    // The page is public; what it reads is not.
    s.send_raw(s.client.get(s.url("/v1/dashboard")))
        .await
        .problem(401, "unauthenticated");
    s.send_raw(s.client.get(s.url("/v1/caller")))
        .await
        .problem(401, "unauthenticated");
}

async fn the_caller_route_tells_each_token_what_it_grants(db: Arc<TestDb>) {
    let s = Server::start_on(db, &[]);
    let (zone, _, _) = place(&s, None, "一片区").await;
    let worker = s
        .create_token("zone_worker", &[&zone], "一片区网格员")
        .await;
    let county = s.create_token("county", &[], "县疾控").await;
    let auditor = s.create_token("auditor", &[], "审计").await;
    let admin = s.get("/v1/caller").await.ok();
    assert_eq!(admin["role"], "admin");
    assert_eq!(admin["administration"], true);
    assert_eq!(admin["zones"], json!([]));
    let as_worker = s
        .send_raw(s.client.get(s.url("/v1/caller")).bearer_auth(&worker))
        .await
        .ok();
    assert_eq!(as_worker["role"], "zone_worker");
    assert_eq!(as_worker["name"], "一片区网格员");
    assert_eq!(
        as_worker["zones"],
        json!([{"zone_id": zone, "name": "一片区"}])
    );
    assert_eq!(as_worker["field_work"], true);
    assert_eq!(as_worker["sees_personal_data"], true);
    assert_eq!(as_worker["audit"], false);
    assert_eq!(as_worker["administration"], false);
    for (token, role, audit) in [(&county, "county", false), (&auditor, "auditor", true)] {
        let got = s
            .send_raw(s.client.get(s.url("/v1/caller")).bearer_auth(token))
            .await;
        assert_eq!(
            got.headers
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store")
        );
        let got = got.ok();
        assert_eq!(got["role"], role);
        assert_eq!(got["sees_personal_data"], false, "{role}");
        assert_eq!(got["field_work"], false, "{role}");
        assert_eq!(got["audit"], audit, "{role}");
        // Its secret is never echoed.
        assert!(!got.to_string().contains(token.as_str()));
    }
}

async fn the_figures_feed_tells_every_role_where_the_figures_stand(db: Arc<TestDb>) {
    let s = Server::start_on(db, &[]);
    let county = s.create_token("county", &[], "县疾控").await;
    let auditor = s.create_token("auditor", &[], "审计").await;
    let issued = s
        .send_raw(
            s.client
                .post(s.url("/v1/dashboard/live/tickets"))
                .bearer_auth(&county),
        )
        .await;
    assert_eq!(issued.status, 201, "{}", issued.body);
    let url = issued.body["url"].as_str().expect("a url").to_owned();
    assert!(url.starts_with("/v1/dashboard/live?ticket=fkt_"), "{url}");
    // A figures ticket never opens the log, even for a role that may read
    // it; and an events ticket never opens the figures' feed.
    let ticket = issued.body["ticket"].as_str().expect("ticket").to_owned();
    s.send_raw(
        s.client
            .get(s.url(&format!("/v1/events/live?ticket={ticket}"))),
    )
    .await
    .problem(401, "unauthenticated");
    let events_ticket = s
        .send_raw(
            s.client
                .post(s.url("/v1/events/live/tickets"))
                .bearer_auth(&auditor),
        )
        .await
        .ok()["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    s.send_raw(
        s.client
            .get(s.url(&format!("/v1/dashboard/live?ticket={events_ticket}"))),
    )
    .await
    .problem(401, "unauthenticated");

    let opened = s
        .client
        .get(s.url(&format!("{url}&heartbeat_seconds=1")))
        .send()
        .await
        .expect("the feed opens");
    assert_eq!(opened.status(), 200);
    let mut feed = opened.bytes_stream();
    // At once: where the figures stand now.
    let now = s.get("/v1/audit/head").await.ok()["position"]
        .as_u64()
        .expect("head");
    s.get(&format!("/v1/dashboard?min_position={now}"))
        .await
        .ok();
    let text = read_until(&mut feed, "event: position").await;
    assert!(text.starts_with("retry: "), "{text}");
    assert!(
        text.contains(&format!("data: {{\"position\":{now}}}")),
        "{now}: {text}"
    );
    // A write anywhere moves it on; the frame names no figure and no one.
    let geo = place(&s, None, "一片区").await;
    let day = today(&s).await;
    let written = s.post("/v1/returnees", registration(&geo, &day)).await.ok();
    let position = written["position"].as_u64().expect("position");
    let text = read_until(&mut feed, &format!("\"position\":{position}}}")).await;
    assert!(
        !text.contains("张三") && !text.contains("returnee"),
        "{text}"
    );
    // Its token revoked, the feed ends.
    let county_id = county
        .strip_prefix("fk_")
        .and_then(|t| t.split('_').next())
        .expect("a token id")
        .to_owned();
    s.send(s.client.delete(s.url(&format!("/v1/tokens/{county_id}"))))
        .await
        .ok();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = feed.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the feed ends with its token");
}

async fn no_ticket_reaches_the_log_however_it_is_sent(db: Arc<TestDb>) {
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().expect("a directory");
        let log = dir.path().join("server.log");
        let s = Server::start_logging(db.clone(), &log, format);
        let mut tickets = vec![];
        for (issue, feed) in [
            ("/v1/dashboard/live/tickets", "/v1/dashboard/live"),
            ("/v1/events/live/tickets", "/v1/events/live"),
        ] {
            for name in ["ticket", "%74icket", "%74%69%63%6B%65%74"] {
                let ticket = s.send(s.client.post(s.url(issue))).await.ok()["ticket"]
                    .as_str()
                    .expect("a ticket")
                    .to_owned();
                // Opened, then read a little: the request is logged.
                let opened = s
                    .client
                    .get(s.url(&format!("{feed}?heartbeat_seconds=1&{name}={ticket}")))
                    .send()
                    .await
                    .expect("the feed opens");
                assert_eq!(opened.status(), 200, "{feed} by {name}");
                let mut stream = opened.bytes_stream();
                read_until(&mut stream, "retry: ").await;
                drop(stream);
                tickets.push(ticket);
            }
        }
        // Refused ones too.
        s.send_raw(
            s.client
                .get(s.url("/v1/dashboard/live?ticket=fkt_never-issued")),
        )
        .await
        .problem(401, "unauthenticated");
        let token = s.token.clone();
        assert!(s.stop().success());
        let text = std::fs::read_to_string(&log).expect("the log");
        assert!(
            text.contains("ticket=***"),
            "{format}: the feeds are logged"
        );
        for secret in tickets
            .iter()
            .map(String::as_str)
            .chain(["fkt_never-issued", token.as_str()])
        {
            assert!(!text.contains(secret), "{format}: {secret} reached the log");
        }
    }
}

async fn a_token_holds_a_bounded_number_of_live_feeds(db: Arc<TestDb>) {
    let s = Server::start_on(db, &[]);
    let county = s.create_token("county", &[], "县疾控").await;
    let open = || async {
        s.client
            .get(s.url("/v1/dashboard/live?heartbeat_seconds=1"))
            .bearer_auth(&county)
            .send()
            .await
            .expect("an answer")
    };
    let mut held = vec![];
    for _ in 0..fangkong_api::feeds::OpenFeeds::PER_TOKEN {
        let response = open().await;
        assert_eq!(response.status(), 200);
        let mut stream = response.bytes_stream();
        read_until(&mut stream, "event: position").await;
        held.push(stream);
    }
    let refused = open().await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("retry-after").is_some());
    let body: Value = refused.json().await.expect("a problem");
    assert_eq!(body["code"], "too_many_feeds");
    // Another token is not held back, and a closed feed frees its place.
    let other = s
        .client
        .get(s.url("/v1/dashboard/live?heartbeat_seconds=1"))
        .bearer_auth(&s.token)
        .send()
        .await
        .expect("an answer");
    assert_eq!(other.status(), 200, "another token is not held back");
    drop(other);
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let again = open().await;
        if again.status() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a closed feed's place is freed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fangkong_store::each_backend!(
    every_route_admits_exactly_the_roles_it_was_designed_for,
    no_ticket_reaches_the_log_however_it_is_sent,
    a_token_holds_a_bounded_number_of_live_feeds,
    the_command_centre_is_served_public_with_a_strict_policy_and_nothing_else,
    the_caller_route_tells_each_token_what_it_grants,
    the_figures_feed_tells_every_role_where_the_figures_stand,
    a_zone_worker_sees_and_works_in_its_zones_only,
    tokens_are_issued_listed_and_revoked_through_the_api_and_the_cli,
    failed_attempts_are_limited_and_browsers_are_held_to_the_allowed_origins,
    the_live_feed_follows_the_log_resumes_and_ends_at_shutdown,
    personal_data_stays_out_of_errors,
    a_token_over_its_rate_or_a_request_over_time_is_told_when_to_retry,
);
