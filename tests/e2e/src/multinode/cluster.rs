//! The nodes of the run: three `granary serve` processes on one PostgreSQL store (the same
//! `GRANARY_STORE` URL), with one master key (`GRANARY_MASTER_KEY`, random for the run), one
//! admin token and one public URL (the balancer's), each with a data directory and a port of
//! its own; the CLI on the same store; and what the scenarios need around them: an API key per
//! node, instances authorized through one node, and which node sent a token request.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use granary_e2e::server::{Api, Serve, signal};
use granary_e2e::token_proxy::Proxy;
use granary_e2e::{Authorization, box_document, sign_in};
use reqwest::redirect::Policy;
use reqwest::{Client, Url};

use crate::balancer::Balancer;

/// The admin token of every node (a test value on 127.0.0.1).
pub const ADMIN_TOKEN: &str = "multinode-admin-token-0123456789abcdef";
/// The integration the CLI imports for the scenarios' instances.
pub const INTEGRATION: &str = "box";
/// The refresh deadline of every node (`GRANARY_REFRESH_DEADLINE`).
pub const REFRESH_DEADLINE: Duration = Duration::from_secs(10);
/// How long a CLI command may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the run's parts are.
pub struct Config {
    pub granary: PathBuf,
    pub issuer: String,
    pub store: String,
    pub client: String,
    pub client_secret: String,
    pub out: PathBuf,
}

/// One node: its process (`None` once killed), port, data directory and API key.
pub struct Node {
    pub serve: Option<Serve>,
    pub port: u16,
    pub data: PathBuf,
    /// An API key made for this node by `granary api-key create` on its data directory.
    pub key: String,
    /// A client of this node's REST API with [`Node::key`].
    pub api: Api,
}

impl Node {
    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// The nodes, the balancer in front of them, and the fault proxy in front of the provider's
/// token endpoint. Dropping it kills every node still running.
pub struct Cluster {
    pub config: Config,
    pub master_key: String,
    pub nodes: Vec<Node>,
    pub balancer: Balancer,
    pub proxy: Proxy,
}

/// The base64 (standard, padded) of `bytes`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A new master key: the base64 of 32 random bytes.
fn new_master_key() -> Result<String, String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(base64(&bytes))
}

/// A free port on 127.0.0.1.
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

impl Cluster {
    /// The store and the CLI's setup (the integration, an API key per node), then the nodes
    /// (started at once) and the balancer on `public_port`.
    pub async fn start(config: Config, public_port: u16, nodes: usize) -> Result<Cluster, String> {
        let _ = std::fs::remove_dir_all(&config.out);
        std::fs::create_dir_all(&config.out)
            .map_err(|e| format!("cannot create {}: {e}", config.out.display()))?;
        let master_key = new_master_key()?;
        let public = format!("http://127.0.0.1:{public_port}");
        let mut ports = Vec::new();
        while ports.len() < nodes {
            let port = free_port()?;
            if port != public_port && !ports.contains(&port) {
                ports.push(port);
            }
        }
        let document = config.out.join("box.json");
        std::fs::write(&document, box_document(&config.issuer)?)
            .map_err(|e| format!("cannot write {}: {e}", document.display()))?;
        let proxy = Proxy::start(format!("{}/token", config.issuer)).await?;
        eprintln!("multinode: the fault proxy listens at {}", proxy.token_url);
        let mut cluster = Cluster {
            config,
            master_key,
            nodes: Vec::new(),
            balancer: Balancer::start(public_port, ports.clone()).await?,
            proxy,
        };
        eprintln!("multinode: the balancer (public URL) listens at {public}");
        for (n, port) in ports.iter().enumerate() {
            let data = cluster.config.out.join(format!("node-{n}"));
            let key = cluster
                .cli_ok(
                    &data,
                    &["api-key", "create", &format!("node-{n}"), "--role", "admin"],
                )?
                .trim()
                .to_string();
            cluster.nodes.push(Node {
                serve: None,
                port: *port,
                api: Api::new(&format!("http://127.0.0.1:{port}"), &key)?,
                data,
                key,
            });
        }
        cluster.cli_ok(
            &cluster.nodes[0].data,
            &[
                "import",
                &document.to_string_lossy(),
                "--name",
                INTEGRATION,
                "--issuer",
                &cluster.config.issuer,
            ],
        )?;
        // Started at once, as the nodes of a deployment are.
        let starting: Vec<_> = (0..nodes).map(|n| tokio::spawn(cluster.spawn(n))).collect();
        for (n, start) in starting.into_iter().enumerate() {
            let serve = start.await.map_err(|e| format!("node {n}: {e}"))??;
            cluster.nodes[n].serve = Some(serve);
        }
        Ok(cluster)
    }

    /// A `granary` command on the shared store, with the data directory `data`.
    fn command(&self, data: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(&self.config.granary);
        command
            .args(args)
            .arg("--data-dir")
            .arg(data)
            .env("GRANARY_STORE", &self.config.store)
            .env("GRANARY_MASTER_KEY", &self.master_key)
            .env(
                "GRANARY_PUBLIC_URL",
                format!("http://127.0.0.1:{}", self.public_port()),
            )
            .env("GRANARY_CLIENT_SECRET", &self.config.client_secret)
            .env("GRANARY_LOG", "warn")
            .env_remove("GRANARY_SERVER")
            .env_remove("GRANARY_API_KEY")
            .env_remove("GRANARY_CONFIG")
            .env_remove("GRANARY_DATA_DIR")
            .env_remove("GRANARY_LISTEN")
            .env_remove("GRANARY_KEY_FILE")
            .env_remove("GRANARY_ADMIN_TOKEN")
            .stdin(Stdio::null());
        command
    }

    fn public_port(&self) -> u16 {
        self.balancer
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Runs a CLI command on the shared store to its end.
    pub fn cli(&self, data: &Path, args: &[&str]) -> Result<Output, String> {
        let child = self
            .command(data, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start granary {}: {e}", args.join(" ")))?;
        let id = child.id();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(child.wait_with_output());
        });
        match receiver.recv_timeout(CLI_TIMEOUT) {
            Ok(result) => result.map_err(|e| format!("granary {}: {e}", args.join(" "))),
            Err(_) => {
                signal(id, "KILL");
                Err(format!(
                    "granary {} did not end within {} s",
                    args.join(" "),
                    CLI_TIMEOUT.as_secs()
                ))
            }
        }
    }

    /// Runs a CLI command that must succeed; its stdout.
    pub fn cli_ok(&self, data: &Path, args: &[&str]) -> Result<String, String> {
        let output = self.cli(data, args)?;
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

    /// The start of node `n` (`granary serve` on its port), to be awaited.
    fn spawn(&self, n: usize) -> impl Future<Output = Result<Serve, String>> + Send + use<> {
        let node = &self.nodes[n];
        let mut command = self.command(
            &node.data,
            &["serve", "--listen", &format!("127.0.0.1:{}", node.port)],
        );
        command
            .env("GRANARY_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("GRANARY_SHUTDOWN_GRACE", "3")
            .env(
                "GRANARY_REFRESH_DEADLINE",
                REFRESH_DEADLINE.as_secs().to_string(),
            )
            .env("GRANARY_LOG", "info")
            .env_remove("GRANARY_CLIENT_SECRET");
        let log = self.config.out.join(format!("node-{n}.log"));
        let (port, base, key) = (node.port, node.base(), node.key.clone());
        async move { Serve::spawn(command, port, &base, &key, log).await }
    }

    /// Creates instance `id` of the integration with the CLI, its token URL the fault proxy's.
    pub fn create_instance(&self, id: &str) -> Result<(), String> {
        self.cli_ok(
            &self.nodes[0].data,
            &[
                "instance",
                "create",
                id,
                "--integration",
                INTEGRATION,
                "--client-id",
                &self.config.client,
                "--scope",
                "root_readonly",
                "--scope",
                "openid offline_access",
                "--force-scopes",
                "--auth-param",
                "prompt=consent",
                "--token-url",
                &self.proxy.token_url,
            ],
        )
        .map(|_| ())
    }

    /// Authorizes instance `id` through node `n` alone (signed in there, the callback sent
    /// there rather than to the public URL): setup for scenarios about other things than the
    /// admin page across nodes.
    pub async fn authorize_on(&self, n: usize, id: &str) -> Result<(), String> {
        let http = Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| e.to_string())?;
        let base = self.nodes[n].base();
        let csrf = sign_in(&http, &base, ADMIN_TOKEN).await?;
        let started = granary_e2e::start_authorization(&http, &base, id, &csrf).await?;
        let callback = granary_e2e::through_provider(
            &http,
            &self.config.issuer,
            &self.balancer.url,
            started,
            id,
        )
        .await?
        .ok_or_else(|| format!("the authorization of {id} did not come back to granary"))?;
        let direct = Url::parse(&format!(
            "{base}{}?{}",
            callback.path(),
            callback.query().unwrap_or_default()
        ))
        .map_err(|e| e.to_string())?;
        match granary_e2e::follow_callback(&http, direct, id).await? {
            Authorization::Connected => Ok(()),
            Authorization::Callback(status, body) => Err(format!(
                "the callback of {id} on node {n} answered {status}: {body}"
            )),
            Authorization::NotBack => Err(format!("the authorization of {id} did not end")),
        }
    }

    /// The node whose process holds the connection that `peer` is the far end of (a token
    /// request the fault proxy received), from /proc: the socket's inode in /proc/net/tcp,
    /// then the node process with that socket open.
    pub fn node_of_peer(&self, peer: std::net::SocketAddr) -> Option<usize> {
        let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
        let port = |field: &str| {
            field
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
        };
        let inode = table.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, inode) = (fields.get(1)?, fields.get(2)?, fields.get(9)?);
            (port(local)? == peer.port() && port(remote)? == self.proxy.port())
                .then(|| inode.to_string())
        })?;
        let wanted = format!("socket:[{inode}]");
        self.nodes.iter().position(|node| {
            let Some(serve) = node.serve.as_ref() else {
                return false;
            };
            std::fs::read_dir(format!("/proc/{}/fd", serve.pid()))
                .map(|entries| {
                    entries.filter_map(Result::ok).any(|entry| {
                        std::fs::read_link(entry.path())
                            .is_ok_and(|target| target.to_string_lossy() == wanted)
                    })
                })
                .unwrap_or(false)
        })
    }

    /// Kills node `n` with SIGKILL and reaps it.
    pub async fn kill(&mut self, n: usize) {
        if let Some(mut serve) = self.nodes[n].serve.take() {
            serve.kill().await;
        }
    }

    /// Stops every node still running (SIGTERM, then SIGKILL after 10 s).
    pub async fn stop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut serve) = node.serve.take() {
                serve.terminate(Duration::from_secs(10)).await;
            }
        }
    }
}
