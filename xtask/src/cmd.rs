//! Running commands from the xtask: the workspace context, steps, and failures that say what to do.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output, Stdio};

/// Where the workspace is and how to call cargo.
pub struct Ctx {
    /// The workspace root (the folder with the virtual Cargo.toml).
    pub root: PathBuf,
    /// The target directory, where npm installs and reports are cached too.
    pub target: PathBuf,
    cargo: String,
}

/// Why an xtask command failed, in words that say what to do.
#[derive(Debug)]
pub struct Failure(String);

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    pub fn report(&self) -> ExitCode {
        eprintln!("error: {}", self.0);
        ExitCode::FAILURE
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Ctx {
    pub fn new() -> Result<Self, Failure> {
        let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let root = manifest_dir
            .parent()
            .ok_or_else(|| Failure::new("xtask must live one folder below the workspace root"))?
            .to_path_buf();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        Ok(Self {
            root,
            target,
            cargo,
        })
    }

    /// A `cargo` command run from the workspace root.
    pub fn cargo(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.cargo);
        command.args(args).current_dir(&self.root);
        command
    }

    /// Runs a command to completion with inherited output; fails naming the step.
    pub fn step(&self, name: &str, mut command: Command) -> Result<(), Failure> {
        eprintln!("==> {name}: {}", describe(&command));
        let status = command.stdin(Stdio::null()).status().map_err(|e| {
            Failure::new(format!(
                "{name}: could not start {}: {e}",
                describe(&command)
            ))
        })?;
        if status.success() {
            Ok(())
        } else {
            Err(Failure::new(format!(
                "{name} failed ({status}); rerun `{}` to see why",
                describe(&command)
            )))
        }
    }

    /// Runs a command to completion with its stderr inherited and its stdout captured; fails
    /// only when it cannot start (the caller judges the exit status).
    pub fn output(&self, name: &str, mut command: Command) -> Result<(Output, String), Failure> {
        eprintln!("==> {name}: {}", describe(&command));
        let line = describe(&command);
        let output = command
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| Failure::new(format!("could not start {line}: {e}")))?;
        Ok((output, line))
    }

    /// A path relative to the workspace root.
    pub fn path(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.root.join(relative)
    }
}

/// The command line of a command, for messages.
pub fn describe(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Creates a folder and its parents.
pub fn create_dir(path: &Path) -> Result<(), Failure> {
    fs::create_dir_all(path)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", path.display())))
}

/// Writes a text file.
pub fn write_file(path: &Path, text: &str) -> Result<(), Failure> {
    fs::write(path, text).map_err(|e| Failure::new(format!("cannot write {}: {e}", path.display())))
}
