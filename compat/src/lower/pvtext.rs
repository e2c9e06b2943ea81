//! Text of pseudo-variables and strings: Lua string literals, specs and
//! their parts, which PVs are numeric, old keywords, and an expression
//! printed back in OpenSIPS syntax.

use crate::ast::Expr;

/// A Lua string literal.
pub fn lua_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\{:03}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Whether a string holds a pseudo-variable spec (`$fU`, `$(ru{…})`).
pub fn has_spec(s: &str) -> bool {
    let b = s.as_bytes();
    b.windows(2)
        .any(|w| w[0] == b'$' && (w[1].is_ascii_alphabetic() || w[1] == b'(' || w[1] == b'_'))
}

/// Parts of a spec: `$(avp(x)[1]{s.len})` → name `avp`, inner `x`,
/// index and transformations present.
pub struct Spec {
    /// `$(<request>…)` / `$(<reply>…)`: read on another message.
    pub ctx: bool,
    pub name: String,
    pub inner: Option<String>,
    pub index: bool,
    pub trans: Vec<String>,
}

pub fn split_spec(spec: &str) -> Spec {
    let body = spec.trim_start_matches('$');
    let (body, wrapped) = match body.strip_prefix('(').and_then(|b| b.strip_suffix(')')) {
        Some(b) => (b, true),
        None => (body, false),
    };
    // A context prefix (`<request>`, `<reply>`) names the message read.
    let (body, ctx) = match body.strip_prefix('<').and_then(|b| b.split_once('>')) {
        Some((_, rest)) if wrapped => (rest, true),
        _ => (body, false),
    };
    let name_end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(body.len());
    let name = body[..name_end].to_string();
    let mut rest = &body[name_end..];
    let mut inner = None;
    if rest.starts_with('(') {
        let mut d = 0;
        for (i, c) in rest.char_indices() {
            match c {
                '(' => d += 1,
                ')' => {
                    d -= 1;
                    if d == 0 {
                        inner = Some(rest[1..i].to_string());
                        rest = &rest[i + 1..];
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    let index = rest.starts_with('[');
    let mut trans = Vec::new();
    if wrapped || rest.contains('{') {
        let mut d = 0;
        let mut start = 0;
        for (i, c) in rest.char_indices() {
            match c {
                '{' => {
                    if d == 0 {
                        start = i + 1;
                    }
                    d += 1;
                }
                '}' => {
                    d -= 1;
                    if d == 0 {
                        let t = &rest[start..i];
                        let tname = t.split(',').next().unwrap_or(t).trim();
                        trans.push(tname.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Spec {
        ctx,
        name,
        inner,
        index,
        trans,
    }
}

/// Pseudo-variables whose value is a number.
pub(super) const NUMERIC_PVS: &[&str] = &[
    "rs",
    "cs",
    "sp",
    "rp",
    "op",
    "dp",
    "Rp",
    "Ts",
    "Tsm",
    "TS",
    "cl",
    "ml",
    "mf",
    "bf",
    "pp",
    "mi",
    "rc",
    "retcode",
    "T_reply_code",
    "T_branch_idx",
    "T_fr_timeout",
    "T_fr_inv_timeout",
    "log_level",
];

/// Pseudo-variables whose type depends on what the script stored.
pub(super) const UNTYPED_PVS: &[&str] = &["var", "avp", "shv", "param", "bavp"];

/// The OpenSIPS module a pseudo-variable lunasip lacks belongs to, for
/// the report (the common ones of the corpus).
pub(super) fn pv_module(name: &str) -> Option<&'static str> {
    let prefixes: &[(&str, &str)] = &[
        ("DLG_", "dialog"),
        ("dlg_", "dialog"),
        ("acc_", "acc"),
        ("TH_", "topology_hiding"),
        ("rtp_relay", "rtp_relay"),
        ("rtpstat", "rtpproxy"),
        ("json", "json"),
        ("lb_", "load_balancer"),
        ("cluster", "clusterer"),
        ("b2b_", "b2b_logic"),
    ];
    prefixes
        .iter()
        .find(|(p, _)| name.starts_with(p))
        .map(|(_, m)| *m)
}

/// Old core keywords of conditions (`method == "INVITE"`, `uri == myself`).
pub(super) fn keyword(w: &str) -> Option<&'static str> {
    Some(match w {
        "uri" => "sip.pv.ru",
        "method" => "sip.pv.rm",
        "src_ip" => "sip.pv.si",
        "src_port" => "sip.pv.sp",
        "dst_ip" => "sip.pv.Ri",
        "dst_port" => "sip.pv.Rp",
        "from_uri" => "sip.pv.fu",
        "to_uri" => "sip.pv.tu",
        "proto" => "sip.pv.pr",
        "af" => "sip.pv.af",
        "status" => "sip.pv.rs",
        "msg:len" => "sip.pv.ml",
        _ => return None,
    })
}

/// The specs inside a string (`"$fU@$(rd{s.tolower})"`).
pub fn specs_in(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$'
            && i + 1 < b.len()
            && (b[i + 1].is_ascii_alphabetic() || b[i + 1] == b'(' || b[i + 1] == b'_')
        {
            if let Some(n) = crate::lex::pv_len(&s[i..]) {
                out.push(s[i..i + n].to_string());
                i += n;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// An expression printed back in OpenSIPS syntax (for messages).
pub fn cfg_text(e: &Expr) -> String {
    match e {
        Expr::Int(n) => n.to_string(),
        Expr::Str(s) => format!("\"{s}\""),
        Expr::Pv(p) => p.clone(),
        Expr::Null => "NULL".into(),
        Expr::Word(w) => w.clone(),
        Expr::Call { name, args, .. } => {
            let a: Vec<String> = args.iter().map(cfg_text).collect();
            format!("{name}({})", a.join(", "))
        }
        Expr::Unary(op, x) => format!("{op}{}", cfg_text(x)),
        Expr::Binary(op, a, b) => format!("{} {op} {}", cfg_text(a), cfg_text(b)),
    }
}
