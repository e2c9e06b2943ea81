//! Pseudo-variables (`$ru`, `$hdr(Via)`, `$(avp(x)[1])`): which take an
//! inner name, an index, and which a script may write. The daemon's drift
//! test keeps the list equal to `lunasip::pv::all()`.

/// One pseudo-variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pv {
    /// Name without `$` (`"ru"`, `"hdr"`, `"ct.fields"`).
    pub name: &'static str,
    /// Takes a name in parentheses: `$hdr(Via)`.
    pub takes_inner: bool,
    /// The name in parentheses may be left out (`$time`, `$socket_in`).
    pub inner_optional: bool,
    /// Reads an index: `$(hdr(Via)[1])`, `[-1]`, `[*]`.
    pub takes_index: bool,
    /// A script may assign it.
    pub writable: bool,
}

impl Pv {
    const fn ro(name: &'static str) -> Pv {
        Pv {
            name,
            takes_inner: false,
            inner_optional: false,
            takes_index: false,
            writable: false,
        }
    }

    const fn rw(name: &'static str) -> Pv {
        Pv {
            writable: true,
            ..Pv::ro(name)
        }
    }

    const fn inner(self) -> Pv {
        Pv {
            takes_inner: true,
            ..self
        }
    }

    const fn opt_inner(self) -> Pv {
        Pv {
            inner_optional: true,
            ..self.inner()
        }
    }

    const fn index(self) -> Pv {
        Pv {
            takes_index: true,
            ..self
        }
    }
}

const fn ro(name: &'static str) -> Pv {
    Pv::ro(name)
}

const fn rw(name: &'static str) -> Pv {
    Pv::rw(name)
}

/// Every pseudo-variable, in the daemon's documentation order.
pub static ALL: &[Pv] = &[
    ro("rm"),
    rw("ru"),
    rw("rU"),
    rw("rd"),
    rw("rp"),
    ro("fu"),
    ro("fU"),
    ro("fd"),
    ro("ft"),
    ro("tu"),
    ro("tU"),
    ro("td"),
    ro("tt"),
    ro("ci"),
    ro("cs"),
    ro("si"),
    ro("sp"),
    ro("pr"),
    ro("proto"),
    rw("du"),
    ro("rs"),
    ro("rr"),
    ro("ua"),
    ro("hdr").inner().index(),
    ro("hdrcnt").inner(),
    rw("ruri"),
    rw("ruri.user"),
    rw("ruri.domain"),
    rw("duri"),
    ro("from"),
    ro("from.user"),
    ro("from.domain"),
    ro("to"),
    ro("to.user"),
    ro("to.domain"),
    ro("src_ip"),
    ro("rP"),
    rw("ru_q"),
    ro("ou"),
    ro("ouri"),
    ro("oU"),
    ro("od"),
    ro("op"),
    ro("oP"),
    rw("dd"),
    rw("dp"),
    ro("dP"),
    ro("fn"),
    ro("tn"),
    ro("cl"),
    ro("cT"),
    ro("ct").index(),
    ro("ct.fields").inner().index(),
    ro("hdr_name").index(),
    ro("rb").opt_inner(),
    ro("mb"),
    ro("ml"),
    ro("mi"),
    rw("mf"),
    rw("bf"),
    rw("msg.flag").inner(),
    rw("branch.flag").inner(),
    ro("msg.is_request"),
    ro("msg.type"),
    ro("rr_params"),
    ro("socket_in").opt_inner(),
    rw("socket_out").opt_inner(),
    ro("Ri"),
    ro("Rp"),
    ro("af"),
    ro("ai"),
    ro("re"),
    ro("rt"),
    ro("di"),
    ro("dir"),
    ro("dip"),
    ro("pu"),
    ro("pU"),
    ro("pd"),
    ro("pn"),
    ro("path"),
    ro("au"),
    ro("Au"),
    ro("aU"),
    ro("ad"),
    ro("ar"),
    ro("adu"),
    ro("an"),
    ro("auth").inner(),
    rw("var").inner(),
    rw("avp").inner().index(),
    rw("shv").inner(),
    ro("time").opt_inner(),
    ro("Ts"),
    ro("Tsm"),
    ro("Tf"),
    ro("TS"),
    ro("pp"),
    ro("C").opt_inner(),
    ro("stat").inner(),
    rw("rc"),
    rw("retcode"),
    rw("log_level"),
    rw("xlog_level"),
    ro("route").index(),
    ro("route.type").index(),
    ro("route.name").index(),
    ro("cfg_line"),
    ro("cfg_file"),
    ro("argv").inner(),
    ro("param").inner(),
    ro("err.class"),
    ro("err.level"),
    ro("err.info"),
    ro("err.rcode"),
    ro("err.rreason"),
    rw("branch").inner().index(),
    ro("ds"),
    rw("cluster.sh_tag").inner(),
    ro("T_branch_idx"),
    ro("T_reply_code"),
    ro("T_ruri"),
    ro("T_id"),
    rw("T_fr_timeout"),
    rw("T_fr_inv_timeout"),
    ro("DLG_count"),
    ro("DLG_status"),
    ro("DLG_lifetime"),
    rw("DLG_flags"),
    ro("DLG_dir"),
    ro("DLG_did"),
    ro("DLG_end_reason"),
    rw("DLG_timeout"),
    rw("dlg_val").inner(),
    rw("acc_extra").inner(),
    rw("acc_leg").inner(),
    ro("TH_callee_callid"),
    rw("bavp").inner().index(),
    ro("null"),
];

/// Looks a pseudo-variable up by name, without `$` (`"hdr"`).
pub fn lookup(name: &str) -> Option<&'static Pv> {
    ALL.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let h = lookup("hdr").unwrap();
        assert!(h.takes_inner && h.takes_index && !h.inner_optional && !h.writable);
        let du = lookup("du").unwrap();
        assert!(du.writable && !du.takes_inner);
        let t = lookup("time").unwrap();
        assert!(t.takes_inner && t.inner_optional);
        assert!(lookup("avp").unwrap().writable);
        assert!(lookup("$ru").is_none() && lookup("nope").is_none());
    }

    #[test]
    fn names_are_unique_and_consistent() {
        for (i, p) in ALL.iter().enumerate() {
            assert!(!ALL[..i].iter().any(|q| q.name == p.name), "{}", p.name);
            assert!(p.takes_inner || !p.inner_optional, "{}", p.name);
        }
    }
}
