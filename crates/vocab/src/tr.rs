//! Transformations (`{s.len}`, `{uri.param,name}`) with their arguments.
//! The daemon's drift test keeps the list equal to `lunasip::pv::tr::all()`.

/// One transformation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transformation {
    /// Full name, class first (`"s.substr"`).
    pub name: &'static str,
    pub min_args: usize,
    pub max_args: usize,
    /// Arguments as the docs show them (`",offset,length"`).
    pub args: &'static str,
}

const fn tr(
    name: &'static str,
    min_args: usize,
    max_args: usize,
    args: &'static str,
) -> Transformation {
    Transformation {
        name,
        min_args,
        max_args,
        args,
    }
}

/// Every transformation, by class, in the daemon's order.
pub static ALL: &[Transformation] = &[
    tr("s.len", 0, 0, ""),
    tr("s.int", 0, 0, ""),
    tr("s.md5", 0, 0, ""),
    tr("s.crc32", 0, 0, ""),
    tr("s.sha1", 0, 0, ""),
    tr("s.sha224", 0, 0, ""),
    tr("s.sha256", 0, 0, ""),
    tr("s.sha384", 0, 0, ""),
    tr("s.sha512", 0, 0, ""),
    tr("s.sha1_hmac", 1, 1, ",key"),
    tr("s.sha224_hmac", 1, 1, ",key"),
    tr("s.sha256_hmac", 1, 1, ",key"),
    tr("s.sha384_hmac", 1, 1, ",key"),
    tr("s.sha512_hmac", 1, 1, ",key"),
    tr("s.tolower", 0, 0, ""),
    tr("s.toupper", 0, 0, ""),
    tr("s.encode.hexa", 0, 0, ""),
    tr("s.decode.hexa", 0, 0, ""),
    tr("s.hex2dec", 0, 0, ""),
    tr("s.dec2hex", 0, 0, ""),
    tr("s.escape.common", 0, 0, ""),
    tr("s.unescape.common", 0, 0, ""),
    tr("s.escape.user", 0, 0, ""),
    tr("s.unescape.user", 0, 0, ""),
    tr("s.escape.param", 0, 0, ""),
    tr("s.unescape.param", 0, 0, ""),
    tr("s.substr", 2, 2, ",offset,length"),
    tr("s.select", 2, 2, ",index,separator"),
    tr("s.index", 1, 2, ",needle[,start]"),
    tr("s.rindex", 1, 2, ",needle[,start]"),
    tr("s.fill.left", 2, 2, ",pad,length"),
    tr("s.fill.right", 2, 2, ",pad,length"),
    tr("s.width", 1, 1, ",length"),
    tr("s.b64encode", 0, 0, ""),
    tr("s.b64decode", 0, 0, ""),
    tr("s.xor", 1, 1, ",secret"),
    tr("s.trim", 0, 0, ""),
    tr("s.trimr", 0, 0, ""),
    tr("s.triml", 0, 0, ""),
    tr("s.reverse", 0, 0, ""),
    tr("s.eval", 0, 0, ""),
    tr("uri.user", 0, 0, ""),
    tr("uri.host", 0, 0, ""),
    tr("uri.domain", 0, 0, ""),
    tr("uri.passwd", 0, 0, ""),
    tr("uri.port", 0, 0, ""),
    tr("uri.params", 0, 0, ""),
    tr("uri.param", 1, 1, ",name"),
    tr("uri.headers", 0, 0, ""),
    tr("uri.transport", 0, 0, ""),
    tr("uri.ttl", 0, 0, ""),
    tr("uri.uparam", 0, 0, ""),
    tr("uri.maddr", 0, 0, ""),
    tr("uri.method", 0, 0, ""),
    tr("uri.lr", 0, 0, ""),
    tr("uri.r2", 0, 0, ""),
    tr("uri.schema", 0, 0, ""),
    tr("via.name", 0, 0, ""),
    tr("via.version", 0, 0, ""),
    tr("via.transport", 0, 0, ""),
    tr("via.host", 0, 0, ""),
    tr("via.port", 0, 0, ""),
    tr("via.comment", 0, 0, ""),
    tr("via.params", 0, 0, ""),
    tr("via.param", 1, 1, ",name"),
    tr("via.branch", 0, 0, ""),
    tr("via.received", 0, 0, ""),
    tr("via.rport", 0, 0, ""),
    tr("param.value", 1, 2, ",name[,sep]"),
    tr("param.exist", 1, 2, ",name[,sep]"),
    tr("param.valueat", 1, 2, ",index[,sep]"),
    tr("param.name", 1, 2, ",index[,sep]"),
    tr("param.count", 0, 1, "[,sep]"),
    tr("nameaddr.name", 0, 0, ""),
    tr("nameaddr.uri", 0, 0, ""),
    tr("nameaddr.len", 0, 0, ""),
    tr("nameaddr.params", 0, 0, ""),
    tr("nameaddr.param", 1, 1, ",name"),
    tr("csv.count", 0, 0, ""),
    tr("csv.value", 1, 1, ",index"),
    tr("sdp.line", 1, 2, ",type[,index]"),
    tr("sdp.stream", 1, 1, ",index|media"),
    tr("sdp.stream-delete", 1, 1, ",index|media"),
    tr("ip.family", 0, 0, ""),
    tr("ip.ntop", 0, 0, ""),
    tr("ip.pton", 0, 0, ""),
    tr("ip.isip", 0, 0, ""),
    tr("ip.isip4", 0, 0, ""),
    tr("ip.isip6", 0, 0, ""),
    tr("ip.resolve", 0, 0, ""),
    tr("ip.matches", 1, 1, ",net/len"),
    tr("ip.isprivate", 0, 0, ""),
    tr("re.subst", 1, 1, ",/re/repl/flags"),
];

/// Looks a transformation up by its full name (`"s.len"`).
pub fn lookup(name: &str) -> Option<&'static Transformation> {
    ALL.iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let t = lookup("s.substr").unwrap();
        assert_eq!((t.min_args, t.max_args, t.args), (2, 2, ",offset,length"));
        assert_eq!(lookup("param.count").unwrap().max_args, 1);
        assert!(lookup("s.nothing").is_none());
    }

    #[test]
    fn names_are_unique_and_arities_sane() {
        for (i, t) in ALL.iter().enumerate() {
            assert!(!ALL[..i].iter().any(|u| u.name == t.name), "{}", t.name);
            assert!(t.min_args <= t.max_args, "{}", t.name);
            assert_eq!(t.args.is_empty(), t.max_args == 0, "{}", t.name);
        }
    }
}
