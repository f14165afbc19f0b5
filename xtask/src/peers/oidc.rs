//! The conformance authorization server, a peer of the suites, the benches and the demo:
//! oidc-provider under node (`conformance/oidc-provider/server.mjs`) on 127.0.0.1, a port of
//! its own, clients from a JSON file, a token-request counter at `/__granary/stats`; it exits
//! when its stdin closes. [`start`] and [`start_in`] start it, [`granary_clients`] writes the
//! clients file of one client redirecting to granary, [`Server::finish`] reports its counters
//! and stops it.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cmd::{Ctx, Failure};
use crate::npm;

/// How long the server may take to print its issuer.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start the server; see conformance/oidc-provider/server.mjs.
pub struct Options {
    /// The clients file (`{"clients": [...]}`).
    pub clients_file: PathBuf,
    /// Where the server's stderr goes.
    pub log_file: PathBuf,
    /// Access-token lifetime in seconds for clients without their own `access_token_ttl`.
    pub access_token_ttl: Option<u32>,
    /// `default` (public clients rotate), `always` or `never`.
    pub rotate_refresh_token: Option<&'static str>,
    /// Token introspection (RFC 7662) on: off by default, since granary asks an
    /// introspection endpoint it discovers for the expiry of a token whose answer states
    /// none, and some suites need that expiry to stay unknown.
    pub introspection: bool,
    /// 0 = any free port.
    pub port: u16,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            clients_file: PathBuf::new(),
            log_file: PathBuf::from("oidc-provider.log"),
            access_token_ttl: None,
            rotate_refresh_token: None,
            introspection: false,
            port: 0,
        }
    }
}

/// A running server. Stopped by [`Server::stop`] or when dropped; it also stops by
/// itself when this process dies (its stdin closes).
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub issuer: String,
    /// The server's stderr.
    pub log_file: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
}

/// Starts the server with the default options, the clients file `clients` and its log in
/// `dir/oidc-provider.log`, and prints its issuer.
pub fn start_in(ctx: &Ctx, dir: &Path, clients: &Path) -> Result<Server, Failure> {
    let server = start(
        ctx,
        &Options {
            clients_file: clients.to_path_buf(),
            log_file: dir.join("oidc-provider.log"),
            ..Options::default()
        },
    )?;
    eprintln!("==> oidc-provider listens at {}", server.issuer);
    Ok(server)
}

/// The clients file of one confidential client redirecting to granary's admin page on
/// `granary_port`, with the scopes of the Box fixture.
pub fn granary_clients(client_id: &str, client_secret: &str, granary_port: u16) -> String {
    format!(
        r#"{{
  "scopes": ["root_readonly", "root_readwrite", "manage_groups"],
  "clients": [
{{
  "client_id": "{client_id}",
  "client_secret": "{client_secret}",
  "token_endpoint_auth_method": "client_secret_basic",
  "redirect_uris": ["http://127.0.0.1:{granary_port}/admin/oauth/"],
  "scope": "openid offline_access root_readonly root_readwrite manage_groups"
}}
  ]
}}
"#
    )
}

/// Installs the pinned oidc-provider, starts `server.mjs` on 127.0.0.1 and waits for the
/// line with its issuer.
pub fn start(ctx: &Ctx, options: &Options) -> Result<Server, Failure> {
    let dir = npm::install(ctx, "oidc-provider")?;
    // ESM resolves `oidc-provider` from the script's folder: run it next to node_modules.
    let script = dir.join("server.mjs");
    let source = ctx.path("conformance/oidc-provider/server.mjs");
    fs::copy(&source, &script).map_err(|e| {
        Failure::new(format!(
            "cannot copy {} to {}: {e}",
            source.display(),
            script.display()
        ))
    })?;
    if let Some(parent) = options.log_file.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| Failure::new(format!("cannot create {}: {e}", parent.display())))?;
    }
    let log = File::create(&options.log_file)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", options.log_file.display())))?;

    let mut command = Command::new("node");
    command
        .arg(&script)
        .arg("--clients")
        .arg(&options.clients_file)
        .args(["--port", &options.port.to_string()])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    if let Some(ttl) = options.access_token_ttl {
        command.args(["--access-token-ttl", &ttl.to_string()]);
    }
    if let Some(rotation) = options.rotate_refresh_token {
        command.args(["--rotate-refresh-token", rotation]);
    }
    if options.introspection {
        command.arg("--introspection");
    }
    let mut child = command.spawn().map_err(|e| {
        Failure::new(format!(
            "could not start node (is Node.js 20+ installed?): {e}"
        ))
    })?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let mut server = Server {
        issuer: String::new(),
        log_file: options.log_file.clone(),
        child,
        stdin,
    };

    // Read stdout on a thread: the first line is the issuer; the rest is drained.
    let (sender, receiver) = mpsc::channel();
    if let Some(stdout) = stdout {
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = sender.send(lines.next());
            for _ in lines {}
        });
    }
    let line = match receiver.recv_timeout(READY_TIMEOUT) {
        Ok(Some(Ok(line))) => line,
        Ok(_) => {
            return Err(Failure::new(format!(
                "oidc-provider exited before it was ready; its log {} says:\n{}",
                server.log_file.display(),
                server.log_tail()
            )));
        }
        Err(_) => {
            return Err(Failure::new(format!(
                "oidc-provider printed no issuer within {}s; its log {} says:\n{}",
                READY_TIMEOUT.as_secs(),
                server.log_file.display(),
                server.log_tail()
            )));
        }
    };
    let issuer = line.trim();
    if !issuer.starts_with("http://127.0.0.1:") {
        return Err(Failure::new(format!(
            "oidc-provider printed `{issuer}` instead of its issuer http://127.0.0.1:<port>"
        )));
    }
    server.issuer = issuer.to_string();
    Ok(server)
}

impl Server {
    /// The token-request counters of the server (`GET /__granary/stats`), as JSON text.
    pub fn stats(&self) -> Result<String, Failure> {
        let address = self.issuer.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address)
            .map_err(|e| Failure::new(format!("cannot connect to {address}: {e}")))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| Failure::new(e.to_string()))?;
        write!(
            stream,
            "GET /__granary/stats HTTP/1.1\r\nHost: {address}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| Failure::new(format!("cannot ask {address} for its counters: {e}")))?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .map_err(|e| Failure::new(format!("cannot read the counters of {address}: {e}")))?;
        match response.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.trim().to_string()),
            _ => Err(Failure::new(format!(
                "{address} answered the counters request with: {}",
                response.lines().next().unwrap_or("nothing")
            ))),
        }
    }

    /// Ends a suite run against the server: prints its token counters, stops it, and names
    /// its log in the failure of `result`, if any.
    pub fn finish(self, result: Result<(), Failure>) -> Result<(), Failure> {
        match self.stats() {
            Ok(stats) => eprintln!("==> token requests counted by oidc-provider: {stats}"),
            Err(failure) => eprintln!("==> could not read the server's counters: {failure}"),
        }
        let log = self.log_file.clone();
        self.stop();
        result.map_err(|failure| {
            Failure::new(format!(
                "{failure}\n(the authorization server's log is {})",
                log.display()
            ))
        })
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log_file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops the server: closes its stdin, waits up to 5 s, then kills it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}
