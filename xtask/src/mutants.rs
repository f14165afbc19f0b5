//! `cargo xtask mutants [FILE...]`: cargo-mutants (installed pinned when missing) over the code
//! where a silent bug loses tokens, judged against the committed list of accepted
//! equivalent mutants.
//!
//! Without FILE it mutates every file of [`FILES`]; with FILEs (paths from the workspace
//! root) only those. Each mutant is built and the tests of its package run against it.
//! A missed mutant fails the run unless `xtask/mutants-accepted.txt` lists it (one line
//! each: `FILE: MUTATION # why it is equivalent`, the mutation as cargo-mutants names it,
//! without its line and column, so that edits elsewhere in the file keep the entry; an
//! entry accepts one missed mutant, so two of the same name need two entries). The
//! last line is `mutants: tested=N caught=N missed=N unviable=N timeout=N`, where `missed`
//! counts the missed mutants that are not listed; accepted ones are reported above it.
//! Not part of `cargo xtask test`: it builds and tests once per mutant (see the README for
//! how long that takes).

use std::fs;
use std::path::Path;

use crate::cmd::{Ctx, Failure};

/// The pinned cargo-mutants.
const VERSION: &str = "27.1.0";

/// Where a silent bug loses tokens: the engine's token (hot path and refresh under the
/// lease), authorization, disconnect, seal and re-seal modules; the protocol's token,
/// response and callback handling; the backends' compare-and-swap, take-once and lease code.
const FILES: &[&str] = &[
    "crates/granary-flow/src/engine/tokens.rs",
    "crates/granary-flow/src/engine/refresh.rs",
    "crates/granary-flow/src/engine/lease.rs",
    "crates/granary-flow/src/engine/backoff.rs",
    "crates/granary-flow/src/engine/changes.rs",
    "crates/granary-flow/src/engine/cas.rs",
    "crates/granary-flow/src/engine/authorization.rs",
    "crates/granary-flow/src/engine/disconnect.rs",
    "crates/granary-flow/src/engine/seal.rs",
    "crates/granary-flow/src/engine/reseal.rs",
    "crates/granary-flow/src/protocol/token.rs",
    "crates/granary-flow/src/protocol/response.rs",
    "crates/granary-flow/src/protocol/authorize.rs",
    "crates/granary-store/src/memory.rs",
    "crates/granary-store-sqlite/src/store.rs",
    "crates/granary-store-sled/src/store.rs",
];

/// The committed list of accepted equivalent mutants.
const ACCEPTED: &str = "xtask/mutants-accepted.txt";

pub fn run(ctx: &Ctx, args: &[String]) -> Result<(), Failure> {
    let files: Vec<String> = if args.is_empty() {
        FILES.iter().map(|f| (*f).to_string()).collect()
    } else {
        args.to_vec()
    };
    for file in &files {
        if !ctx.path(file).is_file() {
            return Err(Failure::new(format!(
                "{file} is not a file of the workspace (give paths from its root)"
            )));
        }
    }
    ensure_cargo_mutants(ctx)?;
    let accepted = read_accepted(&ctx.path(ACCEPTED))?;

    let out = ctx.target.join("mutants");
    let _ = fs::remove_dir_all(out.join("mutants.out"));
    let out_arg = out.to_string_lossy().into_owned();
    let mut args = vec!["mutants", "--no-shuffle", "--output", out_arg.as_str()];
    for file in &files {
        args.extend(["--file", file.as_str()]);
    }
    let (output, command_line) = ctx.output("cargo mutants", ctx.cargo(&args))?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    let results = out.join("mutants.out");
    // Exit codes of cargo-mutants: 0 all caught, 2 missed, 3 timeouts; others mean it could
    // not test at all (the unmutated tree failed its tests, a usage error).
    match output.status.code() {
        Some(0 | 2 | 3) => {}
        _ => {
            return Err(Failure::new(format!(
                "cargo mutants failed ({}); rerun `{command_line}` and read {}",
                output.status,
                results.join("debug.log").display()
            )));
        }
    }
    let read = |name: &str| -> Result<Vec<String>, Failure> {
        let path = results.join(name);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Failure::new(format!("cannot read {}: {e}", path.display()))),
        }
    };
    let caught = read("caught.txt")?;
    let missed = read("missed.txt")?;
    let unviable = read("unviable.txt")?;
    let timeout = read("timeout.txt")?;
    if caught.is_empty() && missed.is_empty() && unviable.is_empty() && timeout.is_empty() {
        return Err(Failure::new(format!(
            "cargo mutants tested no mutant (nothing in {}); rerun `{command_line}`",
            results.display()
        )));
    }

    let (listed, unlisted, unused) = judge(&missed, &accepted);
    for line in &listed {
        println!("accepted as equivalent (listed in {ACCEPTED}): {line}");
    }
    for line in &unlisted {
        println!("MISSED {line}");
    }
    for line in &timeout {
        println!("timeout (the tests hung, which fails them): {line}");
    }
    // Entries of the list this run mutated but did not miss: killed by a test now, or gone.
    for (key, why) in unused {
        if files.iter().any(|f| key.starts_with(&format!("{f}:"))) {
            println!("stale entry in {ACCEPTED} (not missed in this run): {key} # {why}");
        }
    }
    let tested = caught.len() + missed.len() + unviable.len() + timeout.len();
    println!(
        "mutants: tested={tested} caught={} missed={} unviable={} timeout={}",
        caught.len(),
        unlisted.len(),
        unviable.len(),
        timeout.len()
    );
    if unlisted.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "{} missed mutants (MISSED above): kill each with a test, or list it in {ACCEPTED} \
             with one line on why it is equivalent",
            unlisted.len()
        )))
    }
}

/// The missed mutants an entry of the list accepts, those none accepts, and the entries
/// that accepted none. Each entry accepts one missed mutant: cargo-mutants gives two
/// mutations the same name when they are of the same operator in one function (the two `<`
/// of `a < b && c < d`), so an entry for one of them must not hide the other.
fn judge<'a>(
    missed: &'a [String],
    accepted: &'a [(String, String)],
) -> (Vec<&'a String>, Vec<&'a String>, Vec<&'a (String, String)>) {
    let mut used = vec![false; accepted.len()];
    let (mut listed, mut unlisted) = (Vec::new(), Vec::new());
    for line in missed {
        let key = key_of(line);
        match (0..accepted.len()).find(|&i| !used[i] && accepted[i].0 == key) {
            Some(i) => {
                used[i] = true;
                listed.push(line);
            }
            None => unlisted.push(line),
        }
    }
    let unused = accepted
        .iter()
        .zip(used)
        .filter(|(_, used)| !used)
        .map(|(entry, _)| entry)
        .collect();
    (listed, unlisted, unused)
}

/// `FILE:LINE:COL: MUTATION` as cargo-mutants prints it -> `FILE: MUTATION`.
fn key_of(line: &str) -> String {
    let mut parts = line.splitn(4, ':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(file), Some(l), Some(c), Some(rest))
            if l.chars().all(|ch| ch.is_ascii_digit())
                && c.chars().all(|ch| ch.is_ascii_digit()) =>
        {
            format!("{file}:{}", rest.trim_end())
        }
        _ => line.trim().to_string(),
    }
}

/// The accepted list: `FILE: MUTATION # why` per line; `#` lines and blank lines skipped.
/// An entry without its reason is refused.
fn read_accepted(path: &Path) -> Result<Vec<(String, String)>, Failure> {
    let text = fs::read_to_string(path)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.rsplit_once(" # ") {
            Some((key, why)) if !why.trim().is_empty() => {
                out.push((key.trim().to_string(), why.trim().to_string()))
            }
            _ => {
                return Err(Failure::new(format!(
                    "{}:{}: an accepted mutant needs ` # why it is equivalent`",
                    path.display(),
                    n + 1
                )));
            }
        }
    }
    Ok(out)
}

/// Installs the pinned cargo-mutants when it is missing or another version.
fn ensure_cargo_mutants(ctx: &Ctx) -> Result<(), Failure> {
    let installed = ctx
        .cargo(&["mutants", "--version"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    if installed.split_whitespace().any(|word| word == VERSION) {
        return Ok(());
    }
    ctx.step(
        &format!("install cargo-mutants {VERSION}"),
        ctx.cargo(&["install", "cargo-mutants", "--version", VERSION, "--locked"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry accepts one missed mutant of its name: a second one of the same name (the
    /// other `<` of the line) is reported, and an entry that accepted nothing is returned.
    #[test]
    fn an_entry_accepts_one_missed_mutant() {
        let missed = [
            "a.rs:10:5: replace < with <= in f".to_string(),
            "a.rs:10:20: replace < with <= in f".to_string(),
        ];
        let accepted = [
            (
                "a.rs: replace < with <= in f".to_string(),
                "why".to_string(),
            ),
            ("a.rs: delete ! in g".to_string(), "why".to_string()),
        ];
        let (listed, unlisted, unused) = judge(&missed, &accepted);
        assert_eq!(listed, [&missed[0]]);
        assert_eq!(unlisted, [&missed[1]]);
        assert_eq!(unused, [&accepted[1]]);
        let twice = [accepted[0].clone(), accepted[0].clone()];
        let (listed, unlisted, unused) = judge(&missed, &twice);
        assert_eq!((listed.len(), unlisted.len(), unused.len()), (2, 0, 0));
    }
}
