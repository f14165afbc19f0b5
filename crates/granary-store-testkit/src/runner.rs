//! Running the suite: the list of checks, [`run_all`], the [`Report`], and [`main`] for a
//! backend's `harness = false` test target.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use granary_store::{Capabilities, Store};

use crate::checks::{self, CheckResult as Checked};
use crate::process::{self, CHILD_ENV};
use crate::{Backend, Violation};

type StoreCheck = for<'a> fn(&'a dyn Store) -> BoxFuture<'a, Checked>;
type HarnessCheck = for<'a> fn(&'a dyn Backend, &'a Path, &'a Options) -> BoxFuture<'a, Checked>;

enum Run {
    /// Runs against one new store.
    Store(StoreCheck),
    /// Opens stores itself (reopen, child processes).
    Harness(HarnessCheck),
}

#[derive(Clone, Copy)]
enum Needs {
    Nothing,
    Durable,
    DurableAndChildren,
    SharedAndChildren,
}

struct Check {
    name: &'static str,
    needs: Needs,
    run: Run,
}

/// A check over one new store (`checks::$name`).
macro_rules! store_check {
    ($name:ident) => {
        Check {
            name: stringify!($name),
            needs: Needs::Nothing,
            run: Run::Store(|store| Box::pin(checks::$name(store))),
        }
    };
}

/// A check that opens stores itself (`process::$name(backend, dir)`), run only when the
/// backend has what it `needs`.
macro_rules! harness_check {
    ($name:ident, $needs:ident) => {
        Check {
            name: stringify!($name),
            needs: Needs::$needs,
            run: Run::Harness(|backend, dir, _| Box::pin(process::$name(backend, dir))),
        }
    };
}

/// Every check, in the order they run: the one list ([`CHECKS`] is its names).
const CHECKS_LIST: &[Check] = &[
    store_check!(integration_round_trip),
    store_check!(integration_list_and_delete),
    store_check!(instance_round_trip),
    store_check!(instance_create_rules),
    store_check!(instance_update_cas),
    store_check!(instance_list_and_delete),
    store_check!(missing_keys),
    store_check!(sealed_bytes_exact),
    store_check!(pending_take_once),
    store_check!(pending_expiry),
    store_check!(pending_take_concurrent),
    store_check!(token_round_trip),
    store_check!(token_cas),
    store_check!(token_delete_is_compare_and_swap),
    store_check!(token_cas_concurrent),
    store_check!(lease_exclusive_concurrent),
    store_check!(lease_expiry_takeover),
    store_check!(lease_release_and_renew),
    store_check!(token_put_fenced),
    store_check!(tokens_due_by_expiry),
    store_check!(tokens_due_follow_writes),
    store_check!(instances_page_and_counts),
    store_check!(changes_every_write),
    store_check!(changes_not_on_failed_writes),
    store_check!(changes_limit_and_paging),
    store_check!(changes_kept_or_missed),
    store_check!(changes_concurrent),
    store_check!(key_check_first_wins),
    store_check!(session_round_trip),
    store_check!(session_expiry),
    store_check!(session_banner_take_once),
    store_check!(session_banner_take_concurrent),
    store_check!(api_key_round_trip),
    store_check!(api_key_revoke),
    store_check!(webhook_endpoint_round_trip),
    store_check!(webhook_endpoint_delete_cascades),
    store_check!(delivery_enqueue_all_or_none),
    store_check!(delivery_claim_rules),
    store_check!(delivery_claim_concurrent),
    store_check!(delivery_finish_attempt),
    store_check!(delivery_log_and_purge),
    store_check!(reconnect_link_round_trip),
    store_check!(reconnect_link_expiry),
    store_check!(reconnect_link_take_concurrent),
    harness_check!(reopen_keeps_everything, Durable),
    harness_check!(reopen_keeps_sessions_and_api_keys, Durable),
    harness_check!(reopen_keeps_webhooks, Durable),
    harness_check!(processes_race_lease, SharedAndChildren),
    harness_check!(processes_race_token_cas, SharedAndChildren),
    harness_check!(processes_see_changes, SharedAndChildren),
    harness_check!(processes_fence_token_put, SharedAndChildren),
    harness_check!(processes_race_banner, SharedAndChildren),
    harness_check!(processes_race_claims, SharedAndChildren),
    Check {
        name: "durable_after_sigkill",
        needs: Needs::DurableAndChildren,
        run: Run::Harness(|backend, dir, options| {
            Box::pin(process::durable_after_sigkill(
                backend,
                dir,
                options.sigkill_rounds,
            ))
        }),
    },
];

/// The names of [`CHECKS_LIST`], computed from it at compile time.
const CHECK_NAMES: [&str; CHECKS_LIST.len()] = {
    let mut names = [""; CHECKS_LIST.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = CHECKS_LIST[i].name;
        i += 1;
    }
    names
};

/// The names of every check, in the order they run.
pub const CHECKS: &[&str] = &CHECK_NAMES;

/// How [`run_all`] runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Whether the running executable handles `GRANARY_TESTKIT_CHILD` (its `main` is
    /// [`main`]), so that the checks with child processes can run. Without it they are
    /// skipped.
    pub children: bool,
    /// How many times the SIGKILL check kills a writing child (default 20, or
    /// `GRANARY_TESTKIT_KILL_ROUNDS`).
    pub sigkill_rounds: usize,
    /// Run only the checks whose name contains one of these (all when empty).
    pub filters: Vec<String>,
    /// How long one check may take before it fails (default 120 s).
    pub check_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        let sigkill_rounds = std::env::var("GRANARY_TESTKIT_KILL_ROUNDS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(20);
        Self {
            children: false,
            sigkill_rounds,
            filters: Vec::new(),
            check_timeout: Duration::from_secs(120),
        }
    }
}

impl Options {
    /// Options for an executable whose `main` is [`main`]: child processes allowed.
    pub fn with_children() -> Self {
        Self {
            children: true,
            ..Self::default()
        }
    }
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every contract it checks held.
    Passed,
    /// A contract broke.
    Failed(Violation),
    /// Not run: the backend does not claim the capability (or the runner cannot start
    /// child processes).
    Skipped(String),
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// The check's name (see [`CHECKS`]).
    pub check: &'static str,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took.
    pub elapsed: Duration,
}

/// The results of [`run_all`] for one backend.
#[derive(Debug, Clone)]
pub struct Report {
    /// The backend's name.
    pub backend: String,
    /// The capabilities it claimed (`None` when no store could be opened).
    pub capabilities: Option<Capabilities>,
    /// One result per check run.
    pub results: Vec<CheckResult>,
}

impl Report {
    /// How many checks passed.
    pub fn passed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Passed))
    }

    /// How many checks failed.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_)))
    }

    /// How many checks were skipped.
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skipped(_)))
    }

    fn count(&self, which: impl Fn(&Outcome) -> bool) -> usize {
        self.results.iter().filter(|r| which(&r.outcome)).count()
    }

    /// One machine-readable line per check:
    /// `granary-store-conformance<TAB>backend<TAB>check<TAB>pass|fail|skip<TAB>detail`.
    pub fn lines(&self) -> Vec<String> {
        self.results
            .iter()
            .map(|r| {
                let (word, detail) = match &r.outcome {
                    Outcome::Passed => ("pass", format!("{} ms", r.elapsed.as_millis())),
                    Outcome::Failed(v) => ("fail", v.to_string()),
                    Outcome::Skipped(why) => ("skip", why.clone()),
                };
                let detail = detail.replace(['\t', '\n', '\r'], " ");
                format!(
                    "granary-store-conformance\t{}\t{}\t{word}\t{detail}",
                    self.backend, r.check
                )
            })
            .collect()
    }
}

/// Runs every check (matching `options.filters`) against `backend`, each on a store opened
/// in a new empty folder, and reports each one. Never panics on a panicking backend: the
/// check fails instead.
pub async fn run_all(backend: &dyn Backend, options: &Options) -> Report {
    let mut report = Report {
        backend: backend.name().to_string(),
        capabilities: None,
        results: Vec::new(),
    };
    let root = match tempfile::Builder::new()
        .prefix("granary-testkit-")
        .tempdir()
    {
        Ok(root) => root,
        Err(e) => {
            report.results.push(failed(
                "setup",
                "the suite can create a temporary folder",
                e.to_string(),
            ));
            return report;
        }
    };
    let capabilities = match open_in(backend, &root.path().join("capabilities")).await {
        Ok(store) => store.capabilities(),
        Err(violation) => {
            report.results.push(CheckResult {
                check: "open",
                outcome: Outcome::Failed(violation),
                elapsed: Duration::ZERO,
            });
            return report;
        }
    };
    report.capabilities = Some(capabilities);
    for check in CHECKS_LIST {
        if !options.filters.is_empty()
            && !options
                .filters
                .iter()
                .any(|f| check.name.contains(f.as_str()))
        {
            continue;
        }
        let start = Instant::now();
        let outcome = match skip_reason(check.needs, capabilities, options) {
            Some(reason) => Outcome::Skipped(reason),
            None => {
                let dir = root.path().join(check.name);
                let run = run_one(check, backend, &dir, options);
                match tokio::time::timeout(
                    options.check_timeout,
                    AssertUnwindSafe(run).catch_unwind(),
                )
                .await
                {
                    Ok(Ok(Ok(()))) => Outcome::Passed,
                    Ok(Ok(Err(violation))) => Outcome::Failed(violation),
                    Ok(Err(_panic)) => Outcome::Failed(Violation::new(
                        "a store method returns errors, never panics",
                        "the check panicked (the message is above)",
                    )),
                    Err(_elapsed) => Outcome::Failed(Violation::new(
                        "every store method returns",
                        format!(
                            "the check did not finish within {} s",
                            options.check_timeout.as_secs()
                        ),
                    )),
                }
            }
        };
        report.results.push(CheckResult {
            check: check.name,
            outcome,
            elapsed: start.elapsed(),
        });
    }
    report
}

async fn run_one(check: &Check, backend: &dyn Backend, dir: &Path, options: &Options) -> Checked {
    std::fs::create_dir_all(dir)
        .map_err(|e| Violation::new("the suite can create a temporary folder", e.to_string()))?;
    match check.run {
        Run::Store(run) => {
            let store = open_in(backend, dir).await?;
            run(store.as_ref()).await
        }
        Run::Harness(run) => run(backend, dir, options).await,
    }
}

async fn open_in(
    backend: &dyn Backend,
    dir: &Path,
) -> Result<std::sync::Arc<dyn Store>, Violation> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Violation::new("the suite can create a temporary folder", e.to_string()))?;
    backend
        .open(dir)
        .await
        .map_err(|e| Violation::new("a store opens in an empty folder", e.to_string()))
}

fn skip_reason(needs: Needs, capabilities: Capabilities, options: &Options) -> Option<String> {
    let children = "needs child processes: run the suite through granary_store_testkit::main";
    match needs {
        Needs::Nothing => None,
        Needs::Durable | Needs::DurableAndChildren if !capabilities.durable => {
            Some("the backend does not claim `durable`".to_string())
        }
        Needs::SharedAndChildren if !capabilities.shared_between_processes => {
            Some("the backend does not claim `shared_between_processes`".to_string())
        }
        Needs::DurableAndChildren | Needs::SharedAndChildren if !options.children => {
            Some(children.to_string())
        }
        _ => None,
    }
}

fn failed(check: &'static str, contract: &'static str, detail: String) -> CheckResult {
    CheckResult {
        check,
        outcome: Outcome::Failed(Violation::new(contract, detail)),
        elapsed: Duration::ZERO,
    }
}

/// The `main` of a backend's conformance test target (`harness = false`): runs the whole
/// suite and prints one line per check, or plays a child role when started by a check.
///
/// Arguments that do not start with `-` filter the checks by name (`cargo test -p my-backend
/// --test conformance -- lease`). Exits with failure when a check failed.
pub fn main<B: Backend + 'static>(backend: B) -> ExitCode {
    if let Ok(role) = std::env::var(CHILD_ENV) {
        return process::run_child(&backend, &role);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start a tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut options = Options::with_children();
    options.filters = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let report = runtime.block_on(run_all(&backend, &options));
    for line in report.lines() {
        println!("{line}");
    }
    println!(
        "granary-store-conformance: backend={} passed={} failed={} skipped={}",
        report.backend,
        report.passed(),
        report.failed(),
        report.skipped()
    );
    if report.failed() == 0 && !report.results.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Whether this process was started by a check to play a child role (then [`main`] plays
/// it): for a test target with its own `main` that hands child roles to [`main`].
pub fn is_child_process() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

#[cfg(test)]
mod tests {
    #[test]
    fn check_names_are_unique() {
        let mut names = super::CHECKS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            super::CHECKS.len(),
            "a check name appears twice"
        );
    }
}
