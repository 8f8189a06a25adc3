//! `POST /v1/batches` decides its commands ahead of their commits: these
//! tests hold it to answering each command exactly as the same commands
//! sent one by one would be answered, on both backends, with other writers
//! at work.

mod support;

use fangkong_store::testing::TestDb;
use serde_json::{json, Value};
use support::Server;

/// A small, seeded random source: the same script for every run.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// The entities one script works on, all in one zone.
struct Place {
    zone: String,
    village: String,
    grid: String,
    returnees: Vec<uuid::Uuid>,
    checkpoint: uuid::Uuid,
}

impl Place {
    async fn new(s: &Server, name: &str) -> Place {
        let (zone, village, grid) = support::place(s, None, name).await;
        Place {
            zone,
            village,
            grid,
            returnees: (0..4).map(|_| uuid::Uuid::now_v7()).collect(),
            checkpoint: uuid::Uuid::now_v7(),
        }
    }
}

/// One command as a batch item: (method, path, key, body).
type Item = (&'static str, String, Option<String>, Value);

/// A mix of commands whose answers depend on their order: registrations,
/// quarantines started, visited and ended (some before they started),
/// crossings at a checkpoint established midway, invalid bodies, unknown
/// entities, and retries of earlier commands under their key.
fn script(p: &Place, key_prefix: &str, seed: u64, len: usize) -> Vec<Item> {
    let mut dice = Dice(seed);
    let mut items: Vec<Item> = Vec::with_capacity(len);
    for n in 0..len {
        let key = Some(format!("{key_prefix}:{n}"));
        let r = p.returnees[dice.below(p.returnees.len() as u64) as usize];
        let item: Item = match dice.below(12) {
            0 => (
                "POST",
                "/v1/returnees".into(),
                key,
                json!({
                    "returnee_id": r, "zone_id": p.zone, "village_id": p.village, "grid_id": p.grid,
                    "arrival_date": support::days_ago(2),
                    "origin": {"region": "湖北省武汉市", "risk": "high"},
                    "personal": {"name": "张三", "resident_id": "11010519491231002X",
                                 "phone": "13812345678", "address": "桥头村三组12号"}
                }),
            ),
            1 => (
                "POST",
                format!("/v1/returnees/{r}/quarantine"),
                key,
                json!({}),
            ),
            2 | 3 => (
                "POST",
                format!("/v1/returnees/{r}/health-checks"),
                key,
                json!({"temperature": 36.5}),
            ),
            4 => (
                "POST",
                format!("/v1/returnees/{r}/health-checks"),
                key,
                json!({"temperature": 38.1, "symptoms": ["cough"]}),
            ),
            5 => (
                "POST",
                format!("/v1/returnees/{r}/quarantine/end"),
                key,
                json!({"reason": "completed"}),
            ),
            6 => (
                "POST",
                "/v1/checkpoints".into(),
                key,
                json!({"checkpoint_id": p.checkpoint, "zone_id": p.zone, "name": "桥头村路口",
                       "kind": "village_entrance"}),
            ),
            7 | 8 => (
                "POST",
                format!("/v1/checkpoints/{}/crossings", p.checkpoint),
                // Some without a key: a crossing counted once per send.
                key.filter(|_| n % 2 == 0),
                json!({"subject": "person", "temperature": 36.4,
                       "outcome": if n % 3 == 0 { "turned_back" } else { "admitted" }}),
            ),
            9 => (
                "POST",
                format!("/v1/zones/{}/publicity", p.zone),
                key,
                json!({"channel": "leaflet", "quantity": 10}),
            ),
            10 => (
                "POST",
                format!("/v1/returnees/{r}/health-checks"),
                key,
                json!({"temperature": 99.0}),
            ),
            _ => match items.len() {
                // A retry of an earlier command, under its key.
                0 => (
                    "POST",
                    format!("/v1/returnees/{}/health-checks", uuid::Uuid::now_v7()),
                    key,
                    json!({"temperature": 36.5}),
                ),
                earlier => items[dice.below(earlier as u64) as usize].clone(),
            },
        };
        items.push(item);
    }
    items
}

/// What an answer says, leaving out what differs between two places (ids,
/// positions): status, problem code, version, whether replayed, event types.
fn gist(status: u64, answer: &Value) -> Value {
    match status {
        200..=299 => json!({
            "status": status,
            "version": answer["version"],
            "replayed": answer["replayed"].as_bool().unwrap_or(false),
            "events": answer["events"].as_array().map(|events| events
                .iter()
                .map(|e| e["type"].clone())
                .collect::<Vec<_>>()),
        }),
        _ => json!({"status": status, "code": answer["code"]}),
    }
}

fn as_batch(items: &[Item]) -> Value {
    json!({"commands": items.iter().map(|(method, path, key, body)| {
        let mut command = json!({"method": method, "path": path, "body": body});
        if let Some(key) = key {
            command["idempotency_key"] = json!(key);
        }
        command
    }).collect::<Vec<_>>()})
}

async fn one_by_one(s: &Server, items: &[Item]) -> Vec<Value> {
    let mut answers = Vec::with_capacity(items.len());
    for (method, path, key, body) in items {
        let mut request = match *method {
            "PUT" => s.client.put(s.url(path)),
            _ => s.client.post(s.url(path)),
        };
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key.as_str());
        }
        let reply = s.send(request.json(body)).await;
        answers.push(gist(u64::from(reply.status), &reply.body));
    }
    answers
}

fn batch_gists(answer: &Value) -> Vec<Value> {
    answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            let status = r["status"].as_u64().expect("status");
            match status {
                200..=299 => gist(status, &r["result"]),
                _ => gist(status, &r["problem"]),
            }
        })
        .collect()
}

/// Each returnee's version and the checkpoint's counts, as read back.
async fn standing(s: &Server, p: &Place) -> Value {
    let mut returnees = Vec::new();
    for r in &p.returnees {
        let read = s.get(&format!("/v1/returnees/{r}")).await;
        returnees.push(json!([read.status, read.version()]));
    }
    let post = s.get(&format!("/v1/checkpoints/{}", p.checkpoint)).await;
    json!({
        "returnees": returnees,
        "checkpoint": [post.status, post.body["crossings"], post.body["turned_back"]],
    })
}

async fn a_batch_answers_each_command_as_if_sent_alone_in_order(s: &Server) {
    for seed in [7, 8, 9] {
        let (a, b) = (Place::new(s, "一片区").await, Place::new(s, "二片区").await);
        let (a_items, b_items) = (
            script(&a, &format!("a{seed}"), seed, 300),
            script(&b, &format!("b{seed}"), seed, 300),
        );
        let batch = s.post("/v1/batches", as_batch(&a_items)).await;
        assert_eq!(batch.status, 207, "{}", batch.body);
        let batched = batch_gists(&batch.body);
        let alone = one_by_one(s, &b_items).await;
        for (n, (batched, alone)) in batched.iter().zip(&alone).enumerate() {
            assert_eq!(batched, alone, "seed {seed}, command {n}: {:?}", a_items[n]);
        }
        assert_eq!(standing(s, &a).await, standing(s, &b).await, "seed {seed}");
        // The script exercised what it is meant to.
        let statuses: std::collections::BTreeSet<u64> = batched
            .iter()
            .filter_map(|g| g["status"].as_u64())
            .collect();
        for expected in [200, 201, 404, 409, 422] {
            assert!(statuses.contains(&expected), "seed {seed}: no {expected}");
        }
        assert!(batched.iter().any(|g| g["replayed"] == true));
    }
    let verified = s.get("/v1/audit/verify").await.ok();
    assert_eq!(verified["intact"], true, "{verified}");
}

async fn a_batch_sees_its_own_earlier_commands_everywhere(s: &Server) {
    // A zone, its village and grid, a returnee there, and the zone's daily
    // report counting the work: all in one batch.
    let zone = uuid::Uuid::now_v7();
    let (village, grid, returnee) = (
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
    );
    let today = support::today(s).await;
    let r = format!("/v1/returnees/{returnee}");
    let commands = json!({"commands": [
        {"method": "POST", "path": "/v1/zones", "body": {"zone_id": zone, "name": "三片区"}},
        {"method": "POST", "path": format!("/v1/zones/{zone}/villages"), "body": {"village_id": village, "name": "河口村"}},
        {"method": "POST", "path": format!("/v1/zones/{zone}/grids"), "body": {"grid_id": grid, "village_id": village, "name": "二组"}},
        {"method": "POST", "path": format!("{r}/health-checks"), "body": {"temperature": 36.5}},
        {"method": "POST", "path": "/v1/returnees", "body": {
            "returnee_id": returnee, "zone_id": zone, "village_id": village, "grid_id": grid,
            "arrival_date": support::days_ago(1),
            "origin": {"region": "湖北省武汉市", "risk": "high"},
            "personal": {"name": "李四", "resident_id": "11010519491231002X", "phone": "13812345678",
                         "address": "河口村二组3号"}}},
        {"method": "POST", "path": format!("{r}/health-checks"), "body": {"temperature": 36.5}},
        {"method": "POST", "path": format!("{r}/quarantine"), "body": {}},
        {"method": "POST", "path": format!("{r}/health-checks"), "body": {"temperature": 36.6}},
        {"method": "POST", "path": format!("/v1/zones/{zone}/publicity"), "body": {"channel": "leaflet", "quantity": 30}},
        {"method": "PUT", "path": format!("/v1/zones/{zone}/daily-reports/{today}"), "body": {"zero_report": true, "submitted_by": "李明"}},
        {"method": "PUT", "path": format!("/v1/zones/{zone}/daily-reports/{today}"), "body": {"zero_report": false, "submitted_by": "李明"}},
        {"method": "POST", "path": format!("{r}/health-checks"), "body": {"temperature": 36.4}}
    ]});
    let answer = s.post("/v1/batches", commands).await;
    assert_eq!(answer.status, 207);
    let results = answer.body["results"].as_array().expect("results");
    let statuses: Vec<u64> = results
        .iter()
        .map(|r| r["status"].as_u64().expect("status"))
        .collect();
    assert_eq!(
        statuses,
        [201, 200, 200, 404, 201, 409, 200, 200, 200, 409, 200, 200],
        "{}",
        answer.body
    );
    assert_eq!(
        results[5]["problem"]["code"], "no_active_quarantine",
        "{}",
        results[5]
    );
    assert_eq!(results[9]["problem"]["code"], "zero_report_with_activity");
    // Positions rise in the order of the commands that wrote.
    let positions: Vec<u64> = results
        .iter()
        .filter_map(|r| r["result"]["position"].as_u64())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    let read = s.get(&r).await;
    assert_eq!(
        read.version(),
        Some(4),
        "registered, quarantined, two visits"
    );
}

async fn batches_of_two_zones_workers_and_other_writers_all_land(s: &Server) {
    let (a, b) = (Place::new(s, "一片区").await, Place::new(s, "二片区").await);
    let workers = [
        s.create_token("zone_worker", &[&a.zone], "一片区网格员")
            .await,
        s.create_token("zone_worker", &[&b.zone], "二片区网格员")
            .await,
    ];
    for p in [&a, &b] {
        s.post(
            "/v1/checkpoints",
            json!({"checkpoint_id": p.checkpoint, "zone_id": p.zone, "name": "路口",
                   "kind": "village_entrance"}),
        )
        .await
        .ok();
        let r = p.returnees[0];
        s.post(
            "/v1/returnees",
            json!({
                "returnee_id": r, "zone_id": p.zone, "village_id": p.village, "grid_id": p.grid,
                "arrival_date": support::days_ago(1),
                "origin": {"region": "湖北省武汉市", "risk": "high"},
                "personal": {"name": "王五", "resident_id": "11010519491231002X",
                             "phone": "13812345678", "address": "桥头村一组1号"}
            }),
        )
        .await
        .ok();
        s.post(&format!("/v1/returnees/{r}/quarantine"), json!({}))
            .await
            .ok();
    }
    let batch_of = |p: &Place, device: &str| -> Value {
        let commands: Vec<Value> = (0..400)
            .map(|n| match n % 2 {
                0 => json!({"method": "POST",
                    "path": format!("/v1/checkpoints/{}/crossings", p.checkpoint),
                    "idempotency_key": format!("{device}:{n}"),
                    "body": {"subject": "person", "temperature": 36.5, "outcome": "admitted"}}),
                _ => json!({"method": "POST",
                    "path": format!("/v1/returnees/{}/health-checks", p.returnees[0]),
                    "idempotency_key": format!("{device}:{n}"),
                    "body": {"temperature": 36.5}}),
            })
            .collect();
        json!({ "commands": commands })
    };
    let send = |token: &str, path: String, body: Value| {
        s.send_raw(
            s.client
                .post(s.url(&path))
                .bearer_auth(token.to_owned())
                .json(&body),
        )
    };
    // Each worker's batch, while the other worker writes one by one to the
    // same checkpoint and returnee as the batch does.
    let loners = |token: &str, p: &Place| {
        let token = token.to_owned();
        let checkpoint = p.checkpoint;
        let returnee = p.returnees[0];
        async move {
            for n in 0..40 {
                let path = match n % 2 {
                    0 => format!("/v1/checkpoints/{checkpoint}/crossings"),
                    _ => format!("/v1/returnees/{returnee}/health-checks"),
                };
                let body = match n % 2 {
                    0 => json!({"subject": "person", "temperature": 36.5, "outcome": "admitted"}),
                    _ => json!({"temperature": 36.5}),
                };
                send(&token, path, body).await.ok();
            }
        }
    };
    let (batch_a, batch_b, (), ()) = tokio::join!(
        send(&workers[0], "/v1/batches".into(), batch_of(&a, "a")),
        send(&workers[1], "/v1/batches".into(), batch_of(&b, "b")),
        loners(&workers[0], &a),
        loners(&workers[1], &b),
    );
    for batch in [&batch_a, &batch_b] {
        assert_eq!(batch.status, 207);
        for (n, result) in batch.body["results"]
            .as_array()
            .expect("results")
            .iter()
            .enumerate()
        {
            assert_eq!(result["status"], 200, "command {n}: {result}");
        }
    }
    // A worker's batch cannot reach the other zone: the same commands aimed
    // at zone b's entities answer 404, one by one, and change nothing.
    let intruding = send(&workers[0], "/v1/batches".into(), batch_of(&b, "a-into-b")).await;
    assert!(intruding.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .all(|r| r["status"] == 404));
    for p in [&a, &b] {
        let post = s
            .get(&format!("/v1/checkpoints/{}", p.checkpoint))
            .await
            .ok();
        assert_eq!(post["crossings"], 200 + 20);
        let returnee = s.get(&format!("/v1/returnees/{}", p.returnees[0])).await;
        assert_eq!(returnee.version(), Some(2 + 200 + 20));
    }
    // Sent again, the batches append nothing.
    let head = s.get("/v1/audit/verify").await.ok()["checked"].clone();
    let again = send(&workers[0], "/v1/batches".into(), batch_of(&a, "a")).await;
    assert!(again.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .all(|r| r["status"] == 200 && r["result"]["replayed"] == true));
    let verified = s.get("/v1/audit/verify").await.ok();
    assert_eq!(verified["checked"], head);
    assert_eq!(verified["intact"], true);
}

/// Without a rate limit: the commands sent one by one are many.
async fn a_retry_across_midnight_finds_its_first_try_earlier_in_the_batch(s: &Server) {
    // The same key, sent yesterday and again today with another body: alone,
    // the second is refused as a reused key; so it is in one batch, where
    // the first is still on its way to the log when the second is decided.
    let now = chrono::Utc::now();
    let check = |at: chrono::DateTime<chrono::Utc>| {
        json!({"method": "POST", "path": "/v1/staff-health-checks", "idempotency_key": "desk-1:9",
               "body": {"staff": "镇干部甲", "temperature": 36.4, "occurred_at": at.to_rfc3339()}})
    };
    let answer = s
        .post(
            "/v1/batches",
            json!({"commands": [check(now - chrono::Duration::days(1)), check(now - chrono::Duration::minutes(1))]}),
        )
        .await;
    let results = answer.body["results"].as_array().expect("results");
    assert_eq!(results[0]["status"], 200, "{}", answer.body);
    assert_eq!(results[1]["status"], 422, "{}", answer.body);
    assert_eq!(results[1]["problem"]["code"], "idempotency_key_reused");
}

async fn start_server(db: std::sync::Arc<TestDb>) -> Server {
    Server::start_on(db, &["--rate-limit", "0"])
}

fangkong_store::each_backend!(threads = 2; [fixture = start_server];
    a_batch_answers_each_command_as_if_sent_alone_in_order,
    a_batch_sees_its_own_earlier_commands_everywhere,
    batches_of_two_zones_workers_and_other_writers_all_land,
    a_retry_across_midnight_finds_its_first_try_earlier_in_the_batch,
);
