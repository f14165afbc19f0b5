//! The `lifecycle` conformance suite: the token lifecycle across process boundaries (issue 9),
//! with real granary processes, real signals and a fault proxy in front of a real provider.
//!
//! `cargo xtask conformance lifecycle` builds `granary` and the runner (the `lifecycle` binary
//! of tests/e2e), asks the runner for its scenarios (`--list`), picks two free ports for the
//! servers a scenario starts, starts oidc-provider with one-use rotating refresh tokens
//! (`--rotate-refresh-token always`), short access tokens (4 s) for one client and hour-long
//! ones for the other, both redirecting to those ports, runs the runner, and always stops the
//! provider ([`oidc::Server::finish`]); the runner stops the granary processes and its proxy.
//! The runner prints one line per scenario and ends with
//! `lifecycle conformance: scenarios=N passed=N failed=0`; the suite fails when a scenario
//! failed or fewer scenarios ran than the runner defines. Logs and data directories go to
//! `target/lifecycle/`. `GRANARY_LIFECYCLE_ONLY=NAME,NAME` runs only those scenarios;
//! `GRANARY_LIFECYCLE_GRANARY=PATH` runs them against another `granary` binary.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use crate::builds::{Profile, build_granary_and};
use crate::cmd::{Ctx, Failure, create_dir, describe, write_file};
use crate::peers::oidc;
use crate::ports::free_port;

/// Clients of a provider that lives for one run on 127.0.0.1 (test values).
const LONG_CLIENT: &str = "lifecycle-long";
const SHORT_CLIENT: &str = "lifecycle-short";
const CLIENT_SECRET: &str = "lifecycle-secret-for-the-local-conformance-run";
/// The short client's access-token lifetime (the provider's default in this suite).
const SHORT_TTL: u32 = 4;

fn clients(ports: [u16; 2]) -> String {
    let uris = format!(
        r#"["http://127.0.0.1:{}/admin/oauth/", "http://127.0.0.1:{}/admin/oauth/"]"#,
        ports[0], ports[1]
    );
    format!(
        r#"{{
  "scopes": ["root_readonly", "root_readwrite", "manage_groups"],
  "clients": [
    {{
      "client_id": "{LONG_CLIENT}",
      "client_secret": "{CLIENT_SECRET}",
      "token_endpoint_auth_method": "client_secret_basic",
      "redirect_uris": {uris},
      "scope": "openid offline_access root_readonly root_readwrite manage_groups",
      "access_token_ttl": 3600
    }},
    {{
      "client_id": "{SHORT_CLIENT}",
      "client_secret": "{CLIENT_SECRET}",
      "token_endpoint_auth_method": "client_secret_basic",
      "redirect_uris": {uris},
      "scope": "openid offline_access root_readonly root_readwrite manage_groups"
    }}
  ]
}}
"#
    )
}

pub fn conformance(ctx: &Ctx) -> Result<(), Failure> {
    let dir = ctx.target.join("lifecycle");
    create_dir(&dir)?;
    build_granary_and(
        ctx,
        "build granary and the lifecycle runner",
        Profile::Debug,
        "lifecycle",
    )?;
    let runner = Profile::Debug.binary(ctx, "lifecycle");
    let defined = super::listed_scenarios(&runner)?;

    let ports = [free_port()?, free_port()?];
    if ports[0] == ports[1] {
        return Err(Failure::new(
            "the OS gave the same free port twice; run again",
        ));
    }
    let clients_file = dir.join("clients.json");
    write_file(&clients_file, &clients(ports))?;
    let server = oidc::start(
        ctx,
        &oidc::Options {
            clients_file,
            log_file: dir.join("oidc-provider.log"),
            access_token_ttl: Some(SHORT_TTL),
            rotate_refresh_token: Some("always"),
            // Off: unknown_expiry_rejected_by_100_callers needs a token whose expiry
            // nothing states.
            introspection: false,
            port: 0,
        },
    )?;
    eprintln!("==> oidc-provider listens at {}", server.issuer);

    // GRANARY_LIFECYCLE_GRANARY=PATH runs the scenarios against another granary binary (for
    // example one built from an older commit, to see which scenarios it fails).
    let granary = std::env::var("GRANARY_LIFECYCLE_GRANARY")
        .unwrap_or_else(|_| Profile::Debug.binary(ctx, "granary"));
    let mut command = Command::new(&runner);
    command
        .args(["--granary", &granary])
        .args(["--issuer", &server.issuer])
        .args(["--ports", &format!("{},{}", ports[0], ports[1])])
        .args(["--long-client", LONG_CLIENT, "--short-client", SHORT_CLIENT])
        .args(["--client-secret", CLIENT_SECRET])
        .args(["--out", &dir.to_string_lossy()])
        .current_dir(&ctx.root);
    // GRANARY_LIFECYCLE_ONLY=NAME,NAME runs those scenarios alone (while working on one).
    let mut expected = defined;
    if let Ok(only) = std::env::var("GRANARY_LIFECYCLE_ONLY") {
        expected = only.split(',').count();
        command.args(["--only", &only]);
    }
    let result = run_runner(command, expected);
    server.finish(result.map_err(|failure| {
        Failure::new(format!(
            "{failure}\n(the data directories and granary logs are in {})",
            dir.display()
        ))
    }))
}

/// Runs the runner, passing its lines through, and judges its last line.
fn run_runner(mut command: Command, defined: usize) -> Result<(), Failure> {
    let line = describe(&command);
    eprintln!("==> lifecycle conformance: {line}");
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
    match super::summary_figures::<3>(&last, "lifecycle conformance: ") {
        Some([count, passed, 0]) if status.success() && passed == count && count >= defined => {
            Ok(())
        }
        Some([count, passed, failed]) => Err(Failure::new(format!(
            "lifecycle conformance: {failed} of {count} scenarios failed, {passed} passed \
             ({defined} defined; runner {status})"
        ))),
        None => Err(Failure::new(format!(
            "the lifecycle runner ended without its summary line ({status}); rerun `{line}`"
        ))),
    }
}
