use super::*;

#[test]
fn client_over_http_and_fifo() {
    let m = start_with(&answering("OK"), "");
    type Cli = fn(&Mi, &[&str]) -> (bool, Value, String);
    for cli_call in [cli_http as Cli, cli_fifo] {
        let (ok, v, err) = cli_call(&m, &["uptime"]);
        assert!(ok, "{err}");
        assert!(v["Up time"].is_string(), "{v}");
        let (ok, v, _) = cli_call(&m, &["which", "help"]);
        assert!(ok);
        assert_eq!(v, json!([[], ["mi_cmd"]]));
        let (ok, v, _) = cli_call(&m, &["help", "mi_cmd=ps"]);
        assert!(ok);
        assert_eq!(v["Exported by"], "core");
        // Positional values after the first fill the array parameter.
        let (ok, v, _) = cli_call(&m, &["get_statistics", "core:", "sl:"]);
        assert!(ok);
        assert!(
            v["core:rcv_requests"].is_u64() && v["sl:2xx_replies"].is_u64(),
            "{v}"
        );
        let (ok, v, _) = cli_call(&m, &["get_statistics", "statistics=[\"all\"]"]);
        assert!(ok);
        assert!(v["memory:rss_size"].as_u64().unwrap() > 0, "{v}");
        let (ok, v, _) = cli_call(&m, &["reset_statistics", "nope"]);
        assert!(!ok);
        assert_eq!(v["code"], 404);
        let (ok, v, _) = cli_call(&m, &["log_level", "-1"]);
        assert!(ok);
        assert_eq!(v, json!({"New global log level": -1}));
    }
    // A raw FIFO request without a reply FIFO runs and answers nobody;
    // garbage is ignored; the FIFO keeps serving.
    {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(&m.fifo)
            .unwrap();
        w.write_all(b"::{\"jsonrpc\":\"2.0\",\"method\":\"log_level\",\"params\":[4],\"id\":1}\nnot a request\n:x:{broken\n").unwrap();
    }
    eventually("the FIFO request without reply to run", || {
        result(m.port, "log_level", json!([]))["Processes"][0]["Log level"] == 4
    });
    let (ok, v, _) = cli_fifo(&m, &["version"]);
    assert!(ok && v["Server"].is_string());
    let meta = std::fs::metadata(&m.fifo).unwrap();
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    assert!(meta.file_type().is_fifo());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let fifo = m.fifo.clone();
    drop(m);
    eventually("the FIFO to be removed at exit", || !fifo.exists());
}

/// `lunasip mi … | head`: the reader goes away before the client prints;
/// the client ends quietly (no "failed printing to stdout" panic) and
/// still says whether the command itself succeeded.
#[test]
fn client_output_into_a_closed_pipe_ends_quietly() {
    let m = start_with(&answering("OK"), "");
    let url = format!("http://127.0.0.1:{}/mi", m.port);
    for args in [&["get_statistics", "all"][..], &["nope"][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lunasip"))
            .args(["mi", "--url", &url])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before the client has anything to print.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{err}"
        );
        assert_eq!(out.status.success(), args[0] != "nope", "{args:?}: {err}");
    }
}

/// OpenSIPS 2.x's FIFO text format beside the JSON one (2.4
/// `modules/mi_fifo/`): `:command:reply_fifo`, one argument per line, an
/// empty line; the reply `200 OK` and `name:: value` lines.
#[test]
fn fifo_accepts_the_2x_text_format() {
    let m = start_with(&answering("OK"), "");
    let up = fifo_text(&m, "r_uptime", ":uptime:r_uptime\n\n");
    assert!(up.starts_with("200 OK\n"), "{up}");
    assert!(up.contains("\nUp time:: "), "{up}");
    assert!(up.ends_with(" [sec]\n\n"), "{up}");
    let lvl = fifo_text(&m, "r_level", ":log_level:r_level\n4\n\n");
    assert_eq!(lvl, "200 OK\nNew global log level:: 4\n\n");
    assert_eq!(
        result(m.port, "log_level", json!([]))["Processes"][0]["Log level"],
        4
    );
    let ps = fifo_text(&m, "r_ps", ":ps:r_ps\n\n");
    assert!(
        ps.contains("Processes:: \n\tID:: ") || ps.contains("Processes:: \n\tPID:: "),
        "{ps}"
    );
    let none = fifo_text(&m, "r_none", ":no_such_command:r_none\n\n");
    assert!(none.starts_with("500 ") && none.ends_with("\n\n"), "{none}");
    let reset = fifo_text(
        &m,
        "r_reset",
        ":reset_statistics:r_reset\ncore:rcv_requests\n\n",
    );
    assert_eq!(reset, "200 OK\n\n");
    let missing = fifo_text(&m, "r_miss", ":reset_statistics:r_miss\nno:such\n\n");
    assert_eq!(missing, "404 Statistics Not Found\n\n");
    // The JSON form still works on the same FIFO.
    let (ok, v, _) = cli_fifo(&m, &["version"]);
    assert!(
        ok && v["Server"]
            .as_str()
            .is_some_and(|s| s.starts_with("lunasip"))
    );
}
