//! Pinned npm installs for the conformance suites, cached under `target/npm/<name>`.
//!
//! Each suite's `package.json` and `package-lock.json` are committed under
//! `conformance/<name>/`. They are copied into `target/npm/<name>/` and installed there with
//! `npm ci`, once; the install is redone only when the committed lock file changes.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use crate::cmd::{Ctx, Failure, create_dir, write_file};

/// Installs the pinned packages of `conformance/<name>` (when not installed yet) and returns
/// the folder that holds its `node_modules`.
pub fn install(ctx: &Ctx, name: &str) -> Result<PathBuf, Failure> {
    let source = ctx.path(format!("conformance/{name}"));
    let lock = read(&source.join("package-lock.json"))?;
    let manifest = read(&source.join("package.json"))?;
    let dir = ctx.target.join("npm").join(name);
    let stamp = dir.join("node_modules/.granary-installed-lock.json");
    if fs::read_to_string(&stamp).ok().as_deref() == Some(lock.as_str()) {
        return Ok(dir);
    }
    require_npm()?;
    create_dir(&dir)?;
    write_file(&dir.join("package.json"), &manifest)?;
    write_file(&dir.join("package-lock.json"), &lock)?;
    eprintln!(
        "==> npm ci in {} (pinned by conformance/{name}/package-lock.json)",
        dir.display()
    );
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .status()
        .map_err(|e| Failure::new(format!("could not run npm: {e}")))?;
    if !status.success() {
        return Err(Failure::new(format!(
            "`npm ci` in {} failed ({status}); check that the npm registry is reachable",
            dir.display()
        )));
    }
    write_file(&stamp, &lock)?;
    Ok(dir)
}

/// Fails with an install hint when node or npm is missing.
pub fn require_npm() -> Result<(), Failure> {
    for tool in ["node", "npm"] {
        let found = Command::new(tool)
            .arg("--version")
            .output()
            .map(|out| out.status.success())
            .unwrap_or(false);
        if !found {
            return Err(Failure::new(format!(
                "`{tool}` was not found: install Node.js 20 or newer with npm \
                 (Debian: `apt-get install nodejs npm`) and run again"
            )));
        }
    }
    Ok(())
}

fn read(path: &std::path::Path) -> Result<String, Failure> {
    fs::read_to_string(path)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", path.display())))
}
