//! The fixed-size list of actions a state machine returns per event, so
//! handling an event never allocates.

/// Up to `N` actions, in the order they were produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionList<A: Copy, const N: usize> {
    items: [Option<A>; N],
}

impl<A: Copy, const N: usize> Default for ActionList<A, N> {
    fn default() -> Self {
        ActionList { items: [None; N] }
    }
}

impl<A: Copy + PartialEq, const N: usize> ActionList<A, N> {
    pub(super) fn push(&mut self, a: A) {
        let slot = self.items.iter_mut().find(|s| s.is_none());
        debug_assert!(slot.is_some(), "more than {N} actions for one event");
        if let Some(slot) = slot {
            *slot = Some(a);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = A> + '_ {
        self.items.iter().flatten().copied()
    }

    /// Takes every `a` out of the list.
    pub fn remove(&mut self, a: A) {
        for s in &mut self.items {
            if *s == Some(a) {
                *s = None;
            }
        }
    }

    pub fn contains(&self, a: A) -> bool {
        self.iter().any(|x| x == a)
    }
}
