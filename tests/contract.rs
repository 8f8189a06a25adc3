//! The published contract as a client developer uses it: every request
//! example is sent, in an order that makes the ids it names exist first, to
//! a server on each backend. Each must be accepted, or refused only by a
//! domain rule the operation's description names. An example that does
//! not deserialise into the handler's type (a route documenting another
//! route's body, a field that is not a figure) fails here with its 422.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use fangkong_store::testing::TestDb;
use serde_json::Value;
use support::Server;

/// Every operation with a request body, in the order a township's work
/// makes the ids each example names exist first.
const ORDER: &[(&str, &str)] = &[
    ("POST", "/v1/zones"),
    ("POST", "/v1/zones/{zone_id}/villages"),
    ("POST", "/v1/zones/{zone_id}/grids"),
    ("PUT", "/v1/zones/{zone_id}/leader"),
    ("PUT", "/v1/zones/{zone_id}/dhis2-org-unit"),
    ("POST", "/v1/tokens"),
    ("POST", "/v1/returnees"),
    ("POST", "/v1/returnees/{returnee_id}/screenings"),
    ("PUT", "/v1/returnees/{returnee_id}/responsibility-team"),
    ("POST", "/v1/returnees/{returnee_id}/quarantine"),
    ("POST", "/v1/returnees/{returnee_id}/health-checks"),
    ("POST", "/v1/batches"),
    ("POST", "/v1/returnees/{returnee_id}/abnormal-conditions"),
    ("POST", "/v1/returnees/{returnee_id}/referrals"),
    ("POST", "/v1/returnees/{returnee_id}/quarantine/extension"),
    ("POST", "/v1/returnees/{returnee_id}/exposures"),
    ("POST", "/v1/returnees/{returnee_id}/quarantine/end"),
    ("POST", "/v1/checkpoints"),
    ("POST", "/v1/checkpoints/{checkpoint_id}/crossings"),
    ("POST", "/v1/venues"),
    ("POST", "/v1/venues/{venue_id}/commitments"),
    ("POST", "/v1/venues/{venue_id}/closure"),
    ("POST", "/v1/venues/{venue_id}/enforcement-actions"),
    ("POST", "/v1/venues/{venue_id}/reopening"),
    ("POST", "/v1/banquets"),
    ("POST", "/v1/banquets/{banquet_id}/postponement"),
    ("POST", "/v1/banquets/{banquet_id}/scale-down"),
    ("POST", "/v1/banquets/{banquet_id}/cancellation"),
    ("POST", "/v1/zones/{zone_id}/gathering-dispersals"),
    ("POST", "/v1/zones/{zone_id}/patrols"),
    ("POST", "/v1/zones/{zone_id}/publicity"),
    ("POST", "/v1/staff-health-checks"),
    ("PUT", "/v1/zones/{zone_id}/daily-reports/{date}"),
    // Last: they erase the people the examples before them wrote.
    ("POST", "/v1/banquets/{banquet_id}/erasure"),
    ("POST", "/v1/returnees/{returnee_id}/erasure"),
];

/// The example of a request body: on the media type, or on the schema it
/// refers to.
fn example_of(contract: &Value, operation: &Value) -> Option<Value> {
    let media = &operation["requestBody"]["content"]["application/json"];
    if let Some(example) = media.get("example") {
        return Some(example.clone());
    }
    let reference = media["schema"]["$ref"].as_str()?;
    let name = reference.rsplit('/').next()?;
    contract["components"]["schemas"][name]
        .get("example")
        .cloned()
}

/// The operation a concrete method and path reach.
fn operation_at<'c>(contract: &'c Value, method: &str, path: &str) -> Option<&'c Value> {
    let wanted: Vec<&str> = path.split('/').collect();
    contract["paths"]
        .as_object()?
        .iter()
        .find(|(template, _)| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == wanted.len()
                && parts
                    .iter()
                    .zip(&wanted)
                    .all(|(t, w)| t.starts_with('{') || t == w)
        })
        .and_then(|(_, item)| item.get(method.to_lowercase()))
}

/// The headers of ours an answer carries that its operation does not
/// declare for its status. (`Vary` is left out: the CORS layer adds
/// `Vary: Origin` to every answer.)
fn undeclared(operation: &Value, status: u16, headers: &reqwest::header::HeaderMap) -> Vec<String> {
    const OURS: &[&str] = &[
        "x-request-id",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "retry-after",
        "etag",
        "cache-control",
        "location",
        "x-projection-position",
        "x-projection-wanted",
    ];
    let declared: Vec<String> = operation["responses"][status.to_string()]["headers"]
        .as_object()
        .map(|h| h.keys().map(|k| k.to_lowercase()).collect())
        .unwrap_or_default();
    OURS.iter()
        .filter(|name| headers.contains_key(**name) && !declared.iter().any(|d| d == *name))
        .map(|name| format!("{status} {name}"))
        .collect()
}

/// The rule codes an operation's description names (in backticks, in
/// `snake_case`).
fn named_codes(operation: &Value) -> Vec<String> {
    operation["description"]
        .as_str()
        .unwrap_or_default()
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| {
            !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        })
        .map(str::to_owned)
        .collect()
}

async fn every_request_example_is_accepted_or_refused_by_a_documented_rule(db: Arc<TestDb>) {
    let s = Server::start_on(db, &[]);
    let contract = s.get("/openapi.json").await.ok();

    // The order covers every operation that takes a body, and only those.
    let mut with_bodies = vec![];
    for (path, item) in contract["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("an item") {
            if operation.get("requestBody").is_some() {
                with_bodies.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    let mut ordered: Vec<_> = ORDER
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    ordered.sort();
    with_bodies.sort();
    assert_eq!(
        ordered, with_bodies,
        "ORDER lists every operation with a body"
    );

    let today = support::today(&s).await;
    let mut ids: BTreeMap<&str, String> = BTreeMap::from([("date", today)]);
    let mut failures = vec![];
    for (method, template) in ORDER {
        let operation = &contract["paths"][template][method.to_lowercase()];
        let Some(example) = example_of(&contract, operation) else {
            failures.push(format!("{method} {template}: no example"));
            continue;
        };
        let mut path = (*template).to_owned();
        for (name, value) in &ids {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        assert!(!path.contains('{'), "{path}: an id the order has not made");
        let request = match *method {
            "PUT" => s.client.put(s.url(&path)),
            _ => s.client.post(s.url(&path)),
        };
        let reply = s.send(request.json(&example)).await;
        for header in undeclared(operation, reply.status, &reply.headers) {
            failures.push(format!("{method} {template}: undeclared header {header}"));
        }
        match reply.status {
            200..=299 => {
                // What it made is what later examples' paths name.
                let made = reply.body["id"]
                    .as_str()
                    .or(reply.body["token_id"].as_str())
                    .map(str::to_owned);
                let key = match *template {
                    "/v1/zones" => Some("zone_id"),
                    "/v1/returnees" => Some("returnee_id"),
                    "/v1/checkpoints" => Some("checkpoint_id"),
                    "/v1/venues" => Some("venue_id"),
                    "/v1/banquets" => Some("banquet_id"),
                    _ => None,
                };
                if let (Some(key), Some(made)) = (key, made) {
                    ids.insert(key, made);
                }
                if *template == "/v1/batches" {
                    // Each item as its own operation would answer it.
                    let items = example["commands"].as_array().expect("commands");
                    let results = reply.body["results"].as_array().expect("results");
                    for (item, result) in items.iter().zip(results) {
                        let status = result["status"].as_u64().unwrap_or_default();
                        let code = result["problem"]["code"].as_str().unwrap_or_default();
                        let target = operation_at(
                            &contract,
                            item["method"].as_str().unwrap_or_default(),
                            item["path"].as_str().unwrap_or_default(),
                        );
                        let documented = status == 409
                            && target.is_some_and(|op| named_codes(op).iter().any(|c| c == code));
                        if !(200..300).contains(&status) && !documented {
                            failures.push(format!("batch item: {result}"));
                        }
                    }
                }
            }
            409 => {
                let code = reply.body["code"].as_str().unwrap_or_default().to_owned();
                if !named_codes(operation).contains(&code) {
                    failures.push(format!(
                        "{method} {template}: refused by `{code}`, which its description does not name: {}",
                        reply.body
                    ));
                }
            }
            status => failures.push(format!("{method} {template}: {status} {}", reply.body)),
        }
    }
    assert!(failures.is_empty(), "examples that fail: {failures:#?}");

    // Every read of the contract, with the ids the examples made, and again
    // with its ETag: the headers each answer carries are the ones declared.
    let mut undeclared_headers = vec![];
    for (template, item) in contract["paths"].as_object().expect("paths") {
        let Some(operation) = item.get("get") else {
            continue;
        };
        if fangkong_api::contract::LIVE_FEEDS.contains(&template.as_str()) {
            continue;
        }
        let mut path = template.clone();
        for (name, value) in &ids {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        let first = s.get(&path).await;
        undeclared_headers.extend(
            undeclared(operation, first.status, &first.headers)
                .into_iter()
                .map(|h| format!("GET {template}: {h}")),
        );
        if let Some(tag) = first.etag() {
            let again = s
                .send(s.client.get(s.url(&path)).header("If-None-Match", tag))
                .await;
            // Unchanged bytes are a 304; an answer that says when it was
            // read (the head, the metrics counting this very request)
            // changes and comes whole.
            if again.status != 304 {
                let now = s.get(&path).await;
                assert_ne!(
                    now.body, first.body,
                    "GET {template}: the same answer, not a 304"
                );
            }
            undeclared_headers.extend(
                undeclared(operation, again.status, &again.headers)
                    .into_iter()
                    .map(|h| format!("GET {template}: {h}")),
            );
        }
    }
    assert!(
        undeclared_headers.is_empty(),
        "headers sent but not declared: {undeclared_headers:#?}"
    );
}

fangkong_store::each_backend!(every_request_example_is_accepted_or_refused_by_a_documented_rule);
