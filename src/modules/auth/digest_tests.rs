//! Tests of digest.rs.

use super::*;

// RFC 4231 test cases 2 and 6 (a key longer than a block), in turn, so
// that the cached pad states change keys.
#[test]
fn hmac_sha256_rfc4231() {
    let long = [0xaa_u8; 131];
    for _ in 0..2 {
        assert_eq!(
            hex(&hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac(&long, b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}

// The sweep drops expired nonces only, and once a second at most.
#[test]
fn nonce_sweep_keeps_live_entries() {
    let mut n = Nonces::default();
    for i in 0..5000u64 {
        n.map.insert(format!("n{i}"), (if i % 2 == 0 { 100 } else { 200 }, 1));
    }
    n.sweep(150);
    assert_eq!(n.map.len(), 2500);
    assert!(n.map.values().all(|(exp, _)| *exp == 200));
    for i in 0..3000u64 {
        n.map.insert(format!("m{i}"), (120, 1));
    }
    n.sweep(150); // within the same second: not swept again
    assert_eq!(n.map.len(), 5500);
    n.sweep(151);
    assert_eq!(n.map.len(), 2500);
}

// RFC 2617 §3.5's example (MD5, qop=auth).
#[test]
fn rfc2617_example() {
    let v = r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
    let c = parse_credentials(v).expect("digest");
    assert!(c.well_formed());
    let ha1 = Alg::Md5.ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
    assert!(c.check(Alg::Md5, &ha1, "GET", b""));
    assert!(!c.check(Alg::Md5, &Alg::Md5.ha1("Mufasa", "testrealm@host.com", "x"), "GET", b""));
    assert!(!c.check(Alg::Md5, &ha1, "POST", b""));
    // Hex in either case, in the stored HA1 and in the response.
    assert!(c.check(Alg::Md5, &ha1.to_ascii_uppercase(), "GET", b""));
    let upper = Cred { response: c.response.to_ascii_uppercase(), ..c.clone() };
    assert!(upper.check(Alg::Md5, &ha1, "GET", b""));
    // Without qop (RFC 2069 compatibility): H(HA1:nonce:HA2).
    let ha2 = Alg::Md5.hex(b"GET:/dir/index.html");
    let plain = Cred {
        qop: None,
        nc: None,
        cnonce: None,
        response: Alg::Md5.hex(format!("{ha1}:{}:{ha2}", c.nonce).as_bytes()),
        ..c
    };
    assert!(plain.check(Alg::Md5, &ha1, "GET", b""));
}

// RFC 7616 §3.9.1's SHA-256 example.
#[test]
fn rfc7616_sha256_example() {
    let v = r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1""#;
    let c = parse_credentials(v).expect("digest");
    let ha1 = Alg::Sha256.ha1("Mufasa", "http-auth@example.org", "Circle of Life");
    assert_eq!(c.alg(), Some(Alg::Sha256));
    let algs = ["md5", " Sha-256 ", "sHA-512-256", "MD5-sess", ""].map(Alg::parse);
    assert_eq!(algs, [Some(Alg::Md5), Some(Alg::Sha256), Some(Alg::Sha512t256), None, None]);
    assert!(c.check(Alg::Sha256, &ha1, "GET", b""));
}

#[test]
fn trim_as_std() {
    for t in ["", " ", "a", " a b\t", "\x0b\x0cx\r\n", "\u{a0}x\u{3000}", " \u{85} é ", "é", "\x1fx"] {
        assert_eq!(trim(t), t.trim(), "{t:?}");
    }
}

#[test]
fn credentials_first_of_each_name_in_any_case() {
    let c = parse_credentials(
        r#"digest USERNAME="a@b", Realm=r, x="1,2", username="c", qop=AUTH, nc=00000002"#,
    )
    .expect("digest");
    assert_eq!((c.user(), c.domain(), c.realm.as_str()), ("a", Some("b"), "r"));
    assert_eq!((c.qop.as_deref(), c.nc.as_deref()), (Some("auth"), Some("00000002")));
    assert_eq!((c.algorithm, c.cnonce, c.nonce.as_str()), (None, None, ""));
    assert!(parse_credentials(r#"Basic username="a""#).is_none());
    // Commas inside quotes, and an unclosed quote running to the end.
    let c = parse_credentials(r#"Digest uri="a,b", nc=1,nonce=x"=,"y, realm="r, qop=x"#).expect("digest");
    assert_eq!((c.uri.as_str(), c.nc.as_deref(), c.nonce.as_str()), ("a,b", Some("1"), r#"x"=,"y"#));
    assert_eq!((c.realm.as_str(), c.qop), (r#""r, qop=x"#, None));
}

// Each pair reads as u8::from_str_radix reads it, as before.
#[test]
fn nonce_hex_pairs_as_from_str_radix() {
    for (hi, lo) in (0u8..128).flat_map(|h| (0u8..128).map(move |l| (h, l))) {
        let pair = String::from_utf8(vec![hi, lo]).expect("ascii");
        let s = format!("{pair}{}", "0".repeat(66));
        let want = u8::from_str_radix(&pair, 16).ok();
        assert_eq!(unhex_nonce(&s).map(|r| r[0]), want, "{pair:?}");
    }
    assert_eq!(unhex_nonce(&"0".repeat(66)), None);
    assert_eq!(unhex_nonce(&"é".repeat(34)), None);
}

#[test]
fn nonces() {
    let n = make_nonce(b"s3", 1000, 42, Alg::Md5, Qop::Auth);
    assert_eq!(n.len(), 68);
    assert_eq!(open_nonce(b"s3", &n).map(|i| i.expires), Some(1000));
    assert_eq!(open_nonce(b"other", &n), None);
    let mut c = Cred {
        nonce: n.clone(),
        qop: Some("auth".into()),
        nc: Some("00000001".into()),
        ..Cred::default()
    };
    assert_eq!(use_nonce(b"s3", &c, Alg::Md5, 999), Ok(()));
    assert_eq!(use_nonce(b"s3", &c, Alg::Md5, 999), Err(Stale::Replayed));
    c.nc = Some("00000002".into());
    assert_eq!(use_nonce(b"s3", &c, Alg::Sha256, 999), Err(Stale::Mismatch));
    assert_eq!(use_nonce(b"s3", &c, Alg::Md5, 999), Ok(()));
    assert_eq!(use_nonce(b"s3", &c, Alg::Md5, 1001), Err(Stale::Expired));
    assert_eq!(Qop::parse_list("auth-int,auth"), Some(Qop::AuthIntAuth));
    assert_eq!(Qop::parse_list("x"), None);
    assert_eq!(Qop::parse_list("0"), Some(Qop::None));
    assert_eq!(Qop::parse_list("auth,auth-int"), Some(Qop::AuthAuthInt));
}
