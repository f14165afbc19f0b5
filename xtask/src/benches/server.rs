//! `cargo xtask bench server`: loopback load on the token endpoint against /healthz.

use std::process::Command;

use crate::builds::{Profile, build_granary_and};
use crate::cmd::{Ctx, Failure, create_dir, write_file};
use crate::peers::oidc;
use crate::ports::free_port;

/// `cargo xtask bench server`.
pub fn bench(ctx: &Ctx) -> Result<(), Failure> {
    let dir = ctx.target.join("bench-server");
    create_dir(&dir)?;
    build_granary_and(
        ctx,
        "build granary and the load client (release)",
        Profile::Release,
        "load",
    )?;
    let port = free_port()?;
    let clients = dir.join("clients.json");
    // Test values of a server that lives for one run on 127.0.0.1.
    let (client_id, client_secret) = ("granary-bench", "bench-secret-for-the-local-run");
    write_file(
        &clients,
        &oidc::granary_clients(client_id, client_secret, port),
    )?;
    let server = oidc::start_in(ctx, &dir, &clients)?;
    let binary = |name: &str| Profile::Release.binary(ctx, name);
    let mut load = Command::new(binary("load"));
    load.args(["--granary", &binary("granary")])
        .args(["--port", &port.to_string()])
        .args(["--issuer", &server.issuer])
        .args(["--client-id", client_id, "--client-secret", client_secret])
        .args(["--out", &dir.to_string_lossy()])
        .args(["--seconds", "20"]);
    let result = ctx.step("bench server (20 s per endpoint)", load);
    server.stop();
    result
}
