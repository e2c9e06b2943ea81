//! Generic messages between nodes from the script (OpenSIPS 3.4
//! clusterer_mod.c `cmd_send_req`, `cmd_broadcast_req`, `cmd_send_rpl`,
//! clusterer.c `prep_gen_msg`, clusterer_evi.c `raise_gen_msg_ev`): a
//! text with an exchange tag, sent as CLUSTERER_GENERIC_MSG over
//! clusterer-extra; the receiver raises E_CLUSTERER_REQ_RECEIVED or
//! E_CLUSTERER_RPL_RECEIVED.

use mlua::{IntoLua, Lua, MultiValue};

use super::bin::{Builder, Packet};
use super::send::{send, SendRet};
use super::topo::{msg, BIN_VERSION, EXTRA_CAP};
use crate::pv::Value as PvValue;
use crate::script::exports::Args;
use crate::script::host::State;

/// clusterer_mod.c `generate_msg_tag`: `cluster-node-` and 24 random
/// letters and digits.
fn new_tag(cluster: i64) -> String {
    use std::hash::{BuildHasher, Hasher};
    // A per-process random seed (std's hasher keys) stirred with the
    // time and a counter; the tag needs to be unlikely to repeat, not secret.
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let mut x = h.finish() | 1;
    let mut t = format!("{cluster}-{}-", super::my_id());
    for _ in 0..24 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let c = match (x % 62) as u8 {
            n @ 0..=25 => b'A' + n,
            n @ 26..=51 => b'a' + n - 26,
            n => b'0' + n - 52,
        };
        t.push(c as char);
    }
    t
}

fn packet(req_like: bool, tag: &str, text: &str) -> Result<Builder, String> {
    let mut b = Builder::new(EXTRA_CAP, msg::GENERIC_MSG, BIN_VERSION, tag.len() + text.len() + 8);
    b.int(i32::from(req_like));
    b.str(tag.as_bytes()).map_err(|e| e.to_string())?;
    b.str(text.as_bytes()).map_err(|e| e.to_string())?;
    Ok(b)
}

/// clusterer_mod.c: 1 sent, -1 this node disabled, -2 destination down,
/// -3 not sent.
fn coded(lua: &Lua, r: SendRet) -> mlua::Result<MultiValue> {
    let rc: i64 = match r {
        SendRet::Success => 1,
        SendRet::CurrDisabled => -1,
        SendRet::DestDown => -2,
        SendRet::SendErr => -3,
    };
    Ok(MultiValue::from_iter([(rc > 0).into_lua(lua)?, rc.into_lua(lua)?]))
}

fn cluster_id(a: &Args, i: usize) -> mlua::Result<i32> {
    i32::try_from(a.int(i)?).map_err(|_| a.err("cluster id out of range"))
}

/// Writes the generated tag to the script's variable `spec` (`$var(tag)`).
fn set_tag(st: &State, a: &Args, spec: Option<String>, tag: &str) -> mlua::Result<()> {
    if let Some(s) = spec {
        let spec = st.pv.borrow_mut().spec(&s).map_err(|e| a.err(e))?;
        crate::pv::set(&mut st.call.borrow_mut(), &spec, PvValue::Str(tag.to_string()))
            .map_err(|e| a.err(e))?;
    }
    Ok(())
}

pub fn cluster_broadcast_req(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let cluster = cluster_id(&a, 0)?;
    let text = a.str(1)?;
    let tag = new_tag(i64::from(cluster));
    set_tag(st, &a, a.opt_str(2)?, &tag)?;
    let p = packet(true, &tag, &text).map_err(|e| a.err(e))?;
    coded(lua, send(cluster, None, &p))
}

pub fn cluster_send_req(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let cluster = cluster_id(&a, 0)?;
    let node = cluster_id(&a, 1)?;
    let text = a.str(2)?;
    let tag = new_tag(i64::from(cluster));
    set_tag(st, &a, a.opt_str(3)?, &tag)?;
    let p = packet(true, &tag, &text).map_err(|e| a.err(e))?;
    coded(lua, send(cluster, Some(node), &p))
}

pub fn cluster_send_rpl(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let cluster = cluster_id(&a, 0)?;
    let node = cluster_id(&a, 1)?;
    let text = a.str(2)?;
    let spec = a.str(3)?;
    let spec = st.pv.borrow_mut().spec(&spec).map_err(|e| a.err(e))?;
    let tag = match crate::pv::get(&st.call.borrow(), &spec) {
        PvValue::Null => String::new(),
        v => v.to_string(),
    };
    if tag.is_empty() {
        tracing::error!("clusterer: cluster_send_rpl: empty tag");
        return Ok(MultiValue::from_iter([false.into_lua(lua)?, (-1).into_lua(lua)?]));
    }
    let p = packet(false, &tag, &text).map_err(|e| a.err(e))?;
    coded(lua, send(cluster, Some(node), &p))
}

/// clusterer.c `handle_cl_gen_msg`.
pub fn on_generic(p: &mut Packet) {
    let r = (|| {
        let req_like = p.int("req_like")? != 0;
        let tag = String::from_utf8_lossy(&p.str("tag")?).into_owned();
        let text = String::from_utf8_lossy(&p.str("msg")?).into_owned();
        Ok::<_, super::bin::BinError>((req_like, tag, text))
    })();
    let (req_like, tag, text) = match r {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!("clusterer: generic message from node {}: {e}", p.src);
            return;
        }
    };
    let mut m = serde_json::Map::new();
    m.insert("cluster_id".into(), p.cluster.into());
    m.insert("src_id".into(), p.src.into());
    m.insert("msg".into(), text.into());
    m.insert("tag".into(), tag.into());
    let ev = if req_like {
        "E_CLUSTERER_REQ_RECEIVED"
    } else {
        "E_CLUSTERER_RPL_RECEIVED"
    };
    crate::event::raise_declared(ev, m);
}
