//! The MI's access token (closed by default): at start lunasip writes a
//! random token to `mi.token` in its runtime directory, readable by the
//! service's group (0640); `mi_http` requires it as `Authorization: Bearer`
//! and `lunasip mi` reads the same file, so an operator in the group types
//! nothing extra.
//!
//! The runtime directory is `/run/lunasip` (the packaged unit's
//! `RuntimeDirectory`), or `$LUNASIP_RUNTIME_DIR` when set (tests, several
//! instances on one host). When it cannot be written, the token goes to
//! `$XDG_RUNTIME_DIR/lunasip`, then to `<tmp>/lunasip-<uid>`.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The packaged runtime directory.
pub const RUNTIME_DIR: &str = "/run/lunasip";
/// The token file's name in the runtime directory.
pub const FILE: &str = "mi.token";

/// Directories tried in order for the token file.
pub fn runtime_dirs() -> Vec<PathBuf> {
    if let Some(d) = std::env::var_os("LUNASIP_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return vec![PathBuf::from(d)];
    }
    let mut dirs = vec![PathBuf::from(RUNTIME_DIR)];
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(x).join("lunasip"));
    }
    let uid = rustix::process::getuid().as_raw();
    dirs.push(std::env::temp_dir().join(format!("lunasip-{uid}")));
    dirs
}

/// 32 random bytes from the kernel, as 64 hex digits.
pub fn generate() -> std::io::Result<String> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Writes `token` to `path` (or the first writable runtime directory),
/// mode 0640 whatever the umask; returns where it went.
pub fn write(token: &str, path: Option<&Path>) -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = match path {
        Some(p) => vec![p.to_path_buf()],
        None => runtime_dirs().into_iter().map(|d| d.join(FILE)).collect(),
    };
    let mut why = Vec::new();
    for p in candidates {
        match write_one(&p, token) {
            Ok(()) => return Ok(p),
            Err(e) => why.push(format!("{}: {e}", p.display())),
        }
    }
    Err(why.join("; "))
}

fn write_one(p: &Path, token: &str) -> std::io::Result<()> {
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(dir)?;
        }
    }
    // A fresh file: whoever could read an old one must not keep a handle
    // that sees the new token.
    let _ = std::fs::remove_file(p);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(p)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o640))?;
    f.write_all(token.as_bytes())?;
    f.write_all(b"\n")
}

/// The token `lunasip mi` sends: from `path`, else the first runtime
/// directory that has one. None when no file can be read.
pub fn read(path: Option<&Path>) -> Option<String> {
    let candidates: Vec<PathBuf> = match path {
        Some(p) => vec![p.to_path_buf()],
        None => runtime_dirs().into_iter().map(|d| d.join(FILE)).collect(),
    };
    candidates.iter().find_map(|p| {
        let t = std::fs::read_to_string(p).ok()?;
        Some(t.trim().to_string()).filter(|t| !t.is_empty())
    })
}

/// Compares a presented token in time independent of where it differs.
pub fn matches(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/mi.token");
        let t = generate().unwrap();
        assert_eq!(t.len(), 64);
        assert_ne!(t, generate().unwrap());
        assert_eq!(write(&t, Some(&p)).unwrap(), p);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert_eq!(read(Some(&p)).as_deref(), Some(t.as_str()));
        assert!(matches(&t, &t));
        assert!(!matches(&t[1..], &t));
        assert!(!matches("x", "y"));
    }
}
