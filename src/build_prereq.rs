//! What a machine needs before the kernel's build script can compile Bitcoin Core's validation
//! code (cmake, a C++ compiler, Boost headers), checked by `build.rs` so a missing one is named with
//! the line that installs it — instead of a cmake panic and a backtrace from a dependency's build
//! script. Shared by `build.rs` and `tests/build_prereq.rs` through `#[path]`: no crate items used.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The lowest cmake Bitcoin Core's build accepts (its `cmake_minimum_required`).
pub const CMAKE_MIN: (u32, u32) = (3, 22);

/// The one line that installs every prerequisite on Debian/Ubuntu (the README's set-up line).
pub const DEBIAN_LINE: &str = "sudo apt-get update && sudo apt-get install -y cmake g++ libboost-dev python3-venv";
/// The same on macOS (Homebrew; the compiler comes with Xcode's command line tools).
pub const MACOS_LINE: &str = "xcode-select --install; brew install cmake boost";

/// Where the checks look: the programs' search path, the C++ compiler the environment names, and
/// the include directories where Boost's headers may be.
pub struct Env {
    /// Directories searched for programs (`PATH`).
    pub path: Vec<PathBuf>,
    /// `CXX`, when set.
    pub cxx: Option<String>,
    /// Include directories to look in for `boost/`.
    pub include_dirs: Vec<PathBuf>,
}

impl Env {
    /// This process's environment, with the usual system and Homebrew include directories.
    pub fn current() -> Env {
        let path = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
        let mut include_dirs: Vec<PathBuf> = Vec::new();
        for var in ["BOOST_ROOT", "Boost_ROOT", "BOOST_INCLUDEDIR"] {
            if let Some(v) = std::env::var_os(var) {
                let root = PathBuf::from(v);
                include_dirs.push(root.join("include"));
                include_dirs.push(root);
            }
        }
        for var in ["CPLUS_INCLUDE_PATH", "CPATH"] {
            if let Some(v) = std::env::var_os(var) {
                include_dirs.extend(std::env::split_paths(&v));
            }
        }
        for d in ["/usr/include", "/usr/local/include", "/opt/homebrew/include", "/opt/local/include"] {
            include_dirs.push(PathBuf::from(d));
        }
        Env { path, cxx: std::env::var("CXX").ok(), include_dirs }
    }

    /// The first `name` on the search path.
    fn find(&self, name: &str) -> Option<PathBuf> {
        self.path.iter().map(|d| d.join(name)).find(|p| p.is_file())
    }
}

/// A missing prerequisite: what, why it is needed, and how to install it.
#[derive(Debug, PartialEq, Eq)]
pub struct Missing {
    /// The program or headers.
    pub what: String,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "oni cannot build: {} (needed to compile Bitcoin Core's validation code). Install the \
             prerequisites with `{DEBIAN_LINE}` (Debian/Ubuntu) or `{MACOS_LINE}` (macOS); \
             ONI_SKIP_PREREQ_CHECK=1 skips this check",
            self.what
        )
    }
}

/// Every prerequisite missing from `env` (empty: the build can go on).
pub fn check(env: &Env) -> Vec<Missing> {
    let mut missing = Vec::new();
    match env.find("cmake") {
        None => missing.push(Missing { what: "cmake is not on PATH".into() }),
        Some(cmake) => match cmake_version(&cmake) {
            Some(v) if v >= CMAKE_MIN => {}
            Some((major, minor)) => missing.push(Missing {
                what: format!(
                    "cmake {major}.{minor} at {} is older than {}.{}",
                    cmake.display(),
                    CMAKE_MIN.0,
                    CMAKE_MIN.1
                ),
            }),
            None => missing.push(Missing { what: format!("{} --version does not answer", cmake.display()) }),
        },
    }
    let compiler = match &env.cxx {
        Some(cxx) => Path::new(cxx).is_file() || env.find(cxx).is_some(),
        None => ["c++", "g++", "clang++"].iter().any(|c| env.find(c).is_some()),
    };
    if !compiler {
        let which = env.cxx.as_deref().map_or("no C++ compiler (c++, g++ or clang++) on PATH".to_string(), |c| {
            format!("the C++ compiler CXX={c} is not found")
        });
        missing.push(Missing { what: which });
    }
    if !env.include_dirs.iter().any(|d| d.join("boost").join("multi_index_container.hpp").is_file()) {
        missing.push(Missing { what: "Boost headers (boost/multi_index_container.hpp) are not found".into() });
    }
    missing
}

/// `cmake --version`'s major and minor.
fn cmake_version(cmake: &Path) -> Option<(u32, u32)> {
    let out = Command::new(cmake).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.lines().next()?.split_whitespace().nth(2)?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}
