//! Building the binaries the suites, the benches and the demo run: `granary` and the test
//! binaries of `tests/e2e` (granary-e2e), in the debug or the release profile.

use crate::cmd::{Ctx, Failure};

/// The cargo profile the binaries of a run are built with.
#[derive(Clone, Copy)]
pub enum Profile {
    Debug,
    Release,
}

impl Profile {
    /// The path of a binary built with this profile.
    pub fn binary(self, ctx: &Ctx, name: &str) -> String {
        let folder = match self {
            Profile::Debug => "debug",
            Profile::Release => "release",
        };
        ctx.target
            .join(folder)
            .join(name)
            .to_string_lossy()
            .into_owned()
    }
}

/// Builds the `granary` binary and the binary `e2e_bin` of granary-e2e, as the step `name`.
pub fn build_granary_and(
    ctx: &Ctx,
    name: &str,
    profile: Profile,
    e2e_bin: &str,
) -> Result<(), Failure> {
    let mut args = vec!["build"];
    if let Profile::Release = profile {
        args.push("--release");
    }
    args.extend([
        "--quiet",
        "-p",
        "granary-server",
        "--bin",
        "granary",
        "-p",
        "granary-e2e",
        "--bin",
        e2e_bin,
    ]);
    ctx.step(name, ctx.cargo(&args))
}

/// Builds the `granary` binary (debug), as the step `name`.
pub fn build_granary(ctx: &Ctx, name: &str) -> Result<(), Failure> {
    ctx.step(
        name,
        ctx.cargo(&[
            "build",
            "--quiet",
            "-p",
            "granary-server",
            "--bin",
            "granary",
        ]),
    )
}
