//! Header values on their own: URI, name-addr, Via, comma lists (the first
//! byte picks the grammar, the rest is the text).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lunasip::sip::{split, NameAddr, Uri, Via};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 4 {
        0 => {
            if let Ok(u) = Uri::parse(text) {
                let _ = (u.host_bare(), u.user_unescaped(), u.param("lr"));
            }
        }
        1 => {
            if let Ok(na) = NameAddr::parse(text) {
                let _ = (na.display_name(), na.tag(), Uri::parse(na.uri));
            }
        }
        2 => {
            if let Ok(v) = Via::parse(text) {
                let _ = (
                    v.branch(),
                    v.received(),
                    v.rport(),
                    v.maddr(),
                    v.ttl(),
                    v.host_bare(),
                );
            }
        }
        _ => {
            for piece in split::split_commas(text) {
                let _ = NameAddr::parse(piece);
            }
        }
    }
});
