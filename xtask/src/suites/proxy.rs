//! The `proxy` conformance suite (issue 16): granary's proxy in front of an API of our own
//! that takes only tokens oidc-provider says are active (RFC 7662 introspection).
//!
//! `cargo xtask conformance proxy` builds `granary` and the runner (the `proxy` binary of
//! tests/e2e), asks the runner for its scenarios (`--list`), picks a free port for granary,
//! starts oidc-provider once with two clients (granary's, redirecting to that port, and the
//! API's, which only introspects), runs the runner, and always stops the provider. The
//! runner prints one line per scenario and ends with
//! `proxy conformance: scenarios=N passed=N failed=0`; the suite fails when a scenario failed
//! or fewer ran than the runner defines. Logs and the data directory go to `target/proxy/`.
//! `GRANARY_PROXY_ONLY=NAME,NAME` runs only those scenarios. `cargo xtask bench proxy`
//! ([`crate::benches`]) starts the same peers with [`start_peers`] and runs the runner's
//! bench mode.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::builds::{Profile, build_granary_and};
use crate::cmd::{Ctx, Failure, create_dir, describe, write_file};
use crate::peers::oidc;
use crate::ports::free_port;

/// Clients of a provider that lives for one run on 127.0.0.1 (test values).
const CLIENT: &str = "proxy-granary";
const CLIENT_SECRET: &str = "proxy-granary-secret-for-the-local-run";
const API_CLIENT: &str = "proxy-api";
const API_CLIENT_SECRET: &str = "proxy-api-secret-for-the-local-run";

fn clients(port: u16) -> String {
    format!(
        r#"{{
  "scopes": ["root_readonly", "root_readwrite", "manage_groups"],
  "clients": [
    {{
      "client_id": "{CLIENT}",
      "client_secret": "{CLIENT_SECRET}",
      "token_endpoint_auth_method": "client_secret_basic",
      "redirect_uris": ["http://127.0.0.1:{port}/admin/oauth/"],
      "scope": "openid offline_access root_readonly root_readwrite manage_groups",
      "access_token_ttl": 3600
    }},
    {{
      "client_id": "{API_CLIENT}",
      "client_secret": "{API_CLIENT_SECRET}",
      "token_endpoint_auth_method": "client_secret_basic",
      "redirect_uris": ["http://127.0.0.1:{port}/unused/"],
      "scope": "openid"
    }}
  ]
}}
"#
    )
}

/// The provider of a run and the runner's command line (without `--mode`).
pub struct Peers {
    pub server: oidc::Server,
    pub runner: Command,
}

/// Starts oidc-provider for a runner in `dir` built with `profile`, and gives the runner's
/// command with every argument but the mode.
pub fn start_peers(ctx: &Ctx, dir: &Path, profile: Profile) -> Result<Peers, Failure> {
    let port = free_port()?;
    let clients_file = dir.join("clients.json");
    write_file(&clients_file, &clients(port))?;
    let server = oidc::start(
        ctx,
        &oidc::Options {
            clients_file,
            log_file: dir.join("oidc-provider.log"),
            // The suite's API checks tokens by introspection.
            introspection: true,
            ..oidc::Options::default()
        },
    )?;
    eprintln!("==> oidc-provider listens at {}", server.issuer);
    let mut runner = Command::new(profile.binary(ctx, "proxy"));
    runner
        .args(["--granary", &profile.binary(ctx, "granary")])
        .args(["--issuer", &server.issuer])
        .args(["--port", &port.to_string()])
        .args(["--client-id", CLIENT, "--client-secret", CLIENT_SECRET])
        .args(["--api-client-id", API_CLIENT])
        .args(["--api-client-secret", API_CLIENT_SECRET])
        .args(["--out", &dir.join("run").to_string_lossy()])
        .current_dir(&ctx.root);
    Ok(Peers { server, runner })
}

pub fn conformance(ctx: &Ctx) -> Result<(), Failure> {
    let dir = ctx.target.join("proxy");
    create_dir(&dir)?;
    build_granary_and(
        ctx,
        "build granary and the proxy runner",
        Profile::Debug,
        "proxy",
    )?;
    let runner = Profile::Debug.binary(ctx, "proxy");
    let defined = super::listed_scenarios(&runner)?;
    let Peers { server, mut runner } = start_peers(ctx, &dir, Profile::Debug)?;
    runner.args(["--mode", "conformance"]);
    let mut expected = defined;
    // GRANARY_PROXY_ONLY=NAME,NAME runs those scenarios alone (while working on one).
    if let Ok(only) = std::env::var("GRANARY_PROXY_ONLY") {
        expected = only.split(',').count();
        runner.args(["--only", &only]);
    }
    let result = run_runner(runner, expected);
    server.finish(result.map_err(|failure| {
        Failure::new(format!(
            "{failure}\n(the data directory and granary's log are in {})",
            dir.join("run").display()
        ))
    }))
}

/// Runs the runner, passing its lines through, and judges its last line.
fn run_runner(mut command: Command, defined: usize) -> Result<(), Failure> {
    let line = describe(&command);
    eprintln!("==> proxy conformance: {line}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::new(format!("could not start {line}: {e}")))?;
    let mut last = String::new();
    if let Some(stdout) = child.stdout.take() {
        for text in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{text}");
            last = text;
        }
    }
    let status = child
        .wait()
        .map_err(|e| Failure::new(format!("{line}: {e}")))?;
    match super::summary_figures::<3>(&last, "proxy conformance: ") {
        Some([count, passed, 0]) if status.success() && passed == count && count >= defined => {
            Ok(())
        }
        Some([count, passed, failed]) => Err(Failure::new(format!(
            "proxy conformance: {failed} of {count} scenarios failed, {passed} passed \
             ({defined} defined; runner {status})"
        ))),
        None => Err(Failure::new(format!(
            "the proxy runner ended without its summary line ({status}); rerun `{line}`"
        ))),
    }
}
