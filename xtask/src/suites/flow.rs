//! The `flow` conformance suite: granary_flow::protocol against a real oidc-provider on 127.0.0.1.
//!
//! `cargo xtask conformance flow` installs the pinned oidc-provider, writes the clients file
//! under `target/flow-conformance/`, builds the scenario runner (the `conformance` example of
//! granary-flow), starts the server with [`oidc::start_in`], runs the runner against it and
//! always stops the server ([`oidc::Server::finish`]). The runner prints one line per scenario and ends with
//! `flow conformance: scenarios=N passed=N failed=N`.

use crate::cmd::{Ctx, Failure, create_dir, write_file};
use crate::peers::oidc;

/// The clients of the suite, in the format of conformance/oidc-provider/server.mjs. The
/// secrets are test values of a server that lives for one run on 127.0.0.1.
const CLIENTS: &str = r#"{
  "clients": [
    {
      "client_id": "basic",
      "client_secret": "basic-secret-for-the-local-conformance-run",
      "token_endpoint_auth_method": "client_secret_basic",
      "redirect_uris": ["http://127.0.0.1/admin/oauth/"],
      "scope": "openid offline_access email profile"
    },
    {
      "client_id": "post",
      "client_secret": "post-secret-for-the-local-conformance-run",
      "token_endpoint_auth_method": "client_secret_post",
      "redirect_uris": ["http://127.0.0.1/admin/oauth/"],
      "scope": "openid offline_access email profile"
    },
    {
      "client_id": "reserved",
      "client_secret": "r:e/s+e%r&v=e d?#~:/+%&=",
      "token_endpoint_auth_method": "client_secret_basic",
      "redirect_uris": ["http://127.0.0.1/admin/oauth/"],
      "scope": "openid offline_access email profile"
    },
    {
      "client_id": "public",
      "token_endpoint_auth_method": "none",
      "redirect_uris": ["http://127.0.0.1/admin/oauth/"],
      "scope": "openid offline_access email profile"
    },
    {
      "client_id": "short",
      "client_secret": "short-secret-for-the-local-conformance-run",
      "token_endpoint_auth_method": "client_secret_basic",
      "redirect_uris": ["http://127.0.0.1/admin/oauth/"],
      "scope": "openid offline_access email profile",
      "access_token_ttl": 3
    }
  ]
}
"#;

pub fn conformance(ctx: &Ctx) -> Result<(), Failure> {
    let dir = ctx.target.join("flow-conformance");
    create_dir(&dir)?;
    let clients = dir.join("clients.json");
    write_file(&clients, CLIENTS)?;

    // Build first, so that the server does not wait for the compiler.
    ctx.step(
        "build the flow scenario runner",
        ctx.cargo(&[
            "build",
            "--quiet",
            "-p",
            "granary-flow",
            "--example",
            "conformance",
        ]),
    )?;

    let server = oidc::start_in(ctx, &dir, &clients)?;
    let clients_arg = clients.to_string_lossy().into_owned();
    let result = ctx
        .output(
            "flow conformance",
            ctx.cargo(&[
                "run",
                "--quiet",
                "-p",
                "granary-flow",
                "--example",
                "conformance",
                "--",
                "--issuer",
                &server.issuer,
                "--clients",
                &clients_arg,
            ]),
        )
        .and_then(|(output, command_line)| {
            let stdout = String::from_utf8_lossy(&output.stdout);
            print!("{stdout}");
            judge_summary(&stdout, output.status.success(), &command_line)
        });
    server.finish(result)
}

/// Passes only when the runner succeeded and its summary line says that every one of a
/// non-zero number of scenarios passed.
fn judge_summary(stdout: &str, success: bool, command_line: &str) -> Result<(), Failure> {
    let summary = stdout
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("flow conformance: "));
    let count = |name: &str| {
        summary.and_then(|s| {
            s.split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                .and_then(|n| n.parse::<usize>().ok())
        })
    };
    match (count("scenarios"), count("passed"), count("failed")) {
        (Some(scenarios), Some(passed), Some(0))
            if success && scenarios > 0 && passed == scenarios =>
        {
            Ok(())
        }
        (Some(_), Some(_), Some(failed)) => Err(Failure::new(format!(
            "flow conformance: {failed} scenarios failed (FAIL lines above), or the runner \
             exited with an error; rerun `{command_line}`"
        ))),
        _ => Err(Failure::new(format!(
            "the flow conformance runner printed no summary line; rerun `{command_line}`"
        ))),
    }
}
