//! The trust boundary, attacked from outside on both backends: encoded
//! paths, forged saved state, revoked tokens with open feeds, lock-outs,
//! personal data outside `personal`, locked, corrupt and vanished stores,
//! and what answers and files give away.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fangkong_store::testing::TestDb;
use futures::StreamExt;
use proptest::strategy::{Strategy, ValueTree};
use serde_json::{json, Value};
use support::{id, place, today, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends a request exactly as written (no client normalising its path)
/// and answers the status.
async fn raw_status(s: &Server, method: &str, path: &str, token: Option<&str>) -> u16 {
    let addr = s.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let body = if method == "GET" || method == "DELETE" {
        ""
    } else {
        "{}"
    };
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        let n = stream.read(&mut head[read..]).await.expect("an answer");
        assert!(
            n > 0,
            "{method} {path}: the connection closed without an answer"
        );
        read += n;
    }
    let line = String::from_utf8_lossy(&head[..read]).to_string();
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status in {line:?}"));
    assert!(status < 500, "{method} {path}: {status}");
    status
}

/// Ways to write a path that a careless check and a decoding router may
/// read differently.
fn variants(path: &str) -> Vec<String> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut out = vec![];
    for (i, segment) in segments.iter().enumerate() {
        // Literal segments only (ids are not what routes are told apart by).
        let Some(first) = segment.chars().next().filter(|c| c.is_ascii_lowercase()) else {
            continue;
        };
        if segment.len() > 30 {
            continue;
        }
        for escaped in [
            format!("%{:02x}", first as u32),
            format!("%{:02X}", first as u32),
        ] {
            let mut v = segments.clone();
            let encoded = format!("{escaped}{}", &segment[1..]);
            v[i] = &encoded;
            out.push(v.join("/"));
        }
        let mut dotted = segments.clone();
        let dot = format!("./{segment}");
        dotted[i] = &dot;
        out.push(dotted.join("/"));
        let mut up = segments.clone();
        let back = format!("x/../{segment}");
        up[i] = &back;
        out.push(up.join("/"));
    }
    out.push(format!("{path}/"));
    out.push(path.replacen("/v1/", "/v1//", 1));
    out.push(path.replacen("/v1/", "/v1%2F", 1));
    out.push(path.replacen("/v1/", "/v1%2f", 1));
    out.push(format!("/{path}"));
    out
}

/// What an encoded variant may answer, given what the canonical path
/// answered: the same, or a refusal of the path itself. Never more.
fn no_more_than(canonical: u16, variant: u16) -> bool {
    variant == canonical || matches!(variant, 400 | 401 | 403 | 404 | 405)
}

async fn no_encoding_of_a_path_gets_more_than_the_path_itself(db: Arc<TestDb>) {
    // Thousands of requests per token: the rate limit is not under test.
    let s = Server::start_on(db, &["--rate-limit", "0"]);
    let (zone, _, _) = place(&s, None, "一片区").await;
    let county = s.create_token("county", &[], "县").await;
    let worker = s.create_token("zone_worker", &[&zone], "一片区").await;
    let auditor = s.create_token("auditor", &[], "审计").await;
    let callers = [
        None,
        Some(county.as_str()),
        Some(worker.as_str()),
        Some(auditor.as_str()),
        Some(s.token.as_str()),
    ];
    let spec = s.get("/openapi.json").await.ok();
    let nil = uuid::Uuid::nil().to_string();
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("operations").keys() {
            let method = method.to_uppercase();
            if path == "/v1/events/live" {
                continue; // never answers with an end; its guard is the same extractor
            }
            let concrete = path
                .replace("{zone_id}", &zone)
                .replace("{date}", "2020-02-01")
                .split('/')
                .map(|seg| {
                    if seg.starts_with('{') {
                        nil.clone()
                    } else {
                        seg.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            for (caller, token) in callers.iter().enumerate() {
                let canonical = raw_status(&s, &method, &concrete, *token).await;
                for variant in variants(&concrete) {
                    let got = raw_status(&s, &method, &variant, *token).await;
                    assert!(
                        no_more_than(canonical, got),
                        "{method} {variant} (caller {caller}: none, county, zone worker, auditor, admin) answered {got} where {concrete} answered {canonical}",
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 2_000, "{checked} variants checked");

    // The findings, as regressions: no token mints, lists or revokes
    // tokens, writes, or reads the audit surface through an escape.
    for (method, path) in [
        ("POST", "/v1/%74okens"),
        ("GET", "/v1/%74okens"),
        (
            "DELETE",
            "/v1/%74okens/0190f5a2-0000-7000-8000-000000000001",
        ),
        ("POST", "/v1/r%65turnees"),
        ("POST", "/v1/b%61tches"),
        ("GET", "/v1/d%61shboard"),
        ("GET", "/v1/audit/h%65ad"),
        ("GET", "/v1/audit/v%65rify"),
    ] {
        assert_eq!(
            raw_status(&s, method, path, None).await,
            401,
            "{method} {path}"
        );
    }

    // And generated: any letter of a route's literal segments escaped, in
    // either case, reaches no more than the route itself.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let routes = [
        ("POST", "/v1/tokens"),
        ("GET", "/v1/tokens"),
        ("POST", "/v1/returnees"),
        ("POST", "/v1/batches"),
        ("GET", "/v1/events"),
        ("GET", "/v1/audit/verify"),
    ];
    let strategy = (
        0..routes.len(),
        proptest::collection::vec((proptest::bool::ANY, proptest::bool::ANY), 24),
    );
    for _ in 0..120 {
        let (which, choices) = strategy
            .new_tree(&mut runner)
            .expect("a generated case")
            .current();
        let (method, path) = routes[which];
        let encoded: String = path
            .chars()
            .zip(choices.iter().cycle())
            .map(
                |(c, (escape, upper))| match (c.is_ascii_alphabetic(), escape, upper) {
                    (true, true, true) => format!("%{:02X}", c as u32),
                    (true, true, false) => format!("%{:02x}", c as u32),
                    _ => c.to_string(),
                },
            )
            .collect();
        for token in callers {
            let canonical = raw_status(&s, method, path, token).await;
            let got = raw_status(&s, method, &encoded, token).await;
            assert!(
                no_more_than(canonical, got),
                "{method} {encoded}: {got} where {path} answered {canonical}"
            );
        }
    }
}

async fn forged_saved_state_has_no_effect_after_a_restart(db: Arc<TestDb>) {
    let s = Server::start_on(db.clone(), &["--projection-save-seconds", "1"]);
    let day = today(&s).await;
    let (zone, _, _) = place(&s, None, "一片区").await;
    let checkpoint = id(&s
        .post(
            "/v1/checkpoints",
            json!({"zone_id": zone, "name": "村口", "kind": "road"}),
        )
        .await
        .ok());
    for _ in 0..11 {
        s.post(
            &format!("/v1/checkpoints/{checkpoint}/crossings"),
            json!({"subject": "person", "people": 1, "outcome": "admitted"}),
        )
        .await
        .ok();
    }
    let county = s.create_token("county", &[], "县").await;
    let doomed = s.create_token("auditor", &[], "将被吊销").await;
    let doomed_id = doomed.split('_').nth(1).expect("id").to_owned();
    let doomed_id = uuid::Uuid::try_parse(&doomed_id).expect("uuid").to_string();
    s.send(s.client.delete(s.url(&format!("/v1/tokens/{doomed_id}"))))
        .await
        .ok();
    let dashboard = format!("/v1/zones/{zone}/dashboard?date={day}");
    let crossings = s.get(&dashboard).await.ok()["day"]["crossings"].clone();
    assert_eq!(crossings, 11);
    let admin = s.token.clone();
    s.stop();

    // What a database administrator without the key could do to the saved
    // state: change a figure, add tokens, un-revoke one, promote another.
    let saved = db
        .fetch_bytes("SELECT state FROM projection_checkpoints")
        .await
        .expect("reads")
        .expect("the state was saved at the stop");
    // The 32-byte seal, then the models' JSON, compressed.
    let (seal, state) = saved.split_at(32);
    let json = zstd::stream::decode_all(state).expect("a compressed state");
    let mut models: Value = serde_json::from_slice(&json).expect("json");
    let mut changed = 0;
    bump(&mut models, &mut changed);
    assert!(changed > 0, "the figure 11 was found in the saved state");
    let forged_token = format!("fk_{}_{}", uuid::Uuid::now_v7().simple(), "ab".repeat(32));
    models["tokens"] = json!({"tokens": {
        "forged": {"role": "admin", "secret_sha256": "00", "name": "x"}
    }});
    let mut forged = seal.to_vec();
    forged.extend(zstd::bulk::compress(models.to_string().as_bytes(), 3).expect("compressed"));
    db.execute_with_bytes("UPDATE projection_checkpoints SET state = $1", &forged)
        .await
        .expect("forged");

    let mut s = Server::start_on(db.clone(), &[]);
    s.token = admin;
    assert_eq!(
        s.get(&dashboard).await.ok()["day"]["crossings"],
        11,
        "the forged figure was discarded and the log replayed"
    );
    for (token, path, status) in [
        (forged_token.as_str(), "/v1/zones", 401),
        (doomed.as_str(), "/v1/zones", 401),
        (county.as_str(), "/v1/tokens", 403),
    ] {
        assert_eq!(
            s.send_raw(s.client.get(s.url(path)).bearer_auth(token))
                .await
                .status,
            status,
            "{path}"
        );
    }
}

/// Turns every 11 in the models into 999.
fn bump(value: &mut Value, changed: &mut usize) {
    match value {
        Value::Number(n) if n.as_u64() == Some(11) => {
            *value = json!(999);
            *changed += 1;
        }
        Value::Array(items) => items.iter_mut().for_each(|v| bump(v, changed)),
        Value::Object(map) => map.values_mut().for_each(|v| bump(v, changed)),
        _ => {}
    }
}

async fn revocation_and_lifetime_end_live_feeds(db: Arc<TestDb>) {
    let s = Server::start_on(db, &["--live-max-seconds", "3"]);
    let doomed = s.create_token("auditor", &[], "将被吊销").await;
    let doomed_id = uuid::Uuid::try_parse(doomed.split('_').nth(1).expect("id"))
        .expect("uuid")
        .to_string();
    let open = |token: &str| {
        s.client
            .get(s.url("/v1/events/live?heartbeat_seconds=1&after=0"))
            .bearer_auth(token)
            .send()
    };
    let mut feed = open(&doomed).await.expect("opens").bytes_stream();
    assert!(feed.next().await.is_some(), "the feed speaks");
    s.send(s.client.delete(s.url(&format!("/v1/tokens/{doomed_id}"))))
        .await
        .ok();
    let revoked = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = feed.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the revoked token's feed ended");
    let took = revoked.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "ended {took:?} after revocation"
    );

    // Every feed ends at its lifetime; the client resumes with Last-Event-ID.
    let auditor = s.create_token("auditor", &[], "审计").await;
    let opened = Instant::now();
    let mut feed = open(&auditor).await.expect("opens").bytes_stream();
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(_)) = feed.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the feed ended at its lifetime");
    assert!(opened.elapsed() >= Duration::from_millis(2_500));
}

async fn failed_authentications_behind_a_trusted_proxy_count_per_client(db: Arc<TestDb>) {
    let s = Server::start_on(
        db,
        &[
            "--failed-auth-limit",
            "3",
            "--trusted-proxy",
            "127.0.0.1/32",
        ],
    );
    let guess = |client: &str| {
        s.send_raw(
            s.client
                .get(s.url("/v1/zones"))
                .bearer_auth("fk_guess")
                .header("X-Forwarded-For", client),
        )
    };
    for _ in 0..2 {
        assert_eq!(guess("10.0.0.1").await.status, 401);
    }
    guess("10.0.0.1")
        .await
        .problem(429, "too_many_failed_attempts");
    // Another client behind the same proxy is not held back.
    assert_eq!(guess("10.0.0.2").await.status, 401);
    // Nor a valid token from the first one.
    let valid = s
        .send(
            s.client
                .get(s.url("/v1/zones"))
                .header("X-Forwarded-For", "10.0.0.1"),
        )
        .await;
    assert_eq!(valid.status, 200);
    // A client cannot spoof its way out: hops the proxy did not add are
    // read right to left only through trusted addresses.
    let spoofed = s
        .send_raw(
            s.client
                .get(s.url("/v1/zones"))
                .bearer_auth("fk_guess")
                .header("X-Forwarded-For", "10.9.9.9, 10.0.0.1"),
        )
        .await;
    spoofed.problem(429, "too_many_failed_attempts");
}

async fn untrusted_peers_cannot_name_their_own_address(db: Arc<TestDb>) {
    let s = Server::start_on(db, &["--failed-auth-limit", "3"]);
    for client in ["10.0.0.1", "10.0.0.2"] {
        s.send_raw(
            s.client
                .get(s.url("/v1/zones"))
                .bearer_auth("fk_guess")
                .header("X-Forwarded-For", client),
        )
        .await;
    }
    // All three guesses came from 127.0.0.1, whatever the header said.
    s.send_raw(
        s.client
            .get(s.url("/v1/zones"))
            .bearer_auth("fk_guess")
            .header("X-Forwarded-For", "10.0.0.3"),
    )
    .await
    .problem(429, "too_many_failed_attempts");
}

/// An 11-digit mainland mobile number or an 18-character resident ID
/// number, standing alone.
fn unmasked(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            let mut j = i;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            let run = j - i;
            let id_end = j < bytes.len() && matches!(bytes[j], b'X' | b'x') && run == 17;
            let end = if id_end { j + 1 } else { j };
            let free_after = end >= bytes.len() || !bytes[end].is_ascii_alphanumeric();
            if free_after
                && ((run == 11 && bytes[i] == b'1' && (b'3'..=b'9').contains(&bytes[i + 1]))
                    || run == 18
                    || id_end)
            {
                return Some(text[i..end].to_owned());
            }
            i = j;
        } else {
            i += 1;
        }
    }
    None
}

async fn auditors_and_the_county_see_no_personal_data_anywhere(db: Arc<TestDb>) {
    let s = Server::start_fresh(db, &["--demo"]);
    assert_eq!(
        s.printed_tokens.len(),
        4,
        "admin, zone worker, county, auditor"
    );
    let (worker, county, auditor) = (
        s.printed_tokens[1].clone(),
        s.printed_tokens[2].clone(),
        s.printed_tokens[3].clone(),
    );
    // The demo log does hold personal data, in full for the admin.
    let all = s.get("/v1/events?limit=1000").await.ok().to_string();
    assert!(
        unmasked(&all).is_some(),
        "the admin sees phones and ID numbers"
    );

    let zones = s.get("/v1/zones").await.ok();
    let zone = zones["items"][0]["zone_id"]
        .as_str()
        .expect("zone")
        .to_owned();
    let day = today(&s).await;
    let spec = s.get("/openapi.json").await.ok();
    for (role, token) in [("auditor", &auditor), ("county", &county)] {
        let mut answers = vec![];
        for (path, item) in spec["paths"].as_object().expect("paths") {
            // (/metrics names routes and counts, never people: its sums of
            // seconds would only look like numbers here.)
            if item.get("get").is_none()
                || path.contains("/live")
                || path.starts_with("/docs")
                || path == "/metrics"
            {
                continue;
            }
            let concrete = path.replace("{zone_id}", &zone).replace("{date}", &day);
            if concrete.contains('{') {
                continue;
            }
            let reply = s
                .send_raw(s.client.get(s.url(&concrete)).bearer_auth(token))
                .await;
            answers.push((concrete, reply.body.to_string()));
        }
        // Every page of the log.
        let mut cursor = String::new();
        loop {
            let reply = s
                .send_raw(
                    s.client
                        .get(s.url(&format!("/v1/events?limit=1000{cursor}")))
                        .bearer_auth(token),
                )
                .await;
            let next = reply.body["next_cursor"].as_str().map(str::to_owned);
            answers.push(("/v1/events".into(), reply.body.to_string()));
            match next {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        // The live feed from the start.
        if role == "auditor" {
            let mut feed = s
                .client
                .get(s.url("/v1/events/live?after=0"))
                .bearer_auth(token)
                .send()
                .await
                .expect("opens")
                .bytes_stream();
            let mut seen = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while let Some(Ok(chunk)) = feed.next().await {
                    seen.extend_from_slice(&chunk);
                    if seen.len() > 4_000_000 {
                        break;
                    }
                }
            })
            .await;
            answers.push((
                "/v1/events/live".into(),
                String::from_utf8_lossy(&seen).into(),
            ));
        }
        for (path, body) in answers {
            assert!(
                !body.contains("secret_sha256"),
                "{role}: a token's secret hash in {path}"
            );
            if let Some(found) = unmasked(&body) {
                panic!("{role}: unmasked personal data {found} in {path}");
            }
        }
    }

    // A zone worker's township dashboard carries its own zones' lines only.
    let mine = s
        .send_raw(s.client.get(s.url("/v1/dashboard")).bearer_auth(&worker))
        .await
        .ok();
    let lines = mine["zones"].as_array().expect("zone lines");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let everyone = s.get("/v1/dashboard").await.ok();
    assert!(everyone["zones"].as_array().expect("lines").len() > 1);
}

async fn a_locked_store_answers_503_quickly_and_readiness_says_so(db: Arc<TestDb>) {
    let s = Server::start_on(db.clone(), &["--store-timeout-ms", "1000"]);
    let (zone, _, _) = place(&s, None, "一片区").await;
    db.hold_lock(Duration::from_secs(8)).await.expect("locked");
    let started = Instant::now();
    let write = s
        .send_raw(
            s.client
                .post(s.url(&format!("/v1/zones/{zone}/publicity")))
                .bearer_auth(&s.token)
                .json(&json!({"channel": "leaflet", "quantity": 10})),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(write.status, 503, "{:?}", write.body);
    assert!(write.headers.get("retry-after").is_some());
    assert!(took < Duration::from_secs(6), "answered after {took:?}");
    if db.backend() == "postgres" {
        // PostgreSQL's lock holds readers out too; SQLite's WAL readers
        // read on, so its log stays readable (and ready).
        s.send_raw(s.client.get(s.url("/readyz")))
            .await
            .problem(503, "store_unavailable");
    }
    // Once released, it works again without a restart.
    tokio::time::sleep(Duration::from_secs(8)).await;
    s.post(
        &format!("/v1/zones/{zone}/publicity"),
        json!({"channel": "leaflet", "quantity": 10}),
    )
    .await
    .ok();
    s.get("/readyz").await.ok();
}

async fn an_undecodable_event_stops_the_figures_loudly_and_names_its_position(db: Arc<TestDb>) {
    let s = Server::start_on(db.clone(), &[]);
    let (zone, _, _) = place(&s, None, "一片区").await;
    let checkpoint = id(&s
        .post(
            "/v1/checkpoints",
            json!({"zone_id": zone, "name": "村口", "kind": "road"}),
        )
        .await
        .ok());
    let crossing = s
        .post(
            &format!("/v1/checkpoints/{checkpoint}/crossings"),
            json!({"subject": "person", "people": 1, "outcome": "admitted"}),
        )
        .await
        .ok();
    let position = crossing["position"].as_u64().expect("position");
    let admin = s.token.clone();
    s.stop();
    let original = db
        .fetch_text(&format!(
            "SELECT payload FROM events WHERE position = {position}"
        ))
        .await
        .expect("reads")
        .expect("the crossing");
    db.execute_raw(&format!(
        "UPDATE events SET payload = '{{\"people\": \"many\"}}' WHERE position = {position}"
    ))
    .await
    .expect("corrupted");
    // Replayed from the log (as on a new instance or after `rebuild`), the
    // figures meet the event and stop there.
    db.execute_raw("DELETE FROM projection_checkpoints")
        .await
        .expect("no saved state");
    let mut s = Server::start_on(db.clone(), &[]);
    s.token = admin;
    let ready = s.send_raw(s.client.get(s.url("/readyz"))).await;
    let problem = ready.problem(503, "projection_stalled");
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains(&position.to_string()),
        "{problem}"
    );
    s.send_raw(
        s.client
            .get(s.url(&format!("/v1/zones/{zone}/dashboard")))
            .bearer_auth(&s.token),
    )
    .await
    .problem(503, "projection_stalled");
    let read = s
        .send_raw(
            s.client
                .get(s.url(&format!("/v1/checkpoints/{checkpoint}")))
                .bearer_auth(&s.token),
        )
        .await;
    // Stopped, the projection would miss a revocation after the event: no
    // token is accepted until the log is repaired (fail closed).
    let problem = read.problem(503, "projection_stalled");
    assert!(problem["detail"]
        .as_str()
        .expect("detail")
        .contains(&position.to_string()));

    // A server whose figures had already passed the event (resumed from
    // saved state) still finds it on the first read, and is no longer ready.
    let admin = s.token.clone();
    s.stop();
    db.execute_raw(&format!(
        "UPDATE events SET payload = '{}' WHERE position = {position}",
        original.replace('\'', "''")
    ))
    .await
    .expect("repaired");
    let mut s = Server::start_on(db.clone(), &["--projection-save-seconds", "1"]);
    s.token = admin;
    s.get("/readyz").await.ok();
    let admin = s.token.clone();
    assert!(s.stop().success(), "saved at the stop");
    db.execute_raw(&format!(
        "UPDATE events SET payload = '{{\"people\": \"many\"}}' WHERE position = {position}"
    ))
    .await
    .expect("corrupted again");
    let mut s = Server::start_on(db, &[]);
    s.token = admin;
    s.get("/readyz").await.ok();
    s.send_raw(
        s.client
            .get(s.url(&format!("/v1/checkpoints/{checkpoint}")))
            .bearer_auth(&s.token),
    )
    .await
    .problem(503, "log_corrupt");
    let ready = s.send_raw(s.client.get(s.url("/readyz"))).await;
    let problem = ready.problem(503, "log_corrupt");
    assert!(problem["detail"]
        .as_str()
        .expect("detail")
        .contains(&position.to_string()));
}

async fn entities_outside_the_zone_and_missing_ones_get_the_same_answer(db: Arc<TestDb>) {
    let s = Server::start_on(db, &[]);
    let day = today(&s).await;
    let (a, _, _) = place(&s, None, "一片区").await;
    let (b, bv, bg) = place(&s, None, "二片区").await;
    let returnee = id(&s
        .post(
            "/v1/returnees",
            json!({"zone_id": b, "village_id": bv, "grid_id": bg, "arrival_date": day,
                   "origin": {"region": "湖北省武汉市", "risk": "high"},
                   "personal": {"name": "张三", "resident_id": "11010519491231002X",
                                "phone": "13812345678", "address": "桥头村"}}),
        )
        .await
        .ok());
    let worker = s.create_token("zone_worker", &[&a], "一片区").await;
    let missing = uuid::Uuid::now_v7().to_string();
    for (path, method, body) in [
        ("/v1/returnees/{}", "GET", json!(null)),
        ("/v1/returnees/{}/events", "GET", json!(null)),
        ("/v1/returnees/{}/quarantine", "POST", json!({})),
        (
            "/v1/returnees/{}/health-checks",
            "POST",
            json!({"temperature": 36.5}),
        ),
    ] {
        let ask = |id: &str| {
            let r = s
                .client
                .request(
                    method.parse().expect("method"),
                    s.url(&path.replace("{}", id)),
                )
                .bearer_auth(&worker);
            let r = if method == "POST" { r.json(&body) } else { r };
            s.send_raw(r)
        };
        let elsewhere = ask(&returnee).await;
        let nowhere = ask(&missing).await;
        let garbled = ask("not-an-id").await;
        assert_eq!(elsewhere.status, 404, "{path}: {}", elsewhere.body);
        for other in [&nowhere, &garbled] {
            assert_eq!(other.status, 404, "{path}");
            assert_eq!(other.body["detail"], elsewhere.body["detail"], "{path}");
            assert_eq!(other.body["code"], elsewhere.body["code"], "{path}");
        }
    }
}

async fn every_refusal_carries_a_request_id_and_is_counted(db: Arc<TestDb>) {
    let s = Server::start_on(db, &["--rate-limit", "1", "--rate-burst", "1"]);
    let county = s.create_token("county", &[], "县").await;
    let cases = [
        s.send_raw(s.client.get(s.url("/v1/zones"))).await,
        s.send_raw(
            s.client
                .post(s.url("/v1/zones"))
                .bearer_auth(&county)
                .json(&json!({"name": "x"})),
        )
        .await,
        s.send_raw(s.client.get(s.url("/v1/nowhere")).bearer_auth(&county))
            .await,
        s.send_raw(s.client.patch(s.url("/v1/zones")).bearer_auth(&county))
            .await,
        {
            // The first takes the one request of its burst; the second waits.
            s.send_raw(s.client.get(s.url("/v1/dashboard")).bearer_auth(&county))
                .await;
            s.send_raw(s.client.get(s.url("/v1/dashboard")).bearer_auth(&county))
                .await
        },
    ];
    let statuses: Vec<u16> = cases.iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![401, 403, 404, 405, 429]);
    for case in &cases {
        assert!(
            case.headers.get("x-request-id").is_some(),
            "{} without X-Request-Id",
            case.status
        );
    }
    let metrics = reqwest::get(s.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for (route, status) in [
        ("/v1/zones", "401"),
        ("/v1/zones", "403"),
        ("unmatched", "404"),
        ("/v1/zones", "405"),
        ("/v1/dashboard", "429"),
    ] {
        assert!(
            metrics.contains(&format!("route=\"{route}\",status=\"{status}\"")),
            "{route} {status} not counted:\n{metrics}"
        );
    }
}

async fn metrics_beyond_loopback_need_a_token(db: Arc<TestDb>) {
    let s = Server::start_on(db.clone(), &["--bind", "0.0.0.0:0"]);
    let at = s.base.replace("0.0.0.0", "127.0.0.1");
    let metrics = format!("{at}/metrics");
    assert_eq!(reqwest::get(&metrics).await.expect("answers").status(), 401);
    let auditor = s.create_token("auditor", &[], "审计").await;
    let county = s.create_token("county", &[], "县").await;
    let with = |token: &str| s.client.get(&metrics).bearer_auth(token.to_owned()).send();
    assert_eq!(with(&auditor).await.expect("answers").status(), 200);
    assert_eq!(with(&county).await.expect("answers").status(), 403);
    let admin = s.token.clone();
    s.stop();
    let mut open = Server::start_on(db, &["--bind", "0.0.0.0:0", "--metrics-public"]);
    open.token = admin;
    let at = open.base.replace("0.0.0.0", "127.0.0.1");
    assert_eq!(
        reqwest::get(format!("{at}/metrics"))
            .await
            .expect("answers")
            .status(),
        200
    );
}

fangkong_store::each_backend!(
    no_encoding_of_a_path_gets_more_than_the_path_itself,
    forged_saved_state_has_no_effect_after_a_restart,
    revocation_and_lifetime_end_live_feeds,
    failed_authentications_behind_a_trusted_proxy_count_per_client,
    untrusted_peers_cannot_name_their_own_address,
    auditors_and_the_county_see_no_personal_data_anywhere,
    a_locked_store_answers_503_quickly_and_readiness_says_so,
    an_undecodable_event_stops_the_figures_loudly_and_names_its_position,
    entities_outside_the_zone_and_missing_ones_get_the_same_answer,
    every_refusal_carries_a_request_id_and_is_counted,
    metrics_beyond_loopback_need_a_token,
);

/// SQLite only: the files are the store (PostgreSQL's are the server's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_store_is_private_and_a_vanished_file_is_never_written_to() {
    use std::os::unix::fs::PermissionsExt;
    let db = Arc::new(TestDb::sqlite());
    let s = Server::start_on(db.clone(), &[]);
    let (zone, _, _) = place(&s, None, "一片区").await;
    let file = db.sqlite_path().expect("a SQLite file");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    let dir = file
        .parent()
        .expect("its directory")
        .join("fangkong-private");
    // A directory the store creates itself is 0700.
    let nested = format!("sqlite://{}", dir.join("fangkong.db").display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fangkong"))
        .args(["head", "--database-url", &nested])
        .output()
        .expect("runs");
    assert!(out.status.success());
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("fangkong.db")), 0o600);
    assert_eq!(mode(&file), 0o600);
    let mut wal = file.as_os_str().to_owned();
    wal.push("-wal");
    assert_eq!(mode(std::path::Path::new(&wal)), 0o600);
    let key = file.parent().expect("dir").join("state.key");
    assert_eq!(mode(&key), 0o600, "the state key beside the store");

    // The database deleted under the running server: nothing more is
    // acknowledged, and readiness says so.
    std::fs::remove_file(&file).expect("removed");
    let write = s
        .send_raw(
            s.client
                .post(s.url(&format!("/v1/zones/{zone}/publicity")))
                .bearer_auth(&s.token)
                .json(&json!({"channel": "leaflet", "quantity": 10})),
        )
        .await;
    assert_eq!(write.status, 503, "{}", write.body);
    s.send_raw(s.client.get(s.url("/readyz")))
        .await
        .problem(503, "store_unavailable");
}
