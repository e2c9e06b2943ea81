//! What dialog tracking and accounting will subscribe to instead of
//! editing the response path: every transaction's branches going out,
//! replies coming in, and its final response to the caller.

use std::any::Any;
use std::sync::Arc;

use crate::sip::Message;

use super::Txn;

/// A subscriber to transaction events. Methods run on the worker that
/// handles the event, with the transaction locked: they must be quick and
/// must not lock it again (copy what they need, act later).
pub trait Observer: Send + Sync {
    /// Branch `branch` of `t` was sent (`t.branches[branch]`).
    fn request_out(&self, _t: &Txn, _branch: usize) {}
    /// A reply arrived on branch `branch`, before any reply route runs.
    fn reply_in(&self, _t: &Txn, _branch: usize, _reply: &Message) {}
    /// The final response `code` went to the caller, received or made here
    /// (a timeout's 408, `t_reply`).
    fn completed(&self, _t: &Txn, _code: u16) {}
    /// A CANCEL was answered here (`code`: 200 when its INVITE is known,
    /// else 481), `data`: what modules attached to the CANCEL's request
    /// (OpenSIPS gives the CANCEL a transaction of its own; its reply is
    /// what acc's `report_cancels` accounts).
    fn cancel_answered(&self, _cancel: &Message, _data: &TxnData, _code: u16) {}
    /// A copy of the request route's request is being written for socket
    /// `sock` (each branch of `t_relay`, a stateless `forward`), after
    /// the branch route and before our Via and Record-Route go in: edits
    /// made here belong to this copy only (OpenSIPS builds lumps into
    /// each copy the same way). It may run with the transaction locked.
    fn copy_out(
        &self,
        _call: &mut crate::proxy::context::Call,
        _sock: &crate::transport::myself::SocketInfo,
    ) {
    }
    /// A received reply of branch `branch` is about to go upstream, our
    /// Via already removed (OpenSIPS TMCB_RESPONSE_FWDED): edits made
    /// here are what the caller sees.
    fn reply_out(&self, _t: &Txn, _branch: usize, _reply: &mut Message) {}
}

/// Per-transaction data modules attach to a request before `t_relay`
/// (through `Call::tm.data`): the transaction keeps it, and observers find
/// theirs by type (dialog puts its dialog there, accounting its marks).
/// Each entry is shared, so copying the set is a few reference counts.
#[derive(Clone, Default)]
pub struct TxnData(Vec<Arc<dyn Any + Send + Sync>>);

impl TxnData {
    /// The entry of type `T`, if a module attached one.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.0.iter().find_map(|v| v.downcast_ref::<T>())
    }

    /// Attaches `v`, replacing an entry of the same type.
    pub fn set<T: Any + Send + Sync>(&mut self, v: T) {
        self.0.retain(|e| !e.is::<T>());
        self.0.push(Arc::new(v));
    }

    /// Detaches the entry of type `T`.
    pub fn remove<T: Any + Send + Sync>(&mut self) {
        self.0.retain(|e| !e.is::<T>());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for TxnData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TxnData({})", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txn_data_keeps_one_entry_per_type() {
        let mut d = TxnData::default();
        assert!(d.get::<u32>().is_none() && d.is_empty());
        d.set(7u32);
        d.set(String::from("x"));
        d.set(8u32);
        assert_eq!(d.get::<u32>(), Some(&8));
        assert_eq!(d.get::<String>().map(String::as_str), Some("x"));
    }
}
