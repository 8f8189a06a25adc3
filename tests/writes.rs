//! Field writes under concurrency and retries, as a township's workers
//! make them: many workers on one checkpoint or one zone's publicity, the
//! same idempotency key used by two zones' devices, a burst of identical
//! retries. Every status received is asserted.

mod support;

use std::sync::Arc;

use futures::future::join_all;
use serde_json::{json, Value};
use support::{id, place, Server};

use fangkong_store::testing::TestDb;

async fn start(db: Arc<TestDb>) -> Server {
    Server::start_on(db, &["--rate-limit", "0"])
}

/// A write as a given worker, with an optional Idempotency-Key.
async fn write_as(
    s: &Server,
    request: reqwest::RequestBuilder,
    token: &str,
    key: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut request = request.bearer_auth(token).json(&body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let reply = s.send_raw(request).await;
    (reply.status, reply.body)
}

async fn post_as(
    s: &Server,
    token: &str,
    path: &str,
    key: Option<&str>,
    body: Value,
) -> (u16, Value) {
    write_as(s, s.client.post(s.url(path)), token, key, body).await
}

async fn put_as(
    s: &Server,
    token: &str,
    path: &str,
    key: Option<&str>,
    body: Value,
) -> (u16, Value) {
    write_as(s, s.client.put(s.url(path)), token, key, body).await
}

/// A returnee of a new zone, in home quarantine: ((zone, village, grid), returnee).
async fn in_quarantine(
    s: &Server,
    zone_name: &str,
    name: &str,
) -> ((String, String, String), String) {
    let (zone, village, grid) = place(s, None, zone_name).await;
    let returnee = id(&s
        .post("/v1/returnees", registration(&zone, &village, &grid, name))
        .await
        .ok());
    s.post(&format!("/v1/returnees/{returnee}/quarantine"), json!({}))
        .await
        .ok();
    ((zone, village, grid), returnee)
}

fn registration(zone: &str, village: &str, grid: &str, name: &str) -> Value {
    json!({
        "zone_id": zone, "village_id": village, "grid_id": grid,
        "arrival_date": support::days_ago(3),
        "origin": {"region": "湖北省武汉市", "risk": "high"},
        "personal": {"name": name, "resident_id": "11010519491231002X",
                     "phone": "13812345678", "address": "桥头村三组12号"}
    })
}

/// Events of one category in the log, all pages.
async fn logged(s: &Server, category: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = s
            .get(&format!(
                "/v1/events?category={category}&limit=1000{cursor}"
            ))
            .await
            .ok();
        events.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return events,
        }
    }
}

/// `writers` workers at once, each sending `each` commands in turn; every
/// answer's status.
async fn hot<F>(writers: usize, each: usize, send: F) -> Vec<(u16, Value)>
where
    F: Fn(usize, usize) -> futures::future::BoxFuture<'static, (u16, Value)> + Send + Sync,
{
    let send = &send;
    let per_writer = (0..writers).map(|w| async move {
        let mut answers = Vec::with_capacity(each);
        for i in 0..each {
            answers.push(send(w, i).await);
        }
        answers
    });
    join_all(per_writer).await.into_iter().flatten().collect()
}

fn assert_all_ok(answers: &[(u16, Value)], what: &str) {
    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status != 200)
        .collect();
    assert!(
        refused.is_empty(),
        "{what}: {} of {} refused, first: {:?}",
        refused.len(),
        answers.len(),
        refused.first()
    );
}

async fn sixty_four_workers_at_one_checkpoint_all_record_their_crossings(s: &Server) {
    let (zone, _, _) = place(s, None, "一片区").await;
    let mut tokens = vec![s.token.clone()];
    for n in 0..3 {
        tokens.push(
            s.create_token("zone_worker", &[&zone], &format!("值守员{n}"))
                .await,
        );
    }
    let checkpoint = id(&s
        .post(
            "/v1/checkpoints",
            json!({"zone_id": zone, "name": "桥头村路口", "kind": "village_entrance"}),
        )
        .await
        .ok());
    let path = format!("/v1/checkpoints/{checkpoint}/crossings");
    let base = s.base.clone();
    let client = s.client.clone();
    let tokens = Arc::new(tokens);
    let answers = hot(64, 5, move |w, i| {
        let (client, url, token) = (
            client.clone(),
            format!("{base}{path}"),
            tokens[w % tokens.len()].clone(),
        );
        Box::pin(async move {
            let outcome = if i % 3 == 0 {
                "turned_back"
            } else {
                "admitted"
            };
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"subject": "person", "temperature": 36.5, "outcome": outcome}))
                .send()
                .await
                .expect("the server answers");
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        })
    })
    .await;
    assert_all_ok(&answers, "crossings at one checkpoint");
    let read = s.get(&format!("/v1/checkpoints/{checkpoint}")).await.ok();
    assert_eq!(read["crossings"], 320, "{read}");
    assert_eq!(read["turned_back"], 64 * 2, "{read}");
    assert_eq!(read["version"], 321, "established, then every crossing");
    // Each answer names a position of its own.
    let mut positions: Vec<u64> = answers
        .iter()
        .filter_map(|(_, body)| body["position"].as_u64())
        .collect();
    positions.sort_unstable();
    positions.dedup();
    assert_eq!(positions.len(), 320);
    assert_eq!(s.get("/v1/audit/verify").await.ok()["intact"], true);
}

async fn sixty_four_workers_on_one_zones_publicity_all_record_their_counts(s: &Server) {
    let (zone, _, _) = place(s, None, "二片区").await;
    let worker = s.create_token("zone_worker", &[&zone], "宣传员").await;
    let url = s.url(&format!("/v1/zones/{zone}/publicity"));
    let client = s.client.clone();
    let tokens = Arc::new([s.token.clone(), worker]);
    let answers = hot(64, 5, move |w, i| {
        let (client, url, token) = (client.clone(), url.clone(), tokens[w % 2].clone());
        Box::pin(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"channel": "leaflet", "quantity": 1 + (w * 5 + i) as u64}))
                .send()
                .await
                .expect("the server answers");
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        })
    })
    .await;
    assert_all_ok(&answers, "publicity of one zone");
    let recorded = logged(s, "activity").await;
    assert_eq!(recorded.len(), 320);
    let total: u64 = recorded
        .iter()
        .map(|e| e["data"]["quantity"].as_u64().expect("a quantity"))
        .sum();
    assert_eq!(total, (1..=320).sum::<u64>(), "every count, once");
}

async fn concurrent_visits_to_one_returnee_are_all_recorded_in_turn(s: &Server) {
    let (_, returnee) = in_quarantine(s, "三片区", "张三").await;
    let path = format!("/v1/returnees/{returnee}/health-checks");
    let answers = join_all((0..16).map(|i| {
        post_as(
            s,
            &s.token,
            &path,
            None,
            json!({"temperature": 36.0 + (i % 8) as f64 / 10.0}),
        )
    }))
    .await;
    assert_all_ok(&answers, "visits to one returnee");
    let mut versions: Vec<u64> = answers
        .iter()
        .map(|(_, b)| b["version"].as_u64().expect("a version"))
        .collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (3..19).collect::<Vec<_>>(),
        "one version each, none lost"
    );
}

async fn one_key_used_by_two_zones_workers_records_both_writes(s: &Server) {
    let (zone_1, village_1, grid_1) = place(s, None, "一片区").await;
    let (zone_2, village_2, grid_2) = place(s, None, "三片区").await;
    let worker_1 = s
        .create_token("zone_worker", &[&zone_1], "一片区 村医")
        .await;
    let worker_2 = s
        .create_token("zone_worker", &[&zone_2], "三片区 村医")
        .await;
    let mut returnees = vec![];
    for (token, zone, village, grid) in [
        (&worker_1, &zone_1, &village_1, &grid_1),
        (&worker_2, &zone_2, &village_2, &grid_2),
    ] {
        // The same key for the registration too: each device's own entity.
        let (status, body) = post_as(
            s,
            token,
            "/v1/returnees",
            Some("phone-3:003ca9"),
            registration(zone, village, grid, "李四"),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let returnee = id(&body);
        let (status, body) = post_as(
            s,
            token,
            &format!("/v1/returnees/{returnee}/quarantine"),
            None,
            json!({}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        returnees.push(returnee);
    }
    assert_ne!(returnees[0], returnees[1]);

    // Zone 2 first (a fever), then zone 1 with the same key and body.
    let visit = json!({"temperature": 37.9, "symptoms": ["cough"]});
    let mut answers = vec![];
    for (token, returnee) in [(&worker_2, &returnees[1]), (&worker_1, &returnees[0])] {
        let (status, body) = post_as(
            s,
            token,
            &format!("/v1/returnees/{returnee}/health-checks"),
            Some("phone-3:003caa"),
            visit.clone(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["id"], returnee.as_str(), "its own returnee");
        assert_eq!(body.get("replayed"), None, "a write of its own: {body}");
        answers.push(body);
    }
    for returnee in &returnees {
        let stream = s
            .get(&format!("/v1/returnees/{returnee}/events"))
            .await
            .ok();
        let visits = stream
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["type"] == "HealthCheckRecorded")
            .count();
        assert_eq!(visits, 1, "returnee {returnee} has its visit");
    }

    // The same key and body on two zones' daily reports: two reports.
    let today = support::today(s).await;
    let (zone_3, _, _) = place(s, None, "四片区").await;
    let (zone_4, _, _) = place(s, None, "五片区").await;
    let reporter_3 = s
        .create_token("zone_worker", &[&zone_3], "四片区 组长")
        .await;
    let reporter_4 = s
        .create_token("zone_worker", &[&zone_4], "五片区 组长")
        .await;
    for (token, zone) in [(&reporter_4, &zone_4), (&reporter_3, &zone_3)] {
        let (status, body) = put_as(
            s,
            token,
            &format!("/v1/zones/{zone}/daily-reports/{today}"),
            Some("report-1"),
            json!({"zero_report": true, "submitted_by": "组长"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["id"], zone.as_str(), "{body}");
        assert_eq!(body.get("replayed"), None, "{body}");
    }

    // Zone 2's worker sending zone 1's key to zone 1's returnee learns
    // nothing: the returnee does not exist for them.
    let (status, body) = post_as(
        s,
        &worker_2,
        &format!("/v1/returnees/{}/health-checks", returnees[0]),
        Some("phone-3:003caa"),
        visit.clone(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    assert_eq!(body["detail"], "no such returnee");

    // Another zone's zone, returnee or report reads exactly as one that
    // does not exist, whatever else the request gets wrong.
    let unknown = uuid::Uuid::now_v7();
    let yesterday = support::days_ago(1);
    for (method, other_zones, nobodys) in [
        (
            "POST",
            format!("/v1/zones/{zone_1}/publicity"),
            format!("/v1/zones/{unknown}/publicity"),
        ),
        (
            "POST",
            format!("/v1/zones/{zone_1}/patrols"),
            format!("/v1/zones/{unknown}/patrols"),
        ),
        (
            "PUT",
            format!("/v1/zones/{zone_1}/daily-reports/2999-01-01"),
            format!("/v1/zones/{unknown}/daily-reports/2999-01-01"),
        ),
        (
            "PUT",
            format!("/v1/zones/{zone_1}/daily-reports/{yesterday}"),
            format!("/v1/zones/{unknown}/daily-reports/{yesterday}"),
        ),
        (
            "GET",
            format!("/v1/returnees/{}/events?limit=0", returnees[0]),
            format!("/v1/returnees/{unknown}/events?limit=0"),
        ),
    ] {
        let mut answers = vec![];
        for path in [&other_zones, &nobodys] {
            let request = match method {
                "GET" => s.client.get(s.url(path)),
                "PUT" => s.client.put(s.url(path)).json(
                    &json!({"zero_report": true, "figures": {"nonsense": 1}, "submitted_by": ""}),
                ),
                _ if path.ends_with("patrols") => s
                    .client
                    .post(s.url(path))
                    .json(&json!({"patrol_group": "巡逻组", "persuaded": 1})),
                _ => s
                    .client
                    .post(s.url(path))
                    .json(&json!({"channel": "leaflet", "quantity": 1})),
            };
            let reply = s.send_raw(request.bearer_auth(&worker_2)).await;
            answers.push((
                reply.status,
                reply.body["code"].clone(),
                reply.body["detail"].clone(),
            ));
        }
        assert_eq!(answers[0], answers[1], "{method} {other_zones}");
        // A bad query is refused alike for both, before any lookup.
        let expected = if method == "GET" { 422 } else { 404 };
        assert_eq!(
            answers[0].0, expected,
            "{method} {other_zones}: {:?}",
            answers[0]
        );
    }

    // Nor does a version asked for: If-Match on another zone's returnee and
    // on no returnee at all, alone and in a batch.
    let mut answers = vec![];
    for returnee in [returnees[0].clone(), unknown.to_string()] {
        let path = format!("/v1/returnees/{returnee}/health-checks");
        let reply = s
            .send_raw(
                s.client
                    .post(s.url(&path))
                    .header("If-Match", "\"1\"")
                    .json(&json!({"temperature": 36.5}))
                    .bearer_auth(&worker_2),
            )
            .await;
        let batch = s
            .send_raw(
                s.client
                    .post(s.url("/v1/batches"))
                    .json(
                        &json!({"commands": [{"method": "POST", "path": path, "if_match": 1,
                                                "body": {"temperature": 36.5}}]}),
                    )
                    .bearer_auth(&worker_2),
            )
            .await;
        answers.push((
            reply.status,
            reply.body["detail"].clone(),
            batch.body["results"][0]["problem"]["detail"].clone(),
        ));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, 404, "{:?}", answers[0]);

    // Nor does registering "into" zone 1's returnee id from zone 2 tell
    // them it exists: the entity's own zone is checked, not the body's.
    let mut body = registration(&zone_2, &village_2, &grid_2, "李四");
    body["returnee_id"] = json!(returnees[0]);
    let (status, body) = post_as(s, &worker_2, "/v1/returnees", None, body).await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (404, Some("no such returnee")),
        "{body}"
    );
}

async fn two_devices_numbering_their_requests_alike_both_record(s: &Server) {
    let (zone, _, _) = place(s, None, "一片区").await;
    let checkpoint = id(&s
        .post(
            "/v1/checkpoints",
            json!({"zone_id": zone, "name": "桥头村路口", "kind": "village_entrance"}),
        )
        .await
        .ok());
    let phone_a = s.create_token("zone_worker", &[&zone], "值守员甲").await;
    let phone_b = s.create_token("zone_worker", &[&zone], "值守员乙").await;
    let path = format!("/v1/checkpoints/{checkpoint}/crossings");
    let body = json!({"subject": "person", "temperature": 36.5, "outcome": "admitted"});
    for phone in [&phone_a, &phone_b, &phone_a] {
        let (status, answer) = post_as(s, phone, &path, Some("17"), body.clone()).await;
        assert_eq!(status, 200, "{answer}");
    }
    let read = s.get(&format!("/v1/checkpoints/{checkpoint}")).await.ok();
    assert_eq!(
        read["crossings"], 2,
        "one per phone; the third was phone A's retry"
    );

    // A key on the batch itself would promise what it does not give.
    let batch = json!({"commands": [{"method": "POST", "path": path, "idempotency_key": "18", "body": body}]});
    let reply = s
        .send(
            s.client
                .post(s.url("/v1/batches"))
                .header("Idempotency-Key", "batch-1")
                .json(&batch),
        )
        .await
        .problem(422, "invalid_fields");
    assert_eq!(reply["errors"][0]["field"], "Idempotency-Key");
    let read = s.get(&format!("/v1/checkpoints/{checkpoint}")).await.ok();
    assert_eq!(read["crossings"], 2, "the refused batch changed nothing");
}

async fn a_key_replays_only_the_same_request_on_the_same_entity(s: &Server) {
    let ((zone, village, grid), returnee) = in_quarantine(s, "一片区", "王五").await;
    let visits = format!("/v1/returnees/{returnee}/health-checks");
    let first = post_as(
        s,
        &s.token,
        &visits,
        Some("k-7"),
        json!({"temperature": 36.5}),
    )
    .await;
    assert_eq!(first.0, 200, "{}", first.1);
    let again = post_as(
        s,
        &s.token,
        &visits,
        Some("k-7"),
        json!({"temperature": 36.5}),
    )
    .await;
    assert_eq!(again.0, 200);
    assert_eq!(again.1["replayed"], true);
    assert_eq!(again.1["position"], first.1["position"]);
    assert_eq!(again.1["events"], first.1["events"]);

    // Another body under the same key, operation and entity: refused, and
    // nothing recorded.
    let head = s.get("/v1/audit/head").await.ok()["position"].clone();
    let (status, body) = post_as(
        s,
        &s.token,
        &visits,
        Some("k-7"),
        json!({"temperature": 36.9}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("idempotency_key_reused")),
        "{body}"
    );
    assert_eq!(s.get("/v1/audit/head").await.ok()["position"], head);

    // The same key on another operation of the entity is another write.
    let (status, body) = post_as(
        s,
        &s.token,
        &format!("/v1/returnees/{returnee}/abnormal-conditions"),
        Some("k-7"),
        json!({"symptoms": ["cough"], "notes": "干咳"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.get("replayed"), None, "{body}");
    let stream = s
        .get(&format!("/v1/returnees/{returnee}/events"))
        .await
        .ok();
    let types: Vec<&str> = stream
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == "HealthCheckRecorded")
            .count(),
        1,
        "{types:?}"
    );

    // A registration retried without a named id finds the entity the first
    // try made; another device's same key makes its own.
    let body = registration(&zone, &village, &grid, "赵六");
    let (status, first) = post_as(s, &s.token, "/v1/returnees", Some("reg-1"), body.clone()).await;
    assert_eq!(status, 201, "{first}");
    let (status, retried) =
        post_as(s, &s.token, "/v1/returnees", Some("reg-1"), body.clone()).await;
    assert_eq!(
        status, 201,
        "a replay gets the first answer, status included: {retried}"
    );
    assert_eq!(
        (retried["id"].clone(), retried["replayed"].clone()),
        (first["id"].clone(), json!(true))
    );
    let other = s.create_token("admin", &[], "另一台设备").await;
    let (status, own) = post_as(s, &other, "/v1/returnees", Some("reg-1"), body).await;
    assert_eq!(status, 201, "{own}");
    assert_ne!(own["id"], first["id"]);
    assert_eq!(own.get("replayed"), None);
}

async fn fifty_identical_retries_at_once_write_once_and_replay_the_rest(s: &Server) {
    let (zone, village, grid) = place(s, None, "二片区").await;
    for round in 0..3 {
        let returnee = id(&s
            .post(
                "/v1/returnees",
                registration(&zone, &village, &grid, "钱七"),
            )
            .await
            .ok());
        let path = format!("/v1/returnees/{returnee}/quarantine");
        let key = format!("start-{round}");
        let answers = join_all(
            (0..50).map(|_| post_as(s, &s.token, &path, Some(&key), json!({"planned_days": 14}))),
        )
        .await;
        assert_all_ok(&answers, "identical retries");
        let written = answers
            .iter()
            .filter(|(_, b)| b.get("replayed").is_none())
            .count();
        assert_eq!(written, 1, "round {round}: one write, the rest replays");
        let positions: std::collections::BTreeSet<u64> = answers
            .iter()
            .filter_map(|(_, b)| b["position"].as_u64())
            .collect();
        assert_eq!(positions.len(), 1, "every answer is the one write's");
        let stream = s
            .get(&format!("/v1/returnees/{returnee}/events"))
            .await
            .ok();
        assert_eq!(
            stream.as_array().map(Vec::len),
            Some(2),
            "registered, one start"
        );
    }
}

fangkong_store::each_backend!(threads = 2; [fixture = start];
    sixty_four_workers_at_one_checkpoint_all_record_their_crossings,
    sixty_four_workers_on_one_zones_publicity_all_record_their_counts,
    concurrent_visits_to_one_returnee_are_all_recorded_in_turn,
    one_key_used_by_two_zones_workers_records_both_writes,
    a_key_replays_only_the_same_request_on_the_same_entity,
    two_devices_numbering_their_requests_alike_both_record,
    fifty_identical_retries_at_once_write_once_and_replay_the_rest,
);
