//! The `providers` conformance suite: every catalogue provider profile through granary's
//! engine against the quirk emulator (tests/providers) behaving like its provider.
//!
//! `cargo xtask conformance providers` runs the `providers-conformance` binary of
//! `granary-providers-conformance`: for each profile the whole lifecycle with the profile,
//! and the same flow without it, which must fail where the provider refuses (or the profile
//! is reported `standard`). It prints one line per profile and
//! `providers conformance: profiles=N passed=N failed=0 standard=K`, and exits non-zero on
//! a failure. Only 127.0.0.1: no network, no node.

use crate::cmd::{Ctx, Failure};

pub fn conformance(ctx: &Ctx) -> Result<(), Failure> {
    ctx.step(
        "providers conformance",
        ctx.cargo(&[
            "run",
            "--quiet",
            "-p",
            "granary-providers-conformance",
            "--bin",
            "providers-conformance",
        ]),
    )
}
