//! Script attributes (OpenSIPS 3.4 modules/dispatcher/dispatch.c
//! `ds_push_script_attrs`, `ds_get_script_attrs`; dispatcher.c's MI
//! `ds_push_script_attrs`): an opaque string a script or the MI attaches to
//! destinations, shown by `ds_list` and handed to `script_attrs_avp`.

use mlua::{Lua, MultiValue};

use super::sets::{AvpNames, Dest, Sets};
use crate::pv::Value;
use crate::script::exports::{ret, Args};
use crate::script::host::State;

/// Why a push found nothing to change.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    UnknownPartition,
    BadIp,
}

/// Stores `attrs` on the destinations of `set` (None: all) in `partition`
/// whose URI host is `ip` and whose port matches (0, or a destination
/// without a port: any); Ok with how many changed (0 is still success, as
/// in OpenSIPS).
pub fn push(
    sets: &Sets,
    partition: Option<&str>,
    attrs: &str,
    ip: &str,
    port: i64,
    set: Option<i64>,
) -> Result<usize, PushError> {
    let p = sets
        .partition(partition)
        .ok_or(PushError::UnknownPartition)?;
    let ip: std::net::IpAddr = ip
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| PushError::BadIp)?;
    let mut n = 0;
    for s in p.sets.iter().filter(|s| set.is_none_or(|id| id == s.id)) {
        for d in &s.dests {
            if d.has_ip(ip) && (port == 0 || !d.port_given || i64::from(d.port) == port) {
                *d.script_attrs.write().unwrap_or_else(|e| e.into_inner()) = Some(attrs.to_string());
                n += 1;
            }
        }
    }
    Ok(n)
}

/// The destination's script attrs, if any were pushed.
pub fn of(d: &Dest) -> Option<String> {
    d.script_attrs
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// `script_attrs_avp` gets the chosen destination's script attrs (empty
/// when none were pushed, as OpenSIPS adds the AVP either way).
pub fn to_avp(call: &mut crate::proxy::context::Call, names: &AvpNames, d: &Dest) {
    if let Some(name) = &names.script_attrs {
        let name = name
            .trim()
            .trim_start_matches("$avp(")
            .trim_end_matches(')')
            .to_string();
        call.avps
            .insert(name, vec![Value::Str(of(d).unwrap_or_default())]);
    }
}

fn rc(lua: &Lua, code: i64) -> mlua::Result<MultiValue> {
    let mut out = ret(lua, code > 0)?;
    out.extend(ret(lua, code)?);
    Ok(out)
}

/// `ds_push_script_attrs(script_attrs, ip, port [, set [, partition]])`.
pub fn ds_push_script_attrs(lua: &Lua, _st: &State, a: Args) -> mlua::Result<MultiValue> {
    let attrs = a.str(0)?;
    let ip = a.str(1)?;
    let port = a.int(2)?;
    let set = a.opt_int(3)?.filter(|&s| s != -1);
    let partition = a.opt_str(4)?;
    match push(&super::current(), partition.as_deref(), &attrs, &ip, port, set) {
        Ok(_) => rc(lua, 1),
        Err(PushError::UnknownPartition) => Err(a.err(format!(
            "unknown partition '{}'",
            partition.unwrap_or_default()
        ))),
        Err(PushError::BadIp) => {
            tracing::error!("{}: '{ip}' is not an IP address", a.fname);
            rc(lua, -1)
        }
    }
}

/// `ds_get_script_attrs(uri, set [, partition [, out_var]])`.
pub fn ds_get_script_attrs(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let uri = a.str(0)?;
    let set = a.int(1)?;
    let partition = a.opt_str(2)?;
    let out = a.opt_str(3)?;
    let sets = super::current();
    let p = sets
        .partition(partition.as_deref())
        .ok_or_else(|| a.err(format!("unknown partition '{}'", partition.unwrap_or_default())))?;
    let found = p
        .sets
        .iter()
        .filter(|s| set == -1 || s.id == set)
        .flat_map(|s| s.dests.iter())
        .find(|d| d.uri == uri);
    let Some(d) = found else {
        return rc(lua, -1);
    };
    let attrs = of(d).unwrap_or_default();
    if let Some(out) = out {
        let spec = st.pv.borrow_mut().spec(&out).map_err(|e| a.err(e))?;
        crate::pv::set(&mut st.call.borrow_mut(), &spec, Value::Str(attrs.clone()))
            .map_err(|e| a.err(e))?;
    }
    let mut r = rc(lua, 1)?;
    r.extend(ret(lua, attrs)?);
    Ok(r)
}
