//! RPC credentials: a cookie file written at start (`__cookie__:<64 hex>`, mode 0600) where Bitcoin
//! Core keeps its own, so `bitcoin-cli -datadir=D -<network>` finds it unchanged, or a fixed
//! `--rpcuser/--rpcpassword`. Checking a request's Basic credentials compares in constant time.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The user name of cookie authentication (Core's).
pub const COOKIE_USER: &str = "__cookie__";
/// The cookie file's name.
pub const COOKIE_FILE: &str = ".cookie";

/// Who may call.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// `user:password` as it must appear, decoded, in the Basic header.
    expected: String,
}

impl Credentials {
    /// Fixed credentials (`--rpcuser/--rpcpassword`).
    pub fn new(user: &str, password: &str) -> Credentials {
        Credentials { expected: format!("{user}:{password}") }
    }

    /// A fresh random cookie: 32 bytes from the OS, hex.
    pub fn random_cookie() -> std::io::Result<Credentials> {
        use std::io::Read;
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Credentials::new(COOKIE_USER, &hex))
    }

    /// The `user:password` line (the cookie file's content).
    pub fn line(&self) -> &str {
        &self.expected
    }

    /// Whether an `Authorization` header value carries these credentials.
    pub fn check(&self, header: Option<&str>) -> bool {
        let Some(h) = header else { return false };
        let Some(b64) = h.strip_prefix("Basic ").or_else(|| h.strip_prefix("basic ")) else { return false };
        let Some(decoded) = base64_decode(b64.trim()) else { return false };
        constant_time_eq(&decoded, self.expected.as_bytes())
    }
}

/// Where Core keeps the cookie for `network` under `datadir`: the datadir itself for main, a
/// subdirectory named after the chain for the others (`regtest`, `testnet4`, `signet`).
pub fn core_cookie_path(datadir: &Path, network: oni_systems::wire::Network) -> PathBuf {
    use oni_systems::wire::Network;
    match network {
        Network::Main => datadir.join(COOKIE_FILE),
        other => datadir.join(other.name()).join(COOKIE_FILE),
    }
}

/// Writes the cookie readable by its owner only, through a temporary file renamed into place so a
/// reader never sees half of it.
pub fn write_cookie(path: &Path, creds: &Credentials) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    // A fresh file, never an existing one nor one a symlink points to (O_CREAT|O_EXCL fails on a
    // symlink): whatever was planted at the temporary name is removed (the link, not its target).
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp)?;
    f.write_all(creds.line().as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Standard base64 (with or without padding); `None` on any other character.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Standard base64 with padding (clients and tests build Basic headers with it).
pub fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_rejects_garbage() {
        for s in ["", "a", "ab", "abc", "__cookie__:00ff", "user:pässword"] {
            assert_eq!(base64_decode(&base64_encode(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(base64_encode(b"user:pass"), "dXNlcjpwYXNz");
        assert!(base64_decode("dXNl*jpw").is_none());
    }

    #[test]
    fn credentials_match_only_exactly() {
        let c = Credentials::new("u", "p");
        assert!(c.check(Some(&format!("Basic {}", base64_encode(b"u:p")))));
        assert!(!c.check(Some(&format!("Basic {}", base64_encode(b"u:q")))));
        assert!(!c.check(Some(&format!("Basic {}", base64_encode(b"u:pp")))));
        assert!(!c.check(Some("Bearer xyz")));
        assert!(!c.check(None));
        let cookie = Credentials::random_cookie().unwrap();
        let (user, pass) = cookie.line().split_once(':').unwrap();
        assert_eq!(user, COOKIE_USER);
        assert_eq!(pass.len(), 64);
        assert!(pass.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn the_cookie_goes_where_core_looks_and_is_private() {
        use oni_systems::wire::Network;
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(core_cookie_path(dir.path(), Network::Main), dir.path().join(".cookie"));
        let p = core_cookie_path(dir.path(), Network::Regtest);
        assert_eq!(p, dir.path().join("regtest/.cookie"));
        let c = Credentials::random_cookie().unwrap();
        write_cookie(&p, &c).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), c.line());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_or_loose_file_at_the_temporary_name_gets_no_cookie_written_through_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".cookie");
        let elsewhere = dir.path().join("attacker-readable");
        std::fs::write(&elsewhere, "untouched").unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, p.with_extension("tmp")).unwrap();
        let c = Credentials::random_cookie().unwrap();
        write_cookie(&p, &c).unwrap();
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "untouched", "not written through the link");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), c.line());
        assert!(!std::fs::symlink_metadata(&p).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        // A world-readable leftover at the temporary name does not lend the cookie its mode either.
        std::fs::write(p.with_extension("tmp"), "x").unwrap();
        std::fs::set_permissions(p.with_extension("tmp"), std::fs::Permissions::from_mode(0o666)).unwrap();
        write_cookie(&p, &c).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
