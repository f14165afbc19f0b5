//! `cargo xtask demo`: oidc-provider plus granary with an integration and an instance ready.

use std::fs;
use std::process::{Command, Stdio};

use crate::builds::build_granary;
use crate::cmd::{Ctx, Failure, create_dir, write_file};
use crate::peers::oidc;
use crate::ports::{free_port, wait_for_port};

/// `cargo xtask demo`.
pub fn run(ctx: &Ctx) -> Result<(), Failure> {
    let dir = ctx.target.join("demo");
    let data = dir.join("data");
    let _ = fs::remove_dir_all(&data);
    create_dir(&dir)?;
    build_granary(ctx, "build granary")?;
    let port = if std::net::TcpListener::bind("127.0.0.1:8080").is_ok() {
        8080
    } else {
        free_port()?
    };
    let public_url = format!("http://127.0.0.1:{port}");
    // A demo client of a server that lives on 127.0.0.1 while the demo runs.
    let (client_id, client_secret) = ("granary-demo", "demo-secret-for-the-local-run");
    let clients = dir.join("clients.json");
    write_file(
        &clients,
        &oidc::granary_clients(client_id, client_secret, port),
    )?;
    let server = oidc::start_in(ctx, &dir, &clients)?;
    let fixture = ctx.path("crates/granary-openapi/tests/fixtures/box.json");
    let document = fs::read_to_string(&fixture)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", fixture.display())))?
        .replace(
            "https://account.box.com/api/oauth2/authorize",
            &format!("{}/auth", server.issuer),
        )
        .replace(
            "https://api.box.com/oauth2/token",
            &format!("{}/token", server.issuer),
        );
    let document_path = dir.join("box-demo.json");
    write_file(&document_path, &document)?;

    let granary = ctx.target.join("debug").join("granary");
    let cli = |args: &[&str]| {
        let mut command = Command::new(&granary);
        command
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .args(["--public-url", &public_url])
            .env("GRANARY_CLIENT_SECRET", client_secret)
            .env_remove("GRANARY_SERVER")
            .env_remove("GRANARY_MASTER_KEY");
        command
    };
    ctx.step(
        "import the Box document (and read the provider's issuer and revocation endpoint)",
        cli(&[
            "import",
            &document_path.to_string_lossy(),
            "--name",
            "box",
            "--issuer",
            &server.issuer,
        ]),
    )?;
    ctx.step(
        "create the instance `demo`",
        cli(&[
            "instance",
            "create",
            "demo",
            "--integration",
            "box",
            "--client-id",
            client_id,
            "--scope",
            "root_readonly",
            "--scope",
            "openid offline_access",
            "--force-scopes",
            "--auth-param",
            "prompt=consent",
        ]),
    )?;
    let mut serve = cli(&["serve", "--listen", &format!("127.0.0.1:{port}")]);
    serve
        .env_remove("GRANARY_CLIENT_SECRET")
        .env_remove("GRANARY_ADMIN_TOKEN")
        .stdin(Stdio::null());
    let mut child = serve
        .spawn()
        .map_err(|e| Failure::new(format!("cannot start granary: {e}")))?;
    if let Err(failure) = wait_for_port(port, "granary", std::time::Duration::from_secs(30)) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(failure);
    }
    let admin_token = data.join("admin-token");
    let lines = [
        String::new(),
        "granary demo, offline, on 127.0.0.1:".to_string(),
        String::new(),
        format!("  1. Open {public_url}/admin/ and sign in with the admin token printed above"),
        format!("     (it is also in {}).", admin_token.display()),
        "  2. Open the instance `demo` and click \"Get access token\".".to_string(),
        format!(
            "  3. At the authorization server ({}), sign in with any login and",
            server.issuer
        ),
        "     password, and consent: you come back with a success banner and the expiry."
            .to_string(),
        "  4. Try \"Refresh now\", create an API key on the API keys page, then:".to_string(),
        format!(
            "     curl -H 'Authorization: Bearer <key>' {public_url}/api/v1/instances/demo/token"
        ),
        String::new(),
        format!(
            "Ctrl-C stops granary and the authorization server. Data: {}",
            data.display()
        ),
    ];
    println!("{}", lines.join("\n"));
    let status = child
        .wait()
        .map_err(|e| Failure::new(format!("granary: {e}")))?;
    server.stop();
    if status.success() {
        Ok(())
    } else {
        Err(Failure::new(format!("granary exited with {status}")))
    }
}
