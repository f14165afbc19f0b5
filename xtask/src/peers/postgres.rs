//! A throwaway PostgreSQL for the suites and benches that need one (the store conformance
//! suite, `bench postgres`, and any later suite that runs granary on PostgreSQL).
//!
//! [`Postgres::start`] uses the server named by `GRANARY_TEST_POSTGRES` when that is set.
//! Otherwise it starts a cluster of its own from Debian's `postgresql` package (installed
//! with apt-get when `initdb` is missing): `initdb` into `target/postgres/<name>/data`
//! (trust authentication, user `postgres`), then `postgres` listening on a free port of
//! 127.0.0.1 and on a socket in `target/postgres/<name>`, never on 5432. initdb and
//! postgres refuse to run as root, so as root both run as the `postgres` system user
//! (`runuser`). The cluster is stopped (`pg_ctl stop -m fast`) and its data removed when
//! the [`Postgres`] is dropped, on every path out of the caller, failures included; its log
//! stays in `target/postgres/<name>/log`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cmd::{Ctx, Failure, describe};
use crate::ports::free_port;

/// The variable that names an existing server instead of a throwaway one.
pub const URL_ENV: &str = "GRANARY_TEST_POSTGRES";

/// A PostgreSQL server for one run: an existing one, or a throwaway cluster stopped on drop.
pub struct Postgres {
    url: String,
    cluster: Option<Cluster>,
}

struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    as_postgres: bool,
}

impl Postgres {
    /// The server of `GRANARY_TEST_POSTGRES`, or a new cluster under `target/postgres/<name>`.
    pub fn start(ctx: &Ctx, name: &str) -> Result<Self, Failure> {
        if let Some(url) = std::env::var(URL_ENV).ok().filter(|u| !u.is_empty()) {
            eprintln!("==> PostgreSQL: using {URL_ENV}");
            return Ok(Self { url, cluster: None });
        }
        let bin = ensure_installed()?;
        let as_postgres = is_root();
        let mut dir = ctx.target.join("postgres").join(name);
        prepare_dir(&dir, as_postgres)?;
        if as_postgres && !postgres_can_write(&dir) {
            // A parent folder the postgres user cannot enter: use the temporary folder.
            dir = std::env::temp_dir().join(format!("granary-postgres-{name}"));
            prepare_dir(&dir, as_postgres)?;
        }
        let cluster = Cluster {
            bin,
            dir,
            as_postgres,
        };
        let data = cluster.dir.join("data");
        let log = cluster.dir.join("log");
        eprintln!(
            "==> PostgreSQL: initdb and start a throwaway cluster in {}",
            cluster.dir.display()
        );
        cluster.run(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        let port = free_port()?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300",
            cluster.dir.display()
        );
        // From here on, dropping `cluster` stops whatever started.
        cluster.run(
            "pg_ctl start",
            &[
                "-D",
                &data.to_string_lossy(),
                "-o",
                &options,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )?;
        Ok(Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable"),
            cluster: Some(cluster),
        })
    }

    /// The URL of the server (a user that may create databases).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sets `GRANARY_TEST_POSTGRES` for `command`.
    pub fn env(&self, command: &mut Command) {
        match &self.cluster {
            // A throwaway cluster's URL holds no secret; a user's URL may.
            Some(cluster) => eprintln!(
                "==> PostgreSQL: {URL_ENV}={} (the cluster in {})",
                self.url(),
                cluster.dir.display()
            ),
            None => eprintln!("==> PostgreSQL: {URL_ENV} as set"),
        }
        command.env(URL_ENV, self.url());
    }
}

impl Cluster {
    /// Runs the PostgreSQL program `program` (as the postgres user when we are root).
    fn run(&self, what: &str, args: &[&str]) -> Result<(), Failure> {
        let program = self.bin.join(what.split(' ').next().unwrap_or(what));
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        command
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        let output = command
            .output()
            .map_err(|e| Failure::new(format!("cannot start {}: {e}", describe(&command))))?;
        if output.status.success() {
            return Ok(());
        }
        let log = fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        Err(Failure::new(format!(
            "PostgreSQL {what} failed ({}): {}{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            log
        )))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        if data.join("postmaster.pid").exists() {
            let stopped = self.run(
                "pg_ctl stop",
                &["-D", &data.to_string_lossy(), "-m", "fast", "-w", "stop"],
            );
            if let Err(failure) = stopped {
                eprintln!("warning: the throwaway PostgreSQL did not stop: {failure}");
                return;
            }
        }
        let _ = fs::remove_dir_all(&data);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A new empty folder (a previous run's is removed), owned by postgres when we are root.
fn prepare_dir(dir: &Path, as_postgres: bool) -> Result<(), Failure> {
    if dir.join("data").join("postmaster.pid").exists() {
        // A previous run was killed before it could stop its cluster: stop it now.
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(find_bin().unwrap_or_default().join("pg_ctl"))
            .args([
                "-D",
                &dir.join("data").to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .stdin(Stdio::null())
            .output();
    }
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", dir.display())))?;
    if as_postgres {
        let status = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir)
            .status()
            .map_err(|e| Failure::new(format!("cannot run chown: {e}")))?;
        if !status.success() {
            return Err(Failure::new(format!(
                "cannot give {} to the postgres user (chown failed): does the system user \
                 `postgres` exist? (Debian's postgresql package creates it)",
                dir.display()
            )));
        }
    }
    Ok(())
}

fn postgres_can_write(dir: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--", "test", "-w"])
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The bin folder of the newest PostgreSQL of Debian's packages.
fn find_bin() -> Option<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(root)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The bin folder of PostgreSQL, installing Debian's `postgresql` when `initdb` is missing.
fn ensure_installed() -> Result<PathBuf, Failure> {
    if let Some(bin) = find_bin() {
        return Ok(bin);
    }
    eprintln!("==> PostgreSQL (initdb) is missing: installing Debian's postgresql");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .map(|status| status.success())
            .unwrap_or(false)
    };
    if apt(&["update", "-qq"]) && apt(&["install", "-y", "-qq", "postgresql"]) {
        if let Some(bin) = find_bin() {
            return Ok(bin);
        }
    }
    Err(Failure::new(format!(
        "the PostgreSQL runs need Debian's postgresql (/usr/lib/postgresql/*/bin/initdb): \
         install it with `apt-get install postgresql` (as root), or set {URL_ENV} to the URL \
         of a server whose user may create databases"
    )))
}
