//! Dialogs in OpenSIPS 3.4's `dialog` table (`db_mode`): 1 writes each
//! answered dialog when its state changes and deletes it when it ends
//! (rows queued to a writer thread: no worker waits), 3 writes them all
//! at shutdown; both read the table back at start, so answered calls
//! survive a restart. `vars` and `profiles` use OpenSIPS's encoding
//! (`name#type#value|`, `\` escaping `|`, `#` and `\`).

use std::time::{Duration, Instant};

use super::store::{self, Dlg, Leg, CALLEE, CALLER};
use super::{conf, machine, profiles};
use crate::db::{Db, DbError, Ident, Row, Value};
use crate::proxy::context::Value as PvValue;

/// OpenSIPS's value types in `vars` (`DLG_VAL_TYPE_STR`, `_INT`).
const T_STR: char = '1';
const T_INT: char = '2';

fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        if matches!(c, '|' | '#' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
}

fn pair(name: &str, t: char, value: &str, out: &mut String) {
    escape(name, out);
    out.push('#');
    out.push(t);
    out.push('#');
    escape(value, out);
    out.push('|');
}

pub fn encode_vars(vals: &[(String, PvValue)]) -> String {
    let mut s = String::new();
    for (n, v) in vals {
        match v {
            PvValue::Int(i) => pair(n, T_INT, &i.to_string(), &mut s),
            PvValue::Str(t) => pair(n, T_STR, t, &mut s),
            PvValue::Null => {}
        }
    }
    s
}

pub fn encode_profiles(ps: &[(String, Option<String>)]) -> String {
    let mut s = String::new();
    for (n, v) in ps {
        pair(n, T_STR, v.as_deref().unwrap_or(""), &mut s);
    }
    s
}

/// Splits `name#type#value|…` back; None when it does not parse.
pub fn decode(s: &str) -> Option<Vec<(String, char, String)>> {
    let mut out = Vec::new();
    let mut fields: Vec<String> = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut()?.push(chars.next()?),
            '#' => fields.push(String::new()),
            '|' => {
                let [n, t, v]: [String; 3] = std::mem::take(&mut fields).try_into().ok()?;
                let t = t.chars().next().filter(|_| t.len() == 1)?;
                out.push((n, t, v));
                fields.push(String::new());
            }
            c => fields.last_mut()?.push(c),
        }
    }
    (fields.len() == 1 && fields[0].is_empty()).then_some(out)
}

/// The dialog values OpenSIPS keeps each side's SDPs and advertised
/// Contact in (dlg_db_handler.c `persist_reinvite_pinging`): caller's
/// sent SDP, SDP sent to it, Contact advertised to it; then the callee's.
const LEG_VALS: [[&str; 3]; 2] = [["uCSDP", "aCSDP", "Cct"], ["ucSDP", "acSDP", "cct"]];

/// The `vars` column: the script's values, then the legs' SDPs and
/// advertised Contacts as OpenSIPS writes them (the Contact as a whole
/// header line).
fn row_vars(d: &Dlg) -> String {
    let mut s = encode_vars(&d.vals);
    for (leg, names) in d.legs.iter().zip(LEG_VALS) {
        let ct = if leg.adv_contact.is_empty() {
            String::new()
        } else {
            format!("Contact: {}\r\n", leg.adv_contact)
        };
        for (name, v) in names.iter().zip([&leg.in_sdp, &leg.out_sdp, &ct]) {
            if !v.is_empty() {
                pair(name, T_STR, v, &mut s);
            }
        }
    }
    s
}

/// Takes the legs' values of [`row_vars`] out of `vals` into `legs`.
fn legs_from_vals(vals: &mut Vec<(String, PvValue)>, legs: &mut [Leg; 2]) {
    vals.retain(|(n, v)| {
        let Some((i, j)) = LEG_VALS
            .iter()
            .enumerate()
            .find_map(|(i, names)| names.iter().position(|x| x == n).map(|j| (i, j)))
        else {
            return true;
        };
        let text = v.to_text().map(|t| t.to_string()).unwrap_or_default();
        let leg = &mut legs[i];
        match j {
            0 => leg.in_sdp = text,
            1 => leg.out_sdp = text,
            _ => {
                // `Contact: <sip:…>` and its line end: the value is kept.
                let t = text.trim_end_matches(['\r', '\n']);
                let value = match t.split_once(':') {
                    Some((name, v)) if name.trim().eq_ignore_ascii_case("contact") || name.trim() == "m" => v,
                    _ => t,
                };
                leg.adv_contact = value.trim().to_string();
            }
        }
        false
    });
}

const COLS: &str = "dlg_id, callid, from_uri, from_tag, to_uri, to_tag, caller_cseq, callee_cseq, caller_ping_cseq, callee_ping_cseq, caller_route_set, callee_route_set, caller_contact, callee_contact, caller_sock, callee_sock, state, start_time, timeout, vars, profiles, script_flags, module_flags, flags";

fn table() -> Option<Ident> {
    Ident::new(&conf().db_table).ok()
}

/// The row of `d` as values in [`COLS`] order.
fn values(d: &Dlg) -> Vec<Value> {
    let (er, ee) = (&d.legs[CALLER], &d.legs[CALLEE]);
    let timeout = d.deadline.map_or(0, |x| {
        machine::now_unix() + x.saturating_duration_since(Instant::now()).as_secs() as i64
    });
    vec![
        Value::Int(d.key() as i64),
        Value::text(&d.callid),
        Value::text(&d.from_uri),
        Value::text(&er.tag),
        Value::text(&d.to_uri),
        Value::text(&ee.tag),
        Value::text(er.cseq.to_string()),
        Value::text(ee.cseq.to_string()),
        Value::Int(i64::from(er.last_gen_cseq)),
        Value::Int(i64::from(ee.last_gen_cseq)),
        Value::text(er.route_set.join(",")),
        Value::text(ee.route_set.join(",")),
        Value::text(&er.contact),
        Value::text(&ee.contact),
        Value::text(er.bind.clone().unwrap_or_default()),
        Value::text(ee.bind.clone().unwrap_or_default()),
        Value::Int(i64::from(d.state)),
        Value::Int(d.start_ts),
        Value::Int(timeout),
        Value::Bytes(row_vars(d).into_bytes()),
        Value::text(encode_profiles(&d.profiles)),
        Value::text(d.user_flags.to_string()),
        Value::Int(i64::from(d.mod_flags)),
        Value::Int(i64::from(d.flags)),
    ]
}

fn written(sql: &str, rows: usize, r: Result<crate::db::writer::Written, DbError>) {
    if let Err(e) = r {
        super::DIALOG.db_errors.add(rows as u64);
        tracing::error!("dialog: database write failed ({e}): {sql}");
    }
}

fn writer() -> Option<&'static crate::db::writer::Writer> {
    static W: std::sync::OnceLock<Option<crate::db::writer::Writer>> = std::sync::OnceLock::new();
    W.get_or_init(|| crate::db::writer::Writer::start("dialog-db", 10_000, written))
        .as_ref()
}

fn push(db: Db, sql: String, vals: Vec<Value>) {
    if !writer().is_some_and(|w| w.push(db, sql, vals)) {
        super::DIALOG.db_errors.inc();
        tracing::warn!("dialog: database queue full, a write was dropped");
    }
}

/// db_mode 1: the answered dialog's row, replaced.
pub fn save(d: &Dlg) {
    let c = conf();
    let (Some(db), Some(t), 1) = (c.db.clone(), table(), c.db_mode) else {
        return;
    };
    if d.state < store::CONFIRMED_NA {
        return;
    }
    push(db.clone(), format!("DELETE FROM {t} WHERE dlg_id = ?"), vec![Value::Int(d.key() as i64)]);
    let marks = vec!["?"; 24].join(", ");
    push(db, format!("INSERT INTO {t} ({COLS}) VALUES ({marks})"), values(d));
}

/// db_mode 1: the ended dialog's row goes.
pub fn remove(d: &Dlg) {
    let c = conf();
    let (Some(db), Some(t), 1) = (c.db.clone(), table(), c.db_mode) else {
        return;
    };
    push(db, format!("DELETE FROM {t} WHERE dlg_id = ?"), vec![Value::Int(d.key() as i64)]);
}

/// db_mode 3 (at shutdown): the table holds the answered dialogs in memory.
pub fn save_all_wait() {
    let c = conf();
    let (Some(db), Some(t), 3) = (c.db.clone(), table(), c.db_mode) else {
        return;
    };
    if let Err(e) = db.exec_wait(&format!("DELETE FROM {t}"), vec![]) {
        tracing::error!("dialog: cannot write the dialogs at shutdown: {e}");
        return;
    }
    let marks = vec!["?"; 24].join(", ");
    for r in store::table().all() {
        let d = store::lock(&r);
        if (store::CONFIRMED_NA..store::DELETED).contains(&d.state) {
            let sql = format!("INSERT INTO {t} ({COLS}) VALUES ({marks})");
            if let Err(e) = db.exec_wait(&sql, values(&d)) {
                tracing::error!("dialog {}: not written at shutdown: {e}", d.did());
            }
        }
    }
}

fn text(r: &Row, col: &str) -> String {
    r.text(col).unwrap_or_default()
}

/// A dialog from its row; Err names what did not parse.
fn parse_row(r: &Row, c: &super::DlgConf) -> Result<Dlg, String> {
    let id = r.int("dlg_id").ok_or("no dlg_id")? as u64;
    let (h_entry, h_id) = ((id >> 32) as u32, id as u32);
    let int = |col: &str| -> Result<i64, String> {
        r.int(col)
            .or_else(|| r.text(col).and_then(|t| t.trim().parse().ok()))
            .ok_or_else(|| format!("{col} is not a number"))
    };
    let state = u8::try_from(int("state")?)
        .ok()
        .filter(|s| (store::CONFIRMED_NA..store::DELETED).contains(s))
        .ok_or("state is not 3 or 4")?;
    let vars = match r.get("vars") {
        Value::Bytes(b) => String::from_utf8(b.clone()).map_err(|_| "vars are not text")?,
        v => v.as_text().unwrap_or_default(),
    };
    let vals = decode(&vars)
        .ok_or("vars do not parse")?
        .into_iter()
        .map(|(n, t, v)| match t {
            T_INT => v.parse().map(|i| (n.clone(), PvValue::Int(i))).map_err(|_| format!("var {n} is not a number")),
            _ => Ok((n, PvValue::Str(v))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let profs = decode(&text(r, "profiles")).ok_or("profiles do not parse")?;
    let routes = |col: &str| -> Vec<String> {
        text(r, col).split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
    };
    let leg = |tag: &str, cseq: &str, rs: &str, contact: &str, sock: &str, ping: &str| -> Result<Leg, String> {
        Ok(Leg {
            tag: text(r, tag),
            contact: text(r, contact),
            cseq: text(r, cseq).trim().parse().map_err(|_| format!("{cseq} is not a number"))?,
            route_set: routes(rs),
            bind: Some(text(r, sock)).filter(|s| !s.is_empty()),
            last_gen_cseq: u32::try_from(int(ping)?).map_err(|_| format!("{ping} is not a CSeq"))?,
            ..Default::default()
        })
    };
    let start_ts = int("start_time")?;
    let timeout = int("timeout")?;
    let left = (timeout - machine::now_unix()).max(0) as u64;
    let mut d = Dlg::new(h_entry, h_id, r.text("callid").filter(|c| !c.is_empty()).ok_or("no callid")?);
    d.from_uri = text(r, "from_uri");
    d.to_uri = text(r, "to_uri");
    d.legs = [
        leg("from_tag", "caller_cseq", "caller_route_set", "caller_contact", "caller_sock", "caller_ping_cseq")?,
        leg("to_tag", "callee_cseq", "callee_route_set", "callee_contact", "callee_sock", "callee_ping_cseq")?,
    ];
    d.vals = vals;
    legs_from_vals(&mut d.vals, &mut d.legs);
    d.state = state;
    d.created = start_ts;
    d.start_ts = start_ts;
    d.start_ms = start_ts * 1000;
    d.lifetime = left as u32;
    d.deadline = Some(Instant::now() + Duration::from_secs(left));
    d.flags = u32::try_from(int("flags")?).map_err(|_| "flags out of range")?;
    d.mod_flags = u32::try_from(int("module_flags")?).map_err(|_| "module_flags out of range")?;
    d.user_flags = text(r, "script_flags").trim().parse().unwrap_or(0);
    if d.reinvite_pings() && d.state == store::CONFIRMED {
        // OpenSIPS puts a restored dialog back on its re-INVITE ping timer.
        d.reinvite_at = Some(Instant::now() + super::ping::reinvite_interval());
    }
    for (p, _, v) in profs {
        let with_value = profiles::has_value_in(c, &p);
        match with_value {
            Some(true) => profiles::set(&mut d, &p, Some(&v)),
            Some(false) => profiles::set(&mut d, &p, None),
            None => tracing::warn!("dialog {}: profile {p} is not declared, left out", d.did()),
        }
    }
    Ok(d)
}

/// Reads the table into memory (at start, db_mode 1 and 3); a row that
/// does not parse is logged with its id and skipped.
pub fn load_wait(c: &super::DlgConf) -> Result<usize, String> {
    let (Some(db), Some(t)) = (c.db.clone(), Ident::new(&c.db_table).ok()) else {
        return Ok(0);
    };
    let rows = db
        .query_wait(&format!("SELECT {COLS} FROM {t}"), vec![])
        .map_err(|e| format!("dialog: cannot read table {t}: {e}"))?;
    let tb = store::table();
    let mut n = 0;
    for r in &rows {
        match parse_row(r, c) {
            Ok(d) if tb.dlgs.contains_key(&d.key()) => {}
            Ok(d) => {
                tb.bump_id(d.h_id);
                tb.insert(d);
                n += 1;
            }
            Err(e) => tracing::error!(
                "dialog: row {} of table {t} skipped: {e}",
                r.int("dlg_id").map_or("?".into(), |i| i.to_string())
            ),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_and_profiles_encode_as_opensips_and_read_back() {
        let vals = vec![
            ("who".to_string(), PvValue::Str("a|b#c\\d".into())),
            ("n".to_string(), PvValue::Int(-7)),
        ];
        let s = encode_vars(&vals);
        assert_eq!(s, "who#1#a\\|b\\#c\\\\d|n#2#-7|");
        assert_eq!(
            decode(&s),
            Some(vec![
                ("who".into(), '1', "a|b#c\\d".into()),
                ("n".into(), '2', "-7".into())
            ])
        );
        assert_eq!(encode_profiles(&[("caller".into(), Some("bob".into())), ("all".into(), None)]), "caller#1#bob|all#1#|");
        assert_eq!(decode(""), Some(vec![]));
        for bad in ["a#1", "a#1#b#c|", "a|", "a#12#b|", "x\\"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_legs_sdps_and_advertised_contacts_go_into_vars_as_opensips_and_back() {
        let mut d = Dlg::new(1, 2, "c".into());
        d.vals.push(("who".into(), PvValue::Str("bob".into())));
        d.legs[CALLER].in_sdp = "v=0 caller".into();
        d.legs[CALLER].adv_contact = "<sip:bob@10.0.0.1;did=1.2>".into();
        d.legs[CALLEE].in_sdp = "v=0 callee".into();
        d.legs[CALLEE].out_sdp = "v=0 changed".into();
        let s = row_vars(&d);
        assert_eq!(
            s,
            "who#1#bob|uCSDP#1#v=0 caller|Cct#1#Contact: <sip:bob@10.0.0.1;did=1.2>\r\n|ucSDP#1#v=0 callee|acSDP#1#v=0 changed|"
        );
        let mut vals: Vec<(String, PvValue)> = decode(&s)
            .expect("parses")
            .into_iter()
            .map(|(n, _, v)| (n, PvValue::Str(v)))
            .collect();
        let mut legs: [Leg; 2] = Default::default();
        legs_from_vals(&mut vals, &mut legs);
        assert_eq!(vals, vec![("who".to_string(), PvValue::Str("bob".into()))]);
        assert_eq!(legs[CALLER].in_sdp, "v=0 caller");
        assert_eq!(legs[CALLER].adv_contact, "<sip:bob@10.0.0.1;did=1.2>");
        assert_eq!(legs[CALLEE].out_sdp, "v=0 changed");
        assert!(legs[CALLEE].adv_contact.is_empty() && legs[CALLER].out_sdp.is_empty());
    }
}
