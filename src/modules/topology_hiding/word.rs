//! OpenSIPS's URI-safe encodings (3.4 ut.c / ut.h): `word64` is base64
//! with `+` and `.` as its last two digits and `-` as padding; `word32`
//! is base32 (RFC 4648 digits) with `-` as padding. topology_hiding
//! writes the hidden Call-ID in word64 and the dialog-less Contact
//! parameter in either (`th_contact_encode_scheme`).

const W64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+.";
const W32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const PAD: u8 = b'-';

/// Bits `width` at a time from `input`, most significant first, written
/// with `digits`, padded with `-` to a multiple of `group` characters.
fn encode(input: &[u8], digits: &[u8], width: u32, group: usize) -> String {
    let mut out = String::with_capacity(input.len() * 8 / width as usize + group);
    let (mut acc, mut bits) = (0u32, 0u32);
    let mask = (1u32 << width) - 1;
    for &b in input {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= width {
            bits -= width;
            out.push(char::from(digits[((acc >> bits) & mask) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(digits[((acc << (width - bits)) & mask) as usize]));
    }
    while out.len() % group != 0 {
        out.push(char::from(PAD));
    }
    out
}

/// The reverse of [`encode`]; None on a character outside `digits`,
/// padding before the end, or a length that is not whole groups.
fn decode(text: &str, digits: &[u8], width: u32, group: usize) -> Option<Vec<u8>> {
    let t = text.as_bytes();
    if t.is_empty() || t.len() % group != 0 {
        return None;
    }
    let body = t.iter().position(|&c| c == PAD).unwrap_or(t.len());
    if t[body..].iter().any(|&c| c != PAD) || t.len() - body >= group {
        return None;
    }
    let mut out = Vec::with_capacity(body * width as usize / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in &t[..body] {
        let v = digits.iter().position(|&d| d == c)? as u32;
        acc = (acc << width) | v;
        bits += width;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

pub fn word64_encode(input: &[u8]) -> String {
    encode(input, W64, 6, 4)
}

pub fn word64_decode(text: &str) -> Option<Vec<u8>> {
    decode(text, W64, 6, 4)
}

pub fn word32_encode(input: &[u8]) -> String {
    encode(input, W32, 5, 8)
}

pub fn word32_decode(text: &str) -> Option<Vec<u8>> {
    decode(text, W32, 5, 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word64_is_base64_with_plus_dot_and_dash_padding() {
        // RFC 4648 §10 vectors, with OpenSIPS's last digits and padding.
        for (plain, enc) in [
            ("f", "Zg--"),
            ("fo", "Zm8-"),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(word64_encode(plain.as_bytes()), enc);
            assert_eq!(word64_decode(enc).as_deref(), Some(plain.as_bytes()));
        }
        assert_eq!(word64_encode(&[0xfb, 0xff]), "+.8-");
        assert_eq!(word64_decode("+.8-").as_deref(), Some(&[0xfb, 0xff][..]));
        for bad in ["", "Zg", "Zg-A", "Z/==", "Zg=="] {
            assert_eq!(word64_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn word32_is_base32_with_dash_padding() {
        for (plain, enc) in [("f", "MY------"), ("fooba", "MZXW6YTB"), ("foobar", "MZXW6YTBOI------")] {
            assert_eq!(word32_encode(plain.as_bytes()), enc);
            assert_eq!(word32_decode(enc).as_deref(), Some(plain.as_bytes()));
        }
        assert_eq!(word32_decode("MY======"), None);
        assert_eq!(word32_decode("my------"), None);
    }
}
