//! The build's prerequisite check (`build.rs`): on a machine missing cmake, a C++ compiler or Boost
//! headers it names each with the line that installs them; an old cmake is refused by version; this
//! machine (which builds) passes; and the README's set-up line is the one the check prints.

#[path = "../src/build_prereq.rs"]
#[allow(dead_code)]
mod build_prereq;

use build_prereq::{check, Env, DEBIAN_LINE};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// An executable `name` in `dir` printing `stdout`.
fn program(dir: &Path, name: &str, stdout: &str) {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\necho '{stdout}'\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn an_empty_machine_is_told_each_prerequisite_and_how_to_install_it() {
    let empty = tempfile::tempdir().unwrap();
    let env = Env { path: vec![empty.path().into()], cxx: None, include_dirs: vec![empty.path().into()] };
    let missing = check(&env);
    let text: Vec<String> = missing.iter().map(|m| m.to_string()).collect();
    assert_eq!(missing.len(), 3, "{text:#?}");
    assert!(text[0].contains("cmake is not on PATH"), "{}", text[0]);
    assert!(text[1].contains("no C++ compiler"), "{}", text[1]);
    assert!(text[2].contains("Boost headers"), "{}", text[2]);
    assert!(text.iter().all(|t| t.contains(DEBIAN_LINE) && t.contains("brew install")));
}

#[test]
fn an_old_cmake_is_refused_by_version_and_a_recent_one_with_compiler_and_boost_passes() {
    let bin = tempfile::tempdir().unwrap();
    program(bin.path(), "cmake", "cmake version 3.16.3");
    program(bin.path(), "g++", "");
    let inc = tempfile::tempdir().unwrap();
    std::fs::create_dir(inc.path().join("boost")).unwrap();
    std::fs::write(inc.path().join("boost/multi_index_container.hpp"), "").unwrap();
    let env = || Env { path: vec![bin.path().into()], cxx: None, include_dirs: vec![inc.path().into()] };
    let missing = check(&env());
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(missing[0].what.contains("cmake 3.16") && missing[0].what.contains("older than 3.22"), "{missing:?}");
    program(bin.path(), "cmake", "cmake version 3.25.1");
    assert!(check(&env()).is_empty());
    let named = Env { cxx: Some("clang++-99".into()), ..env() };
    let missing = check(&named);
    assert!(missing.len() == 1 && missing[0].what.contains("CXX=clang++-99"), "{missing:?}");
}

#[test]
fn this_machine_passes_the_check() {
    let missing = check(&Env::current());
    assert!(missing.is_empty(), "{missing:?}");
}

#[test]
fn the_readme_setup_line_is_the_one_the_check_prints() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains(&format!("    {DEBIAN_LINE}\n")), "README lacks the set-up line `{DEBIAN_LINE}`");
}
