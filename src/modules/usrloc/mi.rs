//! MI commands of usrloc (OpenSIPS 3.x names, parameters and result
//! shapes): `ul_dump`, `ul_show_contact`, `ul_rm`, `ul_rm_contact`,
//! `ul_flush`, `ul_sync`. They run on the MI thread and may wait for the
//! database.

use serde_json::{json, Value};

use super::contact::{now, Contact};
use super::store;
use crate::mi::{opt, req, Command, Ctx, Kind, MiError, Params};

fn db_err(e: crate::db::DbError) -> MiError {
    MiError::new(500, e.to_string())
}

fn contact_json(c: &Contact, t: i64) -> Value {
    let expires = match c.expires {
        0 => json!("permanent"),
        _ => json!(c.left(t)),
    };
    let q = match c.q {
        q if q < 0 => String::new(),
        q => format!("{:.2}", f64::from(q) / 1000.0),
    };
    let mut v = json!({
        "Contact": c.uri,
        "ContactID": c.id.to_string(),
        "Expires": expires,
        "Q": q,
        "Callid": c.callid,
        "Cseq": c.cseq,
        "User-agent": c.user_agent,
        "Flags": c.flags,
        "Cflags": c.cflags_text().unwrap_or_default(),
        "Last-Modified": c.last_modified,
    });
    if let Some(r) = &c.received {
        v["Received"] = json!(r);
    }
    if let Some(p) = &c.path {
        v["Path"] = json!(p);
    }
    if let Some(s) = &c.socket {
        v["Socket"] = json!(s);
    }
    if let Some(m) = c.methods {
        v["Methods"] = json!(m);
    }
    if let Some(i) = &c.instance {
        v["SIP_instance"] = json!(i);
    }
    // Shown once a ping was answered (ul_mi.c).
    if c.latency > 0 {
        v["Ping-Latency"] = json!(c.latency);
    }
    v
}

fn ul_dump(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let brief = p.str("brief").is_some_and(|b| b != "0") || p.int("brief").is_some_and(|b| b != 0);
    let t = now();
    let mut domains = Vec::new();
    for d in store::all() {
        let aors: Vec<Value> = d
            .dump_wait()
            .map_err(db_err)?
            .iter()
            .map(|(aor, cts)| {
                let list: Vec<Value> = cts
                    .iter()
                    .map(|c| match brief {
                        true => json!({ "Contact": c.uri, "Expires": c.left(t) }),
                        false => contact_json(c, t),
                    })
                    .collect();
                json!({ "AOR": aor, "Contacts": list })
            })
            .collect();
        domains.push(json!({ "name": d.name, "AORs": aors }));
    }
    Ok(json!({ "Domains": domains }))
}

fn table(p: &Params) -> Result<std::sync::Arc<store::Domain>, MiError> {
    let name = p.str("table_name").unwrap_or("");
    // A table not used yet is read now (db_mode 1, 2) or asked (3).
    store::domain(name).map_err(|e| MiError::new(404, format!("Table not found: {e}")))
}

fn aor(p: &Params) -> Result<String, MiError> {
    let a = p.str("aor").unwrap_or("").trim();
    if a.is_empty() {
        return Err(MiError::params("aor is empty"));
    }
    Ok(a.to_string())
}

fn ul_show_contact(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let d = table(p)?;
    let aor = aor(p)?;
    let cts = d.get_wait(&aor).map_err(db_err)?;
    if cts.is_empty() {
        return Err(MiError::new(404, "AOR not found"));
    }
    let t = now();
    let list: Vec<Value> = cts.iter().map(|c| contact_json(c, t)).collect();
    Ok(json!({ "Contacts": list }))
}

fn ul_rm(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let d = table(p)?;
    let aor = aor(p)?;
    match d.remove_aor_wait(&aor).map_err(db_err)? {
        true => Ok(Value::String("OK".into())),
        false => Err(MiError::new(404, "AOR not found")),
    }
}

fn ul_rm_contact(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let d = table(p)?;
    let aor = aor(p)?;
    let uri = p.str("contact").unwrap_or("").to_string();
    let removed = d
        .edit_wait(&aor, move |v| {
            let n = v.len();
            v.retain(|c| c.uri != uri);
            n != v.len()
        })
        .map_err(db_err)?;
    match removed {
        true => Ok(Value::String("OK".into())),
        false => Err(MiError::new(404, "Contact not found")),
    }
}

/// An MI number given as a number or a numeric string.
fn num(p: &Params, name: &str) -> Result<Option<f64>, MiError> {
    match (p.int(name), p.str(name)) {
        (Some(n), _) => Ok(Some(n as f64)),
        (None, Some(s)) if !s.trim().is_empty() => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| MiError::params(format!("{name} '{s}' is not a number"))),
        _ => Ok(None),
    }
}

fn ul_add(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let d = table(p)?;
    let aor = aor(p)?;
    let uri = p.str("contact").unwrap_or("").trim().to_string();
    if crate::sip::Uri::parse(&uri).is_err() || uri.contains(['\r', '\n', ' ']) {
        return Err(MiError::params(format!("contact '{uri}' is not a SIP URI")));
    }
    let secs = num(p, "expires")?.unwrap_or(0.0);
    let q = num(p, "q")?.unwrap_or(-1.0);
    if !(0.0..=1.0).contains(&q) && q != -1.0 {
        return Err(MiError::params("q must be 0-1"));
    }
    let t = now();
    let c = Contact {
        id: Contact::new_id(&aor, &uri),
        uri: uri.clone(),
        received: None,
        path: None,
        // 0: permanent, as OpenSIPS's ul_add.
        expires: if secs > 0.0 { t + secs as i64 } else { 0 },
        q: if q < 0.0 { -1 } else { (q * 1000.0).round() as i32 },
        callid: "dfjrewr12386fd6-343@opensips.mi".into(),
        cseq: 1,
        flags: num(p, "flags")?.unwrap_or(0.0) as u32,
        cflags: num(p, "cflags")?.unwrap_or(0.0) as u64,
        user_agent: "SIP Router MI Server".into(),
        socket: None,
        methods: num(p, "methods")?.map(|m| m as u32),
        instance: None,
        reg_id: 0,
        last_modified: t,
        latency: 0,
    };
    d.edit_wait(&aor, move |v| {
        match v.iter_mut().find(|x| x.uri == c.uri) {
            Some(x) => {
                let (id, latency) = (x.id, x.latency);
                *x = Contact { id, latency, ..c };
            }
            None => v.push(c),
        }
    })
    .map_err(db_err)?;
    Ok(Value::String("OK".into()))
}

fn ul_flush(_: &Ctx, _: &Params) -> Result<Value, MiError> {
    super::tick();
    Ok(Value::String("OK".into()))
}

fn ul_sync(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let d = table(p)?;
    if super::conf().db_mode == 0 || super::conf().db_mode == 3 {
        return Err(MiError::new(
            400,
            "Contacts already synced (db_mode 0 or 3)",
        ));
    }
    let only = p.str("aor").map(str::to_string);
    d.sync_wait(only.as_deref()).map_err(db_err)?;
    Ok(Value::String("OK".into()))
}

pub static COMMANDS: &[Command] = &[
    Command {
        name: "ul_dump",
        help: "Lists every location table with its addresses of record and their contacts (db_mode 3 reads the tables); `brief` shows only URI and expires.",
        module: "usrloc",
        params: &[opt("brief", Kind::Str)],
        result: "`{\"Domains\": [{\"name\", \"AORs\": [{\"AOR\", \"Contacts\": [{\"Contact\", \"ContactID\", \"Expires\", \"Q\", \"Callid\", \"Cseq\", \"User-agent\", \"Flags\", \"Cflags\", \"Received\", \"Path\", …}]}]}]}`",
        handler: ul_dump,
    },
    Command {
        name: "ul_show_contact",
        help: "The contacts of `aor` in table `table_name`.",
        module: "usrloc",
        params: &[req("table_name", Kind::Str), req("aor", Kind::Str)],
        result: "`{\"Contacts\": [ … as ul_dump … ]}`; 404 AOR not found",
        handler: ul_show_contact,
    },
    Command {
        name: "ul_rm",
        help: "Removes `aor` with all its contacts from table `table_name` (and the database).",
        module: "usrloc",
        params: &[req("table_name", Kind::Str), req("aor", Kind::Str)],
        result: "`\"OK\"`; 404 AOR not found",
        handler: ul_rm,
    },
    Command {
        name: "ul_rm_contact",
        help: "Removes the contact `contact` (its URI) of `aor` from table `table_name`.",
        module: "usrloc",
        params: &[
            req("table_name", Kind::Str),
            req("aor", Kind::Str),
            req("contact", Kind::Str),
        ],
        result: "`\"OK\"`; 404 Contact not found",
        handler: ul_rm_contact,
    },
    Command {
        name: "ul_add",
        help: "Adds (or replaces) the binding of `contact` to `aor` in table `table_name`: `expires` seconds (0: permanent), `q` (0-1), usrloc `flags`, branch flags `cflags` (a number), `methods` (OpenSIPS's METHOD_* bits).",
        module: "usrloc",
        params: &[
            req("table_name", Kind::Str),
            req("aor", Kind::Str),
            req("contact", Kind::Str),
            req("expires", Kind::Int),
            req("q", Kind::Str),
            opt("unused", Kind::Str),
            opt("flags", Kind::Int),
            opt("cflags", Kind::Int),
            opt("methods", Kind::Int),
        ],
        result: "`\"OK\"`",
        handler: ul_add,
    },
    Command {
        name: "ul_flush",
        help: "Runs the usrloc timer now: expired contacts removed, write-back changes (db_mode 2) written.",
        module: "usrloc",
        params: &[],
        result: "`\"OK\"`",
        handler: ul_flush,
    },
    Command {
        name: "ul_sync",
        help: "Rewrites table `table_name` in the database (or only the rows of `aor`) from memory (db_mode 1 and 2).",
        module: "usrloc",
        params: &[req("table_name", Kind::Str), opt("aor", Kind::Str)],
        result: "`\"OK\"`",
        handler: ul_sync,
    },
];
