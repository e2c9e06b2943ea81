//! OpenSIPS's `dispatcher.list` file format.

use super::{Row, INACTIVE, PROBING};

/// Parses an OpenSIPS dispatcher.list: `setid destination [flags
/// [priority [attrs [description]]]]`, `#` comments. Flags: `0` active,
/// `1` inactive, `2` probing (OpenSIPS state bits); a `weight=N` in attrs
/// sets the weight as OpenSIPS 1.x list files did.
pub fn parse_list(text: &str) -> (Vec<Row>, Vec<String>) {
    let mut rows = Vec::new();
    let mut errs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut f = line
            .splitn(6, char::is_whitespace)
            .filter(|s| !s.is_empty());
        let (Some(setid), Some(uri)) = (f.next(), f.next()) else {
            errs.push(format!("line {}: expected 'setid destination'", n + 1));
            continue;
        };
        let Ok(setid) = setid.parse::<i64>() else {
            errs.push(format!("line {}: set id '{setid}' is not a number", n + 1));
            continue;
        };
        let mut row = Row {
            setid,
            uri: uri.to_string(),
            weight: 1,
            ..Row::default()
        };
        if let Some(flags) = f.next() {
            match flags.parse::<u8>() {
                Ok(v) if v & 2 != 0 || v & 8 != 0 => row.state = PROBING,
                Ok(v) if v & 1 != 0 || v & 4 != 0 => row.state = INACTIVE,
                Ok(_) => {}
                Err(_) => {
                    errs.push(format!("line {}: flags '{flags}' is not a number", n + 1));
                    continue;
                }
            }
        }
        if let Some(p) = f.next() {
            match p.parse() {
                Ok(v) => row.priority = v,
                Err(_) => {
                    errs.push(format!("line {}: priority '{p}' is not a number", n + 1));
                    continue;
                }
            }
        }
        if let Some(a) = f.next() {
            row.attrs = a.to_string();
            if let Some(w) = a
                .split(';')
                .find_map(|kv| kv.trim().strip_prefix("weight="))
            {
                match w.parse() {
                    Ok(v) => row.weight = v,
                    Err(_) => {
                        errs.push(format!("line {}: weight '{w}' is not a number", n + 1));
                        continue;
                    }
                }
            }
        }
        if let Some(d) = f.next() {
            row.description = d.trim().to_string();
        }
        rows.push(row);
    }
    (rows, errs)
}

#[cfg(test)]
mod tests {
    use super::super::{build_dest, INACTIVE};
    use super::*;

    #[test]
    fn list_file_lines() {
        let (rows, errs) = parse_list(
            "# comment\n1 sip:10.0.0.1:5070\n1 sip:10.0.0.2 1 5 weight=3;x=y box two\nx sip:a\n2 sip:[::1]:5080 0 0\n",
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].state, INACTIVE);
        assert_eq!(rows[1].priority, 5);
        assert_eq!(rows[1].weight, 3);
        assert_eq!(rows[1].description, "box two");
        let d = build_dest(&rows[2], &[]).expect("dest");
        assert_eq!((d.host.as_str(), d.port), ("::1", 5080));
        assert!(d.ip.is_some());
    }
}
