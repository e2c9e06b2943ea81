//! Flag `C`: the callee sees another Call-ID, the caller's masked with
//! `th_callid_passwd` behind `th_callid_prefix` (OpenSIPS 3.4
//! topo_hiding_logic.c `dlg_th_encode_callid`), written in word64.

use super::conf;

fn mask(bytes: &mut [u8], passwd: &[u8]) {
    if passwd.is_empty() {
        return;
    }
    for (i, b) in bytes.iter_mut().enumerate() {
        *b ^= passwd[i % passwd.len()];
    }
}

fn encode_with(callid: &str, prefix: &str, passwd: &str) -> String {
    let mut b = callid.as_bytes().to_vec();
    mask(&mut b, passwd.as_bytes());
    format!("{prefix}{}", super::word::word64_encode(&b))
}

fn decode_with(text: &str, prefix: &str, passwd: &str) -> Option<String> {
    let enc = text.strip_prefix(prefix)?;
    if enc.len() > 4096 {
        return None;
    }
    let mut b = super::word::word64_decode(enc)?;
    mask(&mut b, passwd.as_bytes());
    String::from_utf8(b).ok()
}

/// The Call-ID the callee sees for `callid`.
pub fn encode(callid: &str) -> String {
    let c = conf();
    encode_with(callid, &c.callid_prefix, &c.callid_passwd)
}

/// The caller's Call-ID behind a hidden one; None when `text` is not one.
pub fn decode(text: &str) -> Option<String> {
    let c = conf();
    decode_with(text, &c.callid_prefix, &c.callid_passwd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hidden_callid_reads_back_only_with_its_key_and_prefix() {
        let e = encode_with("abc@192.0.2.1", "DLGCH_", "OpenSIPS");
        assert!(e.starts_with("DLGCH_") && !e.contains("192.0.2.1"), "{e}");
        assert_eq!(decode_with(&e, "DLGCH_", "OpenSIPS").as_deref(), Some("abc@192.0.2.1"));
        assert_eq!(decode_with("abc@192.0.2.1", "DLGCH_", "OpenSIPS"), None);
        assert_eq!(decode_with("DLGCH_zz", "DLGCH_", "OpenSIPS"), None);
        // OpenSIPS's own output for this Call-ID and key: the word64 of
        // the masked bytes ("abc" ^ "Ope" = 0x2e 0x12 0x06).
        assert!(e.starts_with("DLGCH_LhIG"), "{e}");
    }
}
