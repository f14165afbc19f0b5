//! The `multinode` conformance suite: several granary nodes on one PostgreSQL database behind a
//! round-robin load balancer (issue 13), and `bench multinode`, its refresh storm alone.
//!
//! `cargo xtask conformance multinode` builds `granary` and the runner (the `multinode` binary
//! of tests/e2e), asks the runner for its scenarios (`--list`), starts a throwaway PostgreSQL
//! ([`Postgres`]; `GRANARY_TEST_POSTGRES` names an existing server instead) and makes a new
//! database on it for the run, picks the port of the public URL (the runner's balancer),
//! starts oidc-provider with one-use rotating refresh tokens and one client redirecting to
//! that public URL, runs the runner, and always stops the provider and PostgreSQL. The runner
//! starts and stops the nodes, the balancer and the fault proxy. It prints one line per
//! scenario and ends with `multinode conformance: nodes=3 scenarios=N passed=N failed=0`; the
//! suite fails when a scenario failed or fewer ran than the runner defines. Logs and data
//! directories go to `target/multinode/`. `GRANARY_MULTINODE_ONLY=NAME,NAME` runs only those
//! scenarios; `GRANARY_MULTINODE_GRANARY=PATH` runs them against another `granary` binary
//! (then only the runner is built).

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::builds::{Profile, build_granary_and};
use crate::cmd::{Ctx, Failure, create_dir, describe, write_file};
use crate::peers::oidc;
use crate::peers::postgres::Postgres;
use crate::ports::free_port;

/// The client of a provider that lives for one run on 127.0.0.1 (test values).
const CLIENT: &str = "multinode";
const CLIENT_SECRET: &str = "multinode-secret-for-the-local-conformance-run";
/// The database made for each run.
const DATABASE: &str = "granary_multinode";

/// What to run: all scenarios (the suite) or some (the bench), with which build.
pub struct Run<'a> {
    /// Where logs and data directories go, under target/.
    pub folder: &'a str,
    pub profile: Profile,
    /// The scenarios to run; empty = all.
    pub only: Vec<String>,
}

/// The outcome of a run: the runner's lines.
pub struct Lines(pub Vec<String>);

impl Lines {
    /// The figure `name=value` of scenario `scenario`'s line, if it has one.
    pub fn figure(&self, scenario: &str, name: &str) -> Option<String> {
        let prefix = format!("multinode {scenario}: ");
        let line = self.0.iter().find(|l| l.starts_with(&prefix))?;
        let figures = line.split_once('(')?.1.split_once(')')?.0;
        figures
            .split(' ')
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    }
}

fn clients(public_port: u16) -> String {
    format!(
        r#"{{
  "scopes": ["root_readonly", "root_readwrite", "manage_groups"],
  "clients": [
    {{
      "client_id": "{CLIENT}",
      "client_secret": "{CLIENT_SECRET}",
      "token_endpoint_auth_method": "client_secret_basic",
      "redirect_uris": ["http://127.0.0.1:{public_port}/admin/oauth/"],
      "scope": "openid offline_access root_readonly root_readwrite manage_groups",
      "access_token_ttl": 3600
    }}
  ]
}}
"#
    )
}

/// `URL` with its database replaced by `database` (`postgres://u@h:p/db?query`).
fn with_database(url: &str, database: &str) -> Result<String, Failure> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let authority_end = base
        .find("://")
        .map(|at| at + 3)
        .and_then(|start| base[start..].find('/').map(|slash| start + slash))
        .unwrap_or(base.len());
    let mut out = format!("{}/{database}", &base[..authority_end]);
    if !query.is_empty() {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

/// `psql` from the PATH, else from the newest of Debian's PostgreSQL packages.
fn psql() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join("psql").is_file()))
        .unwrap_or(false);
    if on_path {
        return PathBuf::from("psql");
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let psql = entry.path().join("bin").join("psql");
            psql.is_file().then_some((version, psql))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map_or_else(|| PathBuf::from("psql"), |(_, psql)| psql)
}

/// A new empty database `DATABASE` on the server of `url` (dropped first when a previous run
/// left it), with psql; its URL.
fn fresh_database(url: &str) -> Result<String, Failure> {
    for statement in [
        format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"),
        format!("CREATE DATABASE {DATABASE}"),
    ] {
        let output = Command::new(psql())
            .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", &statement])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                Failure::new(format!(
                    "cannot run psql to make the run's database (Debian's postgresql-client): {e}"
                ))
            })?;
        if !output.status.success() {
            return Err(Failure::new(format!(
                "psql `{statement}` failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
    }
    with_database(url, DATABASE)
}

/// `cargo xtask conformance multinode`.
pub fn conformance(ctx: &Ctx) -> Result<(), Failure> {
    let only = std::env::var("GRANARY_MULTINODE_ONLY")
        .map(|names| names.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let (_, result) = run(
        ctx,
        &Run {
            folder: "multinode",
            profile: Profile::Debug,
            only,
        },
    );
    result
}

/// Builds, starts the peers, runs the runner and judges its summary: the runner's lines
/// (whatever the judgement), and the judgement.
pub fn run(ctx: &Ctx, run: &Run<'_>) -> (Lines, Result<(), Failure>) {
    let mut lines = Lines(Vec::new());
    let result = run_in(ctx, run, &mut lines);
    (lines, result)
}

fn run_in(ctx: &Ctx, run: &Run<'_>, lines: &mut Lines) -> Result<(), Failure> {
    let dir = ctx.target.join(run.folder);
    create_dir(&dir)?;
    // GRANARY_MULTINODE_GRANARY=PATH runs the scenarios against another granary binary (for
    // example one built from another commit).
    let other = std::env::var("GRANARY_MULTINODE_GRANARY").ok();
    if other.is_some() {
        let mut args = vec![
            "build",
            "--quiet",
            "-p",
            "granary-e2e",
            "--bin",
            "multinode",
        ];
        if let Profile::Release = run.profile {
            args.push("--release");
        }
        ctx.step("build the multinode runner", ctx.cargo(&args))?;
    } else {
        build_granary_and(
            ctx,
            "build granary and the multinode runner",
            run.profile,
            "multinode",
        )?;
    }
    let granary = other.unwrap_or_else(|| run.profile.binary(ctx, "granary"));
    let runner = run.profile.binary(ctx, "multinode");
    let defined = super::listed_scenarios(&runner)?;

    let postgres = Postgres::start(ctx, run.folder)?;
    let store = fresh_database(postgres.url())?;
    let public_port = free_port()?;
    let clients_file = dir.join("clients.json");
    write_file(&clients_file, &clients(public_port))?;
    let server = oidc::start(
        ctx,
        &oidc::Options {
            clients_file,
            log_file: dir.join("oidc-provider.log"),
            rotate_refresh_token: Some("always"),
            ..oidc::Options::default()
        },
    )?;
    eprintln!("==> oidc-provider listens at {}", server.issuer);

    let mut command = Command::new(&runner);
    command
        .args(["--granary", &granary])
        .args(["--issuer", &server.issuer])
        .args(["--store", &store])
        .args(["--public-port", &public_port.to_string()])
        .args(["--client", CLIENT, "--client-secret", CLIENT_SECRET])
        .args(["--out", &dir.join("run").to_string_lossy()])
        .current_dir(&ctx.root);
    let mut expected = defined;
    if !run.only.is_empty() {
        expected = run.only.len();
        command.args(["--only", &run.only.join(",")]);
    }
    let result = run_runner(command, expected, lines);
    let result = server.finish(result.map_err(|failure| {
        Failure::new(format!(
            "{failure}\n(the data directories and node logs are in {})",
            dir.join("run").display()
        ))
    }));
    drop(postgres);
    result
}

/// Runs the runner, passing its lines through, and judges its last line.
fn run_runner(mut command: Command, defined: usize, lines: &mut Lines) -> Result<(), Failure> {
    let line = describe(&command);
    eprintln!("==> multinode conformance: {line}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::new(format!("could not start {line}: {e}")))?;
    if let Some(stdout) = child.stdout.take() {
        for text in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{text}");
            lines.0.push(text);
        }
    }
    let status = child
        .wait()
        .map_err(|e| Failure::new(format!("{line}: {e}")))?;
    let last = lines.0.last().cloned().unwrap_or_default();
    match super::summary_figures::<4>(&last, "multinode conformance: ") {
        Some([_, count, passed, 0]) if status.success() && passed == count && count >= defined => {
            Ok(())
        }
        Some([nodes, count, passed, failed]) => Err(Failure::new(format!(
            "multinode conformance: {failed} of {count} scenarios failed, {passed} passed \
             ({defined} defined, {nodes} nodes; runner {status})"
        ))),
        None => Err(Failure::new(format!(
            "the multinode runner ended without its summary line ({status}); rerun `{line}`"
        ))),
    }
}
