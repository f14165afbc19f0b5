//! `cargo xtask bench facade` runs the criterion hot-path bench (access_token against a bare
//! `RwLock<HashMap>` lookup, 2 threads) and the storm runner (the `facade_storm` example:
//! 10,000 callers in one process, then 4 processes x 1,000 callers on one SQLite file, token
//! requests counted by the server), and ends with the three `bench ...:` lines. It fails
//! when a goal is missed: the paired hot-path ratio (see the bench) above [`HOT_PATH_GOAL`],
//! or a storm with other than exactly one token request.
//!
//! The clients file is the `facade` suite's ([`prepare`]).

use std::fs;
use std::process::Command;

use crate::cmd::{Ctx, Failure, describe};
use crate::peers::oidc;
use crate::suites::facade::prepare;

/// The hot path's goal: `access_token` within this many times a bare `RwLock<HashMap>`.
const HOT_PATH_GOAL: f64 = 3.0;

pub fn bench(ctx: &Ctx) -> Result<(), Failure> {
    let (output, command_line) = ctx.output(
        "facade hot-path bench",
        ctx.cargo(&[
            "bench", "-p", "granary", "--bench", "hot_path", "--", "--noplot",
        ]),
    )?;
    let hot_stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    print!("{hot_stdout}");
    if !output.status.success() {
        return Err(Failure::new(format!(
            "the hot-path bench failed ({}); rerun `{command_line}` to see why",
            output.status
        )));
    }
    let paired = hot_stdout
        .lines()
        .find_map(
            |line| match line.split('\t').collect::<Vec<_>>().as_slice() {
                ["granary-hot-path", granary, baseline, ratio, rounds] => Some((
                    granary.parse::<f64>().ok()?,
                    baseline.parse::<f64>().ok()?,
                    ratio.parse::<f64>().ok()?,
                    (*rounds).to_string(),
                )),
                _ => None,
            },
        )
        .ok_or_else(|| {
            Failure::new(format!(
                "the hot-path bench printed no `granary-hot-path` line; rerun `{command_line}`"
            ))
        })?;
    let criterion = ctx.target.join("criterion").join("facade-hot-path");
    let read = |function: &str| -> Result<Estimates, Failure> {
        let path = criterion.join(function).join("new").join("estimates.json");
        let text = fs::read_to_string(&path)
            .map_err(|e| Failure::new(format!("cannot read {}: {e}", path.display())))?;
        let get = |name: &str| {
            estimate(&text, name)
                .ok_or_else(|| Failure::new(format!("no {name} in {}", path.display())))
        };
        Ok(Estimates {
            median: get("median")?,
            mean: get("mean")?,
        })
    };
    // Each criterion iteration is one call on each of 2 threads: the estimates are the
    // wall time of one call while the other thread calls too. The median is the figure
    // (robust to bursts of other work on a shared machine); the mean is shown beside it.
    let granary = read("access_token")?;
    let baseline = read("rwlock_hashmap")?;

    let (dir, clients) = prepare(ctx, "facade-bench")?;
    ctx.step(
        "build the storm runner",
        ctx.cargo(&[
            "build",
            "--release",
            "-p",
            "granary",
            "--example",
            "facade_storm",
        ]),
    )?;
    let server = oidc::start_in(ctx, &dir, &clients)?;
    let runner = ctx
        .target
        .join("release")
        .join("examples")
        .join("facade_storm");
    let mut command = Command::new(&runner);
    command
        .arg("--work-dir")
        .arg(dir.join("work"))
        .env("GRANARY_FACADE_ISSUER", &server.issuer)
        .env("GRANARY_FACADE_CLIENTS", &clients);
    let output = run_capturing(&mut command);
    server.stop();
    // A failed storm runner (a storm's goal missed, a caller failed) is reported with the
    // other goals below, so that one run shows every miss.
    let (storm_lines, storm_failure) = match output {
        Ok(lines) => (lines, None),
        Err(failure) => (Vec::new(), Some(failure)),
    };

    println!();
    println!("hot path, 2 threads        median ns/call   calls/s       mean ns/call");
    for (name, e) in [("access_token", &granary), ("RwLock<HashMap>", &baseline)] {
        println!(
            "  {name:<24}{:>10.1}{:>14.0}{:>14.1}",
            e.median,
            2.0e9 / e.median,
            e.mean
        );
    }
    println!(
        "  criterion: ratio (median) {:.2}, ratio (mean) {:.2}",
        granary.median / baseline.median,
        granary.mean / baseline.mean
    );
    let (paired_granary, paired_baseline, ratio, rounds) = paired;
    println!(
        "  paired, {rounds} rounds: {paired_granary:.1} ns against {paired_baseline:.1} ns, median ratio {ratio:.2}; goal: within {HOT_PATH_GOAL}x"
    );
    println!(
        "bench hot_path: ns_per_call={paired_granary:.1} baseline_ns={paired_baseline:.1} ratio={ratio:.2} goal={HOT_PATH_GOAL}"
    );
    for line in &storm_lines {
        println!("{line}");
    }
    let mut missed: Vec<String> = storm_failure.iter().map(ToString::to_string).collect();
    if !ratio.is_finite() || ratio > HOT_PATH_GOAL {
        missed.push(format!(
            "hot path: access_token is {ratio:.2}x the RwLock<HashMap> lookup, the goal is within {HOT_PATH_GOAL}x"
        ));
    }
    for storm in ["refresh_storm", "cross_process_storm"] {
        let prefix = format!("bench {storm}:");
        let requests = storm_lines
            .iter()
            .find(|l| l.starts_with(&prefix))
            .and_then(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("token_requests="))
            })
            .and_then(|n| n.parse::<u64>().ok());
        match requests {
            Some(1) => {}
            Some(n) => missed.push(format!(
                "{storm}: {n} token requests, the goal is exactly 1"
            )),
            None if storm_failure.is_some() => {}
            None => missed.push(format!("{storm}: the runner printed no token_requests")),
        }
    }
    if missed.is_empty() {
        println!("bench facade: goals met");
        Ok(())
    } else {
        for line in &missed {
            println!("GOAL MISSED {line}");
        }
        Err(Failure::new(format!(
            "bench facade missed its goals: {}",
            missed.join("; ")
        )))
    }
}

/// Runs the storm runner, echoing its output, and returns its `bench ...:` lines.
fn run_capturing(command: &mut Command) -> Result<Vec<String>, Failure> {
    eprintln!("==> storms: {}", describe(command));
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Failure::new(format!("could not start {}: {e}", describe(command))))?;
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    eprint!("{stdout}");
    if !output.status.success() {
        return Err(Failure::new(format!(
            "the storm runner failed ({}); rerun `cargo xtask bench facade` and read its output",
            output.status
        )));
    }
    Ok(stdout
        .lines()
        .filter(|l| l.starts_with("bench "))
        .map(str::to_string)
        .collect())
}

/// Two of the estimates of a criterion bench, in nanoseconds.
struct Estimates {
    median: f64,
    mean: f64,
}

/// The `<name>.point_estimate` (nanoseconds) of a criterion `estimates.json`.
fn estimate(json: &str, name: &str) -> Option<f64> {
    let start = json.find(&format!("\"{name}\""))?;
    let rest = json.get(start..)?;
    let at = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let number: String = rest
        .get(at..)?
        .chars()
        .skip_while(|c| c.is_whitespace())
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        .collect();
    number.parse().ok()
}
