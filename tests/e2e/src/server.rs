//! A `granary serve` process and its REST API, shared by the runners that start real servers
//! (`lifecycle`, `multinode`): [`Serve::spawn`] starts one and waits until it listens,
//! [`signal`] sends it real signals, [`Api`] calls `/api/v1` with an API key and turns every
//! outcome (a timeout too) into an [`Answer`].

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::redirect::Policy;
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;

/// How long a server may take to listen after it was started.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// Starts `command` (a `granary serve` whose stderr goes to `log`) and waits until
    /// something listens on `port` of 127.0.0.1; `base` and `api_key` make its [`Api`].
    pub async fn spawn(
        mut command: Command,
        port: u16,
        base: &str,
        api_key: &str,
        log: PathBuf,
    ) -> Result<Serve, String> {
        let file = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file));
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start granary serve: {e}"))?;
        let mut serve = Serve {
            child: Some(child),
            base: base.to_string(),
            api: Api::new(base, api_key)?,
            log,
        };
        let deadline = Instant::now() + LISTEN_TIMEOUT;
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
                    "granary serve did not listen on {port} within {} s; see {}",
                    LISTEN_TIMEOUT.as_secs(),
                    serve.log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Whether the process still runs (not exited, not killed by [`Serve::kill`]).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The process id (0 once it was reaped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends signal `name` (`TERM`, `KILL`, `STOP`, `CONT`) to the process.
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
    /// The API of the server at `base` (`http://host:port`), called with `key`.
    pub fn new(base: &str, key: &str) -> Result<Api, String> {
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
