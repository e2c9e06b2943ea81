//! The MI's JSON-RPC decoder: a request body checked, and its params bound
//! to the named command's declaration (the command itself is not run).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lunasip::mi::{jsonrpc, lookup};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = jsonrpc::parse(data) {
        if let Some(cmd) = lookup(&req.method) {
            let _ = jsonrpc::bind(cmd, req.params);
        }
    }
});
