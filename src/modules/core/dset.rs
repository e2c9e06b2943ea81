//! The destination set functions of OpenSIPS's core (3.4 `core_cmds.c`,
//! `dset.c`, `serialize.c`): `remove_branch`, and serial forking with
//! `serialize_branches` / `next_branches`.
//!
//! `serialize_branches` takes the R-URI branch and every `append_branch`
//! branch, orders them by q-value (highest first; equal q-values keep
//! their order, the R-URI first) or keeps their order, and keeps them
//! aside in the AVP `$avp(serial_branches)` (OpenSIPS keeps an AVP too, so
//! the list lives with the transaction into failure routes). Each
//! `next_branches` takes the next group of equal q-value off that list:
//! the first becomes the R-URI (with its `$du`, q, branch flags and
//! socket), the others `append_branch` branches, ready for `t_relay`.

use mlua::{IntoLua, Lua, MultiValue};

use crate::modules::Module;
use crate::proxy::context::{Call, PendingBranch, Value};
use crate::script::exports::{ret, Args, Export, Func};
use crate::script::host::State;
use crate::script::route::RouteMask;

/// The AVP the serialized branches wait in, the next one first.
pub const SERIAL_AVP: &str = "serial_branches";

/// Separates the fields of one serialized branch.
const SEP: char = '\u{1f}';

/// One branch waiting in the serial list; `last` ends its group (OpenSIPS
/// `Q_FLAG`).
#[derive(Debug, Clone, PartialEq)]
struct Serial {
    branch: PendingBranch,
    last: bool,
}

impl Serial {
    fn encode(&self) -> String {
        let b = &self.branch;
        let opt = |v: Option<String>| v.unwrap_or_default();
        [
            b.uri.clone(),
            opt(b.duri.clone()),
            opt(b.path.clone()),
            opt(b.q.map(|q| q.to_string())),
            b.flags.to_string(),
            opt(b.socket.map(|s| s.to_string())),
            u8::from(self.last).to_string(),
        ]
        .join(&SEP.to_string())
    }

    fn decode(s: &str) -> Option<Serial> {
        let f: Vec<&str> = s.split(SEP).collect();
        let [uri, duri, path, q, flags, socket, last] = f.as_slice() else {
            return None;
        };
        let some = |v: &str| (!v.is_empty()).then(|| v.to_string());
        Some(Serial {
            branch: PendingBranch {
                uri: uri.to_string(),
                duri: some(duri),
                path: some(path),
                q: q.parse().ok(),
                flags: flags.parse().ok()?,
                socket: socket.parse().ok(),
            },
            last: *last == "1",
        })
    }
}

/// The R-URI branch and the appended ones in serial order; None when
/// there is nothing to order (no appended branch, or all the same q
/// without `keep_order`).
fn order(call: &Call, keep_order: bool) -> Option<Vec<Serial>> {
    if call.tm.branches.is_empty() {
        return None;
    }
    let m = call.msg.as_ref()?;
    // An unset q counts as 1.0, as OpenSIPS's Q_UNSPECIFIED sorts.
    let q_of = |q: Option<i64>| q.unwrap_or(1000);
    let ruri = PendingBranch {
        uri: m.ruri().to_string(),
        duri: call.du.clone(),
        path: None,
        q: call.ru_q,
        flags: call.bflags,
        socket: call.socket_out,
    };
    let all_same = call.tm.branches.iter().all(|b| q_of(b.q) == q_of(ruri.q));
    if all_same && !keep_order {
        return None;
    }
    let mut list: Vec<PendingBranch> = std::iter::once(ruri)
        .chain(call.tm.branches.iter().cloned())
        .collect();
    if !keep_order {
        // Stable: equal q-values keep the R-URI first, then append order.
        list.sort_by_key(|b| std::cmp::Reverse(q_of(b.q)));
    }
    let n = list.len();
    let qs: Vec<i64> = list.iter().map(|b| q_of(b.q)).collect();
    Some(
        list.into_iter()
            .enumerate()
            .map(|(i, branch)| Serial {
                branch,
                last: keep_order || i + 1 == n || qs[i + 1] != qs[i],
            })
            .collect(),
    )
}

/// `serialize_branches(clear_prev [, keep_order])`.
fn serialize_branches(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let clear = a.int(0)? != 0;
    let keep_order = a.opt_int(1)?.unwrap_or(0) != 0;
    let mut call = st.call.borrow_mut();
    if call.msg.as_ref().is_none_or(|m| !m.is_request()) {
        return Err(a.err("needs a request"));
    }
    let Some(list) = order(&call, keep_order) else {
        return ret(lua, true);
    };
    let mut values: Vec<Value> = list.iter().map(|s| Value::Str(s.encode())).collect();
    let avp = call.avps.entry(SERIAL_AVP.to_string()).or_default();
    if !clear {
        // Older serialized branches come after these.
        values.append(avp);
    }
    *avp = values;
    call.tm.branches.clear();
    ret(lua, true)
}

/// `next_branches()`: true, 1 when more groups wait; true, 2 when this
/// was the last; false, -1 when nothing was left.
fn next_branches(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let mut call = st.call.borrow_mut();
    let call = &mut *call;
    let waiting = call.avps.remove(SERIAL_AVP).unwrap_or_default();
    let mut rest = waiting.into_iter().filter_map(|v| match v {
        Value::Str(s) => Serial::decode(&s),
        _ => None,
    });
    let Some(first) = rest.next() else {
        return Ok(MultiValue::from_iter([
            false.into_lua(lua)?,
            (-1).into_lua(lua)?,
        ]));
    };
    let m = call
        .msg
        .as_mut()
        .filter(|m| m.is_request())
        .ok_or_else(|| a.err("needs a request"))?;
    if crate::sip::Uri::parse(&first.branch.uri).is_ok() {
        m.set_ruri(&first.branch.uri);
    }
    call.du = first.branch.duri.clone();
    call.ru_q = first.branch.q;
    call.bflags = first.branch.flags;
    call.socket_out = first.branch.socket;
    let mut last = first.last;
    while !last {
        let Some(next) = rest.next() else { break };
        last = next.last;
        call.tm.branches.push(next.branch);
    }
    let left: Vec<Value> = rest.map(|s| Value::Str(s.encode())).collect();
    let more = !left.is_empty();
    if more {
        call.avps.insert(SERIAL_AVP.to_string(), left);
    }
    Ok(MultiValue::from_iter([
        true.into_lua(lua)?,
        (if more { 1 } else { 2 }).into_lua(lua)?,
    ]))
}

/// `remove_branch(idx)`: drops the idx-th `append_branch` branch (0 is the
/// first appended one; the R-URI branch is not in the set).
fn remove_branch(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let idx = a.int(0)?;
    let mut call = st.call.borrow_mut();
    let ok = match usize::try_from(idx) {
        Ok(i) if i < call.tm.branches.len() => {
            call.tm.branches.remove(i);
            true
        }
        _ => false,
    };
    ret(lua, ok)
}

pub static DSET: Module = Module {
    name: "core (destination set)",
    table: None,
    doc: "Destination set functions of OpenSIPS's core: removing a branch, serial forking by q-value.",
    exports: &[
        Export {
            name: "remove_branch",
            args: "(index)",
            returns: "true; false when there is no such branch",
            routes: RouteMask::ANY,
            doc: "Removes the `index`-th branch added by `append_branch` (0 is the first; the R-URI is not one of them), as `$branch(uri)[index]` numbers them.",
            func: Func::Sync(remove_branch),
        },
        Export {
            name: "serialize_branches",
            args: "(clear_prev [, keep_order])",
            returns: "true",
            routes: RouteMask::ANY,
            doc: "Prepares serial forking: the R-URI and the `append_branch` branches are ordered by q-value, highest first (or kept in their order with `keep_order` 1), grouped by equal q-value and kept aside in `$avp(serial_branches)`; the appended branches are cleared. `clear_prev` 1 drops what an earlier call kept. Nothing changes when there is no appended branch, or all have the R-URI's q-value and `keep_order` is 0.",
            func: Func::Sync(serialize_branches),
        },
        Export {
            name: "next_branches",
            args: "()",
            returns: "true, 1 when more groups wait; true, 2 for the last group; false, -1 when none was left",
            routes: RouteMask::REQUEST.or(RouteMask::FAILURE),
            doc: "Takes the next group of the serialized branches: its first becomes the R-URI (with its `$du`, q-value, branch flags and socket), the others `append_branch` branches; then `t_relay` forks to them. Call it again in the failure route for the next group.",
            func: Func::Sync(next_branches),
        },
    ],
    ..Module::NONE
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serialized_branch_reads_back() {
        let s = Serial {
            branch: PendingBranch {
                uri: "sip:a@h".into(),
                duri: Some("sip:p".into()),
                path: None,
                q: Some(500),
                flags: 9,
                socket: Some(1),
            },
            last: true,
        };
        assert_eq!(Serial::decode(&s.encode()), Some(s));
        assert_eq!(Serial::decode("x"), None);
    }
}
