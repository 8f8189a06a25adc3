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
            if line.starts_with("#[derive(") && line.contains("ToSchema") {
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
                    names.entry(name).or_default().push(file.clone());
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
        let base = name.split('_').next().unwrap_or(name);
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
            if method == "get" && path != "/v1/events/live" {
                want("200", "ETag");
                want("304", "ETag");
            }
        }
    }
    assert!(missing.is_empty(), "undeclared headers: {missing:#?}");
}
