//! Dashboards, report states and the county pull, end to end over HTTP on
//! both backends: read-your-writes, the township as the sum of its zones,
//! JSON/CSV/DHIS2, as-of reads, and read models that survive a restart
//! equal to a rebuild.

mod support;

use std::sync::Arc;

use fangkong_store::testing::TestDb;
use serde_json::{json, Value};
use support::{id, place, today, Server};
use uuid::Uuid;

/// Registers a returnee arriving today (the server's day); the position.
async fn returnee(
    s: &Server,
    (zone, village, grid): &(String, String, String),
    risk: &str,
) -> (String, u64) {
    let r = s
        .post(
            "/v1/returnees",
            json!({
                "zone_id": zone, "village_id": village, "grid_id": grid,
                "arrival_date": today(s).await,
                "origin": {"region": "湖北省武汉市", "risk": risk},
                "personal": {"name": "张三", "resident_id": "11010519491231002X",
                             "phone": "13812345678", "address": "桥头村三组12号"}
            }),
        )
        .await
        .ok();
    (id(&r), position(&r))
}

fn position(written: &Value) -> u64 {
    written["position"].as_u64().expect("a position")
}

fn projected(reply: &support::Reply) -> u64 {
    reply
        .headers
        .get("x-projection-position")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("X-Projection-Position")
}

async fn dashboards_read_their_own_writes_and_sum_to_the_township(db: Arc<TestDb>) {
    let s = Server::start_on(db, &[]);
    let a = place(&s, None, "一片区").await;
    let b = place(&s, None, "二片区").await;
    let (first, _) = returnee(&s, &a, "high").await;
    returnee(&s, &a, "medium").await;
    returnee(&s, &b, "low").await;
    s.post(&format!("/v1/returnees/{first}/quarantine"), json!({}))
        .await
        .ok();
    s.post(
        &format!("/v1/returnees/{first}/health-checks"),
        json!({"temperature": 36.6}),
    )
    .await
    .ok();
    s.post(
        &format!("/v1/zones/{}/publicity", a.0),
        json!({"channel": "leaflet", "quantity": 200}),
    )
    .await
    .ok();
    let checkpoint = id(&s
        .post(
            "/v1/checkpoints",
            json!({"zone_id": b.0, "name": "路口", "kind": "road"}),
        )
        .await
        .ok());
    let last = s
        .post(
            &format!("/v1/checkpoints/{checkpoint}/crossings"),
            json!({"subject": "vehicle", "plate": "鄂A12345", "people": 3, "origin": {"region": "武汉", "risk": "high"}, "outcome": "turned_back"}),
        )
        .await
        .ok();
    let wanted = position(&last);

    let reply = s
        .get(&format!(
            "/v1/zones/{}/dashboard?min_position={wanted}",
            a.0
        ))
        .await;
    assert!(projected(&reply) >= wanted, "read-your-writes");
    assert!(reply.headers.get("x-projection-wanted").is_none());
    let d = reply.ok();
    assert_eq!(d["name"], "一片区");
    assert_eq!(d["day"]["returnees_registered"], 2);
    assert_eq!(d["day"]["returnees_registered_high_risk"], 1);
    assert_eq!(d["day"]["returnees_registered_medium_risk"], 1);
    assert_eq!(d["day"]["quarantines_started"], 1);
    assert_eq!(d["day"]["health_visits_recorded"], 1);
    assert_eq!(d["day"]["health_visits_due"], 1);
    assert_eq!(d["day"]["health_visits_made"], 1);
    assert_eq!(d["day"]["health_visits_pending"], 0);
    assert_eq!(d["day"]["publicity_leaflet"], 200);
    assert_eq!(d["standing"]["under_quarantine"], 1);
    assert_eq!(d["to_date"]["returnees_registered"], 2);
    assert_eq!(d["report"]["state"], "pending");

    let t = s
        .get(&format!("/v1/dashboard?min_position={wanted}"))
        .await
        .ok();
    assert_eq!(t["day"]["returnees_registered"], 3);
    assert_eq!(t["day"]["returnees_registered_low_risk"], 1);
    assert_eq!(t["day"]["crossings"], 1);
    assert_eq!(t["day"]["crossings_vehicles"], 1);
    assert_eq!(t["day"]["crossings_people"], 3);
    assert_eq!(t["day"]["crossings_turned_back"], 1);
    assert_eq!(t["standing"]["under_quarantine"], 1);
    assert_eq!(t["completeness"]["expected"], 2);
    assert_eq!(t["completeness"]["pending"], 2);
    let zones = t["zones"].as_array().expect("zones");
    assert_eq!(zones.len(), 2);
    // The township is the sum of its zones, figure by figure.
    for (code, total) in t["day"].as_object().expect("figures") {
        let sum: u64 = zones
            .iter()
            .map(|z| z["day"][code].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(total.as_u64(), Some(sum), "{code}");
    }

    // A position the projections cannot reach in time: what there is, and
    // how far it got.
    let behind = s
        .get(&format!("/v1/dashboard?min_position={}", wanted + 1_000))
        .await;
    assert_eq!(behind.status, 200);
    assert_eq!(
        behind
            .headers
            .get("x-projection-wanted")
            .and_then(|v| v.to_str().ok()),
        Some((wanted + 1_000).to_string().as_str())
    );

    // Bad reads are precise problems.
    s.get(&format!("/v1/zones/{}/dashboard", Uuid::now_v7()))
        .await
        .problem(404, "not_found");
    s.get("/v1/zones/nope/dashboard")
        .await
        .problem(404, "not_found");
    s.get("/v1/dashboard?date=2020-13-01")
        .await
        .problem(422, "invalid_fields");
    s.get("/v1/dashboard?as_of=yesterday")
        .await
        .problem(422, "invalid_fields");
    s.get("/v1/dashboard?as_of=999999")
        .await
        .problem(422, "invalid_fields");
    s.get("/v1/dashboard?as_of=2999-01-01T00:00:00Z")
        .await
        .problem(422, "invalid_fields");
    s.get("/v1/dashboard?colour=red")
        .await
        .problem(422, "invalid_fields");
    s.get("/v1/reports/daily?from=2020-02-01")
        .await
        .problem(422, "invalid_fields");
    s.get("/v1/reports/daily?from=2020-02-01&to=2020-01-01")
        .await
        .problem(422, "invalid_fields");
    s.get("/v1/reports/daily?from=2019-01-01&to=2020-12-31")
        .await
        .problem(422, "invalid_fields");
    s.get("/v1/reports/daily?format=xml")
        .await
        .problem(422, "invalid_fields");
    s.get("/v1/reports/daily?format=dhis2")
        .await
        .problem(409, "dhis2_not_configured");
}

async fn the_county_pulls_daily_aggregates_as_json_csv_and_dhis2(db: Arc<TestDb>) {
    let mapped = Uuid::now_v7();
    let dir = tempfile::tempdir().expect("temp dir");
    let mapping = dir.path().join("dhis2.json");
    std::fs::write(
        &mapping,
        serde_json::to_string(&json!({
            "data_set": "QX4ZTUbOt3a",
            "data_elements": {"returnees_registered": "ReUjXyzT1aB", "crossings_turned_back": "TbQ8vFzUe2C"},
            "org_units": {mapped.to_string(): "OuA1b2C3d4E"}
        }))
        .expect("json"),
    )
    .expect("mapping written");
    let s = Server::start_on(db, &["--dhis2-mapping", mapping.to_str().expect("path")]);
    let a = place(&s, Some(mapped), "一片区").await;
    let b = place(&s, None, "二片区").await;
    returnee(&s, &a, "high").await;
    returnee(&s, &b, "low").await;
    let day = today(&s).await;

    // Zone A attests today with the figures it recorded.
    let submitted = s
        .put(
            &format!("/v1/zones/{}/daily-reports/{day}", a.0),
            json!({"zero_report": false, "submitted_by": "李明"}),
        )
        .await
        .ok();
    let wanted = position(&submitted);
    let pull = s
        .get(&format!(
            "/v1/reports/daily?date={day}&min_position={wanted}"
        ))
        .await
        .ok();
    let rows = pull["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    let row_a = rows.iter().find(|r| r["zone_id"] == a.0).expect("zone A");
    assert_eq!(row_a["report"]["state"], "submitted");
    assert_eq!(row_a["report"]["attested"]["returnees_registered"], 1);
    assert_eq!(row_a["figures"]["returnees_registered"], 1);
    let row_b = rows.iter().find(|r| r["zone_id"] == b.0).expect("zone B");
    assert_eq!(row_b["report"]["state"], "pending");
    let total = &pull["totals"][0];
    assert_eq!(total["figures"]["returnees_registered"], 2);
    assert_eq!(total["completeness"]["expected"], 2);
    assert_eq!(total["completeness"]["submitted"], 1);
    assert_eq!(total["completeness"]["on_time"], 1);
    assert_eq!(total["completeness"]["reporting_rate"], 0.5);

    // Work recorded for the day after its report amends it, saying what changed.
    let late = returnee(&s, &a, "high").await.1;
    let report = s
        .get(&format!("/v1/zones/{}/daily-reports/{day}", a.0))
        .await
        .ok();
    assert_eq!(report["status"]["state"], "amended");
    assert_eq!(report["status"]["amendments"], 1);
    let changes = report["status"]["changes"].as_array().expect("changes");
    assert!(
        changes.contains(&json!({"figure": "returnees_registered", "as_submitted": 1, "now": 2})),
        "{changes:?}"
    );

    // CSV: a header of stable names, then a row per zone and day.
    let csv = s
        .get(&format!(
            "/v1/reports/daily?date={day}&format=csv&min_position={late}"
        ))
        .await;
    assert_eq!(
        csv.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/csv; charset=utf-8")
    );
    let text = csv.body.as_str().expect("csv text").to_owned();
    // A byte-order mark first, for Excel on a Chinese-locale Windows.
    let text = text.strip_prefix('\u{feff}').expect("a BOM").to_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with(
        "date,zone_id,zone_name,report_state,submitted,zero_report,late,amended,revision,first_submitted_at,returnees_registered,"
    ));
    let header: Vec<&str> = lines[0].split(',').collect();
    let registered = header
        .iter()
        .position(|c| *c == "returnees_registered")
        .expect("column");
    let line_a: Vec<&str> = lines
        .iter()
        .find(|l| l.contains(&a.0))
        .expect("zone A row")
        .split(',')
        .collect();
    assert_eq!(line_a.len(), header.len());
    assert_eq!(line_a[0], day);
    assert_eq!(line_a[3], "amended");
    assert_eq!(line_a[registered], "2");

    // Asked for by Accept, and without the mark when told so.
    let negotiated = s
        .send(
            s.client
                .get(s.url(&format!("/v1/reports/daily?date={day}&bom=false")))
                .header("Accept", "text/csv"),
        )
        .await;
    assert_eq!(
        negotiated
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/csv; charset=utf-8")
    );
    assert_eq!(
        negotiated.body.as_str(),
        Some(text.as_str()),
        "the same rows, no mark"
    );

    // DHIS2: zone B has no org unit. It did not report, so it has nothing to
    // send and the pull goes ahead; asked for its recorded figures, the pull
    // is refused naming it.
    s.get(&format!(
        "/v1/reports/daily?date={day}&format=dhis2&include_unattested=true"
    ))
    .await
    .problem(409, "dhis2_zone_unmapped");
    let township = s
        .get(&format!("/v1/reports/daily?date={day}&format=dhis2"))
        .await
        .ok();
    assert!(township["dataValues"]
        .as_array()
        .expect("values")
        .iter()
        .all(|v| v["orgUnit"] == "OuA1b2C3d4E"));
    // Zone A alone: one data set report for DHIS2's POST /api/dataValueSets.
    let set = s
        .get(&format!(
            "/v1/reports/daily?date={day}&format=dhis2&zone_id={}",
            a.0
        ))
        .await
        .ok();
    let period = day.replace('-', "");
    assert_eq!(set["dataSet"], "QX4ZTUbOt3a");
    assert_eq!(set["period"], period);
    assert_eq!(set["orgUnit"], "OuA1b2C3d4E");
    assert_eq!(
        set["completeDate"], day,
        "submitted today, on the township's day"
    );
    assert!(
        set.get("completeDataSetRegistrations").is_none(),
        "its own document"
    );
    let values = set["dataValues"].as_array().expect("values");
    assert_eq!(
        values.len(),
        1,
        "the mapped figures the report attests: crossings were 0, so not attested"
    );
    // What the leader attested (1), not the 2 recorded since: the late
    // registration amends the day, and DHIS2 gets it once it is attested again.
    assert!(values.contains(&json!({"dataElement": "ReUjXyzT1aB", "period": period, "orgUnit": "OuA1b2C3d4E", "value": "1"})));

    // Zone B gets its org unit through the API (admin only, a DHIS2 uid).
    let link = format!("/v1/zones/{}/dhis2-org-unit", b.0);
    s.put(&link, json!({"org_unit": "not a uid"}))
        .await
        .problem(422, "invalid_fields");
    let worker = s.create_token("zone_worker", &[&b.0], "二片区网格员").await;
    s.send_raw(
        s.client
            .put(s.url(&link))
            .bearer_auth(&worker)
            .json(&json!({"org_unit": "OuB9z8Y7x6W"})),
    )
    .await
    .problem(403, "forbidden");
    // Not zone A's: DHIS2 would file both zones' days in one place.
    s.put(&link, json!({"org_unit": "OuA1b2C3d4E"}))
        .await
        .problem(409, "dhis2_org_unit_taken");
    let linked = s.put(&link, json!({"org_unit": "OuB9z8Y7x6W"})).await.ok();
    assert_eq!(linked["events"][0]["type"], "Dhis2OrgUnitLinked");
    let zone_b = s.get(&format!("/v1/zones/{}", b.0)).await.ok();
    assert_eq!(zone_b["dhis2_org_unit"], "OuB9z8Y7x6W");
    let at = linked["position"].as_u64().expect("position");

    // Both zones: B did not report, so DHIS2 gets nothing of it unless asked.
    let both = s
        .get(&format!(
            "/v1/reports/daily?date={day}&format=dhis2&min_position={at}"
        ))
        .await
        .ok();
    let units = |set: &serde_json::Value| -> Vec<String> {
        let mut units: Vec<String> = set["dataValues"]
            .as_array()
            .expect("values")
            .iter()
            .filter_map(|v| v["orgUnit"].as_str().map(str::to_owned))
            .collect();
        units.dedup();
        units
    };
    assert_eq!(units(&both), vec!["OuA1b2C3d4E"]);
    assert!(both.get("period").is_none(), "several zones: on each value");
    let all = s
        .get(&format!(
            "/v1/reports/daily?date={day}&format=dhis2&include_unattested=true"
        ))
        .await
        .ok();
    assert_eq!(units(&all), vec!["OuA1b2C3d4E", "OuB9z8Y7x6W"]);

    // Completions: DHIS2's POST /api/completeDataSetRegistrations, one per report.
    let completions = s
        .get(&format!(
            "/v1/reports/daily?date={day}&format=dhis2-completions"
        ))
        .await
        .ok();
    let complete = completions["completeDataSetRegistrations"]
        .as_array()
        .expect("registrations");
    assert_eq!(complete.len(), 1);
    assert_eq!(complete[0]["dataSet"], "QX4ZTUbOt3a");
    assert_eq!(complete[0]["organisationUnit"], "OuA1b2C3d4E");
    assert_eq!(complete[0]["period"], period);
    assert_eq!(complete[0]["date"], day);
    assert_eq!(complete[0]["completed"], true);

    // An attested figure must be a figure.
    s.put(
        &format!("/v1/zones/{}/daily-reports/{day}", a.0),
        json!({"zero_report": false, "submitted_by": "李明", "figures": {"returnees_registerd": 2}}),
    )
    .await
    .problem(422, "invalid_fields");
}

async fn as_of_reads_show_the_dashboards_as_they_stood(db: Arc<TestDb>) {
    let s = Server::start_on(db, &[]);
    let a = place(&s, None, "一片区").await;
    let (_, at) = returnee(&s, &a, "high").await;
    let then = s.get(&format!("/v1/dashboard?min_position={at}")).await;
    assert_eq!(projected(&then), at);
    let then = then.ok();
    let zone_then = s
        .get(&format!("/v1/zones/{}/dashboard?min_position={at}", a.0))
        .await
        .ok();
    // Later work.
    let mut last = at;
    for _ in 0..3 {
        last = returnee(&s, &a, "low").await.1;
    }
    let now = s
        .get(&format!("/v1/dashboard?min_position={last}"))
        .await
        .ok();
    assert_eq!(now["day"]["returnees_registered"], 4);

    let as_of = s.get(&format!("/v1/dashboard?as_of={at}")).await;
    assert_eq!(projected(&as_of), at);
    let as_of = as_of.ok();
    for part in ["position", "day", "to_date", "standing", "zones"] {
        assert_eq!(as_of[part], then[part], "{part}");
    }
    let zone_as_of = s
        .get(&format!("/v1/zones/{}/dashboard?as_of={at}", a.0))
        .await
        .ok();
    for part in ["position", "day", "to_date", "standing"] {
        assert_eq!(zone_as_of[part], zone_then[part], "{part}");
    }
    // The same moment named by its time.
    let event = s
        .get(&format!("/v1/events?cursor={}&limit=1", at - 1))
        .await
        .ok();
    let recorded_at = event["items"][0]["recorded_at"]
        .as_str()
        .expect("recorded_at")
        .to_owned();
    let by_time = s
        .get(&format!(
            "/v1/dashboard?as_of={}",
            recorded_at.replace('+', "%2B")
        ))
        .await
        .ok();
    assert_eq!(by_time["position"], at);
    assert_eq!(by_time["day"], then["day"]);
    // Before anything was recorded: an empty township.
    let empty = s.get("/v1/dashboard?as_of=0").await.ok();
    assert_eq!(empty["position"], 0);
    assert_eq!(empty["zones"], json!([]));
}

fn rebuild(db: &TestDb) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_fangkong"))
        .arg("rebuild")
        .env("FANGKONG_DATABASE_URL", db.url())
        .envs(support::state_key_env(db))
        .output()
        .expect("fangkong rebuild runs")
}

async fn read_models_survive_a_restart_equal_to_a_rebuild(db: Arc<TestDb>) {
    let s = Server::start_on(db.clone(), &[]);
    let a = place(&s, None, "一片区").await;
    for risk in ["high", "medium", "low", "high"] {
        let (r, _) = returnee(&s, &a, risk).await;
        s.post(&format!("/v1/returnees/{r}/quarantine"), json!({}))
            .await
            .ok();
    }
    // The figures compared after the restart must be those at the head:
    // a read at an earlier position could miss the last quarantine.
    let head = s.get("/v1/audit/head").await.ok()["position"].clone();
    let before = s
        .get(&format!("/v1/dashboard?min_position={head}"))
        .await
        .ok();
    assert_eq!(before["position"], head);
    assert!(s.stop().success(), "a clean stop saves the read models");

    let out = rebuild(&db);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "saved state at position {head} equals the rebuild"
        )),
        "saved at the head when stopping: {said}"
    );

    let s = Server::start_on(db.clone(), &[]);
    let after = s
        .get(&format!(
            "/v1/dashboard?min_position={}",
            before["position"]
        ))
        .await
        .ok();
    assert_eq!(after["to_date"], before["to_date"]);
    assert_eq!(after["standing"], before["standing"]);
    let (r, _) = returnee(&s, &a, "high").await;
    s.post(&format!("/v1/returnees/{r}/quarantine"), json!({}))
        .await
        .ok();
    assert!(s.stop().success());
    let out = rebuild(&db);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.contains("equals the rebuild"),
        "{said}"
    );
}

/// Zone dashboards are rendered once per position and second and shared:
/// a write shows at once to the next read of its zone, one zone's render
/// never answers for another, a zone worker of one zone still cannot read
/// the other's, and a day or an `as_of` read is its own render.
async fn a_shared_zone_dashboard_render_follows_writes_and_stays_in_its_zone(db: Arc<TestDb>) {
    let s = Server::start_on(db, &[]);
    let a = place(&s, None, "一片区").await;
    let b = place(&s, None, "二片区").await;
    let (_, at) = returnee(&s, &a, "high").await;
    let read = |zone: String, query: String| {
        let s = &s;
        async move {
            s.get(&format!("/v1/zones/{zone}/dashboard?{query}"))
                .await
                .ok()
        }
    };
    let before_a = read(a.0.clone(), format!("min_position={at}")).await;
    let before_b = read(b.0.clone(), format!("min_position={at}")).await;
    assert_eq!(before_a["day"]["returnees_registered"], 1);
    assert_eq!(before_b["day"]["returnees_registered"], 0);
    assert_eq!(before_b["name"], "二片区");
    // Read again at once: the same answer, byte for byte, each its own.
    assert_eq!(read(a.0.clone(), String::new()).await, before_a);
    assert_eq!(read(b.0.clone(), String::new()).await, before_b);

    let (_, moved) = returnee(&s, &b, "low").await;
    let after_b = read(b.0.clone(), format!("min_position={moved}")).await;
    assert_eq!(after_b["day"]["returnees_registered"], 1);
    assert_eq!(after_b["position"], moved);
    let after_a = read(a.0.clone(), format!("min_position={moved}")).await;
    assert_eq!(after_a["day"]["returnees_registered"], 1);
    assert_eq!(after_a["position"], moved);

    // Another day is its own render; so is a read as of the first write.
    let tomorrow = (chrono::NaiveDate::parse_from_str(&today(&s).await, "%Y-%m-%d")
        .expect("a date")
        + chrono::Duration::days(1))
    .to_string();
    let next_day = read(b.0.clone(), format!("date={tomorrow}")).await;
    assert_eq!(next_day["date"], tomorrow);
    assert_eq!(next_day["day"]["returnees_registered"], 0);
    let then = read(b.0.clone(), format!("as_of={at}")).await;
    assert_eq!(then["day"]["returnees_registered"], 0);

    // A worker of zone A is refused B's dashboard, rendered or not.
    let worker = s
        .post(
            "/v1/tokens",
            json!({"name": "一片区 村医", "role": "zone_worker", "zones": [a.0]}),
        )
        .await
        .ok();
    let token = worker["token"].as_str().expect("a token").to_owned();
    let as_worker = |zone: &str| {
        s.send_raw(
            s.client
                .get(s.url(&format!("/v1/zones/{zone}/dashboard")))
                .bearer_auth(&token),
        )
    };
    assert_eq!(as_worker(&a.0).await.ok()["name"], "一片区");
    as_worker(&b.0).await.problem(404, "not_found");
}

fangkong_store::each_backend!(
    a_shared_zone_dashboard_render_follows_writes_and_stays_in_its_zone,
    dashboards_read_their_own_writes_and_sum_to_the_township,
    the_county_pulls_daily_aggregates_as_json_csv_and_dhis2,
    as_of_reads_show_the_dashboards_as_they_stood,
    read_models_survive_a_restart_equal_to_a_rebuild,
);
