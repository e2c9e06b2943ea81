//! tm's `tw_append` (OpenSIPS 3.4 modules/tm/t_fifo.c `parse_tw_append`,
//! `append2buf`): named lists of `title=$pv` elements that `t_write_req`
//! and `t_write_unix` add, as `title: value` lines, to the lines they
//! write when their `info` is `action/append_name`; an element that is
//! only `$rb` adds the request body (also for requests other than INVITE).

/// One `tw_append`: `name: title=$pv; title2=$pv2; $rb`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwAppend {
    pub name: String,
    /// The body is written (t_fifo.c `add_body`).
    pub add_body: bool,
    /// (title, pseudo-variable spec as written).
    pub elems: Vec<(String, String)>,
}

/// Parses one `tw_append` value; errors say where it is wrong.
pub fn parse(text: &str) -> Result<TwAppend, String> {
    let bad = |why: &str| format!("tw_append '{text}': {why}");
    let (name, rest) = text
        .split_once(':')
        .ok_or_else(|| bad("no ':' after the name"))?;
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(bad("bad name"));
    }
    let mut app = TwAppend {
        name: name.to_string(),
        add_body: false,
        elems: Vec::new(),
    };
    for el in rest.split(';') {
        let el = el.trim();
        if el.is_empty() {
            return Err(bad("empty element"));
        }
        match el.split_once('=') {
            Some((title, pv)) => {
                let (title, pv) = (title.trim(), pv.trim());
                if title.is_empty() || title.contains(char::is_whitespace) {
                    return Err(bad(&format!("bad title in '{el}'")));
                }
                crate::pv::parse_spec(pv).map_err(|e| bad(&format!("'{pv}': {e}")))?;
                app.elems.push((title.to_string(), pv.to_string()));
            }
            // A short element: the body only (t_fifo.c: PVT_MSG_BODY).
            None if matches!(el, "$rb" | "$(rb)") => app.add_body = true,
            None => {
                return Err(bad(&format!(
                    "'{el}' is neither title=$pv nor $rb"
                )))
            }
        }
    }
    Ok(app)
}

/// `config.modules.tm.tw_append`: one string or a list of them.
#[derive(Debug, Default)]
pub struct TwAppends(pub Vec<TwAppend>);

/// Read from `config.modules.tm`; committed as [`TwAppends`].
#[derive(Debug)]
pub struct Prepared(Vec<TwAppend>);

pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    const M: &str = "tm";
    let Some(t) = crate::modules::cfg::table(modules, M)? else {
        return Ok(Prepared(Vec::new()));
    };
    let lines = crate::modules::cfg::str_list(&t, M, "tw_append")?;
    let mut all: Vec<TwAppend> = Vec::new();
    for l in &lines {
        let a = parse(l).map_err(|e| format!("config.modules.{M}.{e}"))?;
        if all.iter().any(|b| b.name.eq_ignore_ascii_case(&a.name)) {
            return Err(format!(
                "config.modules.{M}.tw_append: '{}' defined twice",
                a.name
            ));
        }
        all.push(a);
    }
    Ok(Prepared(all))
}

impl Prepared {
    pub fn commit(self, staged: &mut crate::state::Staged) {
        staged.put(TwAppends(self.0));
    }
}

crate::modules::staged_settings!(Prepared);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opensips_forms() {
        let a = parse("vm: hdr_subject=$hdr(Subject); caller=$fU ;$rb").unwrap();
        assert_eq!(a.name, "vm");
        assert!(a.add_body);
        assert_eq!(
            a.elems,
            vec![
                ("hdr_subject".to_string(), "$hdr(Subject)".to_string()),
                ("caller".to_string(), "$fU".to_string())
            ]
        );
        for bad in ["vm", ": x=$fU", "vm: x", "vm: x=$", "vm: ;", "vm: $fU"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
