//! `cargo xtask`: the one entry point for everything CI runs, plus benches, fuzzing and the demo.

mod benches;
mod builds;
mod cmd;
mod demo;
mod docs;
mod examples;
mod features;
mod fuzz;
mod mutants;
mod npm;
mod peers;
mod ports;
mod suites;

use std::process::ExitCode;

use cmd::{Ctx, Failure};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test                      everything CI runs: fmt check, clippy (warnings denied),
                            rustdoc (warnings denied), `cargo package --list` of
                            each published crate,
                            each library crate checked alone with its default and
                            with no optional features, all tests, the example
                            backend, every conformance suite
  conformance [SUITE...]    run conformance suites (default: all): openapi, store, flow,
                            facade, browser, lifecycle, multinode, proxy, providers
  docs                      the docs and packaging steps of `test` alone: rustdoc
                            with warnings denied, every README example a doc test,
                            `cargo package --list` of each published crate
  example-backend           the store backend written outside the workspace
                            (examples/custom-backend) through the conformance suite
  bench [TARGET...]         run benchmarks (default: all) that print a ratio against a
                            baseline measured in the same run:
                            openapi, store, facade, server, postgres, multinode,
                            scale, proxy
  demo                      offline demo: oidc-provider and granary with an instance
                            ready to authorize; prints what to open
  mutants [FILE...]         cargo-mutants (installed pinned when missing) over the code
                            where a silent bug loses tokens, or over FILEs; fails on a
                            missed mutant not listed in xtask/mutants-accepted.txt
  fuzz NAME [--seconds N]   run a cargo-fuzz target for N seconds (default 60): openapi,
                            token_response, callback, admin_form; installs cargo-fuzz
                            when missing
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ctx = match Ctx::new() {
        Ok(ctx) => ctx,
        Err(failure) => return failure.report(),
    };
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&ctx),
        Some("conformance") => suites::run(&ctx, &args[1..]),
        Some("docs") => docs::check(&ctx),
        Some("example-backend") => examples::backend(&ctx),
        Some("bench") => benches::run(&ctx, &args[1..]),
        Some("fuzz") => fuzz::run(&ctx, &args[1..]),
        Some("demo") => demo::run(&ctx),
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
    docs::check(ctx)?;
    features::check(ctx)?;
    ctx.step(
        "tests",
        ctx.cargo(&["test", "--workspace", "--all-features"]),
    )?;
    examples::backend(ctx)?;
    suites::run(ctx, &[])
}
