//! What dialog tracking and accounting will subscribe to instead of
//! editing the response path: every transaction's branches going out,
//! replies coming in, and its final response to the caller.

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
}
