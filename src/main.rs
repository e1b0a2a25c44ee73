//! The `oni` binary: parses the command line and runs the chosen command.

use clap::Parser;
use oni::cli::{run_node, Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    // Bad flags print clap's message and exit 2.
    let cli = Cli::parse();
    match cli.command {
        Command::Node(args) => ExitCode::from(u8::try_from(run_node(&args)).unwrap_or(1)),
        Command::Scenario(cmd) => {
            // Scenario reports go to stdout; the simulated node's own log lines stay quiet.
            let _ = oni::cli::init_logging(Some("warn"));
            cmd.execute()
        }
    }
}
