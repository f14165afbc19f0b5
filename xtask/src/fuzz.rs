//! `cargo xtask fuzz NAME [--seconds N]`: the cargo-fuzz targets in `fuzz/` (libFuzzer),
//! each seeded with committed inputs and guided by a dictionary, with one summary line.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use crate::cmd::{Ctx, Failure, create_dir, describe};

/// A fuzz target: the name on the command line, its binary in `fuzz/Cargo.toml`, its
/// committed seeds, its dictionary and the longest input tried.
struct Target {
    name: &'static str,
    bin: &'static str,
    seeds: &'static str,
    dict: &'static str,
    max_len: u32,
    what: &'static str,
}

const TARGETS: &[Target] = &[
    Target {
        name: "openapi",
        bin: "parse",
        seeds: "crates/granary-openapi/tests/fixtures",
        dict: "fuzz/openapi.dict",
        max_len: 65536,
        what: "granary_openapi::parse",
    },
    Target {
        name: "token_response",
        bin: "token_response",
        seeds: "fuzz/seeds/token_response",
        dict: "fuzz/token_response.dict",
        max_len: 4096,
        what: "token endpoint answers (classification, token fields)",
    },
    Target {
        name: "callback",
        bin: "callback",
        seeds: "fuzz/seeds/callback",
        dict: "fuzz/callback.dict",
        max_len: 2048,
        what: "callback queries (callback_state, parse_callback)",
    },
    Target {
        name: "admin_form",
        bin: "admin_form",
        seeds: "fuzz/seeds/admin_form",
        dict: "fuzz/admin_form.dict",
        max_len: 4096,
        what: "admin form bodies (FormData, parse_pairs)",
    },
];

fn usage() -> String {
    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    format!(
        "usage: cargo xtask fuzz NAME [--seconds N]; NAME is one of: {}",
        names.join(", ")
    )
}

/// Runs one target for N seconds (60 by default); fails on a crash, naming the input.
pub fn run(ctx: &Ctx, args: &[String]) -> Result<(), Failure> {
    let mut rest = args.iter();
    let name = rest.next().ok_or_else(|| Failure::new(usage()))?;
    let target = TARGETS
        .iter()
        .find(|t| t.name == name.as_str())
        .ok_or_else(|| Failure::new(format!("unknown fuzz target `{name}`; {}", usage())))?;
    let mut seconds: u64 = 60;
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
                    "unknown option `{other}`; {}",
                    usage()
                )));
            }
        }
    }
    ensure_cargo_fuzz(ctx)?;
    let corpus = ctx.path(format!("fuzz/corpus/{}", target.bin));
    create_dir(&corpus)?;
    let mut command = ctx.cargo(&["fuzz", "run", target.bin]);
    command
        .arg(&corpus)
        .arg(ctx.path(target.seeds))
        .args([
            "--".to_string(),
            format!("-max_total_time={seconds}"),
            format!("-dict={}", ctx.path(target.dict).display()),
            format!("-max_len={}", target.max_len),
            "-print_final_stats=1".to_string(),
        ])
        // cargo-fuzz passes nightly-only flags (-Z sanitizer); this lets the stable toolchain
        // accept them, for this command only.
        .env("RUSTC_BOOTSTRAP", "1");
    eprintln!(
        "==> fuzz {} ({}) for {seconds} s: {}",
        target.name,
        target.what,
        describe(&command)
    );
    let line = describe(&command);
    let mut child = command
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::new(format!("could not start {line}: {e}")))?;
    // libFuzzer reports on stderr: pass it through and keep the figures of the summary.
    let mut done = None;
    let mut stats = Vec::new();
    let mut crash = None;
    if let Some(stderr) = child.stderr.take() {
        for text in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{text}");
            if text.starts_with('#') && text.split_whitespace().nth(1) == Some("DONE") {
                done = Some(text.clone());
            } else if let Some(stat) = text.strip_prefix("stat::") {
                stats.push(stat.to_string());
            } else if let Some(at) = text.find("Test unit written to ") {
                crash = Some(
                    text[at + "Test unit written to ".len()..]
                        .trim()
                        .to_string(),
                );
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| Failure::new(format!("{line}: {e}")))?;
    let figure = |key: &str| {
        stats.iter().find_map(|s| {
            s.strip_prefix(key)?
                .trim_start_matches(':')
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    let coverage = done.as_deref().map_or_else(String::new, |done| {
        let field = |key: &str| {
            done.split_whitespace()
                .skip_while(|w| *w != key)
                .nth(1)
                .unwrap_or("?")
                .to_string()
        };
        format!(
            " cov={} ft={} corpus={}",
            field("cov:"),
            field("ft:"),
            field("corp:")
        )
    });
    eprintln!(
        "fuzz {}: seconds={seconds} runs={} exec_per_s={}{coverage} crashes={}",
        target.name,
        figure("number_of_executed_units").map_or("?".to_string(), |n| n.to_string()),
        figure("average_exec_per_sec").map_or("?".to_string(), |n| n.to_string()),
        usize::from(crash.is_some()),
    );
    match (status.success(), crash) {
        (true, _) => Ok(()),
        (false, Some(input)) => Err(Failure::new(format!(
            "fuzz {} found a crash; the input is {input}: reproduce with `RUSTC_BOOTSTRAP=1 \
             cargo fuzz run {} {input}`, fix it in the owning crate and add a regression test",
            target.name, target.bin
        ))),
        (false, None) => Err(Failure::new(format!(
            "fuzz {} failed ({status}); rerun `{line}` to see why",
            target.name
        ))),
    }
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
