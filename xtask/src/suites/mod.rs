//! The conformance suites, one module each: what a suite builds, which peers it starts
//! ([`crate::peers`]), what it runs against them and how it judges the result.

pub mod browser;
pub mod facade;
pub mod flow;
pub mod lifecycle;
pub mod multinode;
pub mod openapi;
pub mod providers;
pub mod proxy;
pub mod store;

use crate::cmd::{Ctx, Failure};

/// A conformance suite: its name and the function that runs it.
type Suite = (&'static str, fn(&Ctx) -> Result<(), Failure>);

const SUITES: &[Suite] = &[
    ("openapi", openapi::conformance),
    ("store", store::conformance),
    ("flow", flow::conformance),
    ("facade", facade::conformance),
    ("browser", browser::conformance),
    ("lifecycle", lifecycle::conformance),
    ("multinode", multinode::conformance),
    ("proxy", proxy::conformance),
    ("providers", providers::conformance),
];

/// Runs the suites named (all when none is), each to its end; fails naming those that failed.
pub fn run(ctx: &Ctx, names: &[String]) -> Result<(), Failure> {
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

/// The first `N` `name=value` figures after `prefix` on a runner's summary line
/// (`lifecycle conformance: scenarios=13 passed=13 failed=0`), or `None` when the line is
/// not one.
pub(crate) fn summary_figures<const N: usize>(line: &str, prefix: &str) -> Option<[usize; N]> {
    let rest = line.strip_prefix(prefix)?;
    let mut figures = rest.split(' ').map(|pair| {
        pair.split_once('=')
            .and_then(|(_, value)| value.parse::<usize>().ok())
    });
    let mut out = [0; N];
    for slot in &mut out {
        *slot = figures.next()??;
    }
    Some(out)
}

/// How many scenarios `runner --list` names, one a line; an error when it cannot run, fails
/// or names none (so that a runner that lost its scenarios cannot pass).
pub(crate) fn listed_scenarios(runner: &str) -> Result<usize, Failure> {
    let listed = std::process::Command::new(runner)
        .arg("--list")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Failure::new(format!("cannot run {runner} --list: {e}")))?;
    let defined = String::from_utf8_lossy(&listed.stdout).lines().count();
    if !listed.status.success() || defined == 0 {
        return Err(Failure::new(format!(
            "{runner} --list named no scenarios ({})",
            listed.status
        )));
    }
    Ok(defined)
}

#[cfg(test)]
mod tests {
    use super::summary_figures;

    #[test]
    fn a_summary_line_gives_its_figures_in_order() {
        let line = "proxy conformance: scenarios=6 passed=5 failed=1";
        assert_eq!(
            summary_figures::<3>(line, "proxy conformance: "),
            Some([6, 5, 1])
        );
        assert_eq!(summary_figures::<3>(line, "lifecycle conformance: "), None);
        assert_eq!(summary_figures::<4>(line, "proxy conformance: "), None);
        assert_eq!(
            summary_figures::<2>(
                "proxy conformance: scenarios=x passed=1",
                "proxy conformance: "
            ),
            None
        );
    }
}
