//! The lifecycle conformance runner: the token lifecycle across process boundaries (issue 9)
//! with real parts: oidc-provider (one-use rotating refresh tokens), a fault proxy in front of
//! its token endpoint only, and real `granary` processes (`serve` and CLI commands) on one
//! data directory per scenario, stopped and frozen with real signals.
//!
//! Run by `cargo xtask conformance lifecycle`, which starts oidc-provider and passes:
//!
//! ```text
//! lifecycle --granary target/debug/granary --issuer http://127.0.0.1:N --ports A,B
//!           --long-client ID --short-client ID --client-secret S --out DIR
//!           [--only NAME,NAME] | --list
//! ```
//!
//! The provider redirects both clients to `http://127.0.0.1:{A,B}/admin/oauth/`; the long
//! client's access tokens live an hour, the short one's a few seconds. Every instance's token
//! URL is the proxy's. The runner waits for events (a request arriving at the proxy, a process
//! exiting, an answer) with bounds, never for a fixed time, except where a token's lifetime or
//! a stated propagation bound is the thing measured.
//!
//! It prints one line per scenario, `lifecycle NAME: passed|failed (figures)[: why]`, and ends
//! with `lifecycle conformance: scenarios=N passed=P failed=F`; `--list` prints the names of
//! the scenarios defined, one a line. It exits non-zero when a scenario failed.

mod granary;
mod scenarios;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use granary::Env;
use granary_e2e::token_proxy::Proxy;
use granary_e2e::{Flags, scenario};
use scenarios::SCENARIOS;

/// A scenario that has not finished after this failed.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(90);

struct Args {
    granary: PathBuf,
    issuer: String,
    ports: [u16; 2],
    long_client: String,
    short_client: String,
    client_secret: String,
    out: PathBuf,
    only: Vec<String>,
}

fn parse_args(args: Vec<String>) -> Result<Args, String> {
    let mut flags = Flags::parse(args, " (see the module documentation)")?;
    let ports = flags.required("ports")?;
    let ports: Vec<u16> = ports
        .split(',')
        .map(|p| p.trim().parse::<u16>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--ports: {e}"))?;
    let [a, b] = ports[..] else {
        return Err("--ports takes two ports, A,B".into());
    };
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
    Ok(Args {
        granary: PathBuf::from(flags.required("granary")?),
        issuer: flags.required("issuer")?,
        ports: [a, b],
        long_client: flags.required("long-client")?,
        short_client: flags.required("short-client")?,
        client_secret: flags.required("client-secret")?,
        out: PathBuf::from(flags.required("out")?),
        only,
    })
}

async fn run(args: Args) -> Result<(usize, usize), String> {
    let proxy = Proxy::start(format!("{}/token", args.issuer)).await?;
    eprintln!("lifecycle: the fault proxy listens at {}", proxy.token_url);
    let env = Env {
        granary: args.granary,
        issuer: args.issuer,
        ports: args.ports,
        long_client: args.long_client,
        short_client: args.short_client,
        client_secret: args.client_secret,
        out: args.out,
        proxy,
    };
    let (mut count, mut passed) = (0, 0);
    for name in SCENARIOS {
        if !args.only.is_empty() && !args.only.iter().any(|n| n == name) {
            continue;
        }
        count += 1;
        let started = std::time::Instant::now();
        let ended = tokio::time::timeout(SCENARIO_TIMEOUT, scenarios::run(name, &env))
            .await
            .ok();
        let (line, ok) = scenario::line(
            "lifecycle",
            name,
            ended,
            started.elapsed(),
            SCENARIO_TIMEOUT,
        );
        passed += usize::from(ok);
        println!("{line}");
    }
    env.proxy.reset();
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
            eprintln!("lifecycle: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match granary_e2e::runtime("lifecycle", Some(2)) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(run(args)) {
        Ok((count, passed)) => {
            let failed = count - passed;
            println!("lifecycle conformance: scenarios={count} passed={passed} failed={failed}");
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("lifecycle: {error}");
            ExitCode::FAILURE
        }
    }
}
