//! `{ip.resolve}` without blocking: the transformation answers from the
//! worker's DNS cache and leaves an uncached name wanted
//! (`transport::dns::wanted`). Reads that can take the answer later —
//! `sip.pv` reads, `sip.pv.fmt` and `sip.tr` with the transformation in them — then
//! suspend the route until the name is looked up and read again. Elsewhere
//! (formats such as `xlog`'s, routes that cannot wait) the read keeps its
//! null, the name is looked up in the background for the next call, and a
//! warning names the script line.

use mlua::{Function, Lua, MultiValue};

use super::host::State;
use crate::transport::dns::wanted;

/// Whether a spec, format or chain can leave names wanted (looked at once
/// per spec; a chain per call, it is short).
pub fn may_want(text: &str) -> bool {
    text.as_bytes()
        .windows(10)
        .any(|w| w.eq_ignore_ascii_case(b"ip.resolve"))
}

/// A read `now(...)` that returns `(value, wanted)`, as Lua calls it:
/// while it wanted names, wait for them (`block`) and read again (a
/// resolved name may lead to another: a few rounds at most).
const AGAIN: &str = r#"
return function(now, block)
  return function(...)
    local v, w = now(...)
    for _ = 1, 3 do
      if not w then break end
      block()
      v, w = now(...)
    end
    return v
  end
end
"#;

/// After a read: true when it wanted names and the route can wait for
/// them (the lookup is then what `block` awaits); else the names are
/// looked up in the background.
pub fn settle(lua: &Lua, st: &State) -> bool {
    if !wanted::any() {
        return false;
    }
    let hops = wanted::take();
    if st.suspendable.get() {
        st.set_waiting(Box::pin(async move {
            wanted::lookup(hops).await;
            Ok(MultiValue::new())
        }));
        return true;
    }
    nowait(lua, hops);
    false
}

/// After a read that cannot wait: look the names up for next time.
pub fn settle_nowait(lua: &Lua) {
    if wanted::any() {
        nowait(lua, wanted::take());
    }
}

fn nowait(lua: &Lua, hops: Vec<crate::transport::dns::Hop>) {
    let names: Vec<&str> = hops.iter().map(|h| h.host.as_str()).collect();
    let msg = format!(
        "{{ip.resolve}}: {} not cached and this read cannot wait (null; looked up for next time)",
        names.join(", ")
    );
    tracing::warn!("{}", super::api::describe_located(lua, &msg));
    wanted::prefetch(hops);
}

/// Wraps `now` (returning `(value, wanted)`) into a Lua function that
/// waits (the shared `await`, script/calls.rs) and reads again.
pub fn again(lua: &Lua, now: Function) -> mlua::Result<Function> {
    let make: Function = lua.load(AGAIN).set_name("=prelude").eval()?;
    make.call((now, super::calls::await_fn(lua)?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn may_want_finds_the_transformation_in_any_case() {
        assert!(super::may_want("$(var(h){ip.resolve})"));
        assert!(super::may_want("{IP.Resolve}"));
        assert!(!super::may_want("$(var(h){ip.isip})"));
        assert!(!super::may_want("$ru"));
    }
}
