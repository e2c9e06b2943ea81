//! Tests whose messages name hosts that are not ours run again inside a
//! network namespace that has only loopback (`unshare --net`), so nothing
//! they provoke can leave the machine.

use std::process::Command;

const IN_NETNS: &str = "LUNASIP_TEST_IN_NETNS";

/// Runs test `name` of this binary again in a loopback-only network
/// namespace; true when the caller is that run (then it does the work).
pub fn in_loopback_netns(name: &str) -> bool {
    if std::env::var_os(IN_NETNS).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new("unshare")
        .args([
            "--net",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ])
        .arg(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(IN_NETNS, "1")
        .output()
        .expect("unshare (util-linux) runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "in the namespace:\n{text}");
    assert!(text.contains("1 passed"), "the test did not run:\n{text}");
    false
}
