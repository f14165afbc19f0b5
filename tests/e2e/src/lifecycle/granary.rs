//! Real granary processes on one data directory: the CLI, `granary serve` started and
//! signalled (SIGTERM, SIGKILL, SIGSTOP, SIGCONT through `kill`), its REST API, and the
//! authorization through the admin page and the provider's login and consent forms.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use granary_e2e::{Authorization, box_document, sign_in};
use reqwest::redirect::Policy;
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;

use crate::proxy::Proxy;

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
        let log_path = self
            .dir
            .join(format!("serve-{}-{}.log", which, self.started));
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
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
            .env_remove("GRANARY_CLIENT_SECRET")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start granary serve: {e}"))?;
        let mut serve = Serve {
            child: Some(child),
            base: self.public_url(port),
            api: Api::new(&self.public_url(port), &self.api_key)?,
            log: log_path,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(serve);
            }
            if let Some(status) = serve
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!(
                    "granary serve exited with {status} before it listened; see {}",
                    serve.log.display()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "granary serve did not listen on {port} within 30 s"
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
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

/// Sends a signal (`TERM`, `KILL`, `STOP`, `CONT`) with `kill`.
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A running `granary serve`; killed when dropped.
pub struct Serve {
    child: Option<Child>,
    pub base: String,
    pub api: Api,
    pub log: PathBuf,
}

impl Serve {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn signal(&self, name: &str) {
        if self.child.is_some() {
            signal(self.pid(), name);
        }
    }

    /// Waits up to `timeout` for the process to exit; the time it took, or `None` (then it
    /// is killed).
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<Duration> {
        let started = Instant::now();
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return Some(started.elapsed());
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGTERM, then the time it took to exit (killed and `None` after `timeout`).
    pub async fn terminate(&mut self, timeout: Duration) -> Option<Duration> {
        self.signal("TERM");
        self.wait_exit(timeout).await
    }

    /// SIGKILL, and reaped.
    pub async fn kill(&mut self) {
        self.signal("KILL");
        self.wait_exit(Duration::from_secs(5)).await;
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An answer of the REST API.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub retry_after: Option<String>,
    pub body: Value,
    pub elapsed: Duration,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.status == StatusCode::OK
    }

    pub fn access_token(&self) -> Option<&str> {
        self.body.get("access_token").and_then(Value::as_str)
    }

    /// `200`, `503`, or `timeout` when no answer came.
    pub fn code(&self) -> String {
        self.status.as_u16().to_string()
    }
}

/// The REST API of one server, with an API key.
#[derive(Clone)]
pub struct Api {
    base: String,
    key: String,
    http: Client,
}

impl Api {
    fn new(base: &str, key: &str) -> Result<Api, String> {
        Ok(Api {
            base: base.to_string(),
            key: key.to_string(),
            http: Client::builder()
                .redirect(Policy::none())
                .build()
                .map_err(|e| e.to_string())?,
        })
    }

    /// A call that waits at most `timeout`; a timeout or a connection error is an answer
    /// with status 599 (`detail` says which).
    pub async fn call(&self, method: Method, path: &str, timeout: Duration) -> Answer {
        self.send(method, path, None, timeout).await
    }

    /// [`Api::call`] with a JSON body.
    pub async fn call_json(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Answer {
        self.send(method, path, Some(body), timeout).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Answer {
        let started = Instant::now();
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.key)
            .timeout(timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let sent = request.send().await;
        match sent {
            Ok(response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let text = response.text().await.unwrap_or_default();
                let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
                Answer {
                    status,
                    retry_after,
                    body,
                    elapsed: started.elapsed(),
                }
            }
            Err(error) => Answer {
                status: StatusCode::from_u16(599).unwrap_or(StatusCode::GATEWAY_TIMEOUT),
                retry_after: None,
                body: Value::String(if error.is_timeout() {
                    format!("no answer within {:.1} s", timeout.as_secs_f64())
                } else {
                    error.to_string()
                }),
                elapsed: started.elapsed(),
            },
        }
    }

    /// `GET /api/v1/instances/{id}/token`.
    pub async fn token(&self, id: &str, timeout: Duration) -> Answer {
        self.call(Method::GET, &format!("/instances/{id}/token"), timeout)
            .await
    }

    /// `POST /api/v1/instances/{id}/refresh`.
    pub async fn refresh(&self, id: &str, timeout: Duration) -> Answer {
        self.call(Method::POST, &format!("/instances/{id}/refresh"), timeout)
            .await
    }

    /// `GET /api/v1/instances/{id}`.
    pub async fn instance(&self, id: &str) -> Result<Value, String> {
        let answer = self
            .call(
                Method::GET,
                &format!("/instances/{id}"),
                Duration::from_secs(10),
            )
            .await;
        if answer.ok() {
            Ok(answer.body)
        } else {
            Err(format!(
                "GET /api/v1/instances/{id} answered {}: {}",
                answer.status, answer.body
            ))
        }
    }

    /// The instance's status (`authorized`, `needs_authorization`, ...).
    pub async fn status(&self, id: &str) -> Result<String, String> {
        Ok(self
            .instance(id)
            .await?
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string())
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
