//! MI over a named pipe, as OpenSIPS 3.x `mi_fifo`: a request is
//! `:reply_fifo:{json-rpc request}` (or OpenSIPS 2.x's text form,
//! `:command:reply_fifo` lines, see [`super::fifo_text`]); the reply is written to
//! `reply_dir/reply_fifo` (a FIFO the client created and opened for
//! reading). Without a reply name, or for a notification, nothing is sent
//! back.
//!
//! The FIFO is read by its own thread; each command runs and its reply is
//! written on a short-lived thread with non-blocking writes and a
//! deadline, so a client that never reads its reply stalls nothing (at
//! most [`MAX_INFLIGHT`] such threads; beyond, requests are dropped).

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Ctx;
use crate::config::MiFifo;

/// Largest request accepted; a longer one is dropped.
pub const MAX_REQUEST: usize = 1024 * 1024;
/// A reply FIFO must accept the whole reply within this.
pub const REPLY_DEADLINE: Duration = Duration::from_secs(5);
/// Reply FIFO names longer than this are refused.
const MAX_NAME: usize = 255;
/// Requests in progress at once; more are refused (logged, no reply), so
/// clients that never read their replies cannot pile up threads.
const MAX_INFLIGHT: usize = 64;

/// Removes the FIFO when the daemon stops.
pub struct FifoGuard(PathBuf);

impl Drop for FifoGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Creates a FIFO with `mode` (after the umask, set again explicitly).
pub fn mkfifo(path: &Path, mode: u32) -> std::io::Result<()> {
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path,
        rustix::fs::Mode::from_bits_truncate(mode),
    )?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// True when someone has `path` open for reading (another daemon).
fn has_reader(path: &Path) -> bool {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .is_ok()
}

/// Creates the FIFO and starts its reader thread.
pub fn start(cfg: &MiFifo, ctx: Arc<Ctx>) -> Result<FifoGuard, String> {
    let path = cfg.path.clone();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_fifo() => {
            if has_reader(&path) {
                return Err(format!("{}: in use by another process", path.display()));
            }
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(_) => return Err(format!("{}: exists and is not a FIFO", path.display())),
        Err(_) => {}
    }
    mkfifo(&path, cfg.mode).map_err(|e| format!("cannot create FIFO {}: {e}", path.display()))?;
    // Read and write: reads then never see end-of-file between clients.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let reply_dir = cfg.reply_dir.clone();
    std::thread::Builder::new()
        .name("mi-fifo".into())
        .spawn(move || {
            ctx.add_current_thread("MI FIFO", None);
            reader(file, ctx, reply_dir)
        })
        .map_err(|e| format!("cannot start the FIFO thread: {e}"))?;
    Ok(FifoGuard(path))
}

/// One request found in the stream.
#[derive(Debug, PartialEq)]
enum Item {
    /// (reply name, request bytes)
    Request(String, Vec<u8>),
    /// OpenSIPS 2.x's text format (reply name, JSON-RPC request made of it).
    Text(String, Vec<u8>),
    /// Not a request: the reply name if one was readable, and why.
    Garbage(Option<String>, &'static str),
}

/// Takes the next complete item off the front of `buf`; None when more
/// bytes are needed.
fn next_item(buf: &mut Vec<u8>) -> Option<Item> {
    let start = buf.iter().position(|b| !b.is_ascii_whitespace())?;
    buf.drain(..start);
    let skip_line = |buf: &mut Vec<u8>| {
        let n = buf
            .iter()
            .position(|b| *b == b'\n')
            .map_or(buf.len(), |p| p + 1);
        buf.drain(..n);
    };
    if buf[0] != b':' {
        if !buf.contains(&b'\n') && buf.len() < MAX_REQUEST {
            return None;
        }
        skip_line(buf);
        return Some(Item::Garbage(
            None,
            "request must start with ':reply_fifo:'",
        ));
    }
    let Some(end) = buf[1..].iter().position(|b| *b == b':') else {
        if buf.len() > MAX_NAME + 1 || buf.contains(&b'\n') {
            skip_line(buf);
            return Some(Item::Garbage(None, "no reply FIFO name"));
        }
        return None;
    };
    let name = String::from_utf8_lossy(&buf[1..1 + end]).into_owned();
    let body_at = end + 2;
    if super::fifo_text::is_text(&buf[body_at..]) {
        return match super::fifo_text::parse(&name, &buf[body_at..]) {
            Some((r, used)) => {
                buf.drain(..body_at + used);
                Some(Item::Text(
                    r.reply.clone(),
                    super::fifo_text::to_jsonrpc(&r),
                ))
            }
            None if buf.len() < MAX_REQUEST => None,
            None => {
                skip_line(buf);
                Some(Item::Garbage(
                    None,
                    "2.x request without its empty last line",
                ))
            }
        };
    }
    let mut de =
        serde_json::Deserializer::from_slice(&buf[body_at..]).into_iter::<serde_json::Value>();
    match de.next() {
        Some(Ok(_)) => {
            let used = de.byte_offset();
            let req = buf[body_at..body_at + used].to_vec();
            buf.drain(..body_at + used);
            Some(Item::Request(name, req))
        }
        Some(Err(e)) if e.is_eof() && buf.len() < MAX_REQUEST => None,
        None if buf.len() < MAX_REQUEST => None,
        _ => {
            skip_line(buf);
            Some(Item::Garbage(Some(name), "parse"))
        }
    }
}

/// Reply FIFO path for a name: a plain file name inside `reply_dir`.
fn reply_path(dir: &Path, name: &str) -> Option<PathBuf> {
    if name.is_empty()
        || name.len() > MAX_NAME
        || name.contains(['/', '\\'])
        || name.starts_with('.')
        || name.chars().any(char::is_control)
    {
        return None;
    }
    Some(dir.join(name))
}

/// Writes `text` to the reply FIFO without ever blocking for long.
fn write_reply(path: &Path, text: &[u8]) {
    let deadline = Instant::now() + REPLY_DEADLINE;
    let file = loop {
        match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => break f,
            // ENXIO: the client has not opened it for reading yet.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(80))
            }
            Err(e) => {
                tracing::warn!("mi_fifo: cannot open reply FIFO {}: {e}", path.display());
                return;
            }
        }
    };
    if !file.metadata().is_ok_and(|m| m.file_type().is_fifo()) {
        tracing::warn!("mi_fifo: {} is not a FIFO; no reply", path.display());
        return;
    }
    let mut file = file;
    let mut at = 0;
    while at < text.len() {
        match file.write(&text[at..]) {
            Ok(0) => return,
            Ok(n) => at += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                if Instant::now() > deadline {
                    tracing::warn!(
                        "mi_fifo: client at {} does not read its reply",
                        path.display()
                    );
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => return,
        }
    }
}

fn answer(ctx: &Ctx, reply_dir: &Path, name: &str, req: &[u8], text_format: bool) {
    let reply = super::jsonrpc::handle(ctx, req);
    let (Some(v), Some(path)) = (reply, reply_path(reply_dir, name)) else {
        return;
    };
    let text = match text_format {
        true => super::fifo_text::reply_text(&v).into_bytes(),
        false => {
            let mut t = v.to_string().into_bytes();
            t.push(b'\n');
            t
        }
    };
    write_reply(&path, &text);
}

fn reader(mut file: std::fs::File, ctx: Arc<Ctx>, reply_dir: PathBuf) {
    let inflight = Arc::new(AtomicUsize::new(0));
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!("mi_fifo: read: {e}; the FIFO is no longer served");
                return;
            }
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(item) = next_item(&mut buf) {
            let (item, text_format) = match item {
                Item::Text(name, req) => (Item::Request(name, req), true),
                other => (other, false),
            };
            match item {
                Item::Request(name, req) => {
                    if inflight.load(Ordering::Relaxed) >= MAX_INFLIGHT {
                        tracing::warn!("mi_fifo: {MAX_INFLIGHT} requests in progress; request for '{name}' dropped");
                        continue;
                    }
                    inflight.fetch_add(1, Ordering::Relaxed);
                    let (ctx, dir, inf) = (ctx.clone(), reply_dir.clone(), inflight.clone());
                    let spawned = std::thread::Builder::new()
                        .name("mi-fifo-cmd".into())
                        .spawn(move || {
                            answer(&ctx, &dir, &name, &req, text_format);
                            inf.fetch_sub(1, Ordering::Relaxed);
                        });
                    if spawned.is_err() {
                        inflight.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                Item::Text(..) => {}
                Item::Garbage(name, why) => {
                    tracing::warn!("mi_fifo: bad request: {why}");
                    if let Some(path) = name.as_deref().and_then(|n| reply_path(&reply_dir, n)) {
                        let v = super::jsonrpc::error(
                            serde_json::Value::Null,
                            &super::MiError::new(super::jsonrpc::PARSE_ERROR, "Parse error"),
                        );
                        let text = format!("{v}\n");
                        std::thread::spawn(move || write_reply(&path, text.as_bytes()));
                    }
                }
            }
        }
        if buf.len() > MAX_REQUEST {
            buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        let mut b =
            b":r1:{\"jsonrpc\":\"2.0\",\"method\":\"uptime\",\"id\":1}\n:r2:{\"a\":".to_vec();
        match next_item(&mut b) {
            Some(Item::Request(n, r)) => {
                assert_eq!(n, "r1");
                assert!(r.ends_with(b"}"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(next_item(&mut b), None);
        b.extend_from_slice(b"1}\n");
        assert!(matches!(next_item(&mut b), Some(Item::Request(n, _)) if n == "r2"));
        assert_eq!(next_item(&mut b), None);
        let mut b = b"hello\n".to_vec();
        assert!(matches!(next_item(&mut b), Some(Item::Garbage(None, _))));
        let mut b = b":r3:{nope}\n".to_vec();
        assert!(matches!(next_item(&mut b), Some(Item::Garbage(Some(n), _)) if n == "r3"));
    }

    #[test]
    fn reply_names() {
        let d = Path::new("/tmp");
        assert_eq!(reply_path(d, "x_1"), Some(PathBuf::from("/tmp/x_1")));
        assert!(reply_path(d, "../etc/passwd").is_none());
        assert!(reply_path(d, "a/b").is_none());
        assert!(reply_path(d, "").is_none());
    }
}
