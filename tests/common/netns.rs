//! Tests whose messages name hosts that are not ours run again inside a
//! network namespace that has only loopback (`unshare --net`), so nothing
//! they provoke can leave the machine.

/// Runs test `name` of this binary again in a loopback-only network
/// namespace; true when the caller is that run (then it does the work).
pub fn in_loopback_netns(name: &str) -> bool {
    super::in_netns(name, "")
}
