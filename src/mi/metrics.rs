//! `GET /metrics`: every statistic in the Prometheus text format (0.0.4),
//! named as OpenSIPS's prometheus module names them: `lunasip_<group>_<name>`.

use crate::stats::{self, StatKind};

/// Prometheus-safe metric name for `group:name`.
pub fn metric_name(group: &str, name: &str) -> String {
    let mut out = String::from("lunasip_");
    for c in group
        .chars()
        .chain(std::iter::once('_'))
        .chain(name.chars())
    {
        out.push(if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        });
    }
    out
}

/// The whole exposition text.
pub fn render() -> String {
    let mut out = String::with_capacity(4096);
    stats::each_stat(|s| {
        let m = metric_name(s.group, s.name);
        let kind = match s.kind {
            StatKind::Counter => "counter",
            StatKind::Gauge => "gauge",
        };
        out.push_str(&format!(
            "# HELP {m} {}:{}\n# TYPE {m} {kind}\n{m} {}\n",
            s.group, s.name, s.value
        ));
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_text() {
        assert_eq!(metric_name("sl", "1xx_replies"), "lunasip_sl_1xx_replies");
        assert_eq!(metric_name("my-grp", "a.b"), "lunasip_my_grp_a_b");
        let t = render();
        assert!(t.contains("# TYPE lunasip_core_rcv_requests counter\nlunasip_core_rcv_requests "));
    }
}
