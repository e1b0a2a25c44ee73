//! The command-line face of the runner, as clap types the shell mounts: `oni scenario run FILE...
//! [--mode sim|live] [--seed N] [--duration-s S] [--dump out.ron]`. Prints one report per file; the exit code is 0 when
//! every scenario passed, 1 when an expectation failed, 2 when a file could not be run.

use crate::scenario::{run_cli_with, Mode, Overrides, ScenarioError};
use std::path::PathBuf;
use std::process::ExitCode;

/// `oni scenario ...`.
#[derive(clap::Subcommand, Debug)]
pub enum ScenarioCommand {
    /// Run scenario files (or directories of .ron files) and print a report for each.
    Run(RunArgs),
}

/// Arguments of `oni scenario run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Scenario files, or directories whose .ron files run in name order.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// How to run.
    #[arg(long, value_enum, default_value = "sim")]
    pub mode: Mode,
    /// Replaces the files' seeds.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Replaces the files' durations (live runs take wall time).
    #[arg(long)]
    pub duration_s: Option<u64>,
    /// Writes the node's peers and metrics at the end as RON (one scenario only).
    #[arg(long)]
    pub dump: Option<PathBuf>,
}

impl ScenarioCommand {
    /// Runs the command, printing reports to stdout and errors to stderr.
    pub fn execute(&self) -> ExitCode {
        match self {
            ScenarioCommand::Run(args) => args.execute(),
        }
    }
}

impl RunArgs {
    /// Expands directories into their .ron files, sorted.
    pub fn files(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for p in &self.paths {
            if p.is_dir() {
                let mut in_dir: Vec<PathBuf> = std::fs::read_dir(p)?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.extension().is_some_and(|x| x == "ron"))
                    .collect();
                in_dir.sort();
                files.extend(in_dir);
            } else {
                files.push(p.clone());
            }
        }
        Ok(files)
    }

    /// Runs every file; see the module doc for the exit code.
    pub fn execute(&self) -> ExitCode {
        let files = match self.files() {
            Ok(f) => f,
            Err(e) => {
                eprintln!("oni scenario run: {e}");
                return ExitCode::from(2);
            }
        };
        if self.dump.is_some() && files.len() != 1 {
            eprintln!("oni scenario run: --dump needs exactly one scenario, got {}", files.len());
            return ExitCode::from(2);
        }
        let mut code = 0u8;
        for f in &files {
            let overrides = Overrides { seed: self.seed, duration_s: self.duration_s };
            match run_cli_with(f, self.mode, &overrides, self.dump.as_deref()) {
                Ok(report) => println!("{report}"),
                Err(ScenarioError::Failed(report)) => {
                    println!("{report}");
                    eprintln!("{}: {} expectation(s) failed", f.display(), report.failures().count());
                    code = code.max(1);
                }
                Err(e) => {
                    eprintln!("{e}");
                    code = 2;
                }
            }
        }
        ExitCode::from(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: ScenarioCommand,
    }

    #[test]
    fn parses_run_with_every_option() {
        let cli = Cli::try_parse_from(["oni", "run", "a.ron", "dir", "--seed", "9", "--dump", "o.ron"]).unwrap();
        let ScenarioCommand::Run(a) = cli.cmd;
        assert_eq!(a.paths, [PathBuf::from("a.ron"), PathBuf::from("dir")]);
        assert_eq!(a.mode, Mode::Sim);
        assert_eq!(a.seed, Some(9));
        assert_eq!(a.dump, Some(PathBuf::from("o.ron")));
        assert!(Cli::try_parse_from(["oni", "run"]).is_err(), "a path is required");
        let cli = Cli::try_parse_from(["oni", "run", "a.ron", "--mode", "live", "--duration-s", "3"]).unwrap();
        let ScenarioCommand::Run(a) = cli.cmd;
        assert_eq!((a.mode, a.duration_s), (Mode::Live, Some(3)));
        assert!(Cli::try_parse_from(["oni", "run", "a.ron", "--mode", "fast"]).is_err(), "unknown mode");
    }

    fn args(paths: &[&std::path::Path], dump: Option<PathBuf>) -> RunArgs {
        RunArgs {
            paths: paths.iter().map(|p| p.to_path_buf()).collect(),
            mode: Mode::Sim,
            seed: None,
            duration_s: None,
            dump,
        }
    }

    #[test]
    fn exit_code_is_0_pass_1_fail_2_unrunnable() {
        let dir = tempfile::tempdir().unwrap();
        let ok =
            "Scenario(name: \"ok\", seed: 1, duration_s: 3, peers: [Honest(count: 1)], expect: [NoHonestDisconnected])";
        std::fs::write(dir.path().join("a_ok.ron"), ok).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a scenario").unwrap();
        let run = args(&[dir.path()], None);
        assert_eq!(run.files().unwrap(), [dir.path().join("a_ok.ron")], "only .ron files of a directory");
        assert_eq!(run.execute(), ExitCode::from(0));

        let failing = ok.replace("NoHonestDisconnected", "PeakPeersAtMost(0)");
        std::fs::write(dir.path().join("b_fail.ron"), failing).unwrap();
        assert_eq!(args(&[dir.path()], None).execute(), ExitCode::from(1));

        std::fs::write(dir.path().join("c_bad.ron"), "Scenario(").unwrap();
        assert_eq!(args(&[dir.path()], None).execute(), ExitCode::from(2));
        let dump = Some(dir.path().join("d.ron"));
        assert_eq!(args(&[dir.path()], dump).execute(), ExitCode::from(2), "--dump with several files");
    }
}
