//! `cargo xtask bench scale`: the cost of a refresher round and of a page of the instance
//! listing with 1,000 and with 100,000 instances kept, the same 100 due (issue 14), on
//! SQLite and on PostgreSQL (a throwaway cluster, or `GRANARY_TEST_POSTGRES`). The runner
//! is the `scale` example of the `granary` crate (a SQLite store under /dev/shm, a schema
//! per size on PostgreSQL, a token endpoint on 127.0.0.1 in its own process); it prints the
//! `bench scale:` lines and exits non-zero when a goal is missed: round_ratio and list_ratio
//! (100,000 against 1,000) at most 2, resident memory under 200 MB at 100,000, every due
//! token refreshed.

use crate::cmd::{Ctx, Failure};
use crate::peers::postgres::Postgres;

/// `cargo xtask bench scale`.
pub fn bench(ctx: &Ctx) -> Result<(), Failure> {
    ctx.step(
        "build the scale runner (release)",
        ctx.cargo(&[
            "build",
            "--release",
            "-p",
            "granary",
            "--example",
            "scale",
            "--features",
            "postgres",
        ]),
    )?;
    let runner = ctx.target.join("release").join("examples").join("scale");
    let postgres = Postgres::start(ctx, "bench-scale")?;
    let mut command = std::process::Command::new(&runner);
    command.args(["--postgres", postgres.url()]);
    let result = ctx.output(
        "bench scale (fills 1,000 then 100,000 instances, SQLite then PostgreSQL)",
        command,
    );
    drop(postgres);
    let (output, command_line) = result?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    if !stdout.lines().any(|l| l.starts_with("bench scale: store=")) {
        return Err(Failure::new(format!(
            "the scale runner printed no `bench scale:` line ({}); rerun `{command_line}`",
            output.status
        )));
    }
    if !output.status.success() {
        let missed: Vec<&str> = stdout
            .lines()
            .filter(|l| l.starts_with("GOAL MISSED"))
            .collect();
        return Err(Failure::new(format!(
            "bench scale missed its goals ({}): {}",
            output.status,
            if missed.is_empty() {
                format!("the runner failed; rerun `{command_line}`")
            } else {
                missed.join("; ")
            }
        )));
    }
    Ok(())
}
