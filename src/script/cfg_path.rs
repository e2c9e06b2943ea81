//! Where the script file is, for module parameters that name files
//! relative to it. OpenSIPS keeps its config file's path (`cfg_file`) and
//! permissions.c (`get_path`, `get_pathname`) puts that file's directory
//! in front of a rule-file name that has no '/' at all; a name with a '/'
//! is used as given (relative to the working directory). lunasip does the
//! same while a script's `config.modules` is read (`with`), so a config
//! started from another working directory finds its files.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

thread_local! {
    static CFG_FILE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f` (reading a script's module settings) with `cfg_file` as the
/// script's path: the path as given, or a name such as `default.lua`.
pub fn with<T>(cfg_file: &str, f: impl FnOnce() -> T) -> T {
    let was = CFG_FILE.with(|c| c.replace(Some(cfg_file.to_string())));
    let out = f();
    CFG_FILE.with(|c| *c.borrow_mut() = was);
    out
}

/// The directory of the script being read, with its trailing '/', or ""
/// (no '/' in its path, or no script: the working directory) —
/// permissions.c `get_path`.
pub fn dir() -> String {
    CFG_FILE.with(|c| {
        let c = c.borrow();
        let f = c.as_deref().unwrap_or("");
        f.rfind('/').map_or(String::new(), |i| f[..=i].to_string())
    })
}

/// permissions.c `get_pathname`: `name` as given when it holds a '/',
/// else in the script's directory `dir` (from [`dir`]).
pub fn get_pathname(dir: &str, name: &str) -> String {
    if name.contains('/') {
        name.to_string()
    } else {
        format!("{dir}{name}")
    }
}

/// A path that is not absolute, in the script's directory `dir` (for
/// lunasip's own file parameters: the dispatcher's `list_file`).
pub fn from_script_dir(dir: &str, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() || dir.is_empty() {
        p.to_path_buf()
    } else {
        Path::new(dir).join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_as_permissions_c_does() {
        assert_eq!(dir(), "");
        with("/etc/opensips/opensips.cfg", || {
            let d = dir();
            assert_eq!(d, "/etc/opensips/");
            assert_eq!(
                get_pathname(&d, "permissions.allow"),
                "/etc/opensips/permissions.allow"
            );
            assert_eq!(get_pathname(&d, "rules/x.allow"), "rules/x.allow");
            assert_eq!(get_pathname(&d, "/abs/x.allow"), "/abs/x.allow");
            assert_eq!(
                from_script_dir(&d, "ds.list"),
                PathBuf::from("/etc/opensips/ds.list")
            );
            assert_eq!(
                from_script_dir(&d, "sub/ds.list"),
                PathBuf::from("/etc/opensips/sub/ds.list")
            );
            assert_eq!(
                from_script_dir(&d, "/abs/ds.list"),
                PathBuf::from("/abs/ds.list")
            );
        });
        with("conf/proxy.lua", || assert_eq!(dir(), "conf/"));
        with("default.lua", || {
            assert_eq!(dir(), "");
            assert_eq!(get_pathname(&dir(), "p.allow"), "p.allow");
        });
        assert_eq!(dir(), "");
    }
}
