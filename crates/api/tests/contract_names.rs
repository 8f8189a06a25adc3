//! utoipa keeps one schema per name and drops the others without a word:
//! two request bodies named alike made the contract describe a venue where
//! a returnee is registered. Every type that derives `ToSchema` anywhere in
//! the workspace must have a name of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The name of each type deriving (or implementing) `ToSchema`, with the
/// files that define one.
fn schema_types(crates: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut files = Vec::new();
    rust_files(crates, &mut files);
    let mut names: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let mut deriving = false;
        let mut pages = false;
        let mut macro_made = false;
        for line in text.lines() {
            let line = line.trim();
            // Page schemas made by the `pages!` macro: `ReturneePage => ...`.
            if line.starts_with("pages!(") {
                pages = true;
                continue;
            }
            if pages {
                match line.split_once(" => ") {
                    Some((name, _)) => names.entry(name.to_owned()).or_default().push(file.clone()),
                    None => pages = false,
                }
                continue;
            }
            // A schema written by hand.
            if let Some(rest) = ["impl utoipa::ToSchema for ", "impl ToSchema for "]
                .iter()
                .find_map(|p| line.strip_prefix(p))
            {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.entry(name).or_default().push(file.clone());
                continue;
            }
            // Types the domain's macros declare (ids, code enums), which
            // derive ToSchema for the contract: the name follows the docs.
            if line.starts_with("id_type!(") || line.starts_with("code_enum!(") {
                macro_made = true;
                continue;
            }
            if macro_made {
                if !line.starts_with("///") {
                    let name: String = line
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    names.entry(name).or_default().push(file.clone());
                    macro_made = false;
                }
                continue;
            }
            // Derived directly, or for the contract only (the domain's
            // `cfg_attr(feature = "openapi", derive(utoipa::ToSchema))`).
            if (line.starts_with("#[derive(") || line.starts_with("#[cfg_attr("))
                && line.contains("ToSchema")
            {
                deriving = true;
                continue;
            }
            if deriving {
                let declared = ["pub struct ", "pub enum ", "struct ", "enum "]
                    .iter()
                    .find_map(|p| line.strip_prefix(p));
                if let Some(rest) = declared {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    // `$name` inside a macro's definition names nothing yet.
                    if !name.is_empty() {
                        names.entry(name).or_default().push(file.clone());
                    }
                    deriving = false;
                }
            }
        }
    }
    names
}

#[test]
fn every_schema_in_the_contract_has_a_name_of_its_own() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let names = schema_types(&crates);
    assert!(
        names.len() > 50,
        "the scan finds the API's schemas: {}",
        names.len()
    );
    let twice: Vec<_> = names.iter().filter(|(_, files)| files.len() > 1).collect();
    assert!(twice.is_empty(), "schemas defined twice: {twice:#?}");
    // Each request body the contract names is one of them.
    let contract = serde_json::to_value(fangkong_api::openapi()).expect("the contract renders");
    for (name, _) in contract["components"]["schemas"]
        .as_object()
        .expect("schemas")
    {
        // `ReturneePage_…` and `LogEvent.QuarantineStarted` are made from
        // the type named first.
        let base = name.split(['_', '.']).next().unwrap_or(name);
        assert!(
            names.contains_key(name) || names.contains_key(base),
            "{name} in the contract has no type of that name"
        );
    }
}

#[test]
fn every_operation_has_a_summary_that_fits_one_line() {
    let contract = serde_json::to_value(fangkong_api::openapi()).expect("the contract renders");
    let mut long = vec![];
    for (path, item) in contract["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("an item") {
            let Some(summary) = operation.get("summary").and_then(|s| s.as_str()) else {
                long.push(format!("{method} {path}: no summary"));
                continue;
            };
            if summary.chars().count() > 120 {
                long.push(format!(
                    "{method} {path}: {} characters",
                    summary.chars().count()
                ));
            }
        }
    }
    assert!(long.is_empty(), "summaries over 120 characters: {long:#?}");
}

#[test]
fn every_operation_has_a_description_beyond_its_summary() {
    let contract = serde_json::to_value(fangkong_api::openapi()).expect("the contract renders");
    let mut bare = vec![];
    for (path, item) in contract["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("an item") {
            let described = operation
                .get("description")
                .and_then(|d| d.as_str())
                .is_some_and(|d| d.trim().len() > 20);
            if !described {
                bare.push(format!("{method} {path}"));
            }
        }
    }
    assert!(
        bare.is_empty(),
        "operations without a description: {bare:#?}"
    );
}

/// The headers the middleware sends are the headers the contract declares:
/// a generated client reads `ETag`, `Location` and the rate limit only if
/// they are declared on the operation.
#[test]
fn every_operation_declares_the_headers_it_sends() {
    let contract = serde_json::to_value(fangkong_api::openapi()).expect("the contract renders");
    let mut missing = vec![];
    for (path, item) in contract["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("an item") {
            let responses = operation["responses"].as_object().expect("responses");
            let mut want = |status: &str, header: &str| {
                let declared = responses
                    .get(status)
                    .and_then(|r| r["headers"].get(header))
                    .is_some();
                if !declared {
                    missing.push(format!("{method} {path} {status}: {header}"));
                }
            };
            for status in responses.keys() {
                want(status, "X-Request-Id");
                if status.starts_with('2') && path.starts_with("/v1/") {
                    want(status, "RateLimit-Remaining");
                }
                if status == "201" {
                    want(status, "Location");
                }
                if status == "429" || status == "503" {
                    want(status, "Retry-After");
                }
            }
            if method == "get" && !fangkong_api::contract::LIVE_FEEDS.contains(&path.as_str()) {
                want("200", "ETag");
                want("304", "ETag");
            }
        }
    }
    assert!(missing.is_empty(), "undeclared headers: {missing:#?}");
}

/// Every event's `data` is typed by the domain type that defines it, and
/// none of those types lost its name to another schema.
#[test]
fn every_event_type_has_its_payload_schema_wherever_events_are_returned() {
    assert!(
        fangkong_api::event_schema_clashes().is_empty(),
        "event payload schemas shadowed: {:?}",
        fangkong_api::event_schema_clashes()
    );
    let contract = serde_json::to_value(fangkong_api::openapi()).expect("the contract renders");
    let schemas = &contract["components"]["schemas"];
    let mut payloads = Vec::new();
    let types = fangkong_domain_event_types(&mut payloads);
    assert!(types.len() >= 30, "{types:?}");
    for envelope in ["LogEvent", "WrittenEvent", "StreamEvent"] {
        let mapping = &schemas[envelope]["discriminator"]["mapping"];
        assert_eq!(
            schemas[envelope]["discriminator"]["propertyName"], "type",
            "{envelope}"
        );
        for event_type in &types {
            let variant = mapping[event_type]
                .as_str()
                .unwrap_or_else(|| panic!("{envelope} has no {event_type}"));
            let name = variant.trim_start_matches("#/components/schemas/");
            let properties = &schemas[name]["properties"];
            assert_eq!(properties["type"]["enum"][0], event_type.as_str());
            let data = properties["data"].to_string();
            assert!(
                data.contains(&format!("#/components/schemas/{event_type}\"")),
                "{name}: {data}"
            );
            assert!(schemas[event_type.as_str()].is_object(), "{event_type}");
        }
    }
    // Secrets never leave the server, so no schema names them. The
    // contract removes a secret named at the top of a payload; one declared
    // deeper would stay in the schema, so none may be.
    for event_type in &types {
        for field in fangkong_domain::personal::fields_of(event_type) {
            if field.kind == fangkong_domain::personal::PersonalKind::Secret {
                assert_eq!(field.path.len(), 1, "{event_type}: {:?}", field.path);
            }
        }
    }
    assert!(schemas["TokenIssued"]["properties"]
        .get("secret_sha256")
        .is_none());
}

fn fangkong_domain_event_types(
    out: &mut Vec<(
        String,
        utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    )>,
) -> Vec<String> {
    fangkong_domain::event_schemas(out)
        .into_iter()
        .map(|(name, _)| name.to_owned())
        .collect()
}
