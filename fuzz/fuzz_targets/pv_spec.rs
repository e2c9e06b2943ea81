//! The pseudo-variable parsers: a spec (`$(hdr(X)[1]{uri.user})`), a
//! format string with specs in text, and a transformation chain.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lunasip::pv::{spec, tr};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = spec::parse_spec(text);
    let _ = spec::parse_spec_prefix(text);
    let _ = spec::parse_format(text);
    let _ = tr::parse_chain(text);
});
