//! Checks the machine can build Bitcoin Core's validation code (the kernel's build script needs
//! cmake, a C++ compiler and Boost headers) and names what is missing with the line that installs
//! it. Runs once per checkout (it reruns only when these files or the skip switch change). Cargo
//! may run the kernel's build script first (its chain of dependents is deeper): without cmake at
//! all, that script's own "failed to spawn cmake configure" comes first; a missing compiler or
//! Boost is named here while the kernel's configure is still running.

#[path = "src/build_prereq.rs"]
mod build_prereq;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/build_prereq.rs");
    println!("cargo:rerun-if-env-changed=ONI_SKIP_PREREQ_CHECK");
    println!("cargo:rerun-if-env-changed=CXX");
    if std::env::var_os("ONI_SKIP_PREREQ_CHECK").is_some_and(|v| v == "1") {
        return;
    }
    let missing = build_prereq::check(&build_prereq::Env::current());
    if missing.is_empty() {
        return;
    }
    for m in &missing {
        eprintln!("error: {m}");
    }
    std::process::exit(1);
}
