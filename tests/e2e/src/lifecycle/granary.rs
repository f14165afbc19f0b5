//! Real granary processes on one data directory: the CLI, `granary serve` started and
//! signalled (SIGTERM, SIGKILL, SIGSTOP, SIGCONT through `kill`), its REST API, and the
//! authorization through the admin page and the provider's login and consent forms.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use granary_e2e::server::{Serve, signal};
use granary_e2e::token_proxy::Proxy;
use granary_e2e::{Authorization, box_document, sign_in};
use reqwest::Client;
use reqwest::redirect::Policy;

/// The admin token of every server of the run (a test value on 127.0.0.1).
const ADMIN_TOKEN: &str = "lifecycle-admin-token-0123456789abcdef";

/// The shutdown grace period given to every server (`GRANARY_SHUTDOWN_GRACE`).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// The refresh deadline given to every server (`GRANARY_REFRESH_DEADLINE`).
pub const REFRESH_DEADLINE: Duration = Duration::from_secs(4);

/// What every scenario shares.
pub struct Env {
    /// The `granary` binary.
    pub granary: PathBuf,
    /// The provider's issuer.
    pub issuer: String,
    /// The two ports a scenario's servers listen on (the provider redirects to both).
    pub ports: [u16; 2],
    /// The client whose access tokens live long (an hour).
    pub long_client: String,
    /// The client whose access tokens live the provider's default (a few seconds).
    pub short_client: String,
    /// The secret of both clients.
    pub client_secret: String,
    /// Where each scenario gets its folder.
    pub out: PathBuf,
    /// The fault proxy in front of the provider's token endpoint.
    pub proxy: Proxy,
}

/// Which client an instance uses.
#[derive(Clone, Copy)]
pub enum Lifetime {
    /// Access tokens that live an hour.
    Long,
    /// Access tokens that live a few seconds.
    Short,
}

/// One scenario's data directory, set up with the Box integration, its instances and an API
/// key.
pub struct Setup<'a> {
    pub env: &'a Env,
    pub dir: PathBuf,
    pub data: PathBuf,
    pub api_key: String,
    started: usize,
}

impl<'a> Setup<'a> {
    /// A fresh folder for `scenario`, the integration imported, one instance per `(id,
    /// lifetime)` with its token URL pointed at the proxy, and an API key.
    pub fn new(
        env: &'a Env,
        scenario: &str,
        instances: &[(&str, Lifetime)],
    ) -> Result<Self, String> {
        let dir = env.out.join(scenario);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let data = dir.join("data");
        let document = dir.join("box.json");
        std::fs::write(&document, box_document(&env.issuer)?)
            .map_err(|e| format!("cannot write {}: {e}", document.display()))?;
        let mut setup = Setup {
            env,
            dir,
            data,
            api_key: String::new(),
            started: 0,
        };
        setup.cli_ok(&[
            "import",
            &document.to_string_lossy(),
            "--name",
            "box",
            "--issuer",
            &env.issuer,
        ])?;
        for (id, lifetime) in instances {
            let client = match lifetime {
                Lifetime::Long => &env.long_client,
                Lifetime::Short => &env.short_client,
            };
            setup.cli_ok(&[
                "instance",
                "create",
                id,
                "--integration",
                "box",
                "--client-id",
                client,
                "--scope",
                "root_readonly",
                "--scope",
                "openid offline_access",
                "--force-scopes",
                "--auth-param",
                "prompt=consent",
                "--token-url",
                &env.proxy.token_url,
            ])?;
        }
        let output = setup.cli(&["api-key", "create", "lifecycle"])?;
        if !output.status.success() {
            return Err(format!(
                "granary api-key create failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        setup.api_key = String::from_utf8_lossy(&output.stdout).trim().to_string();
        Ok(setup)
    }

    fn public_url(&self, port: u16) -> String {
        format!("http://127.0.0.1:{port}")
    }

    /// A `granary` command on the data directory, with the public URL of port `port`.
    fn command(&self, args: &[&str], port: u16) -> Command {
        let mut command = Command::new(&self.env.granary);
        command
            .args(args)
            .arg("--data-dir")
            .arg(&self.data)
            .args(["--public-url", &self.public_url(port)])
            .env("GRANARY_CLIENT_SECRET", &self.env.client_secret)
            .env("GRANARY_LOG", "warn")
            .env_remove("GRANARY_SERVER")
            .env_remove("GRANARY_API_KEY")
            .env_remove("GRANARY_MASTER_KEY")
            .env_remove("GRANARY_CONFIG")
            .env_remove("GRANARY_DATA_DIR")
            .env_remove("GRANARY_LISTEN")
            .env_remove("GRANARY_PUBLIC_URL")
            .stdin(Stdio::null());
        command
    }

    /// Runs a CLI command to its end (at most 30 s).
    pub fn cli(&self, args: &[&str]) -> Result<Output, String> {
        let child = self
            .command(args, self.env.ports[0])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start granary {}: {e}", args.join(" ")))?;
        let id = child.id();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(child.wait_with_output());
        });
        match receiver.recv_timeout(Duration::from_secs(30)) {
            Ok(result) => result.map_err(|e| format!("granary {}: {e}", args.join(" "))),
            Err(_) => {
                signal(id, "KILL");
                Err(format!(
                    "granary {} did not end within 30 s",
                    args.join(" ")
                ))
            }
        }
    }

    /// Runs a CLI command that must succeed.
    pub fn cli_ok(&self, args: &[&str]) -> Result<String, String> {
        let output = self.cli(args)?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "granary {} failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    /// Starts `granary serve` on port `which` (0 or 1) and waits until it listens.
    pub async fn serve(&mut self, which: usize) -> Result<Serve, String> {
        let port = self.env.ports[which];
        self.started += 1;
        let log = self
            .dir
            .join(format!("serve-{}-{}.log", which, self.started));
        let mut command = self.command(&["serve", "--listen", &format!("127.0.0.1:{port}")], port);
        command
            .env("GRANARY_ADMIN_TOKEN", ADMIN_TOKEN)
            .env(
                "GRANARY_SHUTDOWN_GRACE",
                SHUTDOWN_GRACE.as_secs().to_string(),
            )
            .env(
                "GRANARY_REFRESH_DEADLINE",
                REFRESH_DEADLINE.as_secs().to_string(),
            )
            .env("GRANARY_LOG", "info")
            .env_remove("GRANARY_CLIENT_SECRET");
        Serve::spawn(command, port, &self.public_url(port), &self.api_key, log).await
    }

    /// Authorizes instance `id` through `serve`'s admin page and the provider's forms.
    pub async fn authorize(&self, serve: &Serve, id: &str) -> Result<(), String> {
        authorize(&serve.base, &self.env.issuer, id).await?;
        let status = serve.api.status(id).await?;
        if status != "authorized" {
            return Err(format!("instance {id} is {status} after the authorization"));
        }
        Ok(())
    }
}

/// Signs in to the admin page of `base`, starts the authorization of `id`, signs in and
/// consents at the provider (devInteractions' forms), and follows the callback.
async fn authorize(base: &str, issuer: &str, id: &str) -> Result<(), String> {
    let http = Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| e.to_string())?;
    let csrf = sign_in(&http, base, ADMIN_TOKEN).await?;
    match granary_e2e::authorize(&http, base, issuer, id, &csrf, "lifecycle").await? {
        Authorization::Connected => Ok(()),
        Authorization::Callback(status, body) => {
            Err(format!("the callback answered {status}: {body}"))
        }
        Authorization::NotBack => Err(format!(
            "the authorization of {id} did not come back to {base}"
        )),
    }
}
