//! The `browser` conformance suite: granary's admin page in a real headless Chromium, against
//! a real authorization server.
//!
//! `cargo xtask conformance browser` makes sure Debian's `chromium` and `chromium-driver` are
//! installed (with apt-get when missing and possible), builds `granary` and the browser test
//! (`tests/e2e`), starts oidc-provider with a client whose redirect URI is granary's, starts
//! chromedriver on 127.0.0.1, runs the test, and always stops what it started. Screenshots
//! and logs go to `target/browser/`.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::builds::{Profile, build_granary_and};
use crate::cmd::{Ctx, Failure, create_dir, write_file};
use crate::peers::oidc;
use crate::ports::{free_port, wait_for_port};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CLIENT_ID: &str = "granary-browser";
/// A test value of a server that lives for one run on 127.0.0.1.
const CLIENT_SECRET: &str = "browser-secret-for-the-local-conformance-run";

/// Installs chromium and chromium-driver with apt-get when they are missing.
fn ensure_chromium() -> Result<(), Failure> {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return Ok(());
    }
    eprintln!(
        "==> chromium or chromedriver is missing: installing Debian's chromium chromium-driver"
    );
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .map(|status| status.success())
            .unwrap_or(false)
    };
    let installed =
        apt(&["update", "-qq"]) && apt(&["install", "-y", "-qq", "chromium", "chromium-driver"]);
    if installed && Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return Ok(());
    }
    Err(Failure::new(
        "the browser test needs Debian's chromium and chromium-driver (/usr/bin/chromium, \
         /usr/bin/chromedriver): install them with `apt-get install chromium chromium-driver` (as root)",
    ))
}

/// A child process killed when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn conformance(ctx: &Ctx) -> Result<(), Failure> {
    ensure_chromium()?;
    let dir = ctx.target.join("browser");
    create_dir(&dir)?;
    build_granary_and(
        ctx,
        "build granary and the browser test",
        Profile::Debug,
        "browser",
    )?;

    let granary_port = free_port()?;
    let clients = dir.join("clients.json");
    write_file(
        &clients,
        &oidc::granary_clients(CLIENT_ID, CLIENT_SECRET, granary_port),
    )?;
    let server = oidc::start_in(ctx, &dir, &clients)?;

    let driver_port = free_port()?;
    let driver_log = fs::File::create(dir.join("chromedriver.log"))
        .map_err(|e| Failure::new(format!("cannot create the chromedriver log: {e}")))?;
    let driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={driver_port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(driver_log))
        .spawn()
        .map_err(|e| Failure::new(format!("cannot start {CHROMEDRIVER}: {e}")))?;
    let driver = Guard(driver);
    wait_for_port(driver_port, "chromedriver", Duration::from_secs(20))?;

    let binary = |name: &str| Profile::Debug.binary(ctx, name);
    let mut test = Command::new(binary("browser"));
    test.args(["--granary", &binary("granary")])
        .args(["--port", &granary_port.to_string()])
        .args(["--issuer", &server.issuer])
        .args(["--webdriver", &format!("http://127.0.0.1:{driver_port}")])
        .args(["--out", &dir.to_string_lossy()])
        .args(["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET])
        .current_dir(&ctx.root);
    let result = ctx.step("browser test", test);
    drop(driver);
    let log = server.log_file.clone();
    server.stop();
    result.map_err(|failure| {
        Failure::new(format!(
            "{failure}\n(screenshots, granary.log and chromedriver.log are in {}; the authorization server's log is {})",
            dir.display(),
            log.display()
        ))
    })
}
