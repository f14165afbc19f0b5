//! `cargo xtask test`'s documentation and packaging checks: rustdoc over the whole workspace
//! with warnings denied (the doc tests themselves run with the other tests), the README
//! examples kept under doc tests, and `cargo package --no-verify` of every published crate
//! (its file list, then the `.crate` itself).
//!
//! Which crates are published is read from one place, the manifests: a workspace member
//! without `publish = false` is published (`cargo metadata` reports `"publish": null`), and
//! must package with its own README.md. A crate README's Rust examples run as doc tests
//! (its `src/lib.rs` includes the file under `cfg(doctest)`); the workspace README's Rust
//! examples are copies of those, since no crate includes a file from outside itself.

use std::fs;
use std::path::{Path, PathBuf};

use crate::cmd::{Ctx, Failure};
use crate::features::package_name;

/// The rustdoc flags of the doc build: every rustdoc warning is an error.
const RUSTDOCFLAGS: &str = "-D warnings";

/// Builds the docs with warnings denied, checks that every README example is a doc test,
/// then lists the package of each published crate.
pub fn check(ctx: &Ctx) -> Result<(), Failure> {
    docs(ctx)?;
    let crates = published_crates(ctx)?;
    readme_examples(ctx, &crates)?;
    package(ctx, &crates)
}

/// A published workspace member.
struct Published {
    name: String,
    /// The folder of its Cargo.toml.
    dir: PathBuf,
}

/// The Rust code blocks of a Markdown text, each from its opening fence line (```` ```rust ````,
/// with or without attributes) to its closing fence, with the line it starts on (from 1).
fn rust_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (index, line) in markdown.lines().enumerate() {
        match &mut open {
            Some((_, block)) => {
                block.push_str(line);
                block.push('\n');
                if line.trim_start() == "```" {
                    blocks.extend(open.take());
                }
            }
            None if line.trim_start().starts_with("```rust") => {
                open = Some((index + 1, format!("{line}\n")));
            }
            None => {}
        }
    }
    blocks
}

/// Every published crate's README with a Rust example is included as a doc test by its
/// `src/lib.rs`, and every Rust example of the workspace README is one of those.
fn readme_examples(ctx: &Ctx, crates: &[Published]) -> Result<(), Failure> {
    eprintln!("==> readme examples: each is a doc test");
    let mut tested = Vec::new();
    for krate in crates {
        let readme = read(&krate.dir.join("README.md"))?;
        if rust_blocks(&readme).is_empty() {
            continue;
        }
        let lib = krate.dir.join("src/lib.rs");
        if !read(&lib)?.contains("include_str!(\"../README.md\")") {
            return Err(Failure::new(format!(
                "{name}'s README.md has a Rust example that no doc test runs: add to {lib} \
                 `#[cfg(doctest)] #[doc = include_str!(\"../README.md\")] struct \
                 ReadmeDoctests;`",
                name = krate.name,
                lib = lib.display()
            )));
        }
        tested.push(readme);
    }
    let workspace_readme = ctx.path("README.md");
    for (line, block) in rust_blocks(&read(&workspace_readme)?) {
        if !tested.iter().any(|readme| readme.contains(&block)) {
            return Err(Failure::new(format!(
                "the Rust example at {}:{line} is not a doc test: make it a verbatim copy of \
                 an example in a published crate's README.md (the facade's, \
                 crates/granary/README.md, for the library example), which `cargo test --doc` \
                 runs",
                workspace_readme.display()
            )));
        }
    }
    Ok(())
}

/// A text file.
fn read(path: &Path) -> Result<String, Failure> {
    fs::read_to_string(path).map_err(|e| {
        Failure::new(format!(
            "cannot read {}: {e}; every published crate needs a README.md of its own \
             (what it does, a minimal example, its features)",
            path.display()
        ))
    })
}

/// `cargo doc --workspace --no-deps --all-features` with `RUSTDOCFLAGS=-D warnings`.
fn docs(ctx: &Ctx) -> Result<(), Failure> {
    let args = ["doc", "--workspace", "--no-deps", "--all-features"];
    let mut command = ctx.cargo(&args);
    command.env("RUSTDOCFLAGS", RUSTDOCFLAGS);
    ctx.step("docs", command).map_err(|_| {
        Failure::new(format!(
            "docs failed: fix the rustdoc warnings above (each names its file and line) and \
             rerun `RUSTDOCFLAGS=\"{RUSTDOCFLAGS}\" cargo {}`. Usual causes: a link to an \
             item that is not in scope (write its path: [`Name`](crate::module::Name)), a \
             link that names both a function and a crate or macro (write [`name()`], \
             [`mod@name`] or [`name!`]), a public item without a doc comment",
            args.join(" ")
        ))
    })
}

/// For every published crate, `cargo package --list --no-verify` (the files it would ship,
/// a README.md among them) and `cargo package --no-verify --exclude-lockfile` (the `.crate`
/// itself, which needs, among others, a version on every path dependency; no lock file, since
/// the workspace's unpublished crates cannot be resolved from a registry).
fn package(ctx: &Ctx, crates: &[Published]) -> Result<(), Failure> {
    if crates.is_empty() {
        return Err(Failure::new(
            "package: `cargo metadata` reports no published crate; every workspace member \
             has `publish = false`, but the library crates are meant to be published",
        ));
    }
    let names: Vec<&str> = crates.iter().map(|c| c.name.as_str()).collect();
    eprintln!("==> package: published crates: {}", names.join(", "));
    let fix = |name: &str, status: std::process::ExitStatus, line: &str| {
        Failure::new(format!(
            "package {name} failed ({status}): fix what cargo's error above names in \
             crates/{name}/Cargo.toml or the workspace's Cargo.toml (a path dependency needs \
             `version = \"...\"` in [workspace.dependencies]; a crate that is not to be \
             published gets `publish = false`), then rerun `{line}`"
        ))
    };
    for name in names {
        let list = ctx.cargo(&[
            "package",
            "--list",
            "--no-verify",
            "--allow-dirty",
            "-p",
            name,
        ]);
        let (output, line) = ctx.output(&format!("package {name} files"), list)?;
        if !output.status.success() {
            return Err(fix(name, output.status, &line));
        }
        let files = String::from_utf8_lossy(&output.stdout);
        if !files.lines().any(|file| file == "README.md") {
            return Err(Failure::new(format!(
                "package {name}: the package has no README.md; write one beside its \
                 Cargo.toml (what the crate does, a minimal example, its features)"
            )));
        }
        let tarball = ctx.cargo(&[
            "package",
            "--no-verify",
            "--allow-dirty",
            "--exclude-lockfile",
            "--quiet",
            "-p",
            name,
        ]);
        let (output, line) = ctx.output(&format!("package {name}"), tarball)?;
        if !output.status.success() {
            return Err(fix(name, output.status, &line));
        }
        eprintln!(
            "    {name}: {} files, README.md among them",
            files.lines().count()
        );
    }
    Ok(())
}

/// The workspace members that are published, in `cargo metadata`'s order.
fn published_crates(ctx: &Ctx) -> Result<Vec<Published>, Failure> {
    let command = ctx.cargo(&["metadata", "--no-deps", "--format-version", "1"]);
    let (output, line) = ctx.output("package: which crates are published", command)?;
    if !output.status.success() {
        return Err(Failure::new(format!(
            "`{line}` failed ({}): a manifest does not parse; fix the error above",
            output.status
        )));
    }
    let json = String::from_utf8_lossy(&output.stdout);
    published_manifests(&json)
        .into_iter()
        .map(|manifest| {
            let text = fs::read_to_string(&manifest)
                .map_err(|e| Failure::new(format!("cannot read {manifest}: {e}")))?;
            let name = package_name(&text)
                .ok_or_else(|| Failure::new(format!("{manifest} names no package")))?;
            let dir = Path::new(&manifest)
                .parent()
                .map(Path::to_path_buf)
                .ok_or_else(|| Failure::new(format!("{manifest} has no folder")))?;
            Ok(Published { name, dir })
        })
        .collect()
}

/// The manifest paths of the packages whose `publish` is not `[]` (`null`: anywhere; a list
/// of registries: those) in `cargo metadata --no-deps` JSON. Each package object has one
/// `manifest_path` followed by one `publish`; dependencies and targets have neither.
fn published_manifests(json: &str) -> Vec<String> {
    const PATH_KEY: &str = "\"manifest_path\":\"";
    const PUBLISH_KEY: &str = "\"publish\":";
    let mut manifests = Vec::new();
    let mut rest = json;
    while let Some(start) = rest.find(PATH_KEY) {
        rest = &rest[start + PATH_KEY.len()..];
        let Some(end) = rest.find('"') else { break };
        let path = rest[..end].replace("\\\\", "\\");
        rest = &rest[end..];
        let Some(publish) = rest.find(PUBLISH_KEY) else {
            break;
        };
        let value = rest[publish + PUBLISH_KEY.len()..].trim_start();
        if !value.starts_with("[]") {
            manifests.push(path);
        }
    }
    manifests
}

#[cfg(test)]
mod tests {
    use super::{published_manifests, rust_blocks};

    #[test]
    fn finds_the_rust_blocks_of_markdown() {
        let markdown = "# x\n```sh\nls\n```\n```rust,no_run\nfn main() {}\n```\ntext\n  \
                        ```rust\n  let a = 1;\n  ```\n";
        assert_eq!(
            rust_blocks(markdown),
            [
                (5, "```rust,no_run\nfn main() {}\n```\n".to_string()),
                (9, "  ```rust\n  let a = 1;\n  ```\n".to_string()),
            ]
        );
    }

    #[test]
    fn reads_which_packages_are_published() {
        let json = r#"{"packages":[{"name":"granary","dependencies":[{"name":"url","path":"x"}],
            "targets":[{"name":"granary","src_path":"/w/crates/granary/src/lib.rs"}],
            "manifest_path":"/w/crates/granary/Cargo.toml","metadata":null,"publish":null},
            {"name":"xtask","manifest_path":"/w/xtask/Cargo.toml","publish":[]},
            {"name":"inner","manifest_path":"C:\\w\\inner\\Cargo.toml","publish":["mine"]}]}"#;
        assert_eq!(
            published_manifests(json),
            ["/w/crates/granary/Cargo.toml", "C:\\w\\inner\\Cargo.toml"]
        );
        assert!(published_manifests(r#"{"packages":[]}"#).is_empty());
    }
}
