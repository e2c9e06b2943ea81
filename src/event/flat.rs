//! event_flatstore files: one open file per path, shared by every
//! subscription naming it, written by the delivery thread and reopened
//! after `evi_flat_rotate` or SIGHUP (logrotate moves the file, then asks
//! for the reopen).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

/// event_flatstore's settings (`config.modules.event_flatstore`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub delimiter: String,
    pub suppress_event_name: bool,
    /// Mode of files it creates (`file_permissions`, octal text in the config).
    pub mode: u32,
    /// Distinct files open at once (`max_open_sockets`).
    pub max_files: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            delimiter: ",".into(),
            suppress_event_name: false,
            mode: 0o644,
            max_files: 100,
        }
    }
}

static SETTINGS: RwLock<Option<Settings>> = RwLock::new(None);

/// Installs the module's settings (a reload may change them).
pub fn configure(s: Settings) {
    *SETTINGS.write().unwrap_or_else(|e| e.into_inner()) = Some(s);
}

pub fn settings() -> Settings {
    SETTINGS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default()
}

/// One file events are appended to.
pub struct FlatFile {
    pub path: PathBuf,
    file: Mutex<Option<File>>,
    reopen: AtomicBool,
}

static FILES: Mutex<Vec<Weak<FlatFile>>> = Mutex::new(Vec::new());

fn files() -> std::sync::MutexGuard<'static, Vec<Weak<FlatFile>>> {
    FILES.lock().unwrap_or_else(|e| e.into_inner())
}

/// The file for `path`, shared with the subscriptions already naming it.
/// The path must not be a directory and its directory must exist
/// (OpenSIPS checks the same when the subscription is made).
pub fn get(path: &str) -> Result<Arc<FlatFile>, String> {
    let p = Path::new(path);
    if path.is_empty() {
        return Err("flatstore socket: no file".into());
    }
    if p.is_dir() {
        return Err(format!("flatstore socket: {path} is a directory"));
    }
    let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = dir {
        if !d.is_dir() {
            return Err(format!(
                "flatstore socket: directory {} does not exist",
                d.display()
            ));
        }
    }
    let mut all = files();
    all.retain(|w| w.strong_count() > 0);
    if let Some(f) = all.iter().filter_map(Weak::upgrade).find(|f| f.path == p) {
        return Ok(f);
    }
    let max = settings().max_files;
    if all.len() >= max {
        return Err(format!(
            "flatstore socket: {max} files already open (max_open_sockets)"
        ));
    }
    let f = Arc::new(FlatFile {
        path: p.to_path_buf(),
        file: Mutex::new(None),
        reopen: AtomicBool::new(false),
    });
    all.push(Arc::downgrade(&f));
    Ok(f)
}

/// Marks the file at `path` (every file with None) to be reopened before
/// its next line; false when no subscription names that path.
pub fn rotate(path: Option<&str>) -> bool {
    let mut found = false;
    for f in files().iter().filter_map(Weak::upgrade) {
        if path.is_none_or(|p| Path::new(p) == f.path) {
            f.reopen.store(true, Ordering::Relaxed);
            found = true;
        }
    }
    found
}

impl FlatFile {
    /// Appends one line (the delivery thread calls it); false when the
    /// file cannot be opened or written.
    pub fn write(&self, line: &[u8]) -> bool {
        let mut g = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if self.reopen.swap(false, Ordering::Relaxed) {
            *g = None;
        }
        if g.is_none() {
            match OpenOptions::new()
                .create(true)
                .append(true)
                .mode(settings().mode)
                .open(&self.path)
            {
                Ok(f) => *g = Some(f),
                Err(e) => {
                    tracing::warn!("events: cannot open {}: {e}", self.path.display());
                    return false;
                }
            }
        }
        match g.as_mut().map(|f| f.write_all(line)) {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                tracing::warn!("events: cannot write {}: {e}", self.path.display());
                *g = None;
                false
            }
            None => false,
        }
    }
}
