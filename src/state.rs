//! The modules' state, one value per type on the shared environment
//! (issue #11 item 5): not process globals, so two environments in one
//! process keep different settings for the same module.
//!
//! A [`Registry`] holds two maps keyed by type:
//! * **settings**, replaced whole in one step when a config is committed
//!   ([`Registry::install`]): a reload changes every module's settings at
//!   once, and a refused one changes nothing;
//! * **long-lived state** ([`Registry::state`]), made on first use and
//!   kept across reloads (dialogs in memory, ping cells, the replay cache).
//!
//! Every worker's `Env` carries the daemon's registry and serves it on
//! its thread ([`enter`]); threads a module starts take the registry of
//! the thread that started them ([`current`]). A module's accessor
//! (`dialog::conf()`) reads [`module`]. A leaf: it names no layer.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, RwLock};

type Map = HashMap<TypeId, Arc<dyn Any + Send + Sync>, BuildHasherDefault<TypeIdHasher>>;

/// A `TypeId` is already a hash of its type: these maps use its bits as
/// they are instead of running SipHash over them on every lookup (three
/// lookups per authenticated REGISTER).
#[derive(Default)]
struct TypeIdHasher(u64);

impl Hasher for TypeIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // TypeId hashes itself with write_u64; any other input is folded.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The modules' settings in force and their long-lived state.
#[derive(Default)]
pub struct Registry {
    settings: RwLock<Arc<Map>>,
    state: RwLock<Map>,
}

/// Settings being gathered from every module before they are installed
/// together ([`Registry::install`]).
#[derive(Default)]
pub struct Staged(Map);

impl Staged {
    /// Adds a module's settings (one value per type: a second replaces the
    /// first).
    pub fn put<T: Any + Send + Sync>(&mut self, v: T) {
        self.0.insert(TypeId::of::<T>(), Arc::new(v));
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    /// The settings of type `T` in force, or its default before any
    /// commit (or when the module's section was not given).
    pub fn module<T: Any + Send + Sync + Default>(&self) -> Arc<T> {
        self.get::<T>().unwrap_or_default()
    }

    /// The settings of type `T` in force, if committed.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let map = self
            .settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        map.get(&TypeId::of::<T>())
            .and_then(|v| v.clone().downcast::<T>().ok())
    }

    /// Replaces every module's settings in one step.
    pub fn install(&self, staged: Staged) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(staged.0);
    }

    /// The long-lived state of type `T`, made (`T::default()`) on first
    /// use and kept for the registry's life (reloads do not touch it).
    pub fn state<T: Any + Send + Sync + Default>(&self) -> Arc<T> {
        let id = TypeId::of::<T>();
        if let Some(v) = self
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            if let Ok(v) = v.clone().downcast::<T>() {
                return v;
            }
        }
        let mut w = self.state.write().unwrap_or_else(|e| e.into_inner());
        let v = w.entry(id).or_insert_with(|| Arc::new(T::default()));
        match v.clone().downcast::<T>() {
            Ok(v) => v,
            // Unreachable: the entry for `TypeId::of::<T>()` holds a `T`.
            Err(_) => Arc::new(T::default()),
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Registry>>> = const { RefCell::new(None) };
}

/// Serves `reg` on this thread until the guard is dropped (then the one
/// before it again).
pub fn enter(reg: Arc<Registry>) -> Entered {
    let prev = CURRENT.with(|c| c.replace(Some(reg)));
    Entered(prev)
}

/// Restores the registry served before [`enter`].
pub struct Entered(Option<Arc<Registry>>);

impl Drop for Entered {
    fn drop(&mut self) {
        let prev = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
    }
}

/// The registry this thread serves. A thread that entered none (a unit
/// test calling a function directly) gets one of its own, made on first
/// use: defaults, as before any commit.
pub fn current() -> Arc<Registry> {
    CURRENT.with(|c| c.borrow_mut().get_or_insert_with(Registry::new).clone())
}

/// `current().module::<T>()`: a module's settings in force on this thread.
pub fn module<T: Any + Send + Sync + Default>() -> Arc<T> {
    current().module::<T>()
}

/// `current().state::<T>()`: a module's long-lived state on this thread.
pub fn state<T: Any + Send + Sync + Default>() -> Arc<T> {
    current().state::<T>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq)]
    struct Conf(u32);

    #[test]
    fn two_registries_keep_their_own_settings() {
        let (a, b) = (Registry::new(), Registry::new());
        let mut s = Staged::default();
        s.put(Conf(1));
        a.install(s);
        let mut s = Staged::default();
        s.put(Conf(2));
        b.install(s);
        assert_eq!(*a.module::<Conf>(), Conf(1));
        assert_eq!(*b.module::<Conf>(), Conf(2));
        let _in_b = enter(b.clone());
        assert_eq!(*module::<Conf>(), Conf(2));
        {
            let _in_a = enter(a.clone());
            assert_eq!(*module::<Conf>(), Conf(1));
        }
        assert_eq!(*module::<Conf>(), Conf(2));
    }

    #[test]
    fn install_replaces_all_settings_and_keeps_state() {
        #[derive(Default)]
        struct Other;
        #[derive(Default)]
        struct Cells(std::sync::Mutex<Vec<u8>>);
        let r = Registry::new();
        let mut s = Staged::default();
        s.put(Conf(7));
        s.put(Other);
        r.install(s);
        r.state::<Cells>().0.lock().unwrap().push(1);
        let mut s = Staged::default();
        s.put(Conf(8));
        r.install(s);
        assert_eq!(*r.module::<Conf>(), Conf(8));
        assert!(
            r.get::<Other>().is_none(),
            "settings not staged again are gone"
        );
        assert_eq!(*r.state::<Cells>().0.lock().unwrap(), vec![1]);
        assert_eq!(Registry::new().module::<Conf>().0, 0);
    }
}
