//! The HTTP API end to end: the real binary, a real client, both backends.

mod support;

use fangkong_store::testing::TestDb;
use serde_json::json;
use support::{id, Server};

/// A zone with one village and one grid: (zone, village, grid).
async fn geography(s: &Server) -> (String, String, String) {
    let zone = id(&s.post("/v1/zones", json!({"name": "一片区"})).await.ok());
    let village = s
        .post(
            &format!("/v1/zones/{zone}/villages"),
            json!({"name": "桥头村"}),
        )
        .await
        .ok();
    let village_id = village["events"][0]["data"]["village_id"]
        .as_str()
        .expect("village id")
        .to_owned();
    let grid = s
        .post(
            &format!("/v1/zones/{zone}/grids"),
            json!({"village_id": village_id, "name": "一组", "households": 40}),
        )
        .await
        .ok();
    let grid_id = grid["events"][0]["data"]["grid_id"]
        .as_str()
        .expect("grid id")
        .to_owned();
    (zone, village_id, grid_id)
}

fn registration(zone: &str, village: &str, grid: &str) -> serde_json::Value {
    json!({
        "zone_id": zone, "village_id": village, "grid_id": grid,
        "arrival_date": support::days_ago(7),
        "origin": {"region": "湖北省武汉市", "risk": "high"},
        "personal": {"name": "张三", "resident_id": "11010519491231002X",
                     "phone": "13812345678", "address": "桥头村三组12号"}
    })
}

async fn a_returnee_goes_through_home_quarantine(s: &Server) {
    let (zone, village, grid) = geography(s).await;
    let registered = s
        .post("/v1/returnees", registration(&zone, &village, &grid))
        .await;
    assert_eq!(registered.status, 201);
    let returnee = id(&registered.body);
    assert_eq!(registered.body["version"], 1);
    assert!(registered.body["position"].as_u64().expect("position") >= 4);

    let screened = s
        .post(
            &format!("/v1/returnees/{returnee}/screenings"),
            json!({"temperature": 36.6, "identity_checked": true, "came_from": "武汉", "screened_by": "王医生"}),
        )
        .await
        .ok();
    assert_eq!(screened["events"][0]["type"], "ReturneeScreened");

    let team = json!({"members": [
        {"role": "village_stationed_cadre", "name": "赵一"},
        {"role": "village_cadre", "name": "钱二"},
        {"role": "group_leader", "name": "孙三"},
        {"role": "village_doctor", "name": "李四"},
        {"role": "auxiliary_police", "name": "周五"}
    ]});
    s.put(
        &format!("/v1/returnees/{returnee}/responsibility-team"),
        team,
    )
    .await
    .ok();
    s.post(&format!("/v1/returnees/{returnee}/quarantine"), json!({}))
        .await
        .ok();
    s.post(&format!("/v1/returnees/{returnee}/quarantine"), json!({}))
        .await
        .problem(409, "quarantine_already_active");

    let fever = s
        .post(
            &format!("/v1/returnees/{returnee}/health-checks"),
            json!({"temperature": 38.1, "visited_by": "李四"}),
        )
        .await
        .ok();
    let types: Vec<_> = fever["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(
        types,
        vec![
            json!("HealthCheckRecorded"),
            json!("AbnormalConditionReported")
        ]
    );
    let referred = s
        .post(
            &format!("/v1/returnees/{returnee}/referrals"),
            json!({"facility": "县人民医院"}),
        )
        .await
        .ok();

    let roster = s
        .get(&format!(
            "/v1/quarantine/roster?zone_id={zone}&min_position={}",
            referred["position"]
        ))
        .await
        .ok();
    let item = &roster["items"][0];
    assert_eq!(item["returnee_id"], json!(returnee));
    assert_eq!(
        (item["day_of_period"].as_u64(), item["visits_done"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(item["visit_due_today"], false);
    assert_eq!(item["abnormal_pending"], false, "the fever was referred");
    assert_eq!(item["last_temperature"], 38.1);

    let read = s.get(&format!("/v1/returnees/{returnee}")).await;
    assert_eq!(read.version(), Some(7));
    let body = read.ok();
    assert_eq!(body["status"], "in_quarantine");
    assert_eq!(body["quarantine"]["day_of_period"], 1);
    assert_eq!(body["quarantine"]["visits_done"], 1);
    assert_eq!(body["referrals"], 1);
    assert_eq!(body["personal"]["resident_id"], "11010519491231002X");

    let events = s
        .get(&format!("/v1/returnees/{returnee}/events"))
        .await
        .ok();
    assert_eq!(events.as_array().map(Vec::len), Some(7));

    s.post(
        &format!("/v1/returnees/{returnee}/quarantine/end"),
        json!({"reason": "completed"}),
    )
    .await
    .problem(409, "released_before_planned_end");
    let ended = s
        .post(
            &format!("/v1/returnees/{returnee}/quarantine/end"),
            json!({"reason": "referred_for_treatment"}),
        )
        .await
        .ok();
    assert_eq!(ended["version"], 8);
    // Lists are read from the projections: read the write back.
    let written = ended["position"].as_u64().expect("position");

    let listed = s
        .get(&format!(
            "/v1/returnees?zone_id={zone}&risk=high&min_position={written}"
        ))
        .await
        .ok();
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    let none = s
        .get(&format!(
            "/v1/returnees?status=in_quarantine&min_position={written}"
        ))
        .await
        .ok();
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0));
}

async fn bad_inputs_get_precise_problems_and_change_nothing(s: &Server) {
    let (zone, village, grid) = geography(s).await;

    // Malformed JSON.
    let r = s
        .send(
            s.client
                .post(s.url("/v1/returnees"))
                .header("content-type", "application/json")
                .body("{\"zone_id\": "),
        )
        .await;
    r.problem(400, "malformed_json");
    s.send(
        s.client
            .post(s.url("/v1/returnees"))
            .header("content-type", "text/plain")
            .body("{}"),
    )
    .await
    .problem(415, "unsupported_media_type");

    // A wrong type names the field.
    let mut body = registration(&zone, &village, &grid);
    body["arrival_date"] = json!(20200124);
    let p = s
        .post("/v1/returnees", body)
        .await
        .problem(422, "invalid_fields");
    assert_eq!(p["errors"][0]["field"], "arrival_date");

    // An unknown field is named too.
    let mut body = registration(&zone, &village, &grid);
    body["personal"]["nmae"] = json!("typo");
    let p = s
        .post("/v1/returnees", body)
        .await
        .problem(422, "invalid_fields");
    assert_eq!(p["errors"][0]["field"], "personal.nmae");

    // An invalid ID check character.
    let mut body = registration(&zone, &village, &grid);
    body["personal"]["resident_id"] = json!("110105194912310021");
    let p = s
        .post("/v1/returnees", body)
        .await
        .problem(422, "invalid_fields");
    assert_eq!(p["errors"][0]["field"], "personal.resident_id");

    // A grid of another village.
    let mut body = registration(&zone, &village, &grid);
    body["grid_id"] = json!(uuid::Uuid::now_v7());
    let p = s
        .post("/v1/returnees", body)
        .await
        .problem(422, "invalid_fields");
    assert_eq!(p["errors"][0]["field"], "grid_id");

    let returnee = id(&s
        .post("/v1/returnees", registration(&zone, &village, &grid))
        .await
        .ok());
    s.post(&format!("/v1/returnees/{returnee}/quarantine"), json!({}))
        .await
        .ok();

    // An out-of-range temperature.
    let p = s
        .post(
            &format!("/v1/returnees/{returnee}/health-checks"),
            json!({"temperature": 52.0}),
        )
        .await
        .problem(422, "invalid_fields");
    assert_eq!(p["errors"][0]["field"], "temperature");

    // A missing entity, and a path that is not an id.
    s.post(
        &format!("/v1/returnees/{}/health-checks", uuid::Uuid::now_v7()),
        json!({"temperature": 36.5}),
    )
    .await
    .problem(404, "not_found");
    s.get("/v1/returnees/not-an-id")
        .await
        .problem(404, "not_found");
    s.get("/v1/nowhere").await.problem(404, "not_found");

    // A stale If-Match.
    s.send(
        s.client
            .post(s.url(&format!("/v1/returnees/{returnee}/health-checks")))
            .header("If-Match", "\"1\"")
            .json(&json!({"temperature": 36.5})),
    )
    .await
    .problem(412, "version_mismatch");
    // A matching one.
    s.send(
        s.client
            .post(s.url(&format!("/v1/returnees/{returnee}/health-checks")))
            .header("If-Match", "\"2\"")
            .json(&json!({"temperature": 36.5})),
    )
    .await
    .ok();

    // A future occurred_at.
    s.post(
        &format!("/v1/returnees/{returnee}/health-checks"),
        json!({"temperature": 36.5, "occurred_at": "2999-01-01T00:00:00Z"}),
    )
    .await
    .problem(422, "invalid_fields");

    // An oversized body.
    let big = json!({"temperature": 36.5, "visited_by": "x".repeat(400_000)});
    s.post(&format!("/v1/returnees/{returnee}/health-checks"), big)
        .await
        .problem(413, "payload_too_large");

    // Of all the above, only the write with the matching If-Match landed.
    let read = s.get(&format!("/v1/returnees/{returnee}")).await;
    assert_eq!(read.version(), Some(3));
    let listed = s.get(&format!("/v1/returnees?zone_id={zone}")).await.ok();
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
}

async fn an_idempotent_retry_returns_the_first_answer_and_appends_nothing(s: &Server) {
    let (zone, village, grid) = geography(s).await;
    let register = |key: &'static str, body: serde_json::Value| {
        s.client
            .post(s.url("/v1/returnees"))
            .header("Idempotency-Key", key)
            .json(&body)
    };
    let body = registration(&zone, &village, &grid);
    let first = s.send(register("reg-1", body.clone())).await;
    assert_eq!(first.status, 201);
    let again = s.send(register("reg-1", body.clone())).await;
    assert_eq!(again.status, 201, "the first answer, status included");
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.body["position"], first.body["position"]);
    assert_eq!(again.body["events"], first.body["events"]);
    assert_eq!(again.body["replayed"], true);

    let mut other = body.clone();
    other["personal"]["name"] = json!("李四");
    s.send(register("reg-1", other))
        .await
        .problem(422, "idempotency_key_reused");

    let listed = s.get(&format!("/v1/returnees?zone_id={zone}")).await.ok();
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "one registration only"
    );
}

async fn the_dissuasion_work_of_a_zone_is_recorded(s: &Server) {
    let (zone, village, _) = geography(s).await;

    let checkpoint = id(&s
        .post("/v1/checkpoints", json!({"zone_id": zone, "village_id": village, "name": "桥头村路口", "kind": "village_entrance"}))
        .await
        .ok());
    let crossings = format!("/v1/checkpoints/{checkpoint}/crossings");
    s.post(&crossings, json!({"subject": "person", "temperature": 36.4, "origin": {"region": "武汉", "risk": "high"}, "outcome": "admitted"}))
        .await
        .problem(409, "high_risk_arrival_admitted");
    s.post(&crossings, json!({"subject": "person", "temperature": 36.4, "origin": {"region": "武汉", "risk": "high"}, "outcome": "turned_back"}))
        .await
        .ok();
    s.post(
        &crossings,
        json!({"subject": "vehicle", "people": 3, "outcome": "admitted"}),
    )
    .await
    .problem(409, "vehicle_without_plate");
    s.post(
        &crossings,
        json!({"subject": "vehicle", "people": 3, "plate": "湘A12345", "outcome": "admitted"}),
    )
    .await
    .ok();
    let post = s.get(&format!("/v1/checkpoints/{checkpoint}")).await.ok();
    assert_eq!(
        (post["crossings"].as_u64(), post["turned_back"].as_u64()),
        (Some(2), Some(1))
    );
    let listed = s.get(&format!("/v1/checkpoints?zone_id={zone}")).await.ok();
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));

    let parlour = id(&s
        .post(
            "/v1/venues",
            json!({"zone_id": zone, "kind": "mahjong_parlour", "name": "老王麻将馆"}),
        )
        .await
        .ok());
    s.post(
        &format!("/v1/venues/{parlour}/closure"),
        json!({"notice_posted": true}),
    )
    .await
    .ok();
    s.post(
        &format!("/v1/venues/{parlour}/closure"),
        json!({"notice_posted": true}),
    )
    .await
    .problem(409, "venue_already_closed");
    s.post(
        &format!("/v1/venues/{parlour}/enforcement-actions"),
        json!({"action": "tables_confiscated", "count": 3}),
    )
    .await
    .ok();
    s.post(
        &format!("/v1/venues/{parlour}/enforcement-actions"),
        json!({"action": "players_admonished"}),
    )
    .await
    .problem(422, "invalid_fields");
    let hotel = id(&s
        .post(
            "/v1/venues",
            json!({"zone_id": zone, "kind": "hotel", "name": "镇上宾馆"}),
        )
        .await
        .ok());
    s.post(&format!("/v1/venues/{hotel}/reopening"), json!({}))
        .await
        .problem(409, "venue_not_closed");
    s.post(
        &format!("/v1/venues/{hotel}/commitments"),
        json!({"signed_by": "老板"}),
    )
    .await
    .ok();
    let closed = s
        .get("/v1/venues?status=closed&kind=mahjong_parlour")
        .await
        .ok();
    assert_eq!(closed["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(closed["items"][0]["enforcement_actions"], 1);

    let wedding = id(&s
        .post("/v1/banquets", json!({"zone_id": zone, "kind": "wedding", "planned_date": "2030-02-02", "expected_guests": 200, "host": {"name": "刘家"}}))
        .await
        .ok());
    s.post(
        &format!("/v1/banquets/{wedding}/postponement"),
        json!({"new_date": "2030-01-01"}),
    )
    .await
    .problem(409, "postponement_not_later");
    s.post(
        &format!("/v1/banquets/{wedding}/cancellation"),
        json!({"reason": "疫情"}),
    )
    .await
    .ok();
    s.post(
        &format!("/v1/banquets/{wedding}/postponement"),
        json!({"new_date": "2030-05-01"}),
    )
    .await
    .problem(409, "banquet_cancelled");
    assert_eq!(
        s.get(&format!("/v1/banquets/{wedding}")).await.ok()["status"],
        "cancelled"
    );

    s.post(
        &format!("/v1/zones/{zone}/publicity"),
        json!({"channel": "leaflet", "quantity": 300}),
    )
    .await
    .ok();
    s.post(
        &format!("/v1/zones/{zone}/publicity"),
        json!({"channel": "carrier_pigeon", "quantity": 3}),
    )
    .await
    .problem(422, "invalid_fields");
    s.post(
        &format!("/v1/zones/{zone}/gathering-dispersals"),
        json!({"people": 8, "location": "小卖部"}),
    )
    .await
    .ok();
    s.post(
        &format!("/v1/zones/{zone}/patrols"),
        json!({"patrol_group": "巡逻一组", "persuaded": 5}),
    )
    .await
    .ok();
    s.post(
        &format!("/v1/zones/{}/patrols", uuid::Uuid::now_v7()),
        json!({"patrol_group": "巡逻一组"}),
    )
    .await
    .problem(404, "not_found");
    let staff = s
        .post(
            "/v1/staff-health-checks",
            json!({"staff": "镇干部甲", "temperature": 37.8}),
        )
        .await
        .ok();
    assert_eq!(staff["events"][0]["data"]["abnormal"], true);
}

async fn an_offline_queue_syncs_through_a_batch_and_replays_harmlessly(s: &Server) {
    let (zone, village, grid) = geography(s).await;
    let returnee = uuid::Uuid::now_v7();
    let mut registration = registration(&zone, &village, &grid);
    registration["returnee_id"] = json!(returnee);
    let batch = json!({"commands": [
        {"method": "POST", "path": "/v1/returnees", "idempotency_key": "dev-1:1", "body": registration},
        {"method": "POST", "path": format!("/v1/returnees/{returnee}/quarantine"), "idempotency_key": "dev-1:2", "body": {}},
        {"method": "POST", "path": format!("/v1/returnees/{returnee}/health-checks"), "idempotency_key": "dev-1:3", "body": {"temperature": 99.0}},
        {"method": "POST", "path": format!("/v1/returnees/{returnee}/health-checks"), "idempotency_key": "dev-1:4", "body": {"temperature": 36.6}},
        {"method": "DELETE", "path": "/v1/zones", "body": {}},
        {"method": "POST", "path": format!("/v1/zones/{zone}/publicity"), "idempotency_key": "dev-1:5", "body": {"channel": "wechat_message", "quantity": 40}}
    ]});
    let first = s.post("/v1/batches", batch.clone()).await;
    assert_eq!(first.status, 207);
    let statuses: Vec<_> = first.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["status"].as_u64())
        .collect();
    assert_eq!(
        statuses,
        vec![
            Some(201),
            Some(200),
            Some(422),
            Some(200),
            Some(422),
            Some(200)
        ]
    );
    assert_eq!(
        first.body["results"][2]["problem"]["errors"][0]["field"],
        "temperature"
    );

    let again = s.post("/v1/batches", batch).await;
    assert_eq!(again.status, 207);
    for i in [0, 1, 3, 5] {
        assert_eq!(
            again.body["results"][i]["result"]["replayed"], true,
            "command {i}"
        );
        assert_eq!(
            again.body["results"][i]["result"]["position"],
            first.body["results"][i]["result"]["position"]
        );
    }
    let read = s.get(&format!("/v1/returnees/{returnee}")).await;
    assert_eq!(
        read.version(),
        Some(3),
        "registered, quarantined, one visit"
    );

    let too_many: Vec<_> = (0..1001)
        .map(|_| json!({"method": "POST", "path": "/v1/zones", "body": {}}))
        .collect();
    s.post("/v1/batches", json!({"commands": too_many}))
        .await
        .problem(422, "invalid_fields");
}

async fn two_concurrent_writes_to_one_entity_both_land(s: &Server) {
    let (zone, village, grid) = geography(s).await;
    let returnee = id(&s
        .post("/v1/returnees", registration(&zone, &village, &grid))
        .await
        .ok());
    s.post(&format!("/v1/returnees/{returnee}/quarantine"), json!({}))
        .await
        .ok();
    // Both decide on version 2; the store lets one append, and the other is
    // decided again on the new state and lands too.
    for round in 0..5 {
        let path = format!("/v1/returnees/{returnee}/health-checks");
        let (a, b) = tokio::join!(
            s.post(&path, json!({"temperature": 36.5})),
            s.post(&path, json!({"temperature": 36.6})),
        );
        let (a, b) = (a.ok(), b.ok());
        let mut versions = [a["version"].as_u64(), b["version"].as_u64()];
        versions.sort();
        let base = 3 + 2 * round;
        assert_eq!(versions, [Some(base), Some(base + 1)], "round {round}");
    }
    let read = s.get(&format!("/v1/returnees/{returnee}")).await;
    assert_eq!(read.version(), Some(12));
}

async fn an_auditor_follows_verifies_and_proves_the_log(s: &Server) {
    // What the log held before (the harness's own token): positions below
    // are counted from there.
    let base = s.get("/v1/audit/head").await.ok()["position"]
        .as_u64()
        .expect("position");
    let (zone, village, grid) = geography(s).await;
    let kept = s.get("/v1/audit/head").await.ok();
    assert_eq!(kept["position"], base + 3);
    let kept_hash = kept["hash"].as_str().expect("hash").to_owned();
    // Whether the log as it stands extends the head kept at base + 3.
    let proof_of_kept = || async {
        s.get(&format!(
            "/v1/audit/proof?position={}&hash={kept_hash}",
            base + 3
        ))
        .await
        .ok()
    };
    assert!(
        kept["recorded_at"].is_string(),
        "position, hash and time: {kept}"
    );
    s.post("/v1/returnees", registration(&zone, &village, &grid))
        .await
        .ok();
    s.post(
        &format!("/v1/zones/{zone}/publicity"),
        json!({"channel": "leaflet", "quantity": 50}),
    )
    .await
    .ok();
    let auditor = s.create_token("auditor", &[], "county audit office").await;
    let as_auditor = |path: &str| s.client.get(s.url(path)).bearer_auth(&auditor);

    let page = s
        .send_raw(as_auditor(&format!("/v1/events?limit=2&cursor={base}")))
        .await
        .ok();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    let next = page["next_cursor"]
        .as_str()
        .expect("more to read")
        .to_owned();
    let rest = s
        .send_raw(as_auditor(&format!("/v1/events?cursor={next}")))
        .await
        .ok();
    // Three of ours, and the auditor's own token after them.
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(4));
    assert_eq!(rest["items"][0]["position"], base + 3);
    let returnees = s
        .send_raw(as_auditor("/v1/events?category=returnee"))
        .await
        .ok();
    let registered = &returnees["items"][0];
    assert_eq!(registered["type"], "ReturneeRegistered");
    // An auditor sees the fact, not the person.
    assert_eq!(registered["data"]["personal"]["name"], "张*");
    assert_eq!(
        registered["data"]["personal"]["resident_id"],
        "110105********002X"
    );
    assert_eq!(registered["data"]["personal"]["phone"], "138****5678");
    assert_eq!(registered["data"]["personal"]["address"], "***");
    assert_eq!(registered["metadata"]["actor"]["name"], "test harness");
    assert_eq!(registered["metadata"]["actor"]["role"], "admin");
    let full = s.get("/v1/events?category=returnee").await.ok();
    assert_eq!(
        full["items"][0]["data"]["personal"]["name"], "张三",
        "admin sees it all"
    );
    let typed = s.get("/v1/events?type=PublicityRecorded").await.ok();
    assert_eq!(typed["items"].as_array().map(Vec::len), Some(1));
    // A time range: nothing recorded after now; everything before.
    let recorded_at = typed["items"][0]["recorded_at"]
        .as_str()
        .expect("time")
        .to_owned();
    let before = s
        .get(&format!(
            "/v1/events?until={}",
            recorded_at.replace('+', "%2B")
        ))
        .await
        .ok();
    assert_eq!(
        before["items"].as_array().map(Vec::len),
        Some(base as usize + 4),
        "everything recorded before the publicity"
    );
    let since = s
        .get(&format!(
            "/v1/events?since={}&type=PublicityRecorded",
            recorded_at.replace('+', "%2B")
        ))
        .await
        .ok();
    assert_eq!(since["items"].as_array().map(Vec::len), Some(1));
    s.get("/v1/events?since=yesterday")
        .await
        .problem(422, "invalid_fields");
    // Found by schemathesis: a NUL in a filter reached PostgreSQL (a 503).
    s.get("/v1/events?category=re%00turnee")
        .await
        .problem(422, "invalid_fields");
    s.get("/v1/events?type=Quarantine%20Started")
        .await
        .problem(422, "invalid_fields");

    // Walks of the whole chain take turns; several at once all answer.
    let walks = futures::future::join_all((0..4).map(|_| s.get("/v1/audit/verify"))).await;
    assert!(walks
        .iter()
        .all(|w| w.status == 200 && w.body["intact"] == true));
    let verified = s.send_raw(as_auditor("/v1/audit/verify")).await.ok();
    assert_eq!(
        (verified["intact"].as_bool(), verified["checked"].as_u64()),
        (Some(true), Some(base + 6))
    );
    let proof = proof_of_kept().await;
    assert_eq!(proof["extends"], true);
    assert_eq!(proof["head_position"], base + 6);
    let forged = s
        .get(&format!(
            "/v1/audit/proof?position={}&hash={}",
            base + 3,
            "0".repeat(64)
        ))
        .await
        .ok();
    assert_eq!(forged["extends"], false);
    s.get(&format!("/v1/audit/proof?position={}&hash=xyz", base + 3))
        .await
        .problem(422, "invalid_fields");

    s.db.execute_raw(&format!(
        r#"UPDATE events SET payload = '{{"quantity":5000}}' WHERE position = {}"#,
        base + 5
    ))
    .await
    .expect("tamper with plain SQL");
    let verified = s.get("/v1/audit/verify").await.ok();
    assert_eq!(verified["intact"], false);
    assert_eq!(verified["first_break"]["position"], base + 5);
    let proof = proof_of_kept().await;
    assert_eq!(
        proof["extends"], false,
        "the log after the kept head was altered"
    );

    // An edit before the kept head leaves the hash stored there alone; the
    // proof recomputes the chain from position 1 and names it all the same.
    s.db.execute_raw(&format!(
        r#"UPDATE events SET metadata = '{{}}' WHERE position = {}"#,
        base + 1
    ))
    .await
    .expect("tamper with plain SQL");
    let proof = proof_of_kept().await;
    assert_eq!(proof["extends"], false, "{proof}");
    assert_eq!(
        proof["stored_hash"], kept["hash"],
        "the stored hash is untouched"
    );
    assert_eq!(proof["recomputed_hash"], serde_json::Value::Null);
    assert_eq!(proof["first_break"]["position"], base + 1);
}

async fn a_zero_report_is_refused_when_the_zone_recorded_work(s: &Server) {
    let (zone, village, grid) = geography(s).await;
    let today = support::days_ago(0);
    let report = format!("/v1/zones/{zone}/daily-reports/{today}");
    // Setting up the map is not field work: a zero report stands.
    s.put(
        &report,
        json!({"zero_report": true, "submitted_by": "李明"}),
    )
    .await
    .ok();
    s.post("/v1/returnees", registration(&zone, &village, &grid))
        .await
        .ok();
    s.put(
        &report,
        json!({"zero_report": true, "submitted_by": "李明"}),
    )
    .await
    .problem(409, "zero_report_with_activity");
    let resubmitted = s
        .put(&report, json!({"zero_report": false, "figures": {"returnees_registered": 1}, "submitted_by": "李明"}))
        .await
        .ok();
    assert_eq!(resubmitted["events"][0]["data"]["revision"], 2);
    let read = s.get(&report).await.ok();
    assert_eq!(
        (
            read["recorded_activity"].as_u64(),
            read["revision"].as_u64()
        ),
        (Some(1), Some(2))
    );
    s.put(
        &format!("/v1/zones/{zone}/daily-reports/2999-01-01"),
        json!({"zero_report": true, "submitted_by": "李明"}),
    )
    .await
    .problem(409, "report_for_future_day");
    s.put(
        &format!("/v1/zones/{zone}/daily-reports/yesterday"),
        json!({"zero_report": true, "submitted_by": "李明"}),
    )
    .await
    .problem(422, "invalid_fields");
}

async fn the_contract_and_its_browser_are_served(s: &Server) {
    s.post("/v1/zones", json!({"name": "一片区"})).await.ok();
    let spec = s.get("/openapi.json").await.ok();
    assert_eq!(spec["openapi"], "3.1.0");
    // Figure maps are typed: the contract names every code a dashboard
    // answers, and no other.
    let documented: std::collections::BTreeSet<&str> = spec["components"]["schemas"]["Figures"]
        ["properties"]
        .as_object()
        .expect("a Figures schema")
        .keys()
        .map(String::as_str)
        .collect();
    let board = s.get("/v1/dashboard").await;
    // An authenticated answer says where its token stands against the
    // rate limit (the default: bursts of 200).
    let header =
        |name: &str| -> Option<u64> { board.headers.get(name)?.to_str().ok()?.parse().ok() };
    assert_eq!(header("ratelimit-limit"), Some(200));
    assert!(header("ratelimit-remaining").is_some_and(|n| n < 200));
    assert!(header("ratelimit-reset").is_some_and(|n| n >= 1));
    let health = s.send_raw(s.client.get(s.url("/healthz"))).await;
    assert!(
        health.headers.get("ratelimit-limit").is_none(),
        "no token, no quota"
    );
    let board = board.ok();
    for map in ["day", "to_date"] {
        let answered: std::collections::BTreeSet<&str> = board[map]
            .as_object()
            .expect("figures")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(answered, documented, "{map}");
    }
    let paths = spec["paths"].as_object().expect("paths");
    for route in [
        "/v1/returnees/{returnee_id}/health-checks",
        "/v1/batches",
        "/v1/venues/{venue_id}/closure",
        "/healthz",
    ] {
        assert!(
            paths.contains_key(route),
            "{route} missing from the contract"
        );
    }
    let docs = s.send(s.client.get(s.url("/docs/"))).await;
    assert_eq!(docs.status, 200);
    assert!(
        docs.body
            .as_str()
            .is_some_and(|html| html.contains("swagger")),
        "Swagger UI page"
    );
    // The page loads our contract and never asks swagger.io to validate it.
    let init = s
        .send(s.client.get(s.url("/docs/swagger-initializer.js")))
        .await;
    let init = init.body.as_str().expect("javascript").to_owned();
    assert!(init.contains("/openapi.json"), "{init}");
    assert!(init.contains("\"validatorUrl\": \"none\""), "{init}");
    let metrics = s.get("/metrics").await;
    let text = metrics.body.as_str().expect("text").to_owned();
    assert!(
        text.contains(
            "fangkong_http_requests_total{method=\"GET\",route=\"/openapi.json\",status=\"200\"}"
        ),
        "{text}"
    );
    assert!(text.contains("fangkong_store_head_position"));
    let appended = text
        .lines()
        .find_map(|l| l.strip_prefix("fangkong_events_appended_total "))
        .and_then(|n| n.parse::<u64>().ok());
    assert_eq!(appended, Some(1), "one zone established: {text}");
}

/// The server every API test runs against.
async fn start_server(db: std::sync::Arc<TestDb>) -> Server {
    Server::start_on(db, &[])
}

fangkong_store::each_backend!(threads = 2; [fixture = start_server];

    a_returnee_goes_through_home_quarantine,
    bad_inputs_get_precise_problems_and_change_nothing,
    an_idempotent_retry_returns_the_first_answer_and_appends_nothing,
    the_dissuasion_work_of_a_zone_is_recorded,
    an_offline_queue_syncs_through_a_batch_and_replays_harmlessly,
    the_contract_and_its_browser_are_served,
    a_zero_report_is_refused_when_the_zone_recorded_work,
    two_concurrent_writes_to_one_entity_both_land,
    an_auditor_follows_verifies_and_proves_the_log,
    lists_filter_page_and_read_their_own_writes,
    a_creation_answers_201_with_the_location_of_what_it_made,
    an_unchanged_read_is_answered_304_and_a_changed_one_in_full,
);

#[test]
fn the_published_contract_is_what_the_code_generates() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fangkong"))
        .arg("openapi")
        .output()
        .expect("fangkong openapi runs");
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).expect("utf-8");
    let published = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../openapi/openapi.json"
    ))
    .expect("openapi/openapi.json exists");
    assert!(
        generated.trim() == published.trim(),
        "openapi/openapi.json is stale: run `cargo run -p fangkong -- openapi > openapi/openapi.json`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_lines_with_request_ids_and_no_personal_data() {
    let dir = tempfile_dir();
    let log = dir.join("server.log");
    let s = Server::start_logging_json(TestDb::sqlite(), &log);
    let (zone, village, grid) = geography(&s).await;
    let reply = s
        .send(
            s.client
                .post(s.url("/v1/returnees"))
                .header("X-Request-Id", "req-42")
                .json(&registration(&zone, &village, &grid)),
        )
        .await;
    assert_eq!(
        reply
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("req-42")
    );
    // A refused token, a bad resident ID: errors, and no trace of either in the log.
    s.send_raw(s.client.get(s.url("/v1/zones")).bearer_auth("fk_wrong"))
        .await
        .problem(401, "unauthenticated");
    let mut bad = registration(&zone, &village, &grid);
    bad["personal"]["resident_id"] = serde_json::json!("110105194912310021");
    s.post("/v1/returnees", bad)
        .await
        .problem(422, "invalid_fields");
    // A live-feed ticket, used and unused, is as secret as a token.
    let ticket = s
        .send(s.client.post(s.url("/v1/events/live/tickets")))
        .await
        .ok()["ticket"]
        .as_str()
        .expect("a ticket")
        .to_owned();
    s.send_raw(s.client.get(s.url(&format!(
        "/v1/events/live?ticket={ticket}&heartbeat_seconds=0"
    ))))
    .await
    .problem(422, "invalid_fields");
    let metrics = s.get("/metrics").await.body.to_string();
    let token = s.token.clone();
    let status = s.stop();
    assert!(status.success());
    let text = std::fs::read_to_string(&log).expect("the log");
    assert!(
        text.contains("ticket=***"),
        "the request is logged, its ticket hidden"
    );
    for secret in [
        token.as_str(),
        "110105194912310021",
        "fk_wrong",
        ticket.as_str(),
    ] {
        assert!(!text.contains(secret), "{secret} reached the log");
    }
    for secret in [
        "张三",
        "11010519491231002X",
        "13812345678",
        "桥头村三组",
        token.as_str(),
    ] {
        assert!(!metrics.contains(secret), "{secret} reached the metrics");
    }
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let request = lines
        .iter()
        .find(|l| l["fields"]["request.id"] == "req-42")
        .expect("a log line for the request");
    assert_eq!(request["fields"]["http.route"], "/v1/returnees");
    assert_eq!(request["fields"]["http.status"], 201);
    for secret in ["张三", "11010519491231002X", "13812345678", "桥头村三组"] {
        assert!(!text.contains(secret), "{secret} reached the log");
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fangkong-log-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_stops_cleanly_on_sigterm() {
    let server = Server::start(TestDb::sqlite(), &[]);
    server.get("/healthz").await.ok();
    server.get("/readyz").await.ok();
    let status = server.stop();
    assert!(status.success(), "{status:?}");
}

/// How many items a list holds, every page.
async fn listed(s: &Server, path: &str) -> u64 {
    let mut n = 0;
    let mut cursor = String::new();
    loop {
        let page = s.get(&format!("{path}&limit=1000{cursor}")).await.ok();
        n += page["items"].as_array().map_or(0, Vec::len) as u64;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return n,
        }
    }
}

async fn the_demo_township_is_believable_and_added_once(db: std::sync::Arc<TestDb>) {
    let s = Server::start_fresh(db.clone(), &["--demo"]);
    // A new demo store prints one token per role, once.
    assert_eq!(s.printed_tokens.len(), 4, "{:?}", s.printed_tokens);
    let worker = s.printed_tokens[1].clone();
    let county = s.printed_tokens[2].clone();
    let zones = s.get("/v1/zones").await.ok();
    assert_eq!(zones["items"].as_array().map(Vec::len), Some(4));
    assert!(zones["items"][0]["leader"].is_string());
    let mut returnees = 0;
    let mut in_quarantine = 0;
    let mut overdue = 0;
    let mut cursor = String::new();
    loop {
        let page = s
            .get(&format!("/v1/returnees?limit=100{cursor}"))
            .await
            .ok();
        for r in page["items"].as_array().expect("items") {
            returnees += 1;
            if r["status"] == "in_quarantine" {
                in_quarantine += 1;
                overdue += r["quarantine"]["missed_days"]
                    .as_array()
                    .map_or(0, Vec::len);
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    let metrics = s.get("/metrics").await.body;
    let head = metrics
        .as_str()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("fangkong_store_head_position "))
        })
        .and_then(|n| n.trim().parse::<u64>().ok())
        .expect("the head position in the metrics");
    // The views agree with each other, whatever the demo's numbers are.
    let today_board = s
        .get(&format!("/v1/dashboard?min_position={head}"))
        .await
        .ok();
    let to_date = |code: &str| today_board["to_date"][code].as_u64().expect(code);
    let standing = |code: &str| today_board["standing"][code].as_u64().expect(code);
    assert_eq!(
        returnees,
        to_date("returnees_registered"),
        "listed = registered"
    );
    assert!(returnees > 100, "a township's worth: {returnees}");
    assert_eq!(
        in_quarantine,
        standing("under_quarantine"),
        "listed = standing"
    );
    let roster = s
        .get(&format!("/v1/quarantine/roster?min_position={head}"))
        .await;
    assert!(
        roster.headers.get("x-projection-wanted").is_none(),
        "caught up within the wait"
    );
    let roster = roster.ok();
    assert_eq!(roster["position"], head);
    assert_eq!(
        roster["items"].as_array().map(|r| r.len() as u64),
        Some(in_quarantine),
        "the roster is everyone in quarantine"
    );
    assert!(
        roster["items"][0]["missed_days"]
            .as_array()
            .is_some_and(|m| !m.is_empty()),
        "most overdue first"
    );
    assert!(in_quarantine > 20, "{in_quarantine} in quarantine");
    assert!(overdue > 0, "some visits were missed");
    let referred = listed(&s, "/v1/returnees?status=under_treatment").await;
    assert!(
        (1..=to_date("referrals")).contains(&referred),
        "the fever was referred: {referred}"
    );
    let closed = listed(&s, "/v1/venues?status=closed").await;
    let dismantled = listed(&s, "/v1/venues?status=dismantled").await;
    assert!(closed > 0 && dismantled > 0);
    assert_eq!(closed + dismantled, standing("venues_closed"), "closed now");
    let postponed = listed(&s, "/v1/banquets?status=postponed").await;
    assert!(postponed > 0);
    assert!(postponed <= to_date("banquets_postponed"));
    let checkpoints = s.get("/v1/checkpoints?limit=1000").await.ok();
    let checkpoints = checkpoints["items"].as_array().expect("items");
    assert!(!checkpoints.is_empty());
    let summed = |key: &str| -> u64 {
        checkpoints
            .iter()
            .map(|c| c[key].as_u64().expect("a count"))
            .sum()
    };
    assert_eq!(summed("crossings"), to_date("crossings"), "posts = board");
    assert_eq!(summed("turned_back"), to_date("crossings_turned_back"));
    assert!(summed("turned_back") > 0);

    // Daily reports: the quiet zone's first day is a zero report; zone three
    // left one day unreported.
    let zone_ids: Vec<String> = zones["items"]
        .as_array()
        .expect("zones")
        .iter()
        .map(|z| z["zone_id"].as_str().expect("id").to_owned())
        .collect();
    let events = s
        .get(&format!(
            "/v1/zones/{}/daily-reports/{}",
            zone_ids[3],
            support::days_ago(21)
        ))
        .await
        .ok();
    assert_eq!(
        (
            events["submitted"].as_bool(),
            events["zero_report"].as_bool()
        ),
        (Some(true), Some(true))
    );
    assert_eq!(events["recorded_activity"], 0);
    let missing = s
        .get(&format!(
            "/v1/zones/{}/daily-reports/{}",
            zone_ids[2],
            support::days_ago(11)
        ))
        .await
        .ok();
    assert_eq!(missing["submitted"], false);
    assert!(missing["recorded_activity"].as_u64().is_some_and(|n| n > 0));
    assert_eq!(missing["status"]["state"], "missing");

    // The demo's zone worker works in 一片区 only; the county reads figures only.
    let as_worker = s
        .send_raw(s.client.get(s.url("/v1/zones")).bearer_auth(&worker))
        .await
        .ok();
    assert_eq!(as_worker["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(as_worker["items"][0]["name"], "一片区");
    s.send_raw(s.client.get(s.url("/v1/returnees")).bearer_auth(&county))
        .await
        .problem(403, "forbidden");
    s.send_raw(s.client.get(s.url("/v1/dashboard")).bearer_auth(&county))
        .await
        .ok();

    // The county pull over the demo's reported days: every zone expected
    // every day; one day missing, one late, one zero report.
    let pull = s
        .get(&format!(
            "/v1/reports/daily?from={}&to={}&min_position={head}",
            support::days_ago(21),
            support::days_ago(2)
        ))
        .await
        .ok();
    let sum = |key: &str| -> u64 {
        pull["totals"]
            .as_array()
            .expect("totals")
            .iter()
            .map(|t| t["completeness"][key].as_u64().expect("count"))
            .sum()
    };
    let days = pull["totals"].as_array().map_or(0, Vec::len) as u64;
    assert_eq!(days, 20, "one total per day asked for");
    assert_eq!(sum("expected"), 4 * days, "every zone, every day");
    assert_eq!(sum("submitted") + sum("missing"), sum("expected"));
    // The demo's story: one day left unreported, one late, one zero report.
    assert!(sum("missing") >= 1 && sum("late") >= 1 && sum("zero_reports") >= 1);
    let dashboard = s
        .get(&format!("/v1/dashboard?date={}", support::days_ago(8)))
        .await
        .ok();
    assert!(dashboard["to_date"]["returnees_registered"].as_u64() > Some(100));
    assert!(dashboard["to_date"]["crossings_turned_back"].as_u64() > Some(0));
    assert!(dashboard["to_date"]["venues_closed"].as_u64() > Some(0));
    assert!(dashboard["to_date"]["banquets_postponed"].as_u64() > Some(0));
    assert!(dashboard["to_date"]["staff_health_checks"].as_u64() > Some(0));
    assert!(dashboard["standing"]["under_quarantine"].as_u64() > Some(20));
    // The demo's zones carry their DHIS2 org units (linked through the API):
    // every submitted report goes to DHIS2, with every figure it attests.
    let span = format!("from={}&to={}", support::days_ago(21), support::days_ago(2));
    let set = s
        .get(&format!("/v1/reports/daily?{span}&format=dhis2"))
        .await
        .ok();
    let completions = s
        .get(&format!(
            "/v1/reports/daily?{span}&format=dhis2-completions"
        ))
        .await
        .ok();
    let figures = today_board["day"].as_object().map_or(0, |f| f.len()) as u64;
    assert_eq!(
        completions["completeDataSetRegistrations"]
            .as_array()
            .map(|r| r.len() as u64),
        Some(sum("submitted")),
        "one registration per submitted report"
    );
    // Every figure each report attests (a zero report: all of them, as 0).
    let attested: u64 = pull["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["report"]["submitted"] == true)
        .map(|r| {
            if r["report"]["zero_report"] == true {
                figures
            } else {
                r["report"]["attested"]
                    .as_object()
                    .map_or(0, |a| a.len() as u64)
            }
        })
        .sum();
    assert!(attested > sum("submitted"), "reports attest figures");
    assert_eq!(
        set["dataValues"].as_array().map(|v| v.len() as u64),
        Some(attested),
        "what each report attests, of every reported zone and day"
    );
    let all = s
        .get(&format!(
            "/v1/reports/daily?{span}&format=dhis2&include_unattested=true"
        ))
        .await
        .ok();
    assert_eq!(
        all["dataValues"].as_array().map(|v| v.len() as u64),
        Some(attested + (sum("expected") - sum("submitted")) * figures),
        "asked for, the recorded figures of the days no one attested as well"
    );

    // Added once: a second fill leaves the store alone.
    assert!(s.stop().success());
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_fangkong"))
        .args(["demo", "--database-url", db.url()])
        .envs(support::state_key_env(&db))
        .output()
        .expect("fangkong demo runs");
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds events"));
}

mod demo {
    fangkong_store::each_backend!(the_demo_township_is_believable_and_added_once);

    async fn the_demo_township_is_believable_and_added_once(db: std::sync::Arc<super::TestDb>) {
        super::the_demo_township_is_believable_and_added_once(db).await;
    }
}

async fn lists_filter_page_and_read_their_own_writes(s: &Server) {
    let (zone_a, village_a, grid_a) = geography(s).await;
    let (zone_b, village_b, grid_b) = support::place(s, None, "二片区").await;
    let mut last_position = 0;
    let mut in_a = vec![];
    for i in 0..5 {
        let (zone, village, grid) = if i % 2 == 0 {
            (&zone_a, &village_a, &grid_a)
        } else {
            (&zone_b, &village_b, &grid_b)
        };
        let written = s
            .post("/v1/returnees", registration(zone, village, grid))
            .await
            .ok();
        last_position = written["position"].as_u64().expect("position");
        if zone == &zone_a {
            in_a.push(id(&written));
        }
    }
    // Quarantine the first of zone A: the status filter sees it at once
    // when the write's position is passed.
    let started = s
        .post(&format!("/v1/returnees/{}/quarantine", in_a[0]), json!({}))
        .await
        .ok();
    let position = started["position"].as_u64().expect("position");
    assert!(position > last_position);
    let quarantined = s
        .get(&format!(
            "/v1/returnees?status=in_quarantine&zone_id={zone_a}&min_position={position}"
        ))
        .await;
    let reflected: u64 = quarantined.headers["x-projection-position"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a position");
    assert!(reflected >= position);
    let quarantined = quarantined.ok();
    let ids: Vec<&str> = quarantined["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["returnee_id"].as_str())
        .collect();
    assert_eq!(ids, vec![in_a[0].as_str()]);

    // Zone A in pages of two, in registration order, by the zone's index.
    let mut seen = vec![];
    let mut cursor = String::new();
    loop {
        let page = s
            .get(&format!("/v1/returnees?zone_id={zone_a}&limit=2{cursor}"))
            .await
            .ok();
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|r| r["returnee_id"].as_str().expect("id").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen, in_a, "every one of zone A's, once, in order");

    // A zone B worker lists only zone B, whatever the filter asks.
    let worker_b = s
        .create_token("zone_worker", &[&zone_b], "二片区 网格员")
        .await;
    let listed = s
        .send_raw(
            s.client
                .get(s.url(&format!("/v1/returnees?min_position={position}")))
                .bearer_auth(&worker_b),
        )
        .await
        .ok();
    let zones: std::collections::BTreeSet<&str> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["zone_id"].as_str())
        .collect();
    assert_eq!(zones, [zone_b.as_str()].into());
    let asked_for_a = s
        .send_raw(
            s.client
                .get(s.url(&format!("/v1/returnees?zone_id={zone_a}")))
                .bearer_auth(&worker_b),
        )
        .await
        .ok();
    assert_eq!(asked_for_a["items"], json!([]));

    // Unknown filter values are refused, naming what is allowed.
    for (path, field, allowed) in [
        (
            "/v1/returnees?status=quarantined",
            "status",
            "in_quarantine",
        ),
        (
            "/v1/returnees?status=unregistered",
            "status",
            "lost_to_follow_up",
        ),
        ("/v1/returnees?risk=extreme", "risk", "medium"),
        ("/v1/venues?kind=casino", "kind", "mahjong_parlour"),
        ("/v1/venues?status=shut", "status", "dismantled"),
        ("/v1/banquets?status=off", "status", "postponed"),
    ] {
        let problem = s.get(path).await.problem(422, "invalid_fields");
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
        let message = problem["errors"][0]["message"].as_str().expect("a message");
        assert!(message.contains(allowed), "{path}: {message}");
    }
    // Checkpoints and zones list from the directory too.
    let checkpoint = s
        .post(
            "/v1/checkpoints",
            json!({"zone_id": zone_b, "name": "河口", "kind": "village_entrance"}),
        )
        .await
        .ok();
    let p = checkpoint["position"].as_u64().expect("position");
    let listed = s
        .get(&format!(
            "/v1/checkpoints?zone_id={zone_b}&min_position={p}"
        ))
        .await
        .ok();
    assert_eq!(listed["items"][0]["checkpoint_id"], checkpoint["id"]);
    let zones = s.get(&format!("/v1/zones?min_position={p}")).await.ok();
    let names: Vec<&str> = zones["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|z| z["name"].as_str())
        .collect();
    assert_eq!(names, vec!["一片区", "二片区"]);
}

async fn an_unchanged_read_is_answered_304_and_a_changed_one_in_full(s: &Server) {
    let (zone, village, grid) = geography(s).await;
    let made = s
        .post("/v1/returnees", registration(&zone, &village, &grid))
        .await
        .ok();
    let returnee = id(&made);
    let path = format!("/v1/returnees/{returnee}");
    let first = s.get(&path).await;
    assert_eq!(first.status, 200);
    let tag = first.etag().expect("an entity read carries an ETag");
    assert_eq!(first.version(), Some(1), "the version leads the tag: {tag}");
    // Personal data: a browser keeps no copy; the app revalidates its own.
    assert_eq!(first.headers["cache-control"], "private, no-store");

    let again = s
        .send(s.client.get(s.url(&path)).header("If-None-Match", &tag))
        .await;
    assert_eq!(again.status, 304);
    assert_eq!(
        again.body,
        serde_json::Value::String(String::new()),
        "no body"
    );
    assert_eq!(again.etag().as_deref(), Some(tag.as_str()));
    // A list of tags, weak or not, and `*` match as RFC 9110 says.
    let listed = s
        .send(
            s.client
                .get(s.url(&path))
                .header("If-None-Match", format!("\"other\", W/{tag}")),
        )
        .await;
    assert_eq!(listed.status, 304);

    // The read's tag is good for If-Match: the version before the dot.
    let quarantined = s
        .send(
            s.client
                .post(s.url(&format!("{path}/screenings")))
                .header("If-Match", &tag)
                .json(&json!({"temperature": 36.6, "identity_checked": true, "came_from": "武汉", "screened_by": "王医生"})),
        )
        .await
        .ok();
    assert_eq!(quarantined["version"], 2);
    let changed = s
        .send(s.client.get(s.url(&path)).header("If-None-Match", &tag))
        .await;
    assert_eq!(changed.status, 200, "a write changes the answer");
    assert_ne!(changed.etag().as_deref(), Some(tag.as_str()));
    assert_eq!(changed.version(), Some(2));

    // Projection reads: a dashboard and a list.
    for read in [
        format!(
            "/v1/zones/{zone}/dashboard?min_position={}",
            quarantined["position"]
        ),
        format!(
            "/v1/returnees?zone_id={zone}&min_position={}",
            quarantined["position"]
        ),
    ] {
        let first = s.get(&read).await;
        assert_eq!(first.status, 200, "{read}: {}", first.body);
        let tag = first.etag().expect("a projection read carries an ETag");
        let figures = read.contains("/dashboard");
        assert_eq!(
            first.headers["cache-control"],
            if figures {
                "private, no-cache"
            } else {
                "private, no-store"
            },
            "{read}"
        );
        let again = s
            .send(s.client.get(s.url(&read)).header("If-None-Match", &tag))
            .await;
        assert_eq!(again.status, 304, "{read}");
        assert!(again.headers.contains_key("x-projection-position"));
    }
    // A write is not a read: If-None-Match does not turn it into a 304.
    let visit = s
        .send(
            s.client
                .post(s.url(&format!("/v1/zones/{zone}/publicity")))
                .header("If-None-Match", "*")
                .json(&json!({"channel": "leaflet", "quantity": 20})),
        )
        .await;
    assert_ne!(visit.status, 304, "{}", visit.body);
}

async fn a_creation_answers_201_with_the_location_of_what_it_made(s: &Server) {
    let (zone, village, grid) = geography(s).await;
    for (collection, body) in [
        ("/v1/returnees", registration(&zone, &village, &grid)),
        (
            "/v1/checkpoints",
            json!({"zone_id": zone, "name": "村口", "kind": "village_entrance"}),
        ),
        (
            "/v1/venues",
            json!({"zone_id": zone, "kind": "mahjong_parlour", "name": "桥头棋牌室"}),
        ),
    ] {
        let reply = s.post(collection, body).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        let location = reply.headers["location"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let made = id(&reply.body);
        assert_eq!(location, format!("{collection}/{made}"));
        let read = s.get(&location).await;
        assert_eq!(read.status, 200, "{location} reads back");
        assert_eq!(read.version(), reply.version());
    }
    // Not a creation: no Location.
    let reply = s
        .post(
            &format!("/v1/zones/{zone}/publicity"),
            json!({"channel": "leaflet", "quantity": 10}),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.headers.get("location").is_none());
}
