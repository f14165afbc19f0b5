//! The `facade` conformance suite: granary (facade + engine) against a real oidc-provider on
//! 127.0.0.1.
//!
//! `cargo xtask conformance facade` writes the clients file under
//! `target/facade-conformance/`, starts the server with [`oidc::start_in`], and runs the
//! ignored lifecycle tests of the `granary` crate with `GRANARY_FACADE_ISSUER` and
//! `GRANARY_FACADE_CLIENTS` set; the server is always stopped. The clients file serves
//! `bench facade` too (`benches/facade.rs`).

use std::path::PathBuf;

use crate::cmd::{Ctx, Failure, create_dir, write_file};
use crate::peers::oidc;

/// The clients of the suite. The secrets are test values of a server that lives for one
/// run on 127.0.0.1. `facade-short` has 4 s access tokens, to see a refresh in the margin.
const CLIENTS: &str = r#"{
  "clients": [
    {
      "client_id": "facade-basic",
      "client_secret": "facade-basic-secret-for-the-local-conformance-run",
      "token_endpoint_auth_method": "client_secret_basic",
      "redirect_uris": ["http://127.0.0.1:9/admin/oauth/"],
      "scope": "openid offline_access email profile"
    },
    {
      "client_id": "facade-short",
      "client_secret": "facade-short-secret-for-the-local-conformance-run",
      "token_endpoint_auth_method": "client_secret_post",
      "redirect_uris": ["http://127.0.0.1:9/admin/oauth/"],
      "scope": "openid offline_access email profile",
      "access_token_ttl": 4
    },
    {
      "client_id": "facade-public",
      "token_endpoint_auth_method": "none",
      "redirect_uris": ["http://127.0.0.1:9/admin/oauth/"],
      "scope": "openid offline_access email profile"
    },
    {
      "client_id": "facade-bench",
      "client_secret": "facade-bench-secret-for-the-local-benchmark-run",
      "token_endpoint_auth_method": "client_secret_basic",
      "redirect_uris": ["http://127.0.0.1:9/admin/oauth/"],
      "scope": "openid offline_access email profile"
    }
  ]
}
"#;

/// The suite's folder `target/<folder>` with the clients file in it.
pub fn prepare(ctx: &Ctx, folder: &str) -> Result<(PathBuf, PathBuf), Failure> {
    let dir = ctx.target.join(folder);
    create_dir(&dir)?;
    let clients = dir.join("clients.json");
    write_file(&clients, CLIENTS)?;
    Ok((dir, clients))
}

pub fn conformance(ctx: &Ctx) -> Result<(), Failure> {
    let (dir, clients) = prepare(ctx, "facade-conformance")?;
    let test = |extra: &[&str]| {
        let mut args = vec![
            "test",
            "-p",
            "granary",
            "--all-features",
            "--test",
            "lifecycle",
        ];
        args.extend_from_slice(extra);
        ctx.cargo(&args)
    };
    // Build first, so that the server does not wait for the compiler.
    ctx.step("build the facade lifecycle tests", test(&["--no-run"]))?;
    let server = oidc::start_in(ctx, &dir, &clients)?;
    // One at a time: the tests count token requests at the shared server.
    let mut command = test(&["--", "--ignored", "--test-threads=1"]);
    command
        .env("GRANARY_FACADE_ISSUER", &server.issuer)
        .env("GRANARY_FACADE_CLIENTS", &clients);
    let result = ctx.step("facade conformance", command);
    server.finish(result)
}
