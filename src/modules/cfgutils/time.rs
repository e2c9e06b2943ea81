//! cfgutils' clock functions (OpenSIPS 3.4 `cfgutils.c`
//! `get_accurate_time`, `ts_usec_delta`) and memory reports
//! (`pkg_status`, `shm_status`, `abort`).

use mlua::{Lua, MultiValue};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::proxy::context::Value;
use crate::script::exports::{ret, Args};
use crate::script::host::State;

fn write(st: &State, a: &Args, i: usize, v: Value) -> mlua::Result<()> {
    let Some(out) = a.opt_str(i)? else {
        return Ok(());
    };
    let spec = st.pv.borrow_mut().spec(&out).map_err(|e| a.err(e))?;
    crate::pv::set(&mut st.call.borrow_mut(), &spec, v).map_err(|e| a.err(e))
}

/// `get_accurate_time([sec_var], [usec_var], [sec_usec_var])`: seconds
/// and microseconds now, also written to the variables given; returns
/// sec, usec and the `"sec.usec"` string.
pub fn get_accurate_time(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| a.err(e))?;
    let (sec, usec) = (now.as_secs() as i64, now.subsec_micros() as i64);
    let text = format!("{sec}.{usec:06}");
    write(st, &a, 0, Value::Int(sec))?;
    write(st, &a, 1, Value::Int(usec))?;
    write(st, &a, 2, Value::Str(text.clone()))?;
    let mut out = ret(lua, sec)?;
    out.extend(ret(lua, usec)?);
    out.extend(ret(lua, text)?);
    Ok(out)
}

/// `ts_usec_delta(t1_sec, t1_usec, t2_sec, t2_usec, [delta_str_var],
/// [delta_int_var])`: |t1 - t2| in microseconds, returned and written to
/// the variables given. As OpenSIPS, a delta past 2^31-1 cannot go into
/// the integer variable: false then.
pub fn ts_usec_delta(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let t = |i| a.int(i);
    let diff = (1_000_000i128 * (t(0)? as i128 - t(2)? as i128) + t(1)? as i128 - t(3)? as i128)
        .unsigned_abs();
    let diff = i64::try_from(diff).map_err(|_| a.err("delta out of range"))?;
    write(st, &a, 4, Value::Str(diff.to_string()))?;
    if a.opt_str(5)?.is_some() {
        if diff > i32::MAX as i64 {
            tracing::error!("{}: {diff} us is too large for delta_int", a.fname);
            return ret(lua, false);
        }
        write(st, &a, 5, Value::Int(diff))?;
    }
    ret(lua, diff)
}

/// `pkg_status()`: logs the worker's private memory (its Lua state), as
/// OpenSIPS dumps its pkg allocator.
pub fn pkg_status(lua: &Lua, st: &State, _: Args) -> mlua::Result<MultiValue> {
    tracing::info!(
        "pkg_status: worker {} Lua state uses {} bytes",
        st.env.worker,
        lua.used_memory()
    );
    ret(lua, true)
}

/// `shm_status()`: logs the process's memory (resident and virtual), the
/// memory every worker shares.
pub fn shm_status(lua: &Lua, _: &State, _: Args) -> mlua::Result<MultiValue> {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let mut f = statm.split_whitespace().map(|v| v.parse::<u64>().unwrap_or(0) * 4096);
    let (virt, rss) = (f.next().unwrap_or(0), f.next().unwrap_or(0));
    tracing::info!("shm_status: process rss {rss} bytes, virtual {virt} bytes");
    ret(lua, true)
}

/// `abort()`: ends the process at once with a core dump, as OpenSIPS's
/// debugging aid does (systemd restarts the service).
pub fn abort(_: &Lua, _: &State, a: Args) -> mlua::Result<MultiValue> {
    tracing::error!("{}: abort called by the script", a.fname);
    std::process::abort()
}
