//! `cargo xtask bench openapi`: the OpenAPI importer against plain JSON reading, on the
//! corpus of the `openapi` suite.

use crate::cmd::{Ctx, Failure};
use crate::suites::openapi::corpus;

/// `cargo xtask bench openapi`: the importer against `serde_json::from_slice::<IgnoredAny>`
/// on the largest corpus documents and the Box document; the bench exits non-zero when a
/// document misses the goal (1.2x, paired rounds).
pub fn bench(ctx: &Ctx) -> Result<(), Failure> {
    let api = corpus(ctx)?;
    let mut command = ctx.cargo(&["bench", "-p", "granary-openapi", "--bench", "parse"]);
    command.env("GRANARY_OPENAPI_CORPUS", &api);
    ctx.step("openapi bench", command)
}
