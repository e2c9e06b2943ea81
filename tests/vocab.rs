//! Drift between the daemon and the `vocab` crate: every function, pseudo-
//! variable and transformation the daemon registers has a vocab entry that
//! agrees with it, and vocab lists nothing the daemon lacks.

use std::collections::HashSet;

use lunasip::modules::ALL;

/// (required, total) arguments of a docs signature like
/// `(set, alg [, flags [, partition]])` or `([level,] format)`.
fn arity(sig: &str) -> (usize, usize) {
    let inner = sig.trim().trim_start_matches('(').trim_end_matches(')');
    let (mut depth, mut required, mut total) = (0usize, 0, 0);
    let mut in_arg = false;
    for c in inner.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' => in_arg = false,
            c if !c.is_whitespace() && !in_arg => {
                in_arg = true;
                total += 1;
                if depth == 0 {
                    required += 1;
                }
            }
            _ => {}
        }
    }
    (required, total)
}

#[test]
fn arity_reads_doc_signatures() {
    assert_eq!(arity("()"), (0, 0));
    assert_eq!(arity("([uri])"), (0, 1));
    assert_eq!(arity("([level,] format)"), (1, 2));
    assert_eq!(arity("(\"all\"|\"last\")"), (1, 1));
    assert_eq!(
        arity("(set, alg [, flags [, partition [, max_results]]])"),
        (2, 5)
    );
}

#[test]
fn every_export_has_a_vocab_function() {
    let mut bad = Vec::new();
    for m in ALL {
        for e in m.exports {
            let full = m.full_name(e);
            let Some(f) = vocab::function(&full) else {
                bad.push(format!(
                    "{full}: no vocab entry (crates/vocab/src/functions/)"
                ));
                continue;
            };
            if f.routes != e.routes {
                bad.push(format!(
                    "{full}: routes {} in the daemon, {} in vocab",
                    e.routes.names(),
                    f.routes.names()
                ));
            }
            let want = arity(e.args);
            if (f.min_args(), f.max_args()) != want {
                bad.push(format!(
                    "{full}: the daemon documents {} (required, total {want:?}), vocab has {:?}",
                    e.args, f.args
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "vocab is behind the daemon:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_vocab_function_is_registered() {
    let daemon: HashSet<String> = ALL
        .iter()
        .flat_map(|m| m.exports.iter().map(|e| m.full_name(e)))
        .collect();
    let mut seen = HashSet::new();
    for f in vocab::functions::all() {
        let full = f.full_name();
        assert!(
            daemon.contains(&full),
            "{full} is in vocab, not in the daemon"
        );
        assert!(seen.insert(full.clone()), "{full} twice in vocab");
    }
    assert_eq!(
        seen.len(),
        daemon.len(),
        "the daemon has functions vocab lacks"
    );
}

#[test]
fn pseudo_variables_agree() {
    lunasip::modules::register();
    let mut bad = Vec::new();
    for d in lunasip::pv::all() {
        let Some(v) = vocab::pseudo_variable(d.name) else {
            bad.push(format!(
                "${}: no vocab entry (crates/vocab/src/pv.rs)",
                d.name
            ));
            continue;
        };
        if (v.takes_inner, v.writable) != (d.takes_inner, d.set.is_some()) {
            bad.push(format!(
                "${}: (takes_inner, writable) ({}, {}) in the daemon, ({}, {}) in vocab",
                d.name,
                d.takes_inner,
                d.set.is_some(),
                v.takes_inner,
                v.writable
            ));
        }
        // Without its name in parentheses, a spec parses only when optional.
        if v.takes_inner
            && lunasip::pv::parse_spec(&format!("${}", d.name)).is_ok() != v.inner_optional
        {
            bad.push(format!("${}: inner_optional is wrong in vocab", d.name));
        }
    }
    for v in vocab::pv::ALL {
        if lunasip::pv::lookup(v.name).is_none() {
            bad.push(format!("${}: in vocab, not in the daemon", v.name));
        }
    }
    assert!(
        bad.is_empty(),
        "pseudo-variables drifted:\n{}",
        bad.join("\n")
    );
    assert_eq!(
        vocab::pv::ALL.len(),
        lunasip::pv::all().count(),
        "duplicates"
    );
}

#[test]
fn transformations_agree() {
    let mut bad = Vec::new();
    for d in lunasip::pv::tr::all() {
        let Some(v) = vocab::transformation(d.name) else {
            bad.push(format!(
                "{{{}}}: no vocab entry (crates/vocab/src/tr.rs)",
                d.name
            ));
            continue;
        };
        if (v.args, v.min_args, v.max_args) != (d.args_doc, d.min_args, d.max_args) {
            bad.push(format!(
                "{{{}}}: ({:?}, {}, {}) in the daemon, ({:?}, {}, {}) in vocab",
                d.name, d.args_doc, d.min_args, d.max_args, v.args, v.min_args, v.max_args
            ));
        }
    }
    for v in vocab::tr::ALL {
        if lunasip::pv::tr::lookup(v.name).is_none() {
            bad.push(format!("{{{}}}: in vocab, not in the daemon", v.name));
        }
    }
    assert!(
        bad.is_empty(),
        "transformations drifted:\n{}",
        bad.join("\n")
    );
    assert_eq!(
        vocab::tr::ALL.len(),
        lunasip::pv::tr::all().count(),
        "duplicates"
    );
}

#[test]
fn module_params_match_vocab() {
    // The rows crates/vocab/src/params.rs must hold, in the daemon's order.
    let mut daemon = Vec::new();
    for m in ALL {
        for p in m.params {
            let kind = match p.kind.name() {
                "int" => "Int",
                "str" => "Str",
                "bool" => "Bool",
                _ => "Table",
            };
            daemon.push(if p.also.is_empty() {
                format!("p(\"{}\", \"{}\", {kind}),", m.name, p.name)
            } else {
                let also: Vec<String> = p.also.iter().map(|a| format!("\"{a}\"")).collect();
                format!(
                    "aka(\"{}\", \"{}\", &[{}], {kind}),",
                    m.name,
                    p.name,
                    also.join(", ")
                )
            });
        }
    }
    let vocab: Vec<String> = vocab::params::ALL
        .iter()
        .map(|p| {
            let kind = format!("{:?}", p.kind);
            if p.also.is_empty() {
                format!("p(\"{}\", \"{}\", {kind}),", p.module, p.name)
            } else {
                let also: Vec<String> = p.also.iter().map(|a| format!("\"{a}\"")).collect();
                format!(
                    "aka(\"{}\", \"{}\", &[{}], {kind}),",
                    p.module,
                    p.name,
                    also.join(", ")
                )
            }
        })
        .collect();
    assert!(
        daemon == vocab,
        "crates/vocab/src/params.rs is behind the modules' params; its ALL should read:\n{}",
        daemon.join("\n")
    );
}
