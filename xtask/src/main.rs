//! `cargo xtask`: the one entry point for everything CI runs, plus benches, fuzzing and the demo.

mod browser;
mod cmd;
mod examples;
mod facade;
mod features;
mod flow;
mod fuzz;
mod lifecycle;
mod mutants;
mod npm;
mod openapi;
mod postgres;
mod server;
mod store;

use std::process::ExitCode;

use cmd::{Ctx, Failure};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test                      everything CI runs: fmt check, clippy (warnings denied),
                            each library crate checked alone with its default and
                            with no optional features, all tests, the example
                            backend, every conformance suite
  conformance [SUITE...]    run conformance suites (default: all): openapi, store, flow,
                            facade, browser, lifecycle
  example-backend           the store backend written outside the workspace
                            (examples/custom-backend) through the conformance suite
  bench [TARGET...]         run benchmarks (default: all) that print a ratio against a
                            baseline measured in the same run:
                            openapi, store, facade, server, postgres
  demo                      offline demo: oidc-provider and granary with an instance
                            ready to authorize; prints what to open
  mutants [FILE...]         cargo-mutants (installed pinned when missing) over the code
                            where a silent bug loses tokens, or over FILEs; fails on a
                            missed mutant not listed in xtask/mutants-accepted.txt
  fuzz NAME [--seconds N]   run a cargo-fuzz target for N seconds (default 60): openapi,
                            token_response, callback, admin_form; installs cargo-fuzz
                            when missing
";

/// A conformance suite: its name and the function that runs it.
type Suite = (&'static str, fn(&Ctx) -> Result<(), Failure>);

const SUITES: &[Suite] = &[
    ("openapi", openapi::conformance),
    ("store", store::conformance),
    ("flow", flow::conformance),
    ("facade", facade::conformance),
    ("browser", browser::conformance),
    ("lifecycle", lifecycle::conformance),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ctx = match Ctx::new() {
        Ok(ctx) => ctx,
        Err(failure) => return failure.report(),
    };
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&ctx),
        Some("conformance") => conformance(&ctx, &args[1..]),
        Some("example-backend") => examples::backend(&ctx),
        Some("bench") => bench(&ctx, &args[1..]),
        Some("fuzz") => fuzz::run(&ctx, &args[1..]),
        Some("demo") => server::demo(&ctx),
        Some("mutants") => mutants::run(&ctx, &args[1..]),
        Some("help" | "--help" | "-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(Failure::new(format!(
            "unknown command `{other}`; run `cargo xtask help` for the list"
        ))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

fn test(ctx: &Ctx) -> Result<(), Failure> {
    ctx.step("fmt", ctx.cargo(&["fmt", "--all", "--check"]))?;
    ctx.step(
        "clippy",
        ctx.cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    features::check(ctx)?;
    ctx.step(
        "tests",
        ctx.cargo(&["test", "--workspace", "--all-features"]),
    )?;
    examples::backend(ctx)?;
    conformance(ctx, &[])
}

fn conformance(ctx: &Ctx, names: &[String]) -> Result<(), Failure> {
    for name in names {
        if !SUITES.iter().any(|(known, _)| known == name) {
            let known: Vec<&str> = SUITES.iter().map(|(n, _)| *n).collect();
            return Err(Failure::new(format!(
                "unknown conformance suite `{name}`; the suites are: {}",
                known.join(", ")
            )));
        }
    }
    let mut failed = Vec::new();
    for (name, run) in SUITES {
        if !names.is_empty() && !names.iter().any(|n| n == name) {
            continue;
        }
        eprintln!("==> conformance {name}");
        if let Err(failure) = run(ctx) {
            eprintln!("conformance {name} failed: {failure}");
            failed.push(*name);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "conformance suites failed: {}",
            failed.join(", ")
        )))
    }
}

/// A bench target: its name and the function that runs it.
type Bench = (&'static str, fn(&Ctx) -> Result<(), Failure>);

const BENCHES: &[Bench] = &[
    ("openapi", openapi::bench),
    ("store", store::bench),
    ("facade", facade::bench),
    ("server", server::bench),
    ("postgres", store::bench_postgres),
];

fn bench(ctx: &Ctx, names: &[String]) -> Result<(), Failure> {
    let known: Vec<&str> = BENCHES.iter().map(|(n, _)| *n).collect();
    if let Some(unknown) = names.iter().find(|n| !known.contains(&n.as_str())) {
        return Err(Failure::new(format!(
            "unknown bench target `{unknown}`; the targets are: {}",
            known.join(", ")
        )));
    }
    for (name, run) in BENCHES {
        if names.is_empty() || names.iter().any(|n| n == name) {
            eprintln!("==> bench {name}");
            run(ctx)?;
        }
    }
    Ok(())
}
