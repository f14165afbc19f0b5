//! The browser test: a real headless Chromium, driven over WebDriver, clicks through granary's
//! admin page and a real authorization server (oidc-provider's login and consent forms).
//!
//! Run by `cargo xtask conformance browser`, which starts oidc-provider and chromedriver and
//! passes their addresses:
//!
//! ```text
//! browser --granary target/debug/granary --port 18080 --issuer http://127.0.0.1:N
//!         --webdriver http://127.0.0.1:M --out target/browser --client-id ID --client-secret S
//! ```
//!
//! It starts `granary serve` on `--port` with a fresh data directory, then: signs in; imports
//! the Box document with its URLs pointed at the issuer; creates an instance; clicks "Get
//! access token"; signs in and consents at the provider; checks the success banner and the
//! token expiry; "Refresh now"; then sets a wrong client secret and checks the
//! troubleshooting banner; disconnects while the secret is still wrong and checks that the
//! banner warns that the tokens were not revoked at the provider (it refused the client);
//! restores the right secret, authorizes again, and disconnects: the banner must say that
//! the tokens were revoked (the success sentence, which the warning does not contain).
//! Screenshots of every step go to `--out`. The last line is `browser: N passed, M failed`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use granary_e2e::box_document;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

/// What the test needs, from the command line.
struct Args {
    granary: PathBuf,
    port: u16,
    issuer: String,
    webdriver: String,
    out: PathBuf,
    client_id: String,
    client_secret: String,
}

fn parse_args() -> Result<Args, String> {
    let mut granary = None;
    let mut port = None;
    let mut issuer = None;
    let mut webdriver = None;
    let mut out = None;
    let mut client_id = None;
    let mut client_secret = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--granary" => granary = Some(PathBuf::from(value()?)),
            "--port" => {
                port = Some(
                    value()?
                        .parse::<u16>()
                        .map_err(|e| format!("--port: {e}"))?,
                )
            }
            "--issuer" => issuer = Some(value()?),
            "--webdriver" => webdriver = Some(value()?),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--client-id" => client_id = Some(value()?),
            "--client-secret" => client_secret = Some(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let missing = |name: &str| format!("{name} is required (see the module documentation)");
    Ok(Args {
        granary: granary.ok_or_else(|| missing("--granary"))?,
        port: port.ok_or_else(|| missing("--port"))?,
        issuer: issuer.ok_or_else(|| missing("--issuer"))?,
        webdriver: webdriver.ok_or_else(|| missing("--webdriver"))?,
        out: out.ok_or_else(|| missing("--out"))?,
        client_id: client_id.ok_or_else(|| missing("--client-id"))?,
        client_secret: client_secret.ok_or_else(|| missing("--client-secret"))?,
    })
}

/// A running `granary serve`, killed when dropped.
struct Granary {
    child: Child,
    base: String,
}

impl Drop for Granary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ADMIN_TOKEN: &str = "browser-test-admin-token-0123456789";

fn start_granary(args: &Args) -> Result<Granary, String> {
    let data = args.out.join("data");
    let _ = std::fs::remove_dir_all(&data);
    let log = std::fs::File::create(args.out.join("granary.log"))
        .map_err(|e| format!("cannot create the log: {e}"))?;
    let base = format!("http://127.0.0.1:{}", args.port);
    let child = Command::new(&args.granary)
        .args(["serve", "--listen", &format!("127.0.0.1:{}", args.port)])
        .arg("--data-dir")
        .arg(&data)
        .env("GRANARY_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("GRANARY_MASTER_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", args.granary.display()))?;
    let granary = Granary { child, base };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", args.port)).is_err() {
        if Instant::now() > deadline {
            return Err("granary did not listen within 30 s; see granary.log".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(granary)
}

/// The steps, with screenshots; stops at the first failure.
struct Run<'a> {
    client: &'a Client,
    out: &'a Path,
    shots: usize,
    passed: usize,
}

type Step = Result<(), String>;

impl Run<'_> {
    async fn shot(&mut self, name: &str) {
        self.shots += 1;
        let path = self.out.join(format!("{:02}-{name}.png", self.shots));
        match self.client.screenshot().await {
            Ok(png) => {
                if let Err(e) = std::fs::write(&path, png) {
                    eprintln!("browser: cannot write {}: {e}", path.display());
                }
            }
            Err(e) => eprintln!("browser: no screenshot {name}: {e}"),
        }
    }

    async fn pass(&mut self, name: &str) {
        self.shot(name).await;
        self.passed += 1;
        println!("browser: ok   {name}");
    }

    async fn text(&self, css: &str) -> Result<String, String> {
        let url = self.url().await;
        let element = self
            .client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .map_err(|e| format!("no `{css}` on {url}: {e}"))?;
        element
            .text()
            .await
            .map_err(|e| format!("cannot read `{css}`: {e}"))
    }

    async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    async fn fill(&self, css: &str, value: &str) -> Step {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .map_err(|e| format!("no `{css}`: {e}"))?;
        element
            .clear()
            .await
            .map_err(|e| format!("cannot clear `{css}`: {e}"))?;
        element
            .send_keys(value)
            .await
            .map_err(|e| format!("cannot type into `{css}`: {e}"))
    }

    async fn click(&self, css: &str) -> Step {
        let url = self.url().await;
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .map_err(|e| format!("no `{css}` on {url}: {e}"))?
            .click()
            .await
            .map_err(|e| format!("cannot click `{css}`: {e}"))
    }

    /// Clicks `css`, which submits a form, and waits until the browser has left the page (its
    /// old document is gone), so that what is read next is the new page and not the banner
    /// of the old one.
    async fn submit(&self, css: &str) -> Step {
        let old = self
            .client
            .find(Locator::Css("html"))
            .await
            .map_err(|e| format!("no page before clicking `{css}`: {e}"))?;
        self.click(css).await?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while old.tag_name().await.is_ok() {
            if Instant::now() > deadline {
                return Err(format!(
                    "clicking `{css}` did not leave {} within 20 s",
                    self.url().await
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// At the provider: sign in (any login) and consent, until the browser is back at `base`.
    ///
    /// The click that led here may not have navigated yet, so the browser must first be seen
    /// away from `base` (the provider always asks for consent: `prompt=consent`).
    async fn provider(&mut self, base: &str) -> Step {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut signed_in = false;
        let mut left_granary = false;
        loop {
            if Instant::now() > deadline {
                return Err(format!(
                    "still at the provider after 60 s (left granary: {left_granary}): {}",
                    self.url().await
                ));
            }
            let url = self.url().await;
            if !url.starts_with(base) {
                left_granary = true;
            } else if left_granary {
                return Ok(());
            } else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            if self
                .client
                .find(Locator::Css("input[name=login]"))
                .await
                .is_ok()
            {
                self.fill("input[name=login]", "ada").await?;
                self.fill("input[name=password]", "any-password").await?;
                self.shot("provider-sign-in").await;
                self.click("button[type=submit]").await?;
                signed_in = true;
            } else if self
                .client
                .find(Locator::Css("button[type=submit]"))
                .await
                .is_ok()
            {
                self.shot(if signed_in {
                    "provider-consent"
                } else {
                    "provider-consent-again"
                })
                .await;
                self.click("button[type=submit]").await?;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn scenario(run: &mut Run<'_>, granary: &Granary, args: &Args) -> Step {
    let base = granary.base.as_str();
    let client = run.client;

    // Sign in.
    client
        .goto(&format!("{base}/admin/"))
        .await
        .map_err(|e| e.to_string())?;
    run.text("#sign-in").await?;
    run.fill("#token", ADMIN_TOKEN).await?;
    run.submit("#sign-in").await?;
    let heading = run.text("h1").await?;
    if heading != "Instances" {
        return Err(format!("after signing in the page says `{heading}`"));
    }
    run.pass("signed-in").await;

    // Import the Box document, pointed at the provider.
    client
        .goto(&format!("{base}/admin/integrations/new"))
        .await
        .map_err(|e| e.to_string())?;
    run.fill("#name", "box").await?;
    run.fill("#document", &box_document(&args.issuer)?).await?;
    run.submit("#import").await?;
    let banner = run.text("#banner").await?;
    if !banner.contains("Imported integration box") {
        return Err(format!("import banner: {banner}"));
    }
    let page = client.source().await.map_err(|e| e.to_string())?;
    if !page.contains("Read all files and folders stored in Box")
        || !page.contains(&format!("{}/token", args.issuer))
    {
        return Err("the integration page does not show the scopes and URLs".into());
    }
    run.pass("imported").await;

    // Read the provider's issuer and revocation endpoint from its metadata.
    run.fill("#issuer-url", &args.issuer).await?;
    run.submit("#discover").await?;
    let banner = run.text("#banner").await?;
    if !banner.contains("Provider metadata read") {
        return Err(format!("discovery banner: {banner}"));
    }
    let revocation = run.text("#revocation-url").await?;
    if !revocation.starts_with(&args.issuer) {
        return Err(format!(
            "no revocation endpoint after discovery: `{revocation}`"
        ));
    }
    run.pass("discovered").await;

    // Create an instance.
    run.click("#new-instance").await?;
    let redirect = run.text("#redirect-uri").await?;
    if redirect != format!("{base}/admin/oauth/") {
        return Err(format!("the redirect URI shown is `{redirect}`"));
    }
    run.fill("#id", "box-browser").await?;
    run.fill("#client_id", &args.client_id).await?;
    run.fill("#client_secret", &args.client_secret).await?;
    run.click("input[name=scope][value=root_readonly]").await?;
    run.fill("#extra_scopes", "openid offline_access").await?;
    run.click("input[name=force_scopes]").await?;
    run.fill("#extra_authorization_params", "prompt=consent")
        .await?;
    run.shot("instance-form").await;
    run.submit("#save").await?;
    let status = run.text("#status").await?;
    if status != "not connected yet" {
        return Err(format!("a new instance's status is `{status}`"));
    }
    run.pass("instance-created").await;

    // Get access token: sign in and consent at the provider, back to the success banner.
    run.click("#get-token").await?;
    run.provider(base).await?;
    let banner = run.text("#banner").await?;
    if !banner.contains("Connected: instance box-browser holds an access token.") {
        return Err(format!("after the provider the banner says: {banner}"));
    }
    let expiry = run.text("#expiry").await?;
    if !expiry.contains("UTC") {
        return Err(format!("no token expiry shown: `{expiry}`"));
    }
    let status = run.text("#status").await?;
    if status != "connected" {
        return Err(format!("status after authorization: `{status}`"));
    }
    let granted = run.text("#granted").await?;
    if !granted.contains("root_readonly") {
        return Err(format!("granted scopes: `{granted}`"));
    }
    run.pass("authorized").await;

    // Refresh now.
    run.submit("#refresh").await?;
    let banner = run.text("#banner").await?;
    if !banner.contains("Refreshed") {
        return Err(format!("after Refresh now the banner says: {banner}"));
    }
    run.pass("refreshed").await;

    // A wrong secret: the troubleshooting banner names the cause and the fix.
    run.click("#edit").await?;
    let state = run.text("#secret-state").await?;
    if state != "set" {
        return Err(format!("the edit form says the secret is `{state}`"));
    }
    let echoed = client.source().await.map_err(|e| e.to_string())?;
    if echoed.contains(&args.client_secret) {
        return Err("the edit form echoes the client secret".into());
    }
    run.fill("#client_secret", "a-wrong-secret").await?;
    run.submit("#save").await?;
    run.text("#banner").await?;
    run.click("#get-token").await?;
    run.provider(base).await?;
    let banner = run.text("#banner").await?;
    if !banner.contains("The authorization failed")
        || !banner.contains("client credentials")
        || !banner.contains("Fix:")
    {
        return Err(format!("a wrong secret shows: {banner}"));
    }
    run.pass("wrong-secret-banner").await;

    // Disconnect while the secret is wrong: the provider refuses the revocation, the
    // tokens are forgotten here anyway, and the banner warns that they were not revoked.
    run.submit("#disconnect").await?;
    let banner = run.text("#banner").await?;
    if !banner.contains("holds no token now")
        || !banner.contains("Not revoked at the provider")
        || !banner.contains("rejected the client credentials")
        || banner.contains(REVOKED)
    {
        return Err(format!(
            "after Disconnect with a wrong secret the banner says: {banner}"
        ));
    }
    let status = run.text("#status").await?;
    if status != "not connected yet" {
        return Err(format!("status after Disconnect: `{status}`"));
    }
    run.pass("disconnected-not-revoked").await;

    // The right secret again, and a new authorization.
    run.click("#edit").await?;
    run.text("#secret-state").await?;
    run.fill("#client_secret", &args.client_secret).await?;
    run.submit("#save").await?;
    run.text("#banner").await?;
    run.click("#get-token").await?;
    run.provider(base).await?;
    let banner = run.text("#banner").await?;
    if !banner.contains("Connected: instance box-browser holds an access token.") {
        return Err(format!(
            "after restoring the secret the authorization says: {banner}"
        ));
    }
    let status = run.text("#status").await?;
    if status != "connected" {
        return Err(format!("status after the new authorization: `{status}`"));
    }
    run.pass("secret-restored-authorized").await;

    // Disconnect: revoked at the provider, forgotten here; the instance stays.
    run.submit("#disconnect").await?;
    let banner = run.text("#banner").await?;
    if !banner.contains("holds no token now")
        || !banner.contains(REVOKED)
        || banner.contains("Not revoked")
    {
        return Err(format!("after Disconnect the banner says: {banner}"));
    }
    let status = run.text("#status").await?;
    if status != "not connected yet" {
        return Err(format!("status after Disconnect: `{status}`"));
    }
    run.pass("disconnected-revoked").await;
    Ok(())
}

/// What the Disconnect banner says when the provider confirmed the revocation; the warning
/// of a failed one ("Not revoked at the provider: ...") does not contain it.
const REVOKED: &str = "Its tokens were revoked at the provider.";

async fn run(args: Args) -> Result<usize, (usize, String)> {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| (0, format!("cannot create {}: {e}", args.out.display())))?;
    // Screenshots of an earlier run would mix with this one's.
    if let Ok(entries) = std::fs::read_dir(&args.out) {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|ext| ext == "png") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let granary = start_granary(&args).map_err(|e| (0, e))?;
    let profile = args.out.join("chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-quic", "--no-first-run", "--window-size=1200,1000",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let capabilities = match capabilities {
        serde_json::Value::Object(map) => map,
        _ => return Err((0, "capabilities are not an object".into())),
    };
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&args.webdriver)
        .await
        .map_err(|e| {
            (
                0,
                format!("cannot open a Chromium session at {}: {e}", args.webdriver),
            )
        })?;
    let mut steps = Run {
        client: &client,
        out: &args.out,
        shots: 0,
        passed: 0,
    };
    let result = scenario(&mut steps, &granary, &args).await;
    if result.is_err() {
        steps.shot("failure").await;
    }
    let passed = steps.passed;
    let _ = client.close().await;
    drop(granary);
    result.map(|()| passed).map_err(|e| (passed, e))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("browser: {e}");
            return ExitCode::from(2);
        }
    };
    let out = args.out.clone();
    let runtime = match granary_e2e::runtime("browser", None) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(run(args)) {
        Ok(passed) => {
            println!("browser: screenshots in {}", out.display());
            println!("browser: {passed} passed, 0 failed");
            ExitCode::SUCCESS
        }
        Err((passed, error)) => {
            println!("browser: FAIL {error}");
            println!("browser: screenshots and granary.log in {}", out.display());
            println!("browser: {passed} passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}
