//! The `oni` binary: parses the command line and runs the chosen command.

use oni::cli::{run_node, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    // Bad flags print clap's message and exit 2; so does a configuration file that cannot be read.
    let cli = match oni::cli::conf::parse_cli(std::env::args_os().collect()) {
        Ok((cli, ignored)) => {
            if !ignored.is_empty() {
                eprintln!("warning: the configuration file's {} are not oni settings: ignored", ignored.join(", "));
            }
            cli
        }
        Err(oni::cli::conf::ArgsError::Clap(e)) => e.exit(),
        Err(oni::cli::conf::ArgsError::Conf(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Node(args) => ExitCode::from(u8::try_from(run_node(&args)).unwrap_or(1)),
        Command::Dump(args) => ExitCode::from(u8::try_from(oni::cli::dump::run_dump(&args)).unwrap_or(1)),
        Command::Chaingen(args) => ExitCode::from(u8::try_from(oni::cli::chaingen::run_chaingen(&args)).unwrap_or(1)),
        Command::Scenario(cmd) => {
            // Scenario reports go to stdout; the simulated node's own log lines stay quiet.
            let _ = oni::cli::init_logging(Some("warn"));
            cmd.execute()
        }
    }
}
