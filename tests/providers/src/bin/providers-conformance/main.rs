//! `providers-conformance`: every catalogue profile through granary's engine against the
//! quirk emulator behaving like its provider, with the profile (the whole lifecycle must
//! work) and without it (the flow must fail where the provider refuses, or the profile is
//! reported as `standard`). Run by `cargo xtask conformance providers`.
//!
//! Arguments: catalogue ids to run only those (all by default).

mod fields;
mod lifecycle;
mod rewrite;

use std::process::ExitCode;

use granary_flow::profile::{ProviderProfile, catalogue};
use granary_providers_conformance::Behaviour;

use lifecycle::{Mode, Outcome};

/// Profiles the suite cannot prove yet, with why (see the file's header).
const KNOWN_GAPS: &str = include_str!("../../../known-gaps.txt");

/// How one profile ended.
enum Verdict {
    /// The lifecycle works with the profile and fails without it.
    Ok,
    /// It works with the profile, and without it too.
    Standard,
    /// Listed in known-gaps.txt and failing.
    KnownGap,
    Failed,
}

fn known_gaps() -> Vec<(&'static str, &'static str)> {
    KNOWN_GAPS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(id, why)| (id.trim(), why.trim()))
        .collect()
}

fn refusals_text(outcome: &Outcome) -> String {
    outcome
        .refusals
        .iter()
        .map(|r| {
            format!(
                "\n    refused at {}: HTTP {} {}: {}",
                r.endpoint, r.status, r.error, r.reason
            )
        })
        .collect()
}

/// Runs one profile both ways and prints its line.
async fn check(profile: &ProviderProfile, gaps: &[(&str, &str)]) -> Verdict {
    let id = profile.id.as_deref().unwrap_or("?");
    let gap = gaps.iter().find(|(g, _)| *g == id).map(|(_, why)| *why);
    let Some(b) = Behaviour::named(id) else {
        println!("providers: {id} FAILED: the emulator has no behaviour of this id: add one");
        return Verdict::Failed;
    };
    let with = lifecycle::run(profile, &b, Mode::With).await;
    let notes = match (&with.result, gap) {
        (Ok(notes), None) => notes.join(", "),
        (Ok(_), Some(why)) => {
            println!(
                "providers: {id} FAILED: listed in known-gaps.txt ({why}) but it passes: remove its line"
            );
            return Verdict::Failed;
        }
        (Err(f), Some(why)) => {
            println!(
                "providers: {id} KNOWN GAP ({why}): fails at {}: {}",
                f.stage.name(),
                f.reason
            );
            return Verdict::KnownGap;
        }
        (Err(f), None) => {
            println!(
                "providers: {id} FAILED with the profile at {}: {}{}",
                f.stage.name(),
                f.reason,
                refusals_text(&with)
            );
            return Verdict::Failed;
        }
    };
    let without = lifecycle::run(profile, &b, Mode::Without).await;
    match without.result {
        Err(f) => {
            println!(
                "providers: {id} ok [{notes}] (without profile: fails at {}: {})",
                f.stage.name(),
                f.reason
            );
            Verdict::Ok
        }
        Ok(_) => {
            let revocation = if profile.revocation.url.is_some() {
                "; it gives the revocation URL, which an OpenAPI document cannot"
            } else {
                ""
            };
            println!(
                "providers: {id} ok [{notes}], standard: without the profile the plain flow \
                 works too, so the profile changes nothing that matters for {}{revocation}",
                b.name
            );
            Verdict::Standard
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let only: Vec<String> = std::env::args().skip(1).collect();
    let problems = catalogue().problems();
    if !problems.is_empty() {
        println!("providers: the catalogue has files that do not read: {problems:?}");
        return ExitCode::FAILURE;
    }
    let gaps = known_gaps();
    for (id, _) in &gaps {
        if catalogue().get(id).is_none() {
            println!("providers: known-gaps.txt names `{id}`, which is not in the catalogue");
            return ExitCode::FAILURE;
        }
    }
    let (mut profiles, mut passed, mut failed, mut standard, mut known) = (0, 0, 0, 0, 0);
    for profile in catalogue().all() {
        let id = profile.id.as_deref().unwrap_or_default();
        if !only.is_empty() && !only.iter().any(|o| o == id) {
            continue;
        }
        profiles += 1;
        match check(profile, &gaps).await {
            Verdict::Ok => passed += 1,
            Verdict::Standard => {
                passed += 1;
                standard += 1;
            }
            Verdict::KnownGap => known += 1,
            Verdict::Failed => failed += 1,
        }
    }
    let gaps_part = if known > 0 {
        format!(" known_gaps={known}")
    } else {
        String::new()
    };
    println!(
        "providers conformance: profiles={profiles} passed={passed} failed={failed} \
         standard={standard}{gaps_part}"
    );
    if failed == 0 && profiles > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
