//! `granary`: the command-line entry point. Each subcommand lives in its own module.

mod inspect;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// granary takes the OAuth 2.0 authorization-code grant of API integrations off your hands.
#[derive(Debug, Parser)]
#[command(name = "granary", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    common: granary_server::settings::CommonArgs,
    #[command(flatten)]
    remote: granary_server::cli::RemoteArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the OAuth 2.0 schemes, flows, URLs and scopes of an OpenAPI document.
    Inspect(inspect::Args),
    #[command(flatten)]
    Server(granary_server::cli::Command),
}

/// Exit codes shared by the subcommands.
pub(crate) mod exit {
    /// The input was read but is not acceptable (a broken document).
    pub const BAD_INPUT: u8 = 1;
    /// Usage or I/O problem (clap also exits with 2 on bad arguments).
    pub const USAGE_OR_IO: u8 = 2;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect(args) => inspect::run(&args),
        Command::Server(command) => granary_server::cli::main(command, &cli.common, &cli.remote),
    }
}
