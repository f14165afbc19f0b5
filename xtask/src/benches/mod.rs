//! The benches, each printing a ratio against a baseline measured in the same run and
//! failing when it misses its goal.

mod facade;
mod multinode;
mod openapi;
mod proxy;
mod scale;
mod server;
mod store;

use crate::cmd::{Ctx, Failure};

/// A bench target: its name and the function that runs it.
type Bench = (&'static str, fn(&Ctx) -> Result<(), Failure>);

const BENCHES: &[Bench] = &[
    ("openapi", openapi::bench),
    ("store", store::bench),
    ("facade", facade::bench),
    ("server", server::bench),
    ("postgres", store::bench_postgres),
    ("multinode", multinode::bench),
    ("scale", scale::bench),
    ("proxy", proxy::bench),
];

/// Runs the bench targets named (all when none is), stopping at the first that fails.
pub fn run(ctx: &Ctx, names: &[String]) -> Result<(), Failure> {
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
