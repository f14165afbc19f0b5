//! What the scenario runners (`lifecycle`, `multinode`) share: a scenario's [`Outcome`]
//! (figures and failed checks), the line each scenario prints ([`line()`]), and how figures
//! are written.

use std::fmt::Display;
use std::time::Duration;

use serde_json::Value;

use crate::server::Answer;

/// What a scenario measured, and the checks that failed.
#[derive(Default)]
pub struct Outcome {
    /// `name=value` pairs, in the order measured.
    pub figures: Vec<String>,
    /// The checks that failed, each a sentence.
    pub failures: Vec<String>,
}

impl Outcome {
    /// Records the figure `name=value`.
    pub fn figure(&mut self, name: &str, value: impl Display) {
        self.figures.push(format!("{name}={value}"));
    }

    /// Records a failure unless `ok`.
    pub fn check(&mut self, ok: bool, failure: impl Into<String>) -> bool {
        if !ok {
            self.failures.push(failure.into());
        }
        ok
    }
}

/// Seconds with two decimals.
pub fn secs(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64())
}

/// [`secs`], or `none`.
pub fn secs_or_none(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "none".to_string(), secs)
}

/// `200 in 0.03 s`, or what came instead.
pub fn describe(answer: &Answer) -> String {
    if answer.ok() {
        format!("{} in {} s", answer.code(), secs(answer.elapsed))
    } else {
        let detail = answer
            .body
            .get("detail")
            .and_then(Value::as_str)
            .map_or_else(|| answer.body.to_string(), str::to_string);
        format!(
            "{} in {} s ({})",
            answer.code(),
            secs(answer.elapsed),
            detail.chars().take(200).collect::<String>()
        )
    }
}

/// How a scenario ended: its outcome, or why it could not run (setup), or `None` when it did
/// not finish within its time.
pub type Ended = Option<Result<Outcome, String>>;

/// The line of scenario `name` run by `runner`: `RUNNER NAME: passed (figures)`, or
/// `failed (figures): why`; and whether it passed. `took` is added to the figures.
pub fn line(
    runner: &str,
    name: &str,
    ended: Ended,
    took: Duration,
    limit: Duration,
) -> (String, bool) {
    let took = format!("took_s={:.1}", took.as_secs_f64());
    match ended {
        Some(Ok(outcome)) => {
            let mut figures = outcome.figures;
            figures.push(took);
            if outcome.failures.is_empty() {
                (
                    format!("{runner} {name}: passed ({})", figures.join(" ")),
                    true,
                )
            } else {
                (
                    format!(
                        "{runner} {name}: failed ({}): {}",
                        figures.join(" "),
                        outcome.failures.join("; ")
                    ),
                    false,
                )
            }
        }
        Some(Err(error)) => (
            format!("{runner} {name}: failed ({took}): setup: {error}"),
            false,
        ),
        None => (
            format!(
                "{runner} {name}: failed ({took}): did not finish within {} s",
                limit.as_secs()
            ),
            false,
        ),
    }
}
