//! The Lua API reference (`docs/lua-api.md`), generated from the module
//! export tables and the pseudo-variable registry so it cannot drift from
//! the code. `tests/docs.rs` checks the committed file is current.

use std::fmt::Write;

/// Markdown for every Lua-visible function and pseudo-variable.
pub fn lua_api_markdown() -> String {
    // The modules' pseudo-variables and statistics join the registries.
    crate::modules::register();
    let mut out = String::new();
    out.push_str("# lunasip Lua API\n\n");
    out.push_str("<!-- Generated from src/modules/*, src/script/api.rs, src/pv/*.rs and src/pv/tr/*.rs by\n     `UPDATE_DOCS=1 cargo test --test docs`. Do not edit by hand. -->\n\n");
    out.push_str("Everything lunasip offers a script is under the global table `sip` (also `require \"sip\"`).\n");
    out.push_str("Functions keep OpenSIPS's names and argument order. Yes/no results are `true`/`false`; where\n");
    out.push_str("OpenSIPS distinguishes several negative codes the code is a second result. A misuse raises a Lua\n");
    out.push_str(
        "error naming the function; the engine logs it with the script line and answers 500.\n\n",
    );
    out.push_str("Route types: `route` (requests), `onreply_route` (replies), `failure_route`, `branch_route`,\n");
    out.push_str(
        "`local_route`, `startup_route`, `timer_route`, `event_route`, `error_route`.\n\n",
    );
    out.push_str("`local_route.main` sees each request lunasip originates (dispatcher probes) before it is sent:\n");
    out.push_str("it may add headers, set `$du`, or `sip.drop()` the request. As in OpenSIPS, the CANCELs and\n");
    out.push_str("ACKs the transaction layer builds itself do not pass through it.\n\n");
    for m in crate::modules::ALL {
        let _ = writeln!(out, "## {} — {}\n", m.name, m.doc);
        out.push_str("| function | returns | allowed in | what it does |\n|---|---|---|---|\n");
        for e in m.exports {
            let _ = writeln!(
                out,
                "| `{}{}` | {} | {} | {} |",
                m.full_name(e),
                e.args,
                e.returns,
                e.routes.names(),
                e.doc.replace('|', "\\|")
            );
        }
        out.push('\n');
    }
    out.push_str("## Pseudo-variables — `sip.pv`\n\n");
    out.push_str("| function | returns | what it does |\n|---|---|---|\n");
    out.push_str("| `sip.pv.get(spec)` | value or nil | Reads a pseudo-variable: `sip.pv.get(\"$ru\")`, `sip.pv.get(\"$(hdr(Via)[1])\")`. |\n");
    out.push_str("| `sip.pv.set(spec, value)` | nothing | Writes a writable pseudo-variable; nil clears where OpenSIPS allows `= NULL`. |\n");
    out.push_str("| `sip.pv.fmt(format)` | string | Expands a string the way `xlog` does (`\"$rm from $si\"`); with `{ip.resolve}` of a name not cached, the route waits for the lookup where it can. |\n");
    out.push_str("| `sip.pv.NAME`, `sip.pv.NAME = v` | value or nil | Sugar for `$NAME` (`sip.pv.ru`, `sip.pv.du = \"sip:…\"`). |\n");
    out.push_str("| `sip.var.NAME`, `sip.var.NAME = v` | value or nil | Script variables (`$var(NAME)`), per worker. |\n");
    out.push_str("| `sip.avp.NAME`, `sip.avp.NAME = v` | value or nil | AVPs (`$avp(NAME)`), per message: reads the newest value, a write adds one, nil deletes the newest. |\n");
    out.push_str("| `sip.pv.assign(spec, op, value)` | nothing | OpenSIPS assignment operators: `=`, `:=` (AVP: replace all), `+=` (numbers add, text appends), `-=`, `*=`, `/=`, `%=`, `&=`, `\\|=`, `^=`. |\n");
    out.push_str("| `sip.tr(value, chain)` | value or nil | Applies transformations to any value: `sip.tr(\"sip:a@b\", \"{uri.user}{s.len}\")`. |\n");
    out.push_str("| `sip.re_match(s, re [, flags])` | boolean | OpenSIPS `=~`: POSIX extended regex, flag `i` ignores case; patterns are compiled once and cached. `not sip.re_match(…)` is `!~`. |\n");
    out.push_str("| `sip.launch(f)` | true | OpenSIPS 3.x `launch(func(...), report_route)`: runs `f` at once as a route of its own on a call with no message, and the calling route goes on without waiting; when `f` waits on I/O the worker resumes it when the answer comes (bounded by `resume_timeout`). Put the function and the report route in `f`. |\n");
    out.push_str("| `sip.bit.band(a, b)`, `bor`, `bxor`, `lshift`, `rshift`, `sip.bit.bnot(a)` | number, string or nil | OpenSIPS's `&`, `\\|`, `^`, `<<`, `>>`, `~` (Lua 5.1 has no bitwise operators): numbers are 32-bit signed as OpenSIPS's `int`, a nil right operand is 0, a nil left operand gives nil, `band`/`bor`/`bxor` of two strings of one length work byte by byte. |\n| `sip.bit.div(a, b)`, `sip.bit.mod(a, b)` | number or nil | OpenSIPS's `/` and `%` on its `int`: truncated as C's (`-7 / 2` is -3, `-7 % 3` is -1), a nil right operand is 0, a zero divisor logs \"divide by 0\" and gives nil. |\n\n");
    out.push_str("Specs, transformations and the differences from OpenSIPS are described in `docs/pseudo-variables.md` and `docs/transformations.md`.\n\n");
    out.push_str("| variable | writable | meaning |\n|---|---|---|\n");
    for d in crate::pv::all() {
        let name = if d.takes_inner {
            format!("${}(name)", d.name)
        } else {
            format!("${}", d.name)
        };
        let _ = writeln!(
            out,
            "| `{name}` | {} | {} |",
            if d.set.is_some() { "yes" } else { "no" },
            d.doc.replace('|', "\\|")
        );
    }
    out.push_str("\n## Transformations — `{class.name,args}`\n\n");
    out.push_str("| transformation | what it gives |\n|---|---|\n");
    for t in crate::pv::tr::all() {
        let _ = writeln!(
            out,
            "| `{{{}{}}}` | {} |",
            t.name,
            t.args_doc.replace('|', "\\|"),
            t.doc.replace('|', "\\|")
        );
    }
    out
}

/// docs/modules.md: each module's surface as its [`Module`] declares it,
/// with a table of its `config.modules.<name>` keys.
///
/// [`Module`]: crate::modules::Module
pub fn modules_markdown() -> String {
    let mut out = String::from("# Modules\n\n");
    out.push_str("<!-- Generated from the `Module` values of src/modules/* by\n     `UPDATE_DOCS=1 cargo test --test docs`. Do not edit by hand. -->\n\n");
    out.push_str(
        "Each module declares its whole surface once, in a `Module` value (as an OpenSIPS\n",
    );
    out.push_str("module's `module_exports`): Lua functions (`exports`, see lua-api.md), MI commands (`mi`,\n");
    out.push_str(
        "see mi.md), pseudo-variables (`pvs`), statistics (`stats`, group named after the module, see statistics.md), events (`events`,\n",
    );
    out.push_str("raised from one call site each, see `events_list`), the\n");
    out.push_str("keys it reads from `config.modules.<name>` (`params`; any other key is an error at `lunasip check`) and lifecycle hooks: `init` (once per\n");
    out.push_str("process, after the first config is committed), `child_init` (in each SIP worker once it is\n");
    out.push_str("ready; rank 0 runs `startup_route`) and `shutdown`. A new module is a file or folder under src/modules/\n");
    out.push_str("and one line in the `modules!` list of src/modules/mod.rs.\n");
    for m in crate::modules::ALL {
        let _ = write!(out, "\n## {} — {}\n\n", m.name, m.doc);
        let names: Vec<String> = m
            .exports
            .iter()
            .map(|e| format!("`{}`", m.full_name(e)))
            .collect();
        let list = |v: Vec<String>| match v.is_empty() {
            true => "—".to_string(),
            false => v.join(", "),
        };
        let _ = writeln!(out, "* Lua: {}", list(names));
        let mi = m.mi.iter().map(|c| format!("`{}`", c.name)).collect();
        let _ = writeln!(out, "* MI: {}", list(mi));
        let pvs = m.pvs.iter().map(|d| format!("`${}`", d.name)).collect();
        let _ = writeln!(out, "* pseudo-variables: {}", list(pvs));
        let stats = m
            .stats
            .iter()
            .map(|s| format!("`{}:{}`", m.name, s.name))
            .collect();
        let _ = writeln!(out, "* statistics: {}", list(stats));
        let events = m
            .events
            .iter()
            .map(|e| format!("`{}` ({}): {}", e.name, e.params.join(", "), e.doc))
            .collect();
        let _ = writeln!(out, "* events: {}", list(events));
        let hooks: Vec<String> = [
            ("init", m.init.is_some()),
            ("child_init", m.child_init.is_some()),
            ("shutdown", m.shutdown.is_some()),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(h, _)| format!("`{h}`"))
        .collect();
        let _ = writeln!(out, "* hooks: {}", list(hooks));
        if m.params.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "\n| `config.modules.{}` key | type | default | meaning |\n|---|---|---|---|\n",
            m.name
        );
        for p in m.params {
            let also: String = p.also.iter().map(|a| format!(", `{a}`")).collect();
            let _ = writeln!(
                out,
                "| `{}`{also} | {} | {} | {} |",
                p.name,
                p.kind.name(),
                p.default.replace('|', "\\|"),
                p.doc.replace('|', "\\|")
            );
        }
    }
    out
}
