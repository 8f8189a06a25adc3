//! The demo township: a believable three weeks of control work built from
//! the seed document, generated deterministically (seeded), and sent as a
//! field app sends its offline queue: batch items through the API's
//! batch path, each held to its route's rules and recorded by the
//! application layer like any real request.
//!
//! The story ends yesterday, so quarantines are under way today, some visits
//! are overdue and the roster has something to show. It fills an empty store
//! only: a store that already holds events is left alone.

use chrono::{Days, NaiveDate, NaiveTime, TimeZone, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use fangkong_api::extract::WriteHeaders;
use fangkong_api::problem::ApiError;
use fangkong_api::routes::batches::{run_commands, BatchCommand};
use fangkong_api::AppState;

/// Days of history the demo covers.
pub const DAYS: u64 = 21;
const SEED: u64 = 0x2020_0123_f4a6_b0c1;

/// splitmix64: tiny, seeded, good enough to make a demo look lived-in.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn uuid(&mut self) -> Uuid {
        // A v7-shaped id from the seed, so ids sort and look like the server's.
        let hi = (self.next() & 0xFFFF_FFFF_FFFF_0FFF) | 0x7000;
        let lo = (self.next() & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
        Uuid::from_u64_pair(hi, lo)
    }

    fn temperature(&mut self) -> f64 {
        (360 + self.below(9)) as f64 / 10.0
    }
}

const SURNAMES: &[&str] = &[
    "张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超",
];
const ZONES: &[(&str, &str)] = &[
    ("一片区", "李明"),
    ("二片区", "王建国"),
    ("三片区", "陈志强"),
    ("四片区", "刘红梅"),
];
const VILLAGES: &[&str] = &[
    "桥头村",
    "河口村",
    "新塘村",
    "石门村",
    "柳树湾村",
    "东山村",
    "南岭社区",
    "西坪村",
    "下湾村",
    "高桥村",
    "枫林村",
    "龙潭村",
];
const HUBEI: &[&str] = &[
    "湖北省孝感市",
    "湖北省黄冈市",
    "湖北省襄阳市",
    "湖北省荆州市",
];
const ELSEWHERE: &[&str] = &[
    "广东省深圳市",
    "浙江省温州市",
    "上海市",
    "北京市",
    "江苏省苏州市",
    "湖南省长沙市",
];

/// A resident ID number with a valid check character.
fn resident_id(rng: &mut Rng) -> String {
    let birth = NaiveDate::from_ymd_opt(1950, 1, 1)
        .and_then(|d| d.checked_add_days(Days::new(rng.below(365 * 50))))
        .unwrap_or_default();
    let body = format!("430521{}{:03}", birth.format("%Y%m%d"), rng.below(1000));
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .chars()
        .zip(weights)
        .map(|(c, w)| c.to_digit(10).unwrap_or(0) * w)
        .sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body}{check}")
}

fn phone(rng: &mut Rng) -> String {
    format!("1{}{:09}", 3 + rng.below(7), rng.below(1_000_000_000))
}

fn person(rng: &mut Rng) -> String {
    format!("{}{}", rng.pick(SURNAMES), rng.pick(GIVEN))
}

/// Collects the demo's commands in the order they happened.
struct Script {
    commands: Vec<BatchCommand>,
    first_day: NaiveDate,
    township: fangkong_domain::Township,
}

impl Script {
    fn at(&self, day: u64, hour: u32, minute: u32) -> Value {
        let date = self.first_day + Days::new(day);
        let local =
            date.and_time(NaiveTime::from_hms_opt(hour, minute % 60, 0).unwrap_or_default());
        let instant = self
            .township
            .time_zone
            .from_local_datetime(&local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(Utc::now);
        json!(instant)
    }

    fn push(&mut self, method: &str, path: String, mut body: Value, day: u64, hour: u32) {
        let n = self.commands.len();
        if let Some(fields) = body.as_object_mut() {
            fields.insert("occurred_at".into(), self.at(day, hour, (n % 60) as u32));
        }
        self.commands.push(BatchCommand {
            method: method.into(),
            path,
            idempotency_key: Some(format!("demo:{n}")),
            if_match: None,
            body,
        });
    }

    fn date(&self, day: u64) -> String {
        (self.first_day + Days::new(day)).to_string()
    }
}

/// Fills an empty store with the demo township. Returns the number of events
/// added (0 when the store already held events).
pub async fn fill(state: &AppState) -> Result<u64, DemoError> {
    let head = state.store().head().await.map_err(ApiError::from)?;
    if head.position > 0 {
        return Ok(0);
    }
    let township = state.commands.township();
    let today = township.local_date(Utc::now());
    let script = build(township, today - Days::new(DAYS));
    let headers = WriteHeaders::<fangkong_api::access::Admin> {
        request_id: "demo".into(),
        ..WriteHeaders::system()
    };
    let mut results = run_commands(state, &headers, &script.commands).await;
    // A command answered 503 (the store or the figures busy on a loaded
    // machine) is sent again, as a field app would: its key makes that safe.
    for _ in 0..5 {
        let busy: Vec<usize> = (0..results.len())
            .filter(|i| results[*i].status == 503)
            .collect();
        if busy.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        for i in busy {
            let again =
                run_commands(state, &headers, std::slice::from_ref(&script.commands[i])).await;
            if let Some(answer) = again.into_iter().next() {
                results[i] = answer;
            }
        }
    }
    // Every demo command must pass the same rules as a real one; a refusal
    // is a bug of the script, and a storage failure stops the fill.
    for (command, result) in script.commands.iter().zip(&results) {
        if let Some(problem) = &result.problem {
            return Err(DemoError {
                path: command.path.clone(),
                problem: problem.detail.clone(),
                code: problem.code.clone(),
            });
        }
    }
    Ok(state.store().head().await.map_err(ApiError::from)?.position)
}

/// A demo command the service refused.
#[derive(Debug, thiserror::Error)]
#[error("demo command {path} refused ({code}): {problem}")]
pub struct DemoError {
    pub path: String,
    pub code: String,
    pub problem: String,
}

impl From<ApiError> for DemoError {
    fn from(e: ApiError) -> Self {
        let problem = e.problem();
        DemoError {
            path: String::new(),
            code: problem.code,
            problem: problem.detail,
        }
    }
}

fn build(township: fangkong_domain::Township, first_day: NaiveDate) -> Script {
    let mut rng = Rng(SEED);
    let mut s = Script {
        commands: Vec::new(),
        first_day,
        township,
    };
    // Geography: zones, leaders, villages, grids; a checkpoint per village.
    let mut grids: Vec<(Uuid, Uuid, Uuid)> = Vec::new();
    let mut zones = Vec::new();
    let mut checkpoints = Vec::new();
    for (z, (zone_name, leader)) in ZONES.iter().enumerate() {
        let zone = rng.uuid();
        zones.push(zone);
        s.push(
            "POST",
            "/v1/zones".into(),
            json!({"zone_id": zone, "name": zone_name}),
            0,
            7,
        );
        s.push(
            "PUT",
            format!("/v1/zones/{zone}/leader"),
            json!({"leader": leader, "phone": phone(&mut rng)}),
            0,
            7,
        );
        // The county links each zone to its DHIS2 org unit through the API.
        s.push(
            "PUT",
            format!("/v1/zones/{zone}/dhis2-org-unit"),
            json!({"org_unit": org_unit(z)}),
            0,
            7,
        );
        for village_name in &VILLAGES[z * 3..z * 3 + 3] {
            let village = rng.uuid();
            s.push(
                "POST",
                format!("/v1/zones/{zone}/villages"),
                json!({"village_id": village, "name": village_name}),
                0,
                7,
            );
            for g in 0..(2 + rng.below(2)) {
                let grid = rng.uuid();
                let name = ["一组", "二组", "三组"][g as usize];
                s.push("POST", format!("/v1/zones/{zone}/grids"),
                    json!({"grid_id": grid, "village_id": village, "name": name, "households": 30 + rng.below(40)}), 0, 7);
                grids.push((zone, village, grid));
            }
            let checkpoint = rng.uuid();
            s.push(
                "POST",
                "/v1/checkpoints".into(),
                json!({"checkpoint_id": checkpoint, "zone_id": zone, "village_id": village,
                       "name": format!("{village_name}路口"), "kind": "village_entrance"}),
                0,
                8,
            );
            checkpoints.push(checkpoint);
        }
    }
    let gate = rng.uuid();
    s.push("POST", "/v1/checkpoints".into(),
        json!({"checkpoint_id": gate, "zone_id": zones[0], "name": "镇政府大门", "kind": "compound_gate"}), 0, 8);

    // Venues: mahjong parlours closed (one raided), businesses committing.
    for (z, zone) in zones.iter().enumerate() {
        for p in 0..3 {
            let venue = rng.uuid();
            let kind = if p == 2 {
                "card_room"
            } else {
                "mahjong_parlour"
            };
            s.push("POST", "/v1/venues".into(),
                json!({"venue_id": venue, "zone_id": zone, "kind": kind, "name": format!("{}{}号棋牌室", ZONES[z].0, p + 1)}), 1, 9);
            s.push(
                "POST",
                format!("/v1/venues/{venue}/closure"),
                json!({"notice_posted": true}),
                1 + p,
                10,
            );
            if z == 1 && p == 0 {
                s.push(
                    "POST",
                    format!("/v1/venues/{venue}/enforcement-actions"),
                    json!({"action": "tables_confiscated", "count": 4}),
                    6,
                    21,
                );
                s.push(
                    "POST",
                    format!("/v1/venues/{venue}/enforcement-actions"),
                    json!({"action": "owners_admonished", "count": 1}),
                    6,
                    21,
                );
                s.push(
                    "POST",
                    format!("/v1/venues/{venue}/enforcement-actions"),
                    json!({"action": "players_admonished", "count": 6}),
                    6,
                    21,
                );
                s.push(
                    "POST",
                    format!("/v1/venues/{venue}/enforcement-actions"),
                    json!({"action": "dismantled"}),
                    6,
                    22,
                );
            }
        }
        for (i, kind) in ["hotel", "restaurant", "supermarket", "shop"]
            .iter()
            .enumerate()
        {
            let venue = rng.uuid();
            s.push("POST", "/v1/venues".into(),
                json!({"venue_id": venue, "zone_id": zone, "kind": kind, "name": format!("{}{}", ZONES[z].0, ["宾馆", "饭店", "超市", "商店"][i])}), 1, 9);
            s.push(
                "POST",
                format!("/v1/venues/{venue}/commitments"),
                json!({"signed_by": person(&mut rng)}),
                2,
                11,
            );
        }
        // Banquets: a wedding postponed, one cancelled, a funeral scaled down.
        let planned = s.date(5 + z as u64);
        for (kind, outcome) in [
            ("wedding", "postpone"),
            ("wedding", "cancel"),
            ("funeral", "scale"),
        ] {
            let banquet = rng.uuid();
            s.push("POST", "/v1/banquets".into(),
                json!({"banquet_id": banquet, "zone_id": zone, "kind": kind, "planned_date": planned,
                       "expected_guests": 80 + rng.below(200), "host": {"name": format!("{}家", rng.pick(SURNAMES))}}), 2, 15);
            match outcome {
                "postpone" => s.push(
                    "POST",
                    format!("/v1/banquets/{banquet}/postponement"),
                    json!({"new_date": s.date(DAYS + 90)}),
                    3,
                    16,
                ),
                "cancel" => s.push(
                    "POST",
                    format!("/v1/banquets/{banquet}/cancellation"),
                    json!({"reason": "响应防控要求"}),
                    3,
                    16,
                ),
                _ => s.push(
                    "POST",
                    format!("/v1/banquets/{banquet}/scale-down"),
                    json!({"guests": 10}),
                    3,
                    16,
                ),
            }
        }
    }

    // Returnees: a few hundred over three weeks, most of them in the first.
    let mut fever_done = false;
    for n in 0..260u64 {
        let arrival = (n * n) / (260 * 260 / (DAYS - 2)).max(1);
        let arrival = arrival.min(DAYS - 1);
        // The last zone records nothing on the first day: its zero report.
        let quiet_zone = zones[ZONES.len() - 1];
        let (zone, village, grid) = loop {
            let g = *rng.pick(&grids);
            if arrival > 0 || g.0 != quiet_zone {
                break g;
            }
        };
        let returnee = rng.uuid();
        let (region, risk) = match rng.below(100) {
            0..=14 => ("湖北省武汉市", "high"),
            15..=39 => (*rng.pick(HUBEI), "medium"),
            _ => (*rng.pick(ELSEWHERE), "low"),
        };
        s.push("POST", "/v1/returnees".into(), json!({
            "returnee_id": returnee, "zone_id": zone, "village_id": village, "grid_id": grid,
            "arrival_date": s.date(arrival),
            "origin": {"region": region, "risk": risk},
            "personal": {"name": person(&mut rng), "resident_id": resident_id(&mut rng),
                         "phone": phone(&mut rng), "address": format!("{}号", 1 + rng.below(90))}
        }), arrival, 9);
        let base = format!("/v1/returnees/{returnee}");
        s.push(
            "POST",
            format!("{base}/screenings"),
            json!({
            "temperature": rng.temperature(), "identity_checked": true, "came_from": region,
            "going_to": "家中", "screened_by": "村医"}),
            arrival,
            10,
        );
        let team: Vec<Value> = [
            "village_stationed_cadre",
            "village_cadre",
            "group_leader",
            "village_doctor",
            "auxiliary_police",
        ]
        .iter()
        .map(|role| json!({"role": role, "name": person(&mut rng)}))
        .collect();
        s.push(
            "PUT",
            format!("{base}/responsibility-team"),
            json!({"members": team}),
            arrival,
            11,
        );
        if risk == "low" && rng.chance(50) {
            continue;
        }
        s.push(
            "POST",
            format!("{base}/quarantine"),
            json!({"planned_days": 14}),
            arrival,
            12,
        );
        let last_day = (arrival + 13).min(DAYS - 1);
        let mut ended = false;
        for day in arrival..=last_day {
            // Some visits are missed: they show as overdue on the roster.
            if day > arrival && rng.chance(4) {
                continue;
            }
            let fever = !fever_done && risk == "high" && day == arrival + 3;
            let temperature = if fever { 38.2 } else { rng.temperature() };
            s.push(
                "POST",
                format!("{base}/health-checks"),
                json!({"temperature": temperature, "visited_by": "村医"}),
                day,
                8 + (n % 4) as u32,
            );
            if fever {
                fever_done = true;
                s.push(
                    "POST",
                    format!("{base}/referrals"),
                    json!({"facility": "县人民医院发热门诊"}),
                    day,
                    14,
                );
                s.push(
                    "POST",
                    format!("{base}/quarantine/end"),
                    json!({"reason": "referred_for_treatment"}),
                    day,
                    15,
                );
                ended = true;
                break;
            }
        }
        if arrival + 13 < DAYS && !ended {
            s.push(
                "POST",
                format!("{base}/quarantine/end"),
                json!({"reason": "completed"}),
                arrival + 13,
                17,
            );
        }
    }

    // Daily zone work: crossings, publicity, patrols, a dispersed gathering;
    // staff morning checks at the township compound.
    for day in 0..DAYS {
        for (z, zone) in zones.iter().enumerate() {
            if day == 0 && z == ZONES.len() - 1 {
                continue;
            }
            for c in 0..3 {
                let checkpoint = checkpoints[z * 3 + c];
                for _ in 0..(2 + rng.below(4)) {
                    let (region, risk) = if rng.chance(10) {
                        ("湖北省武汉市", "high")
                    } else {
                        (*rng.pick(ELSEWHERE), "low")
                    };
                    let outcome = if risk == "high" {
                        "turned_back"
                    } else if rng.chance(10) {
                        "referred_to_quarantine"
                    } else {
                        "admitted"
                    };
                    let body = if rng.chance(30) {
                        json!({"subject": "vehicle", "people": 1 + rng.below(4), "plate": format!("湘N{:05}", rng.below(100_000)),
                               "temperature": rng.temperature(), "origin": {"region": region, "risk": risk}, "outcome": outcome})
                    } else {
                        json!({"subject": "person", "temperature": rng.temperature(),
                               "origin": {"region": region, "risk": risk}, "outcome": outcome})
                    };
                    s.push(
                        "POST",
                        format!("/v1/checkpoints/{checkpoint}/crossings"),
                        body,
                        day,
                        9 + rng.below(9) as u32,
                    );
                }
            }
            for channel in ["leaflet", "wechat_message", "village_loudspeaker"] {
                s.push(
                    "POST",
                    format!("/v1/zones/{zone}/publicity"),
                    json!({"channel": channel, "quantity": 20 + rng.below(200)}),
                    day,
                    10,
                );
            }
            if day == 0 {
                s.push(
                    "POST",
                    format!("/v1/zones/{zone}/publicity"),
                    json!({"channel": "banner", "quantity": 12}),
                    day,
                    10,
                );
                s.push(
                    "POST",
                    format!("/v1/zones/{zone}/publicity"),
                    json!({"channel": "market_day_cancelled", "quantity": 1}),
                    day,
                    10,
                );
            }
            s.push("POST", format!("/v1/zones/{zone}/patrols"),
                json!({"patrol_group": format!("{}巡逻组", ZONES[z].0), "persuaded": rng.below(15)}), day, 19);
            if rng.chance(20) {
                s.push("POST", format!("/v1/zones/{zone}/gathering-dispersals"),
                    json!({"people": 4 + rng.below(8), "location": format!("{}村口", VILLAGES[z * 3])}), day, 20);
            }
        }
        for staff in 0..12 {
            s.push("POST", "/v1/staff-health-checks".into(),
                json!({"staff": format!("镇干部{:02}", staff + 1), "temperature": rng.temperature()}), day, 8);
        }
    }
    // Daily reports, each due by 10:00 the next day: on time, except one
    // late and one missing; the quiet zone's first day is a zero report.
    for day in 0..DAYS - 1 {
        for (z, zone) in zones.iter().enumerate() {
            if z == 2 && day == 10 {
                continue;
            }
            let zero_report = day == 0 && z == ZONES.len() - 1;
            let hour = if z == 1 && day == 5 { 15 } else { 9 };
            s.push(
                "PUT",
                format!("/v1/zones/{zone}/daily-reports/{}", s.date(day)),
                json!({"zero_report": zero_report, "submitted_by": ZONES[z].1}),
                day + 1,
                hour,
            );
        }
    }
    s
}

/// The demo zones' ids, in the order they are established (一片区 first).
pub fn zone_ids() -> Vec<Uuid> {
    let script = build(
        fangkong_domain::Township::default(),
        NaiveDate::from_ymd_opt(2020, 1, 20).unwrap_or_default(),
    );
    script
        .commands
        .iter()
        .filter(|c| c.method == "POST" && c.path == "/v1/zones")
        .filter_map(|c| c.body.get("zone_id")?.as_str()?.parse::<Uuid>().ok())
        .collect()
}

/// The DHIS2 org unit of the demo's `z`th zone (linked through the API).
fn org_unit(z: usize) -> String {
    format!("FkZone{:05}", z + 1)
}

/// The demo township in a county DHIS2: every figure a data element, with
/// ids in DHIS2's shape (a letter, then ten letters or digits). The zones'
/// org units are not here: the demo links them through the API.
pub fn dhis2_mapping() -> fangkong_api::export::Dhis2Mapping {
    fangkong_api::export::Dhis2Mapping {
        data_set: "FkDailyRep1".into(),
        data_elements: fangkong_projections::Figure::ALL
            .iter()
            .enumerate()
            .map(|(i, f)| (f.code().to_owned(), format!("FkFig{:06}", i + 1)))
            .collect(),
        org_units: Default::default(),
        category_option_combo: None,
        attribute_option_combo: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_mapping_names_every_zone_and_figure() {
        let mapping = dhis2_mapping();
        assert_eq!(
            mapping.data_elements.len(),
            fangkong_projections::Figure::ALL.len()
        );
        assert!(mapping.check().is_ok());
        assert!(mapping
            .data_elements
            .values()
            .cloned()
            .chain((0..ZONES.len()).map(org_unit))
            .all(|id| id.len() == 11 && id.starts_with(|c: char| c.is_ascii_alphabetic())));
    }

    #[test]
    fn the_demo_script_is_the_same_every_time() {
        let first_day = NaiveDate::from_ymd_opt(2020, 1, 20).expect("date");
        let a = build(fangkong_domain::Township::default(), first_day);
        let b = build(fangkong_domain::Township::default(), first_day);
        assert_eq!(a.commands.len(), b.commands.len());
        assert!(a
            .commands
            .iter()
            .zip(&b.commands)
            .all(|(x, y)| x.path == y.path && x.body == y.body));
        assert!(a.commands.len() > 3_000, "{} commands", a.commands.len());
    }

    #[test]
    fn generated_resident_ids_carry_a_valid_check_character() {
        let mut rng = Rng(7);
        for _ in 0..100 {
            let id = resident_id(&mut rng);
            assert!(
                fangkong_domain::ResidentIdNumber::parse(&id).is_ok(),
                "{id}"
            );
            assert!(fangkong_domain::PhoneNumber::parse(&phone(&mut rng)).is_ok());
        }
    }
}
