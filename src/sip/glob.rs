//! Shell glob matching as fnmatch(3) does it, for the OpenSIPS functions
//! that take one (remove_hf_glob, blacklist rule patterns).

/// fnmatch(3) without flags (a caller wanting FNM_CASEFOLD folds both): `*`,
/// `?`, `[…]` with ranges and `!`/`^` negation, `\` escapes.
pub fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| glob(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && glob(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(&c) = s.first() else { return false };
            let mut i = 1;
            let neg = matches!(p.get(1), Some(b'!' | b'^'));
            if neg {
                i += 1;
            }
            let mut hit = false;
            let mut first = true;
            while let Some(&pc) = p.get(i) {
                if pc == b']' && !first {
                    return hit != neg && glob(&p[i + 1..], &s[1..]);
                }
                first = false;
                if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|e| *e != b']') {
                    hit |= (pc..=p[i + 2]).contains(&c);
                    i += 3;
                } else {
                    hit |= pc == c;
                    i += 1;
                }
            }
            // No closing ']': the '[' is literal.
            c == b'[' && glob(&p[1..], &s[1..])
        }
        Some(b'\\') if p.len() > 1 => s.first() == Some(&p[1]) && glob(&p[2..], &s[1..]),
        Some(&c) => s.first() == Some(&c) && glob(&p[1..], &s[1..]),
    }
}
