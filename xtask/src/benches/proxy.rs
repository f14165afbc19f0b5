//! `cargo xtask bench proxy`: requests per second through granary's proxy against direct
//! requests to the same API, paired in one run (release builds; the runner's bench mode,
//! tests/e2e/src/proxy/bench.rs). Prints
//! `bench proxy: direct_rps=X proxied_rps=Y ratio=Z errors=N`; fails when the ratio is below
//! 0.7 or a request failed.

use crate::builds::{Profile, build_granary_and};
use crate::cmd::{Ctx, Failure, create_dir};
use crate::suites::proxy::{Peers, start_peers};

/// `cargo xtask bench proxy`.
pub fn bench(ctx: &Ctx) -> Result<(), Failure> {
    let dir = ctx.target.join("bench-proxy");
    create_dir(&dir)?;
    build_granary_and(
        ctx,
        "build granary and the proxy runner (release)",
        Profile::Release,
        "proxy",
    )?;
    let Peers { server, mut runner } = start_peers(ctx, &dir, Profile::Release)?;
    runner.args(["--mode", "bench"]);
    let result = ctx.step(
        "bench proxy (direct and proxied rounds, alternating)",
        runner,
    );
    server.finish(result)
}
