//! cfgutils' script locks (OpenSIPS 3.4 `modules/cfgutils/script_locks.c`):
//! static locks (one per name) and a pool of dynamic locks a string hashes
//! onto, shared by every worker.
//!
//! lunasip differs on purpose where OpenSIPS's spin locks would block:
//! * A lock belongs to the route invocation (the call) that took it, not
//!   to the worker. A route that finds it held suspends (where it can:
//!   request, failure, timer routes) until the holder releases it, so the
//!   worker serves other messages meanwhile, including the holder if it is
//!   suspended on the same worker. Where a route cannot suspend (branch,
//!   reply, local, startup, event routes) `get_*_lock` takes a free lock or
//!   returns false at once.
//! * A lock may stay held across a suspension of its holder (a DB query, a
//!   sleep): others wait for it, bounded by `resume_timeout`.
//! * Taking a lock the route already holds is a no-op (OpenSIPS
//!   deadlocks), and the locks a route still holds when its call ends are
//!   released then, with a warning (OpenSIPS keeps them forever).

use mlua::{Lua, MultiValue};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::script::exports::{ret, Args, Step};
use crate::script::host::State;

/// One lock: who holds it (a call's token) and who waits.
#[derive(Default)]
pub struct Lock {
    holder: Mutex<Option<u64>>,
    freed: tokio::sync::Notify,
}

impl Lock {
    fn try_take(&self, token: u64) -> bool {
        let mut h = self.holder.lock().unwrap_or_else(|e| e.into_inner());
        match *h {
            None => {
                *h = Some(token);
                true
            }
            Some(t) => t == token,
        }
    }

    fn release(&self, token: u64) -> bool {
        let mut h = self.holder.lock().unwrap_or_else(|e| e.into_inner());
        if *h != Some(token) {
            return false;
        }
        *h = None;
        drop(h);
        self.freed.notify_one();
        true
    }

    /// Waits until `token` holds it.
    async fn take(&self, token: u64) {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.try_take(token) {
                return;
            }
            freed.await;
        }
    }
}

/// The script locks of one registry, shared by its workers (long-lived
/// state in the module registry).
#[derive(Default)]
struct Locks {
    by_name: Mutex<HashMap<String, Arc<Lock>>>,
    /// `lock_pool_size` dynamic locks, made when the first is used.
    pool: OnceLock<Vec<Arc<Lock>>>,
}

fn locks() -> Arc<Locks> {
    crate::state::state::<Locks>()
}

/// Hands out the owner tokens of locks (unique in the process).
static TOKENS: AtomicU64 = AtomicU64::new(1);

fn static_lock(name: &str) -> Arc<Lock> {
    let l = locks();
    let mut map = l.by_name.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(name.to_string()).or_default().clone()
}

/// The dynamic lock a string maps to.
fn dynamic_lock(s: &str) -> Arc<Lock> {
    let l = locks();
    let pool = l.pool.get_or_init(|| {
        // `lock_pool_size`: fixed once the first dynamic lock is used.
        (0..super::conf().pool.max(1))
            .map(|_| Arc::default())
            .collect()
    });
    pool[slot_of(s, pool.len())].clone()
}

/// The slot of a string in a pool of `n` (FNV-1a; OpenSIPS's `core_hash`
/// differs, so which strings share a lock differs too).
fn slot_of(s: &str, n: usize) -> usize {
    let h = s
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    (h % n as u64) as usize
}

/// The locks a call holds; released when the call's state is dropped.
#[derive(Default)]
pub struct Held {
    token: u64,
    locks: Vec<Arc<Lock>>,
}

impl Held {
    fn token(&mut self) -> u64 {
        if self.token == 0 {
            self.token = TOKENS.fetch_add(1, Ordering::Relaxed);
        }
        self.token
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let left = self.locks.iter().filter(|l| l.release(self.token)).count();
        if left > 0 {
            tracing::warn!("cfgutils: a route ended holding {left} script lock(s); released");
        }
    }
}

fn get(lua: &Lua, st: &Rc<State>, a: &Args, lock: Arc<Lock>) -> mlua::Result<Step> {
    let token = st.call.borrow_mut().slot::<Held>().token();
    // Free (or held by this route already): taken at once. Else the
    // route waits for it where it can suspend, and fails where not.
    if lock.try_take(token) {
        hold(st, lock);
        return Step::now(ret(lua, true));
    }
    if !a.suspendable {
        return Step::now(ret(lua, false));
    }
    let (lua, st) = (lua.clone(), st.clone());
    Step::wait(async move {
        lock.take(token).await;
        hold(&st, lock);
        ret(&lua, true)
    })
}

/// Remembers a lock the route took, to release it when the route ends.
fn hold(st: &State, lock: Arc<Lock>) {
    let mut call = st.call.borrow_mut();
    let held = call.slot::<Held>();
    if !held.locks.iter().any(|l| Arc::ptr_eq(l, &lock)) {
        held.locks.push(lock);
    }
}

fn release(lua: &Lua, st: &State, lock: &Arc<Lock>) -> mlua::Result<MultiValue> {
    let mut call = st.call.borrow_mut();
    let held = call.slot::<Held>();
    let token = held.token();
    let ok = lock.release(token);
    held.locks.retain(|l| !Arc::ptr_eq(l, lock));
    ret(lua, ok)
}

pub fn get_static_lock(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    let lock = static_lock(&a.str(0)?);
    get(lua, st, &a, lock)
}

pub fn get_dynamic_lock(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    let lock = dynamic_lock(&a.str(0)?);
    get(lua, st, &a, lock)
}

pub fn release_static_lock(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    release(lua, st, &static_lock(&a.str(0)?))
}

pub fn release_dynamic_lock(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    release(lua, st, &dynamic_lock(&a.str(0)?))
}

pub fn strings_share_lock(lua: &Lua, _: &State, a: Args) -> mlua::Result<MultiValue> {
    ret(
        lua,
        Arc::ptr_eq(&dynamic_lock(&a.str(0)?), &dynamic_lock(&a.str(1)?)),
    )
}
