//! The `store` conformance suite: every backend x every check of granary-store-testkit, the
//! PostgreSQL one on a throwaway cluster.

use std::collections::BTreeMap;

use crate::cmd::{Ctx, Failure};
use crate::peers::postgres::Postgres;

/// The backend crates and the name each reports itself under.
const BACKENDS: &[(&str, &str)] = &[
    ("granary-store", "memory"),
    ("granary-store-sqlite", "sqlite"),
    ("granary-store-sled", "sled"),
    ("granary-store-postgres", "postgres"),
];

/// Runs each backend's `conformance` test target (PostgreSQL's on a throwaway cluster, or on
/// `GRANARY_TEST_POSTGRES`), prints a backend x check table and the summary line; fails when
/// a check failed, a backend did not report, or a backend skipped every check (the
/// PostgreSQL run did not happen).
pub fn conformance(ctx: &Ctx) -> Result<(), Failure> {
    let mut args = vec!["test", "--no-fail-fast"];
    for (package, _) in BACKENDS {
        args.extend(["-p", package]);
    }
    args.extend(["--test", "conformance"]);
    let postgres = Postgres::start(ctx, "conformance-store")?;
    let mut command = ctx.cargo(&args);
    postgres.env(&mut command);
    let (output, command_line) = ctx.output("store conformance", command)?;
    drop(postgres);
    let stdout = String::from_utf8_lossy(&output.stdout);

    // backend -> check -> (word, detail); checks in the order first seen.
    let mut results: BTreeMap<String, BTreeMap<String, (String, String)>> = BTreeMap::new();
    let mut checks: Vec<String> = Vec::new();
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        if let ["granary-store-conformance", backend, check, word, detail] = fields.as_slice() {
            if !checks.iter().any(|c| c == check) {
                checks.push((*check).to_string());
            }
            results.entry((*backend).to_string()).or_default().insert(
                (*check).to_string(),
                ((*word).to_string(), (*detail).to_string()),
            );
        }
    }

    let backends: Vec<&str> = BACKENDS.iter().map(|(_, name)| *name).collect();
    let width = checks.iter().map(String::len).max().unwrap_or(5).max(5);
    let mut table = format!("{:<width$}", "check");
    for backend in &backends {
        table.push_str(&format!("  {backend:<8}"));
    }
    table.push('\n');
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut failures = Vec::new();
    for check in &checks {
        table.push_str(&format!("{check:<width$}"));
        for backend in &backends {
            let cell = match results.get(*backend).and_then(|r| r.get(check)) {
                Some((word, detail)) => {
                    match word.as_str() {
                        "pass" => passed += 1,
                        "skip" => skipped += 1,
                        _ => {
                            failed += 1;
                            failures.push(format!("{backend} / {check}: {detail}"));
                        }
                    }
                    word.as_str()
                }
                None => {
                    failed += 1;
                    failures.push(format!(
                        "{backend} / {check}: no result (the test binary crashed?)"
                    ));
                    "missing"
                }
            };
            table.push_str(&format!("  {cell:<8}"));
        }
        table.push('\n');
    }
    print!("{table}");
    for failure in &failures {
        println!("FAILED {failure}");
    }
    let reported = backends
        .iter()
        .filter(|b| results.contains_key(**b))
        .count();
    println!(
        "store conformance: backends={} checks={} passed={passed} failed={failed} skipped={skipped}",
        backends.len(),
        checks.len()
    );
    let all_skipped: Vec<&str> = backends
        .iter()
        .copied()
        .filter(|b| {
            results
                .get(*b)
                .is_some_and(|r| r.values().all(|(word, _)| word == "skip"))
        })
        .collect();
    if !all_skipped.is_empty() {
        return Err(Failure::new(format!(
            "backends {} skipped every check: their run did not happen (for postgres: is \
             GRANARY_TEST_POSTGRES reaching the test?); rerun `{}` to see why",
            all_skipped.join(", "),
            command_line
        )));
    }
    if reported < backends.len() || checks.is_empty() {
        return Err(Failure::new(format!(
            "only {reported} of {} backends reported results; rerun `{}` to see why",
            backends.len(),
            command_line
        )));
    }
    if failed > 0 || !output.status.success() {
        return Err(Failure::new(format!(
            "{failed} store conformance checks failed (listed above); rerun one backend with \
             `cargo test -p <crate> --test conformance -- <check>`"
        )));
    }
    Ok(())
}
