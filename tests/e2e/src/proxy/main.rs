//! The proxy conformance runner and bench (issue 16): granary's proxy
//! (`ANY /api/v1/instances/{id}/proxy/{*path}`) in front of an API of our own ([`api`]) that
//! takes only tokens oidc-provider says are active (RFC 7662 introspection).
//!
//! Run by `cargo xtask conformance proxy` and `cargo xtask bench proxy`, which start
//! oidc-provider (introspection on, the granary client redirecting to `--port`, a client for
//! the API) and pass:
//!
//! ```text
//! proxy --granary target/debug/granary --issuer http://127.0.0.1:N --port P
//!       --client-id ID --client-secret S --api-client-id ID --api-client-secret S --out DIR
//!       [--mode conformance|bench] [--only NAME,NAME]
//!       [--rounds 6 --requests 4000 --concurrency 16]      (bench)
//! proxy --list
//! ```
//!
//! Setup, once: the API and "elsewhere" (a listener standing for any other host) start on
//! 127.0.0.1; the Box fixture, its URLs pointed at the provider and its `servers` at the
//! API's `/v1`, is imported into a fresh data directory with the real `granary` CLI, with
//! instance `i`, a `tokens` API key and an `admin` one (webhooks); `granary serve` starts on
//! `--port` ([`granary`], which the webhook restart scenario uses to stop it and start it
//! again) and `i` is authorized through the admin page and the provider's login and consent
//! forms.
//!
//! Conformance prints one line per scenario ([`scenarios::SCENARIOS`], each one function),
//! `proxy NAME: passed|failed (figures)[: why]`, then
//! `proxy conformance: scenarios=N passed=P failed=F`, and exits non-zero when one failed.
//! The bench ([`mod@bench`]) prints `bench proxy: direct_rps=X proxied_rps=Y ratio=Z errors=N`.

mod api;
mod bench;
mod granary;
mod receiver;
mod scenarios;
mod webhooks;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output, Stdio};
use std::time::Duration;

use granary_e2e::{Authorization, Flags, box_document, scenario, sign_in};
use reqwest::Client;
use reqwest::redirect::Policy;

use api::{Api, Elsewhere};
use granary::{Granary, Launch};

/// The admin token of the server (a test value on 127.0.0.1).
const ADMIN_TOKEN: &str = "proxy-suite-admin-token-0123456789abcdef";
/// The instance every scenario calls through.
pub const INSTANCE: &str = "i";
/// A scenario that has not finished after this failed.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);

struct Args {
    granary: PathBuf,
    issuer: String,
    port: u16,
    client_id: String,
    client_secret: String,
    api_client_id: String,
    api_client_secret: String,
    out: PathBuf,
    bench: Option<bench::Plan>,
    only: Vec<String>,
}

fn number<T: std::str::FromStr>(flags: &mut Flags, name: &str, default: T) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match flags.optional(name) {
        Some(text) => text.parse().map_err(|e| format!("--{name}: {e}")),
        None => Ok(default),
    }
}

fn parse_args(args: Vec<String>) -> Result<Args, String> {
    let mut flags = Flags::parse(args, " (see the module documentation)")?;
    let bench = match flags.optional("mode").as_deref() {
        None | Some("conformance") => None,
        Some("bench") => Some(bench::Plan {
            rounds: number(&mut flags, "rounds", 6)?,
            requests: number(&mut flags, "requests", 4000)?,
            concurrency: number(&mut flags, "concurrency", 16)?,
        }),
        Some(other) => return Err(format!("--mode is conformance or bench, not {other}")),
    };
    let only: Vec<String> = flags
        .optional("only")
        .map(|names| names.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    if let Some(unknown) = only.iter().find(|n| scenarios::find(n).is_none()) {
        return Err(format!(
            "unknown scenario {unknown}; the scenarios are: {}",
            scenarios::names().join(", ")
        ));
    }
    Ok(Args {
        granary: PathBuf::from(flags.required("granary")?),
        issuer: flags.required("issuer")?,
        port: flags
            .required("port")?
            .parse()
            .map_err(|e| format!("--port: {e}"))?,
        client_id: flags.required("client-id")?,
        client_secret: flags.required("client-secret")?,
        api_client_id: flags.required("api-client-id")?,
        api_client_secret: flags.required("api-client-secret")?,
        out: PathBuf::from(flags.required("out")?),
        bench,
        only,
    })
}

/// What every scenario shares: granary serving with instance `i` authorized, the API,
/// elsewhere, and the provider.
pub struct Env {
    /// `http://127.0.0.1:<port>` of granary.
    pub base: String,
    /// `127.0.0.1:<port>` of granary.
    pub address: String,
    /// A `tokens` API key of granary.
    pub api_key: String,
    /// An `admin` API key of granary (webhooks, disconnect).
    pub admin_key: String,
    /// The provider's issuer.
    pub issuer: String,
    /// The API behind the proxy.
    pub api: Api,
    /// Any other host.
    pub elsewhere: Elsewhere,
    /// A client that follows no redirects.
    pub http: Client,
    /// The granary process (stopped when dropped; stopped and started again by a scenario).
    pub serve: Granary,
}

/// A `granary` command on the data directory `data`, with the public URL of `port`.
fn granary_command(args: &Args, data: &Path, cli: &[&str]) -> Command {
    command_of(&args.granary, args.port, &args.client_secret, data, cli)
}

/// [`granary_command`] of the binary `granary`.
fn command_of(granary: &Path, port: u16, secret: &str, data: &Path, cli: &[&str]) -> Command {
    let mut command = Command::new(granary);
    command
        .args(cli)
        .arg("--data-dir")
        .arg(data)
        .args(["--public-url", &format!("http://127.0.0.1:{port}")])
        .env("GRANARY_CLIENT_SECRET", secret)
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

/// Runs a CLI command that must succeed; its standard output.
fn cli(args: &Args, data: &Path, cli: &[&str]) -> Result<String, String> {
    let output: Output = granary_command(args, data, cli)
        .output()
        .map_err(|e| format!("cannot run granary {}: {e}", cli.join(" ")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "granary {} failed ({}): {}",
            cli.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Starts the API, elsewhere and granary, and authorizes instance `i`.
async fn setup(args: &Args) -> Result<Env, String> {
    let api = Api::start(
        &args.issuer,
        &args.api_client_id,
        &args.api_client_secret,
        args.bench.is_some(),
        if args.bench.is_some() {
            bench::API_SERVICE_TIME
        } else {
            Duration::ZERO
        },
    )
    .await?;
    let elsewhere = Elsewhere::start().await?;
    let _ = std::fs::remove_dir_all(&args.out);
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let data = args.out.join("data");
    let document = args.out.join("api.json");
    let text = box_document(&args.issuer)?.replacen(
        "\"paths\": {}",
        &format!(
            "\"servers\": [{{\"url\": \"{}/v1\"}}], \"paths\": {{}}",
            api.origin
        ),
        1,
    );
    if !text.contains("\"servers\"") {
        return Err("the Box fixture has no `\"paths\": {}` to put the servers before".into());
    }
    std::fs::write(&document, text)
        .map_err(|e| format!("cannot write {}: {e}", document.display()))?;
    cli(
        args,
        &data,
        &[
            "import",
            &document.to_string_lossy(),
            "--name",
            "api",
            "--issuer",
            &args.issuer,
        ],
    )?;
    cli(
        args,
        &data,
        &[
            "instance",
            "create",
            INSTANCE,
            "--integration",
            "api",
            "--client-id",
            &args.client_id,
            "--scope",
            "root_readonly",
            "--scope",
            "openid offline_access",
            "--force-scopes",
            "--auth-param",
            "prompt=consent",
        ],
    )?;
    let api_key = cli(args, &data, &["api-key", "create", "proxy-suite"])?
        .trim()
        .to_string();
    let admin_key = cli(
        args,
        &data,
        &["api-key", "create", "proxy-suite-admin", "--role", "admin"],
    )?
    .trim()
    .to_string();

    let address = format!("127.0.0.1:{}", args.port);
    let base = format!("http://{address}");
    let (granary, port, serve_address) = (args.granary.clone(), args.port, address.clone());
    let serve = Granary::start(Launch {
        command: Box::new(move || {
            let mut command = command_of(
                &granary,
                port,
                "",
                &data,
                &["serve", "--listen", &serve_address],
            );
            // Webhook retries after 1 s (not 10): a refused delivery is due again soon.
            command
                .env("GRANARY_ADMIN_TOKEN", ADMIN_TOKEN)
                .env("GRANARY_WEBHOOK_BACKOFF", "1")
                .env_remove("GRANARY_CLIENT_SECRET");
            command
        }),
        port: args.port,
        base: base.clone(),
        api_key: api_key.clone(),
        out: args.out.clone(),
    })
    .await?;
    authorize(&base, &args.issuer).await?;
    let status = serve.api.status(INSTANCE).await?;
    if status != "authorized" {
        return Err(format!(
            "instance {INSTANCE} is {status} after the authorization"
        ));
    }
    Ok(Env {
        base,
        address,
        api_key,
        admin_key,
        issuer: args.issuer.clone(),
        api,
        elsewhere,
        http: Client::builder()
            .redirect(Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())?,
        serve,
    })
}

/// Authorizes `i` on the admin page of `base` and at the provider's forms.
async fn authorize(base: &str, issuer: &str) -> Result<(), String> {
    let http = Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| e.to_string())?;
    let csrf = sign_in(&http, base, ADMIN_TOKEN).await?;
    match granary_e2e::authorize(&http, base, issuer, INSTANCE, &csrf, "proxy").await? {
        Authorization::Connected => Ok(()),
        Authorization::Callback(status, body) => {
            Err(format!("the callback answered {status}: {body}"))
        }
        Authorization::NotBack => Err(format!(
            "the authorization of {INSTANCE} did not come back to {base}"
        )),
    }
}

async fn conformance(env: &Env, only: &[String]) -> (usize, usize) {
    let (mut count, mut passed) = (0, 0);
    for (name, run) in scenarios::SCENARIOS {
        if !only.is_empty() && !only.iter().any(|n| n == name) {
            continue;
        }
        count += 1;
        let started = std::time::Instant::now();
        let ended = tokio::time::timeout(SCENARIO_TIMEOUT, run(env)).await.ok();
        let (line, ok) = scenario::line("proxy", name, ended, started.elapsed(), SCENARIO_TIMEOUT);
        passed += usize::from(ok);
        println!("{line}");
    }
    (count, passed)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for name in scenarios::names() {
            println!("{name}");
        }
        return ExitCode::SUCCESS;
    }
    let args = match parse_args(args) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("proxy: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match granary_e2e::runtime("proxy", None) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let env = match setup(&args).await {
            Ok(env) => env,
            Err(error) => {
                eprintln!(
                    "proxy: setup failed: {error} (logs in {})",
                    args.out.display()
                );
                return ExitCode::FAILURE;
            }
        };
        let code = match &args.bench {
            Some(plan) => bench::run(&env, plan).await,
            None => {
                let (count, passed) = conformance(&env, &args.only).await;
                let failed = count - passed;
                println!("proxy conformance: scenarios={count} passed={passed} failed={failed}");
                if failed == 0 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
        };
        let Env { serve, api, .. } = env;
        serve.terminate(Duration::from_secs(10)).await;
        api.stop().await;
        code
    })
}
