//! The SDP side of nathelper: `fix_nated_sdp(flags [, ip [, lines]])`
//! rewrites the media (`c=`) and origin (`o=`) addresses of every SDP
//! body part to the request's source address or `ip`, and adds
//! `a=direction:active` / `a=nortpproxy:yes` lines (nathelper.c
//! `fix_nated_sdp_f`, `replace_sdp_ip`, `alter_mediaip`); and the reads
//! `nat_uac_test`'s `private-sdp` makes.

use std::ops::Range;

use mlua::{Lua, MultiValue};

use super::flags::{self, ADD_ADIRECTION, ADD_ANORTPPROXY, FIX_MEDIP, FIX_ORGIP, FORCE_NULL_ADDR};
use super::conf;
use crate::modules::registrar::coded;
use crate::script::exports::Args;
use crate::script::host::State;
use crate::sip::sdp::{mime_of, parts};
use crate::sip::Message;

/// The SDP parts of the message as received, as absolute byte ranges
/// with trailing blanks and line ends cut (OpenSIPS `trim_r`): the whole
/// body when its type is `application/sdp` (or it has no Content-Type),
/// else each `application/sdp` part of a multipart body.
pub fn sdp_parts(m: &Message) -> Vec<Range<usize>> {
    let body = m.body();
    if body.is_empty() {
        return Vec::new();
    }
    let base = m.body_range().start;
    let ct = m.header("Content-Type").unwrap_or("");
    let ranges: Vec<Range<usize>> = match mime_of(ct).as_str() {
        "application/sdp" | "" => std::iter::once(0..body.len()).collect(),
        t if t.starts_with("multipart/") => parts(ct, body)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.mime == "application/sdp")
            .map(|p| p.body)
            .collect(),
        _ => Vec::new(),
    };
    ranges
        .into_iter()
        .map(|r| {
            let mut end = r.end;
            while end > r.start && body[end - 1].is_ascii_whitespace() {
                end -= 1;
            }
            base + r.start..base + end
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// One address found in an SDP line (`c=IN IP4 addr`, `o=… IN IP4 addr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpIp {
    /// Where the address is, relative to the text searched.
    pub at: Range<usize>,
    pub v6: bool,
}

/// sdp_helpr_funcs.c `extract_mediaip`: the first line of `text` that
/// starts with `prefix` (`"c="`, `"o="`), and the token after its
/// `IP4`/`IP6`. Err when such a line has no address (OpenSIPS fails
/// then), Ok(None) when there is no such line.
pub fn extract_ip(text: &str, prefix: &str) -> Result<Option<SdpIp>, ()> {
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let start = pos;
        pos += line.len();
        let Some(rest) = line.strip_prefix(prefix) else { continue };
        let rest = rest.trim_end_matches(['\r', '\n']);
        let base = start + prefix.len();
        let mut next_is_ip: Option<bool> = None;
        let mut off = 0;
        for tok in rest.split([' ', '\t']) {
            let here = off;
            off += tok.len() + 1;
            if tok.is_empty() {
                continue;
            }
            if let Some(v6) = next_is_ip {
                return Ok(Some(SdpIp {
                    at: base + here..base + here + tok.len(),
                    v6,
                }));
            }
            match tok {
                "IP4" => next_is_ip = Some(false),
                "IP6" => next_is_ip = Some(true),
                _ => {}
            }
        }
        return Err(());
    }
    Ok(None)
}

/// Every address line with `prefix` in `text` (replace_sdp_ip's loop).
fn all_ips(text: &str, prefix: &str) -> Result<Vec<SdpIp>, ()> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = extract_ip(&text[from..], prefix)? {
        let at = from + found.at.start..from + found.at.end;
        from = at.end;
        out.push(SdpIp { at, v6: found.v6 });
    }
    Ok(out)
}

fn is_null(ip: &str, v6: bool) -> bool {
    match v6 {
        true => ip.bytes().all(|b| b == b'0' || b == b':'),
        false => ip == "0.0.0.0",
    }
}

/// nathelper.c `sdp_1918`: whether the first `c=` address of an SDP
/// part is private; a part whose address is IPv6 or null makes the whole
/// test false, as in OpenSIPS.
pub fn private_sdp(m: &Message, rfc_6333: bool) -> bool {
    let mut any = false;
    for r in sdp_parts(m) {
        let Some(text) = m.text_at(r) else { continue };
        let Ok(Some(ip)) = extract_ip(text, "c=") else {
            return false;
        };
        let addr = &text[ip.at.clone()];
        if ip.v6 || is_null(addr, false) {
            return false;
        }
        any |= flags::is_private(addr, rfc_6333);
    }
    any
}

/// The edits `fix_nated_sdp` makes to one SDP part at `base` (absolute
/// ranges), or why it fails.
fn part_edits(
    text: &str,
    base: usize,
    fl: u32,
    new_ip: &str,
    extra: Option<&str>,
) -> Result<Vec<(Range<usize>, String)>, String> {
    let c = conf();
    let end = base + text.len();
    let mut edits = Vec::new();
    if fl & (ADD_ADIRECTION | ADD_ANORTPPROXY) != 0 {
        if fl & ADD_ADIRECTION != 0 {
            edits.push((end..end, "\r\na=direction:active".to_string()));
        }
        if fl & ADD_ANORTPPROXY != 0 && !c.nortpproxy_str.is_empty() {
            edits.push((end..end, format!("\r\n{}", c.nortpproxy_str)));
        }
        if let Some(lines) = extra {
            edits.push((end..end, lines.to_string()));
        }
    }
    let force_null = fl & FORCE_NULL_ADDR != 0;
    for (bit, prefix, keep_old, old_attr) in [
        (FIX_ORGIP, "o=", !c.skip_old_origin, "a=oldoip"),
        (FIX_MEDIP, "c=", !c.skip_old_media, "a=oldcip"),
    ] {
        if fl & bit == 0 {
            continue;
        }
        let ips = all_ips(text, prefix).map_err(|()| format!("no IP4/IP6 in a '{prefix}' line"))?;
        if ips.is_empty() {
            return Err(format!("no '{prefix}' line in the SDP"));
        }
        for ip in ips {
            if ip.v6 {
                return Err(format!("not an IPv4 address in a '{prefix}' line"));
            }
            let old = &text[ip.at.clone()];
            if (is_null(old, false) && !force_null) || old == new_ip {
                continue;
            }
            if keep_old {
                edits.push((end..end, format!("\r\n{old_attr}:{old}")));
            }
            edits.push((base + ip.at.start..base + ip.at.end, new_ip.to_string()));
        }
    }
    Ok(edits)
}

/// `fix_nated_sdp(flags [, ip [, new_sdp_lines]])`: 1, or -1 without an
/// SDP body or when an address line cannot be rewritten (nothing changed
/// then).
pub fn fix_nated_sdp(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let fl = flags::parse(&a.str(0)?, flags::SDP_NAMES).map_err(|e| a.err(e))?;
    let ip = a.opt_str(1)?.filter(|s| !s.is_empty());
    let extra = a.opt_str(2)?;
    let mut call = st.call.borrow_mut();
    let new_ip = match ip {
        Some(ip) => ip,
        None => call.src.addr.ip().to_string(),
    };
    let Some(m) = call.msg.as_mut() else {
        return Err(a.err("no message in this route"));
    };
    let parts = sdp_parts(m);
    if parts.is_empty() {
        tracing::debug!("fix_nated_sdp: no SDP body");
        return coded(lua, -1);
    }
    let mut all = Vec::new();
    for r in parts {
        let Some(text) = m.text_at(r.clone()) else {
            return coded(lua, -1);
        };
        match part_edits(text, r.start, fl, &new_ip, extra.as_deref()) {
            Ok(e) => all.extend(e),
            Err(why) => {
                tracing::warn!("fix_nated_sdp: {why}");
                return coded(lua, -1);
            }
        }
    }
    for (range, text) in all {
        if let Err(e) = m.replace_at(range, text) {
            tracing::warn!("fix_nated_sdp: {e}");
            return coded(lua, -1);
        }
    }
    coded(lua, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_and_origin_addresses() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\n";
        let c = extract_ip(sdp, "c=").expect("ok").expect("found");
        assert_eq!(&sdp[c.at.clone()], "10.0.0.5");
        let o = extract_ip(sdp, "o=").expect("ok").expect("found");
        assert_eq!(&sdp[o.at], "10.0.0.5");
        let all = all_ips(sdp, "c=").expect("ok");
        assert_eq!(all.len(), 2);
        assert_eq!(&sdp[all[1].at.clone()], "0.0.0.0");
        assert_eq!(extract_ip("v=0\r\nc=IN\r\n", "c="), Err(()));
        assert_eq!(extract_ip("v=0\r\na=c=IN IP4 1.2.3.4\r\n", "c="), Ok(None));
        let v6 = extract_ip("c=IN IP6 ::1\r\n", "c=").expect("ok").expect("found");
        assert!(v6.v6);
    }

    #[test]
    fn edits_keep_old_addresses_and_skip_null_ones() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\nc=IN IP4 10.0.0.5\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 0.0.0.0";
        let e = part_edits(sdp, 100, FIX_MEDIP, "1.2.3.4", None).expect("ok");
        // One rewrite (the null address is left), one a=oldcip line.
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].1, "\r\na=oldcip:10.0.0.5");
        assert_eq!(e[1].1, "1.2.3.4");
        let e = part_edits(sdp, 0, FIX_MEDIP | FORCE_NULL_ADDR, "1.2.3.4", None).expect("ok");
        assert_eq!(e.iter().filter(|x| x.1 == "1.2.3.4").count(), 2);
        assert!(part_edits("v=0\r\n", 0, FIX_ORGIP, "1.2.3.4", None).is_err());
        let e = part_edits(sdp, 0, ADD_ADIRECTION, "1.2.3.4", None).expect("ok");
        assert_eq!(e, vec![(sdp.len()..sdp.len(), "\r\na=direction:active".to_string())]);
    }
}
