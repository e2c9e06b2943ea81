//! tm's MI commands (OpenSIPS 3.4 `modules/tm/mi.c`): `t_uac_dlg`,
//! `t_uac_cancel`, `t_hash`, `t_reply`. The MI thread hands each to tm's
//! task on the first worker (`jobs.rs`) and waits for its answer.

use serde_json::{json, Value};
use std::time::Duration;

use super::jobs::{self, Job, Reply};
use crate::mi::{opt, req, Command, Ctx, Kind, MiError, Params};
use crate::proxy::tm::uac::LocalRequest;
use crate::proxy::tm::TABLE_ENTRIES;

/// How long a command waits for the worker (but `t_uac_dlg`, which
/// waits for the final reply).
const SHORT: Duration = Duration::from_secs(5);
/// Longer than any INVITE may ring (fr_inv_timeout is at most a day in
/// practice; callers give up long before).
const FINAL: Duration = Duration::from_secs(24 * 3600);

fn failed(e: String) -> MiError {
    MiError::new(500, "Operation failed").with_data(e)
}

/// The text of an MI string parameter with OpenSIPS's `unescape_crlf`:
/// a literal `\r\n` (as a shell passes it) stands for CRLF.
fn unescape_crlf(s: &str) -> String {
    s.replace("\\r\\n", "\r\n").replace("\\n", "\n")
}

/// `headers` of `t_uac_dlg` split as mi.c's `mi_check_msg` and
/// `get_hfblock` do: From and To are required; From's tag, Call-ID and
/// CSeq are taken out (and checked); the other lines go out as given.
fn uac_headers(method: &str, text: &str, body: bool, req: &mut LocalRequest) -> Result<(), MiError> {
    let text = unescape_crlf(text);
    let bad = |m: &str| MiError::new(400, m.to_string());
    let (mut from, mut to, mut ctype) = (None, None, false);
    for line in text.split('\n').map(|l| l.trim_end_matches('\r')) {
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad("Bad headers"));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "from" | "f" => from = Some(value.to_string()),
            "to" | "t" => to = Some(value.to_string()),
            "call-id" | "i" => req.call_id = Some(value.to_string()),
            "cseq" => {
                let (num, m) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
                let num: u32 = num.parse().map_err(|_| bad("Bad CSeq number"))?;
                if m.trim() != method {
                    return Err(bad("CSeq method mismatch"));
                }
                req.cseq = Some(num);
            }
            "content-length" | "l" if body => return Err(bad("Content-Length disallowed")),
            n => {
                ctype |= n == "content-type" || n == "c";
                if name.trim().is_empty() || name.contains(char::is_whitespace) {
                    return Err(bad("Bad headers"));
                }
                req.headers.push_str(line);
                req.headers.push_str("\r\n");
            }
        }
    }
    if body && !ctype {
        return Err(bad("Content-Type missing"));
    }
    let to = to.ok_or_else(|| bad("To missing"))?;
    let from = from.ok_or_else(|| bad("From missing"))?;
    // The From tag, when given, is this request's; else one is made.
    let lower = from.to_ascii_lowercase();
    match lower.find(";tag=") {
        Some(i) if i > lower.find('>').unwrap_or(0) => {
            let tag = &from[i + 5..];
            let end = tag.find(';').unwrap_or(tag.len());
            req.from_tag = Some(tag[..end].to_string());
            req.from = format!("{}{}", &from[..i], &tag[end..]);
        }
        _ => req.from = from,
    }
    req.to = to;
    Ok(())
}

fn t_uac_dlg(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let method = p.str("method").unwrap_or_default().to_string();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.!%*+`'~".contains(&b)) {
        return Err(MiError::new(400, "Invalid method"));
    }
    let ruri = p.str("ruri").unwrap_or_default().to_string();
    if crate::sip::Uri::parse(&ruri).is_err() {
        return Err(MiError::new(400, "Invalid ruri"));
    }
    let next_hop = p.str("next_hop").filter(|s| !s.is_empty()).map(str::to_string);
    if next_hop.as_deref().is_some_and(|h| crate::sip::Uri::parse(h).is_err()) {
        return Err(MiError::new(400, "Invalid next_hop"));
    }
    let body = p.str("body").map(unescape_crlf).unwrap_or_default();
    let mut req = LocalRequest {
        method: method.clone(),
        ruri,
        next_hop,
        socket: p.str("socket").filter(|s| !s.is_empty()).map(str::to_string),
        body,
        ..Default::default()
    };
    uac_headers(&method, p.str("headers").unwrap_or_default(), !req.body.is_empty(), &mut req)?;
    let answer = jobs::ask(|tx| Job::Uac(Box::new(req), Some(tx)), FINAL).map_err(failed)?;
    let (code, reply) = match answer {
        Ok(a) => a,
        Err(e) if e.contains("no listen socket") => {
            return Err(MiError::new(404, "Local socket not found"))
        }
        Err(e) => return Err(MiError::new(500, "MI/UAC failed").with_data(e)),
    };
    // mi.c `mi_uac_dlg_hdl`: the reply's status line and what follows it;
    // a timeout's (faked) reply has only the status.
    let Some(m) = reply else {
        let reason = if code == 408 { "Request Timeout" } else { "Local Reply" };
        return Ok(json!({ "Status": format!("{code} {reason}") }));
    };
    let text = String::from_utf8_lossy(m.as_bytes()).into_owned();
    let rest = text.split_once("\r\n").map_or("", |(_, r)| r);
    let mut out = json!({ "Status": format!("{code} {}", m.reason().unwrap_or_default()) });
    if (200..300).contains(&code) && method == "INVITE" {
        dialog_uris(&m, &mut out);
    }
    out["Message"] = json!(rest);
    Ok(out)
}

/// mi.c `mi_print_uris`: for a confirmed dialog, the remote target
/// (`RURI`), where in-dialog requests go first (`Next-hop`) and the route
/// set (`Routes`, the reply's Record-Route reversed; RFC 3261 §12.1.2).
fn dialog_uris(m: &crate::sip::Message, out: &mut Value) {
    let uri = |v: &str| {
        crate::sip::NameAddr::parse(v.trim()).map_or(v.trim().to_string(), |n| n.uri.to_string())
    };
    let Some(target) = m.header_values("Contact").first().map(|c| uri(c)) else {
        return;
    };
    let routes: Vec<String> = m.header_values("Record-Route").iter().rev().map(|r| r.trim().to_string()).collect();
    let first = routes.first().map(|r| uri(r));
    out["RURI"] = json!(target);
    out["Next-hop"] = json!(first.unwrap_or_else(|| target.clone()));
    if !routes.is_empty() {
        out["Routes"] = json!(routes);
    }
}

fn t_uac_cancel(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let callid = p.str("callid").unwrap_or_default().trim().to_string();
    let cseq: u32 = p
        .str("cseq")
        .and_then(|c| c.trim().parse().ok())
        .ok_or_else(|| MiError::params("cseq must be a CSeq number"))?;
    match jobs::ask(|tx| Job::Cancel(callid, cseq, tx), SHORT).map_err(failed)? {
        true => Ok(json!("OK")),
        false => Err(MiError::new(481, "No such transaction")),
    }
}

fn t_hash(_: &Ctx, _: &Params) -> Result<Value, MiError> {
    let counts = jobs::ask(Job::Hash, SHORT).map_err(failed)?;
    let list: Vec<Value> = counts
        .iter()
        .enumerate()
        .map(|(i, (cur, total))| json!({ "index": i, "Current": cur, "Total": total }))
        .collect();
    Ok(Value::Array(list))
}

/// `hash_index:label` in decimal (the old form), or OpenSIPS's `$T_id`
/// form `label.hash` in reversed hexadecimal.
fn trans_id(s: &str) -> Result<(usize, u64), MiError> {
    let bad = |m: &str| MiError::new(400, m.to_string());
    if let Some((h, l)) = s.split_once(':') {
        let h = h.trim().parse().map_err(|_| bad("Invalid index in old trans_id"))?;
        let l = l.trim().parse().map_err(|_| bad("Invalid label in old trans_id"))?;
        return Ok((h, l));
    }
    let (l, h) = s.split_once('.').ok_or_else(|| bad("Invalid trans_id"))?;
    let l = reverse_hex(l).ok_or_else(|| bad("Invalid label in trans_id"))?;
    let h = reverse_hex(h).ok_or_else(|| bad("Invalid label in old trans_id"))?;
    Ok((h as usize, l))
}

/// OpenSIPS `reverse_hex2int`: hex digits, least significant first.
fn reverse_hex(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.chars().rev().try_fold(0u64, |n, c| Some(n * 16 + u64::from(c.to_digit(16)?)))
}

/// Header lines given to `t_reply` (`new_headers`), each `Name: value`.
fn reply_headers(text: &str) -> Result<String, MiError> {
    let mut out = String::new();
    for line in unescape_crlf(text).split('\n').map(|l| l.trim_end_matches('\r')) {
        if line.is_empty() {
            continue;
        }
        let ok = line
            .split_once(':')
            .is_some_and(|(n, _)| !n.trim().is_empty() && !n.trim().contains(char::is_whitespace));
        if !ok {
            return Err(MiError::new(400, "Bad new_headers").with_data(line.to_string()));
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    Ok(out)
}

fn t_reply(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let code = p.int("code").unwrap_or_default();
    if !(100..700).contains(&code) {
        return Err(MiError::new(400, "Invalid reply code"));
    }
    let reason = p.str("reason").unwrap_or_default();
    if reason.contains(['\r', '\n']) {
        return Err(MiError::params("reason must be one line"));
    }
    let (hash, label) = trans_id(p.str("trans_id").unwrap_or_default())?;
    let to_tag = p.str("to_tag").unwrap_or_default().trim();
    if !to_tag
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
    {
        return Err(MiError::params("to_tag is not a SIP token"));
    }
    if hash >= TABLE_ENTRIES {
        return Err(MiError::new(404, "Transaction not found"));
    }
    let r = Reply {
        hash,
        label,
        code: code as u16,
        reason: reason.to_string(),
        headers: reply_headers(p.str("new_headers").unwrap_or_default())?,
        body: p.str("body").map(unescape_crlf).unwrap_or_default(),
        to_tag: Some(to_tag.to_string()).filter(|t| !t.is_empty()),
    };
    match jobs::ask(|tx| Job::Reply(Box::new(r), tx), SHORT).map_err(failed)? {
        None => Err(MiError::new(404, "Transaction not found")),
        Some(false) => Err(MiError::new(500, "Reply failed")),
        Some(true) => Ok(json!("OK")),
    }
}

pub static COMMANDS: &[Command] = &[
    Command {
        name: "t_uac_dlg",
        help: "Sends request `method` to `ruri` statefully (through `next_hop`, from listen `socket` when given) with `headers` (From and To required; Call-ID, CSeq and a From tag are used when given, made otherwise; `\\r\\n` may be written literally) and `body` (then a Content-Type header is required), and answers once its final reply arrived.",
        module: "tm",
        params: &[
            req("method", Kind::Str),
            req("ruri", Kind::Str),
            req("headers", Kind::Str),
            opt("next_hop", Kind::Str),
            opt("socket", Kind::Str),
            opt("body", Kind::Str),
        ],
        result: "`{\"Status\": \"200 OK\", \"Message\": \"<the reply's headers and body>\"}` (a 2xx to an INVITE also: `\"RURI\"` the callee's Contact, `\"Next-hop\"`, `\"Routes\"` its Record-Route reversed) (a timeout: `{\"Status\": \"408 Request Timeout\"}`); 400 Invalid ruri / Invalid next_hop / From missing / To missing / Content-Type missing / Content-Length disallowed / Bad CSeq number / CSeq method mismatch / Bad headers; 404 Local socket not found; 500 MI/UAC failed",
        handler: t_uac_dlg,
    },
    Command {
        name: "t_uac_cancel",
        help: "Cancels the INVITE `t_uac_dlg` sent with this `callid` and `cseq` number, while it has no final reply: a CANCEL goes on each pending branch.",
        module: "tm",
        params: &[req("callid", Kind::Str), req("cseq", Kind::Str)],
        result: "`\"OK\"`; 481 No such transaction",
        handler: t_uac_cancel,
    },
    Command {
        name: "t_hash",
        help: "Per bucket of the transaction table (65536, as OpenSIPS): transactions alive now (`Current`) and ever created (`Total`). A transaction's bucket is its id (`$T_id`) modulo 65536.",
        module: "tm",
        params: &[],
        result: "`[{\"index\": 0, \"Current\": 0, \"Total\": 0}, …]` (65536 entries)",
        handler: t_hash,
    },
    Command {
        name: "t_reply",
        help: "Replies `code` `reason` through a transaction waiting for its final reply (after `t_newtran` in a route that did not answer, or one waiting in `t_wait_for_new_branches`), named by `trans_id` `hash_index:label` (label: its `$T_id`; hash_index: `$T_id` modulo 65536) or OpenSIPS's reversed-hex `label.hash`, with `new_headers` and `body`. The reply carries `to_tag` as its To tag, whatever its code (empty: the tag lunasip gives every reply of that transaction from 180 on).",
        module: "tm",
        params: &[
            req("code", Kind::Int),
            req("reason", Kind::Str),
            req("trans_id", Kind::Str),
            req("to_tag", Kind::Str),
            opt("new_headers", Kind::Str),
            opt("body", Kind::Str),
        ],
        result: "`\"OK\"`; 400 Invalid reply code / Invalid trans_id; 404 Transaction not found; 500 Reply failed",
        handler: t_reply,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trans_id_forms_of_mi_c() {
        assert_eq!(trans_id("5:5").ok(), Some((5, 5)));
        // label 0x12 reversed "21", hash 0x3 reversed "3"
        assert_eq!(trans_id("21.3").ok(), Some((3, 0x12)));
        assert_eq!(trans_id("x:1").map_err(|e| e.code), Err(400));
        assert_eq!(trans_id("17").map_err(|e| e.message), Err("Invalid trans_id".into()));
    }

    #[test]
    fn uac_headers_take_out_from_tag_callid_cseq() {
        let mut r = LocalRequest::default();
        uac_headers(
            "MESSAGE",
            "From: <sip:a@x>;tag=abc\\r\\nTo: <sip:b@y>\r\nCall-ID: c1\r\nCSeq: 4 MESSAGE\r\nContent-Type: text/plain\r\nX-A: 1\r\n",
            true,
            &mut r,
        )
        .expect("good headers");
        assert_eq!(r.from, "<sip:a@x>");
        assert_eq!(r.from_tag.as_deref(), Some("abc"));
        assert_eq!(r.call_id.as_deref(), Some("c1"));
        assert_eq!(r.cseq, Some(4));
        assert_eq!(r.headers, "Content-Type: text/plain\r\nX-A: 1\r\n");
        let e = uac_headers("OPTIONS", "To: <sip:b@y>\r\n", false, &mut LocalRequest::default());
        assert_eq!(e.map_err(|e| e.message), Err("From missing".into()));
        let e = uac_headers("OPTIONS", "From: <sip:a@x>\r\nTo: <sip:b@y>\r\n", true, &mut LocalRequest::default());
        assert_eq!(e.map_err(|e| e.message), Err("Content-Type missing".into()));
    }
}
