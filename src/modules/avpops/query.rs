//! `avp_db_query` (avpops_db.c db_query_avp): raw SQL whose result rows
//! become AVP values.
//!
//! OpenSIPS expands the pseudo-variables into the SQL text, so a quote in
//! a From user is SQL. Here the text is split once per worker into SQL
//! and parameters: a quoted literal that holds a pseudo-variable
//! (`'$fU'`, `'%$rU%'`, `'$si:$sp'`) becomes one `?` bound to the
//! literal's expanded text; a pseudo-variable outside quotes
//! (`WHERE id = $var(n)`) becomes one `?` bound to its value (an integer
//! stays one; null is NULL). Everything else is sent as written.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use mlua::Lua;

use crate::db::Value as DbValue;
use crate::modules::registrar::coded;
use crate::pv::{self, Part, Spec, Value};
use crate::script::exports::{Args, Step};
use crate::script::host::State;

/// What fills one `?` of the query.
#[derive(Debug, Clone)]
pub enum Bind {
    /// A pseudo-variable outside quotes: its value.
    Spec(Rc<Spec>),
    /// A quoted literal with pseudo-variables: its expanded text.
    Text(Rc<[Part]>),
}

/// A query split into SQL with `?` placeholders and what binds them.
#[derive(Debug, Clone)]
pub struct Split {
    pub sql: String,
    pub binds: Vec<Bind>,
}

/// The text of a quoted literal without its quotes, escapes undone
/// (`''`, and MySQL's backslash escapes); None when it does not end.
fn literal(s: &str, q: char) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut it = s.char_indices().skip(1).peekable();
    while let Some((i, c)) = it.next() {
        match c {
            '\\' => {
                let (_, n) = it.next()?;
                out.push(match n {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    '0' => '\0',
                    other => other,
                });
            }
            c if c == q => {
                if let Some((_, n)) = it.peek().copied() {
                    if n == q {
                        it.next();
                        out.push(q);
                        continue;
                    }
                }
                return Some((out, i + c.len_utf8()));
            }
            c => out.push(c),
        }
    }
    None
}

/// Splits `text` into SQL and parameters (see the module doc).
pub fn split(text: &str) -> Result<Split, String> {
    let text = text.trim().trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    let mut sql = String::with_capacity(text.len());
    let mut binds = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let c = rest.chars().next().unwrap_or(' ');
        match c {
            '\'' | '"' => {
                let (body, len) = literal(rest, c)
                    .ok_or_else(|| format!("a {c} quote at offset {i} does not end"))?;
                let parts = match body.contains('$') {
                    true => pv::parse_format(&body).ok(),
                    false => None,
                };
                match parts {
                    Some(p) if p.iter().any(|p| matches!(p, Part::Spec(_))) => {
                        sql.push('?');
                        binds.push(Bind::Text(p.into()));
                    }
                    _ => sql.push_str(&rest[..len]),
                }
                i += len;
            }
            '$' => match pv::spec::parse_spec_prefix(rest) {
                Ok((spec, len)) if len > 1 => {
                    sql.push('?');
                    binds.push(Bind::Spec(Rc::new(spec)));
                    i += len;
                }
                _ => {
                    sql.push('$');
                    i += 1;
                }
            },
            c => {
                sql.push(c);
                i += c.len_utf8();
            }
        }
    }
    Ok(Split { sql, binds })
}

thread_local! {
    static SPLITS: RefCell<HashMap<String, Rc<Split>>> = RefCell::new(HashMap::new());
}

/// [`split`], once per worker for each query text.
fn split_cached(text: &str) -> Result<Rc<Split>, String> {
    if let Some(s) = SPLITS.with(|c| c.borrow().get(text).cloned()) {
        return Ok(s);
    }
    let s = Rc::new(split(text)?);
    SPLITS.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= 1024 {
            c.clear();
        }
        c.insert(text.to_string(), s.clone());
    });
    Ok(s)
}

/// The parameters of a split query for this call.
pub fn params(call: &crate::proxy::context::Call, s: &Split) -> Vec<DbValue> {
    s.binds
        .iter()
        .map(|b| match b {
            Bind::Spec(spec) => match pv::get(call, spec) {
                Value::Null => DbValue::Null,
                Value::Int(i) => DbValue::Int(i),
                Value::Str(s) => DbValue::Text(s),
            },
            Bind::Text(parts) => {
                let mut out = String::new();
                pv::format(call, parts, &mut out);
                DbValue::Text(out)
            }
        })
        .collect()
}

/// A column value as an AVP value (db_query_avp_print_results): NULL is
/// the text `<null>`, numbers stay integers, a real becomes text.
fn avp_value(v: &DbValue) -> Value {
    match v {
        DbValue::Null => Value::Str("<null>".into()),
        DbValue::Int(i) => Value::Int(*i),
        DbValue::Time(t) => Value::Int(*t),
        DbValue::Float(f) => Value::Str(f.to_string()),
        DbValue::Text(s) => Value::Str(s.clone()),
        DbValue::Bytes(b) => Value::Str(String::from_utf8_lossy(b).into_owned()),
    }
}

/// The `dest` list: `"$avp(a);$avp(b)"` (writable variables).
fn dests(st: &State, a: &Args, list: &str) -> mlua::Result<Vec<Rc<Spec>>> {
    let mut out = Vec::new();
    for item in list.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let spec = st.pv.borrow_mut().spec(item).map_err(|e| a.err(e))?;
        if spec.def.set.is_none() {
            return Err(a.err(format!("{item} cannot be written")));
        }
        out.push(spec);
    }
    Ok(out)
}

/// `avp_db_query(query [, dest [, db_id]])`.
pub fn avp_db_query(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    let text = a.str(0)?;
    let split = split_cached(&text).map_err(|e| a.err(e))?;
    let dest = dests(st, &a, &a.opt_str(1)?.unwrap_or_default())?;
    let pool = super::pool(&a, &super::conf(), a.opt_int(2)?)?;
    a.require_suspend()?;
    let params = params(&st.call.borrow(), &split);
    let fut = pool.query(&split.sql, params);
    let (lua, st, fname) = (lua.clone(), st.clone(), a.fname);
    Step::wait(async move {
        let rows = match fut.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{fname}: {e}");
                return coded(&lua, -1);
            }
        };
        if rows.is_empty() || rows[0].is_empty() {
            return coded(&lua, -2);
        }
        let mut call = st.call.borrow_mut();
        // The last row first, so the first row ends up newest.
        for row in rows.iter().rev() {
            for j in 0..row.len() {
                let spec = match dest.get(j) {
                    Some(s) => s.clone(),
                    None if dest.is_empty() => {
                        let name = format!("$avp({})", j + 1);
                        match st.pv.borrow_mut().spec(&name) {
                            Ok(s) => s,
                            Err(_) => break,
                        }
                    }
                    None => break,
                };
                if let Err(e) = pv::set(&mut call, &spec, avp_value(row.at(j))) {
                    tracing::error!("{fname}: {e}");
                    return coded(&lua, -1);
                }
            }
        }
        coded(&lua, 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(q: &str) -> (String, Vec<String>) {
        let s = split(q).unwrap();
        let b = s
            .binds
            .iter()
            .map(|b| match b {
                Bind::Spec(s) => s.text.to_string(),
                Bind::Text(p) => format!("{p:?}"),
            })
            .collect();
        (s.sql, b)
    }

    #[test]
    fn pseudo_variables_become_parameters() {
        let (sql, b) = shape("SELECT uid, dc FROM wbt_subscriber WHERE user_id='$fU' ;");
        assert_eq!(sql, "SELECT uid, dc FROM wbt_subscriber WHERE user_id=?");
        assert_eq!(b, vec![format!("{:?}", pv::parse_format("$fU").unwrap())]);
        let (sql, b) = shape("SELECT node FROM mod_distributor WHERE node=$tU");
        assert_eq!(sql, "SELECT node FROM mod_distributor WHERE node=?");
        assert_eq!(b, vec!["$tU".to_string()]);
        // A literal without variables stays; one with text around a
        // variable is one parameter; escapes are undone.
        let (sql, b) = shape("select 'a''b', x from t where h = ('$td'||':'||'$Rp') and y like 'x$var(p)%' and z = \"it\\'s\"");
        assert_eq!(sql, "select 'a''b', x from t where h = (?||':'||?) and y like ? and z = \"it\\'s\"");
        assert_eq!(b.len(), 3);
        // A dollar that starts no variable stays.
        assert_eq!(shape("SELECT '$' , 5$").0, "SELECT '$' , 5$");
        assert!(split("SELECT 'open").is_err());
    }
}
