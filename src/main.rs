//! The `oni` binary: parses the command line and runs the chosen command.

use clap::Parser;
use oni::cli::{run_node, Cli, Command};

fn main() {
    // Bad flags print clap's message and exit 2.
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Node(args) => run_node(&args),
    };
    std::process::exit(code);
}
