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
