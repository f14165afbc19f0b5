//! `cargo xtask test`'s feature builds: each library crate checked on its own with its
//! default features, and, when it has optional features, with none of them, so that a
//! feature combination the workspace's `--all-features` builds never try cannot break
//! unseen.

use std::fs;

use crate::cmd::{Ctx, Failure};

/// One library crate under `crates/`: its package name and whether it declares features.
struct LibraryCrate {
    name: String,
    has_features: bool,
}

/// Checks every library crate under `crates/` (each alone: no feature unification with the
/// rest of the workspace) with its default features and with `--no-default-features`.
pub fn check(ctx: &Ctx) -> Result<(), Failure> {
    let crates = library_crates(ctx)?;
    let plan: Vec<String> = crates
        .iter()
        .map(|c| {
            if c.has_features {
                format!("{} (default, no default features)", c.name)
            } else {
                format!("{} (default; it has no optional features)", c.name)
            }
        })
        .collect();
    eprintln!(
        "==> features: `cargo check` of each library crate on its own: {}",
        plan.join(", ")
    );
    for c in &crates {
        ctx.step(
            &format!("features {} default", c.name),
            ctx.cargo(&["check", "--quiet", "-p", &c.name]),
        )?;
        if c.has_features {
            ctx.step(
                &format!("features {} none", c.name),
                ctx.cargo(&["check", "--quiet", "-p", &c.name, "--no-default-features"]),
            )?;
        }
    }
    Ok(())
}

/// The crates under `crates/` with a `src/lib.rs`, by folder name order.
fn library_crates(ctx: &Ctx) -> Result<Vec<LibraryCrate>, Failure> {
    let dir = ctx.path("crates");
    let entries = fs::read_dir(&dir)
        .map_err(|e| Failure::new(format!("cannot list {}: {e}", dir.display())))?;
    let mut folders: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("src/lib.rs").is_file() && p.join("Cargo.toml").is_file())
        .collect();
    folders.sort();
    folders
        .iter()
        .map(|folder| {
            let manifest = folder.join("Cargo.toml");
            let text = fs::read_to_string(&manifest)
                .map_err(|e| Failure::new(format!("cannot read {}: {e}", manifest.display())))?;
            let name = package_name(&text)
                .ok_or_else(|| Failure::new(format!("{} names no package", manifest.display())))?;
            Ok(LibraryCrate {
                name,
                has_features: has_features(&text),
            })
        })
        .collect()
}

/// `name = "..."` of the `[package]` table.
pub fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(value) = line.strip_prefix("name") {
            let value = value.trim_start().strip_prefix('=')?.trim();
            return Some(value.trim_matches('"').to_string());
        }
    }
    None
}

/// Whether the manifest declares a feature (a key in its `[features]` table).
fn has_features(manifest: &str) -> bool {
    let mut in_features = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_features = line == "[features]";
        } else if in_features && !line.is_empty() && !line.starts_with('#') && line.contains('=') {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::{has_features, package_name};

    #[test]
    fn reads_the_package_name_and_features() {
        let manifest = "[package]\nname = \"granary\"\nversion.workspace = true\n\n\
                        [features]\n## doc\ndefault = [\"sqlite\"]\n\n[dependencies]\nname = 1\n";
        assert_eq!(package_name(manifest).as_deref(), Some("granary"));
        assert!(has_features(manifest));
        assert!(!has_features(
            "[package]\nname = \"x\"\n[dependencies]\na = 1\n"
        ));
    }
}
