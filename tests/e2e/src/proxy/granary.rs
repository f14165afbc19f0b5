//! The suite's `granary serve` process: [`Granary::start`] starts it (the one place that
//! does, at setup and again after a stop), [`Granary::stop`] stops it with SIGTERM and waits
//! for it to exit, so that a scenario can start it again on the same data directory.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use granary_e2e::server::{Api, Serve};
use tokio::sync::Mutex;

/// How the server is started: its command (the same every time) and where it listens.
pub struct Launch {
    /// Builds the `granary serve` command on the suite's data directory.
    pub command: Box<dyn Fn() -> Command + Send + Sync>,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The API key of [`Granary::api`].
    pub api_key: String,
    /// Where the logs go: `serve.log`, then `serve.2.log`, ... for each start.
    pub out: PathBuf,
}

/// The running server (or the stopped one, between [`Granary::stop`] and
/// [`Granary::start_again`]).
pub struct Granary {
    /// Its REST API with the suite's `tokens` key (the same across restarts).
    pub api: Api,
    launch: Launch,
    /// The process and how many times it was started.
    process: Mutex<(Option<Serve>, usize)>,
}

impl Granary {
    /// Starts the server and waits until it listens.
    pub async fn start(launch: Launch) -> Result<Granary, String> {
        let serve = spawn(&launch, 1).await?;
        Ok(Granary {
            api: serve.api.clone(),
            launch,
            process: Mutex::new((Some(serve), 1)),
        })
    }

    /// SIGTERM, and waits up to `timeout` for the process to exit; how long it took.
    pub async fn stop(&self, timeout: Duration) -> Result<Duration, String> {
        let mut process = self.process.lock().await;
        let Some(mut serve) = process.0.take() else {
            return Err("granary is not running: it cannot be stopped".into());
        };
        serve.terminate(timeout).await.ok_or_else(|| {
            format!(
                "granary did not exit within {} s of SIGTERM (it was killed); see {}",
                timeout.as_secs(),
                serve.log.display()
            )
        })
    }

    /// Starts the server again on the same data directory after [`Granary::stop`].
    pub async fn start_again(&self) -> Result<(), String> {
        let mut process = self.process.lock().await;
        if process.0.is_some() {
            return Err("granary is still running: stop it before starting it again".into());
        }
        process.1 += 1;
        process.0 = Some(spawn(&self.launch, process.1).await?);
        Ok(())
    }

    /// Stops the server (SIGTERM, killed after `timeout`).
    pub async fn terminate(&self, timeout: Duration) {
        if let Some(mut serve) = self.process.lock().await.0.take() {
            serve.terminate(timeout).await;
        }
    }
}

/// Starts the `start`-th process of `launch` and waits until it listens.
async fn spawn(launch: &Launch, start: usize) -> Result<Serve, String> {
    let log = if start == 1 {
        launch.out.join("serve.log")
    } else {
        launch.out.join(format!("serve.{start}.log"))
    };
    Serve::spawn(
        (launch.command)(),
        launch.port,
        &launch.base,
        &launch.api_key,
        log,
    )
    .await
}
