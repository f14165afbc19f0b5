//! `cargo xtask example-backend`: the store backend written outside the workspace
//! (`examples/custom-backend`, its own Cargo workspace) built and run against the whole
//! conformance suite, as its author would run it.

use crate::cmd::{Ctx, Failure};

/// The example backend's manifest, relative to the workspace root.
const BACKEND_MANIFEST: &str = "examples/custom-backend/Cargo.toml";

/// Formats-checks the example backend and runs its tests (the conformance suite). It builds
/// into the workspace's target directory, so the dependencies it shares with the workspace
/// are not built again.
pub fn backend(ctx: &Ctx) -> Result<(), Failure> {
    let manifest = ctx.path(BACKEND_MANIFEST);
    let manifest = manifest.to_string_lossy();
    let target = ctx.target.to_string_lossy();
    ctx.step(
        "example-backend fmt",
        ctx.cargo(&["fmt", "--manifest-path", &manifest, "--check"]),
    )?;
    ctx.step(
        "example-backend conformance",
        ctx.cargo(&[
            "test",
            "--manifest-path",
            &manifest,
            "--target-dir",
            &target,
        ]),
    )
}
