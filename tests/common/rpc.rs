//! The MI over HTTP as a JSON-RPC client sees it.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One JSON-RPC call to the MI over HTTP on 127.0.0.1:`port`: the whole
/// response object.
pub fn rpc(port: u16, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the MI");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let head = format!(
        "POST /mi HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body.as_bytes()).expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let b = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(b).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A script with `routes` listening on udp 127.0.0.1:{PORT} (2 workers),
/// the MI over HTTP on `mi_port` without a token, no FIFO, and
/// `extra_modules` in `config.modules`.
pub fn mi_script(mi_port: u16, extra_modules: &str, routes: &str) -> String {
    format!(
        "config = {{\n  listen = {{ \"udp:127.0.0.1:{{PORT}}\" }},\n  children = 2,\n  modules = {{\n    \
         mi_http = {{ ip = \"127.0.0.1\", port = {mi_port}, token = false }},\n    mi_fifo = false,\n    {extra_modules}\n  }},\n}}\n{routes}\n"
    )
}
