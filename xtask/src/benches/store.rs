//! The `store` and `postgres` benches: each backend against raw rusqlite / sled /
//! tokio-postgres in the same run, measured by the harness of granary-store-testkit (its
//! `bench` feature), which prints the `granary-store-bench` lines read here.

use std::collections::BTreeMap;

use crate::cmd::{Ctx, Failure};
use crate::peers::postgres::Postgres;

/// The bench groups: operation label, backend, criterion group name.
const BENCHES: &[(&str, &str, &str)] = &[
    ("token put+get", "sqlite", "sqlite-token-put-get"),
    ("pending take", "sqlite", "sqlite-pending-take"),
    (
        "lease acquire+release",
        "sqlite",
        "sqlite-lease-acquire-release",
    ),
    ("token put+get", "sled", "sled-token-put-get"),
    ("pending take", "sled", "sled-pending-take"),
    (
        "lease acquire+release",
        "sled",
        "sled-lease-acquire-release",
    ),
];

/// The ratio every backend operation should stay within.
const GOAL: f64 = 1.25;

/// Runs the criterion benches of the SQLite and sled backends and prints each operation
/// against its raw baseline with the ratio.
pub fn bench(ctx: &Ctx) -> Result<(), Failure> {
    let command = ctx.cargo(&[
        "bench",
        "-p",
        "granary-store-sqlite",
        "-p",
        "granary-store-sled",
        "--bench",
        "store",
        "--",
        "--noplot",
    ]);
    let (output, command_line) = ctx.output("store benches", command)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    if !output.status.success() {
        return Err(Failure::new(format!(
            "the store benches failed ({}); rerun `{}` to see why",
            output.status, command_line
        )));
    }
    // group -> (granary ns, raw ns, pairs)
    let mut paired: BTreeMap<String, (f64, f64, String)> = BTreeMap::new();
    for line in stdout.lines() {
        if let ["granary-store-bench", group, granary, raw, pairs] =
            line.split('\t').collect::<Vec<_>>().as_slice()
        {
            if let (Ok(granary), Ok(raw)) = (granary.parse(), raw.parse()) {
                paired.insert((*group).to_string(), (granary, raw, (*pairs).to_string()));
            }
        }
    }
    println!();
    println!(
        "median call over the same interleaved (granary, raw) pairs, both measured in this run:"
    );
    println!(
        "{:<24}{:<9}{:>12}{:>12}{:>8}{:>8}  within {GOAL}x",
        "operation", "backend", "granary", "raw", "ratio", "pairs"
    );
    let mut misses = 0;
    for (operation, backend, group) in BENCHES {
        let (granary, raw, pairs) = paired.get(*group).ok_or_else(|| {
            Failure::new(format!(
                "the bench group {group} printed no result line; rerun `{}`",
                command_line
            ))
        })?;
        let ratio = granary / raw;
        if ratio.is_nan() || ratio > GOAL {
            misses += 1;
        }
        println!(
            "{operation:<24}{backend:<9}{:>12}{:>12}{:>7.2}x{pairs:>8}  {}",
            show(*granary),
            show(*raw),
            ratio,
            if ratio <= GOAL { "yes" } else { "no" }
        );
    }
    println!(
        "store bench: operations={} within_goal={} goal={GOAL}",
        BENCHES.len(),
        BENCHES.len() - misses
    );
    if misses > 0 {
        return Err(Failure::new(format!(
            "GOAL MISSED: {misses} of {} store operations are slower than {GOAL}x their raw baseline (the rows marked `no` above)",
            BENCHES.len()
        )));
    }
    Ok(())
}

fn show(nanos: f64) -> String {
    if nanos >= 1e6 {
        format!("{:.3} ms", nanos / 1e6)
    } else {
        format!("{:.1} us", nanos / 1e3)
    }
}

/// The groups of `bench postgres`: operation name, criterion group.
const POSTGRES_BENCHES: &[(&str, &str)] = &[
    ("token_put_get", "postgres-token-put-get"),
    ("pending_take", "postgres-pending-take"),
    ("lease_acquire_release", "postgres-lease-acquire-release"),
];

/// Runs the PostgreSQL bench on a throwaway cluster (or `GRANARY_TEST_POSTGRES`): each store
/// operation against the same statements on raw tokio-postgres, paired in one run; prints
/// `bench postgres: op=NAME ratio=X` per operation and fails when one misses [`GOAL`].
pub fn bench_postgres(ctx: &Ctx) -> Result<(), Failure> {
    let postgres = Postgres::start(ctx, "bench-postgres")?;
    let mut command = ctx.cargo(&[
        "bench",
        "-p",
        "granary-store-postgres",
        "--bench",
        "store",
        "--",
        "--noplot",
    ]);
    postgres.env(&mut command);
    let (output, command_line) = ctx.output("postgres bench", command)?;
    drop(postgres);
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    if !output.status.success() {
        return Err(Failure::new(format!(
            "the postgres bench failed ({}); rerun `{}` to see why",
            output.status, command_line
        )));
    }
    let mut paired: BTreeMap<String, (f64, f64, String)> = BTreeMap::new();
    for line in stdout.lines() {
        if let ["granary-store-bench", group, granary, raw, pairs] =
            line.split('\t').collect::<Vec<_>>().as_slice()
        {
            if let (Ok(granary), Ok(raw)) = (granary.parse(), raw.parse()) {
                paired.insert((*group).to_string(), (granary, raw, (*pairs).to_string()));
            }
        }
    }
    println!();
    let mut misses = 0;
    for (operation, group) in POSTGRES_BENCHES {
        let (granary, raw, pairs) = paired.get(*group).ok_or_else(|| {
            Failure::new(format!(
                "the bench group {group} printed no result line; rerun `{command_line}`"
            ))
        })?;
        let ratio = granary / raw;
        let within = ratio <= GOAL;
        if !within {
            misses += 1;
        }
        println!(
            "bench postgres: op={operation} ratio={ratio:.2} granary={} raw={} pairs={pairs} goal={GOAL} {}",
            show(*granary),
            show(*raw),
            if within { "ok" } else { "MISSED" }
        );
    }
    if misses > 0 {
        return Err(Failure::new(format!(
            "GOAL MISSED: {misses} of {} PostgreSQL store operations are slower than {GOAL}x the \
             same statements on raw tokio-postgres (the lines marked MISSED above)",
            POSTGRES_BENCHES.len()
        )));
    }
    Ok(())
}
