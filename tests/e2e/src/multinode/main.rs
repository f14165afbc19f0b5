//! The multinode conformance runner (issue 13): three `granary serve` nodes on one PostgreSQL
//! store, with one master key, one admin token and one public URL, behind a round-robin load
//! balancer of its own on 127.0.0.1 that is that public URL (no sticky sessions: every new
//! request goes to the next node), with oidc-provider as the authorization server and a fault
//! proxy in front of its token endpoint that counts (and can hold) token requests.
//!
//! Run by `cargo xtask conformance multinode` (and `cargo xtask bench multinode`, with
//! `--only expiry_storm`), which starts PostgreSQL and oidc-provider and passes:
//!
//! ```text
//! multinode --granary target/debug/granary --issuer http://127.0.0.1:N --store postgres://...
//!           --public-port P --client ID --client-secret S --out DIR
//!           [--callers 1000] [--only NAME,NAME] | --list
//! ```
//!
//! The provider redirects the client to `http://127.0.0.1:P/admin/oauth/`. Each node has a
//! data directory of its own (as on separate machines) and an API key made for it with
//! `granary api-key create` on that directory; the scenarios about the admin page and API keys
//! use only what the admin page makes. The runner waits for events (a request arriving at the
//! proxy, an answer, a refusal) with bounds, never for a fixed time, except the token's
//! lifetime in the storm.
//!
//! It prints one line per scenario, `multinode NAME: passed|failed (figures)[: why]`, and ends
//! with `multinode conformance: nodes=3 scenarios=N passed=P failed=F`; `--list` prints the
//! names of the scenarios, one a line. It exits non-zero when a scenario failed. Every node is
//! stopped at the end, on failure too.

mod balancer;
mod cluster;
mod scenarios;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cluster::{Cluster, Config};
use granary_e2e::{Flags, scenario};
use scenarios::SCENARIOS;

/// The number of nodes.
const NODES: usize = 3;
/// A scenario that has not finished after this failed.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(180);

struct Args {
    config: Config,
    public_port: u16,
    callers: usize,
    only: Vec<String>,
}

fn parse_args(args: Vec<String>) -> Result<Args, String> {
    let mut flags = Flags::parse(args, " (see the module documentation)")?;
    let only: Vec<String> = flags
        .optional("only")
        .map(|names| names.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    if let Some(unknown) = only.iter().find(|n| !SCENARIOS.contains(&n.as_str())) {
        return Err(format!(
            "unknown scenario {unknown}; the scenarios are: {}",
            SCENARIOS.join(", ")
        ));
    }
    let number = |name: &str, text: String| {
        text.parse::<usize>()
            .map_err(|e| format!("--{name} {text}: {e}"))
    };
    let public_port = number("public-port", flags.required("public-port")?)?;
    Ok(Args {
        config: Config {
            granary: PathBuf::from(flags.required("granary")?),
            issuer: flags.required("issuer")?,
            store: flags.required("store")?,
            client: flags.required("client")?,
            client_secret: flags.required("client-secret")?,
            out: PathBuf::from(flags.required("out")?),
        },
        public_port: u16::try_from(public_port).map_err(|e| format!("--public-port: {e}"))?,
        callers: match flags.optional("callers") {
            Some(text) => number("callers", text)?,
            None => 1000,
        },
        only,
    })
}

async fn run(args: Args) -> Result<(usize, usize), String> {
    let mut cluster = Cluster::start(args.config, args.public_port, NODES).await?;
    eprintln!(
        "multinode: {NODES} nodes listen on {}",
        cluster
            .nodes
            .iter()
            .map(|n| n.port.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (mut count, mut passed) = (0, 0);
    for name in SCENARIOS {
        if !args.only.is_empty() && !args.only.iter().any(|n| n == name) {
            continue;
        }
        count += 1;
        let started = Instant::now();
        let ended = tokio::time::timeout(
            SCENARIO_TIMEOUT,
            scenarios::run(name, &mut cluster, args.callers),
        )
        .await
        .ok();
        let (line, ok) = scenario::line(
            "multinode",
            name,
            ended,
            started.elapsed(),
            SCENARIO_TIMEOUT,
        );
        passed += usize::from(ok);
        println!("{line}");
    }
    cluster.proxy.reset();
    cluster.stop().await;
    Ok((count, passed))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for name in SCENARIOS {
            println!("{name}");
        }
        return ExitCode::SUCCESS;
    }
    let args = match parse_args(args) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("multinode: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match granary_e2e::runtime("multinode", None) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(run(args)) {
        Ok((count, passed)) => {
            let failed = count - passed;
            println!(
                "multinode conformance: nodes={NODES} scenarios={count} passed={passed} failed={failed}"
            );
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("multinode: {error}");
            ExitCode::FAILURE
        }
    }
}
