use super::*;

/// (input for `$var(x)`, transformation chain, expected).
const TRS: &[(&str, &str, &str)] = &[
    ("abcd", "{s.len}", "4"),
    ("123abc", "{s.int}", "123"),
    ("abc", "{s.int}", "0"),
    ("abc", "{s.md5}", "900150983cd24fb0d6963f7d28e17f72"),
    ("123456789", "{s.crc32}", "3421780262"),
    ("abc", "{s.sha1}", "a9993e364706816aba3e25717850c26c9cd0d89d"),
    ("abc", "{s.sha224}", "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"),
    ("abc", "{s.sha256}", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    ("abc", "{s.sha384}", "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"),
    ("abc", "{s.sha512}", "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"),
    ("what do ya want for nothing?", "{s.sha256_hmac,Jefe}", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    ("what do ya want for nothing?", "{s.sha1_hmac,Jefe}", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
    ("what do ya want for nothing?", "{s.sha224_hmac,Jefe}", "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44"),
    ("what do ya want for nothing?", "{s.sha384_hmac,Jefe}", "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"),
    ("what do ya want for nothing?", "{s.sha512_hmac,Jefe}", "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"),
    ("AbC", "{s.tolower}", "abc"),
    ("AbC", "{s.toupper}", "ABC"),
    ("abc", "{s.encode.hexa}", "616263"),
    ("616263", "{s.decode.hexa}", "abc"),
    ("ff", "{s.hex2dec}", "255"),
    ("0x1F", "{s.hex2dec}", "31"),
    ("255", "{s.dec2hex}", "ff"),
    ("it's \"q\"", "{s.escape.common}", "it\\'s \\\"q\\\""),
    ("it\\'s", "{s.unescape.common}", "it's"),
    ("a b@c", "{s.escape.user}", "a%20b%40c"),
    ("a%20b%40c", "{s.unescape.user}", "a b@c"),
    ("a b;c", "{s.escape.param}", "a%20b%3Bc"),
    ("a%20b%3Bc", "{s.unescape.param}", "a b;c"),
    // OpenSIPS docs: "abcd"{s.substr,1,0} is "bcd".
    ("abcd", "{s.substr,1,0}", "bcd"),
    ("abcd", "{s.substr,1,2}", "bc"),
    ("abcd", "{s.substr,-2,0}", "cd"),
    ("abcd", "{s.substr,0,-1}", "abc"),
    // OpenSIPS docs: "12,34,56"{s.select,1,,} is "34", {s.select,-2,,} too.
    ("12,34,56", "{s.select,1,,}", "34"),
    ("12,34,56", "{s.select,-2,,}", "34"),
    ("12,34,56", "{s.select,5,,}", "<null>"),
    ("a:b:c", "{s.select,0,:}", "a"),
    // OpenSIPS docs: 'onetwothreeone' searched for 'one'.
    ("onetwothreeone", "{s.index,one}", "0"),
    ("onetwothreeone", "{s.index,one,1}", "11"),
    ("onetwothreeone", "{s.index,one,-3}", "11"),
    ("onetwothreeone", "{s.index,four}", "<null>"),
    ("onetwothreeone", "{s.rindex,one}", "11"),
    ("onetwothreeone", "{s.rindex,one,-4}", "0"),
    ("abc", "{s.fill.left,0,5}", "00abc"),
    ("abc", "{s.fill.right,0,5}", "abc00"),
    ("abcdef", "{s.fill.left,0,3}", "abcdef"),
    ("abc", "{s.width,5}", "abc  "),
    ("abcdef", "{s.width,3}", "abc"),
    ("abc", "{s.b64encode}", "YWJj"),
    ("ab", "{s.b64encode}", "YWI="),
    ("YWJj", "{s.b64decode}", "abc"),
    ("abc", "{s.xor,k}{s.xor,k}", "abc"),
    ("abc", "{s.xor,k}{s.len}", "3"),
    ("  a b \t", "{s.trim}", "a b"),
    ("  a b \t", "{s.trimr}", "  a b"),
    ("  a b \t", "{s.triml}", "a b \t"),
    ("abc", "{s.reverse}", "cba"),
    ("$rm to $rU", "{s.eval}", "INVITE to bob"),
    ("sip:alice:secret@example.com:5062;transport=tcp;ttl=5;user=phone;maddr=1.2.3.4;method=INVITE;lr;r2=on?h=v", "{uri.user}", "alice"),
    ("sip:alice:secret@example.com:5062;transport=tcp", "{uri.host}", "example.com"),
    ("sip:alice@[2001:db8::1]:5062", "{uri.domain}", "[2001:db8::1]"),
    ("sip:alice:secret@example.com", "{uri.passwd}", "secret"),
    ("sip:alice@example.com:5062", "{uri.port}", "5062"),
    ("sip:alice@example.com", "{uri.port}", "<null>"),
    ("sip:alice@example.com;transport=tcp;lr", "{uri.params}", "transport=tcp;lr"),
    ("sip:alice@example.com;transport=tcp;lr", "{uri.param,transport}", "tcp"),
    ("sip:alice@example.com;transport=tcp;lr", "{uri.param,lr}", ""),
    ("sip:alice@example.com;transport=tcp;lr", "{uri.param,nope}", "<null>"),
    ("sip:alice@example.com?subject=x&h=v", "{uri.headers}", "subject=x&h=v"),
    ("sip:alice@example.com;transport=TLS", "{uri.transport}", "TLS"),
    ("sip:alice@example.com;ttl=5", "{uri.ttl}", "5"),
    ("sip:+123@example.com;user=phone", "{uri.uparam}", "phone"),
    ("sip:alice@example.com;maddr=1.2.3.4", "{uri.maddr}", "1.2.3.4"),
    ("sip:alice@example.com;method=INVITE", "{uri.method}", "INVITE"),
    ("sip:alice@example.com;lr=on", "{uri.lr}", "on"),
    ("sip:alice@example.com;lr", "{uri.lr}", "<null>"),
    ("sip:alice@example.com;r2=on", "{uri.r2}", "on"),
    ("sips:alice@example.com", "{uri.schema}", "sips"),
    ("sip:alice%20x@example.com", "{uri.user}{s.unescape.user}", "alice x"),
    ("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;received=1.2.3.4;rport=5061", "{via.name}", "SIP"),
    ("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1", "{via.version}", "2.0"),
    ("SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK1", "{via.transport}", "TCP"),
    ("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1", "{via.host}", "[2001:db8::1]"),
    ("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1", "{via.port}", "5060"),
    ("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1", "{via.port}", "<null>"),
    ("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1", "{via.comment}", "<null>"),
    ("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;rport", "{via.params}", "branch=z9hG4bK1;rport"),
    ("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;x=y", "{via.param,x}", "y"),
    ("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1", "{via.branch}", "z9hG4bK1"),
    ("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;received=1.2.3.4", "{via.received}", "1.2.3.4"),
    ("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;rport=5061", "{via.rport}", "5061"),
    ("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;rport", "{via.rport}", "<null>"),
    // OpenSIPS docs: "a=1;b=2;c=3".
    ("a=1;b=2;c=3", "{param.value,b}", "2"),
    ("a=1;b=2;c=3", "{param.value,d}", "<null>"),
    ("a=1;b=2;c=3", "{param.exist,c}", "1"),
    ("a=1;b=2;c=3", "{param.exist,d}", "0"),
    ("a=1;b=2;c=3", "{param.valueat,1}", "2"),
    ("a=1;b=2;c=3", "{param.name,2}", "c"),
    ("a=1;b=2;c=3", "{param.count}", "3"),
    ("a=1&b=2", "{param.value,b,&}", "2"),
    ("\"Alice\" <sip:alice@a.com;transport=tcp>;tag=1;x", "{nameaddr.name}", "\"Alice\""),
    ("\"Alice\" <sip:alice@a.com;transport=tcp>;tag=1;x", "{nameaddr.uri}", "sip:alice@a.com;transport=tcp"),
    ("\"Alice\" <sip:alice@a.com>;tag=1", "{nameaddr.len}", "31"),
    ("\"Alice\" <sip:alice@a.com>;tag=1;x", "{nameaddr.params}", "tag=1;x"),
    ("\"Alice\" <sip:alice@a.com>;tag=1;x", "{nameaddr.param,tag}", "1"),
    ("<sip:alice@a.com>", "{nameaddr.uri}{uri.user}", "alice"),
    ("a,b,\"c,d\"", "{csv.count}", "3"),
    ("a,b,\"c,d\"", "{csv.value,2}", "c,d"),
    ("a,b,\"c,d\"", "{csv.value,-3}", "a"),
    ("v=0\r\nm=audio 1 RTP/AVP 0\r\na=x\r\na=y\r\nm=video 2 RTP/AVP 31\r\n", "{sdp.line,a,1}", "a=y"),
    ("v=0\r\nm=audio 1 RTP/AVP 0\r\na=x\r\na=y\r\nm=video 2 RTP/AVP 31\r\n", "{sdp.line,m}", "m=audio 1 RTP/AVP 0"),
    ("v=0\r\nm=audio 1 RTP/AVP 0\r\na=x\r\na=y\r\nm=video 2 RTP/AVP 31\r\n", "{sdp.line,b}", "<null>"),
    ("v=0\r\nm=audio 1 RTP/AVP 0\r\na=x\r\nm=video 2 RTP/AVP 31\r\n", "{sdp.stream,video}", "m=video 2 RTP/AVP 31\r\n"),
    ("v=0\r\nm=audio 1 RTP/AVP 0\r\na=x\r\nm=video 2 RTP/AVP 31\r\n", "{sdp.stream,0}", "m=audio 1 RTP/AVP 0\r\na=x\r\n"),
    ("v=0\r\nm=audio 1 RTP/AVP 0\r\na=x\r\nm=video 2 RTP/AVP 31\r\n", "{sdp.stream-delete,audio}", "v=0\r\nm=video 2 RTP/AVP 31\r\n"),
    ("192.0.2.1", "{ip.pton}{ip.ntop}", "192.0.2.1"),
    ("2001:db8::1", "{ip.pton}{ip.family}", "INET6"),
    ("192.0.2.1", "{ip.pton}{ip.family}", "INET"),
    ("10.0.0.1", "{ip.pton}{s.len}", "4"),
    ("192.0.2.1", "{ip.isip}", "1"),
    ("example.com", "{ip.isip}", "0"),
    ("192.0.2.1", "{ip.isip4}", "1"),
    ("[2001:db8::1]", "{ip.isip6}", "1"),
    ("192.0.2.1", "{ip.isip6}", "0"),
    ("127.0.0.1", "{ip.resolve}", "127.0.0.1"),
    ("192.0.2.5", "{ip.matches,192.0.2.0/24}", "1"),
    ("192.0.3.5", "{ip.matches,192.0.2.0/24}", "0"),
    ("2001:db8::5", "{ip.matches,2001:db8::/32}", "1"),
    ("10.1.2.3", "{ip.isprivate}", "1"),
    ("8.8.8.8", "{ip.isprivate}", "0"),
    ("+4930123", "{re.subst,/^\\+49/0/}", "030123"),
    ("a.b.c", "{re.subst,/\\./-/g}", "a-b-c"),
    ("abc", "{re.subst,/z/y/}", "abc"),
    ("ALICE", "{re.subst,/alice/bob/i}", "bob"),
];

#[test]
fn every_transformation() {
    let mut c = prepared();
    let mut bad = Vec::new();
    for (input, chain, want) in TRS {
        set(&mut c, "$var(x)", Value::Str(input.to_string()));
        let spec = format!("$(var(x){chain})");
        match eval(&c, &spec) {
            Ok(v) if show(&v) == *want => {}
            Ok(v) => bad.push(format!(
                "{input:?} {chain}: got {:?}, want {want:?}",
                show(&v)
            )),
            Err(e) => bad.push(format!("{input:?} {chain}: error {e}")),
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn every_transformation_has_a_case() {
    let covered: HashSet<&str> = TRS
        .iter()
        .flat_map(|(_, chain, _)| {
            pv::tr::parse_chain(chain)
                .unwrap()
                .into_iter()
                .map(|t| t.def.name)
        })
        .collect();
    let missing: Vec<_> = pv::tr::all()
        .map(|d| d.name)
        .filter(|n| !covered.contains(n))
        .collect();
    assert!(missing.is_empty(), "no case for {missing:?}");
}

#[test]
fn transformations_on_message_values() {
    let c = prepared();
    for (spec, want) in [
        ("$(ru{uri.user})", "bob"),
        ("$(ru{uri.param,transport})", "tcp"),
        ("$(hdr(Via)[0]{via.branch})", "z9hG4bKabc"),
        ("$(hdr(Via)[1]{via.host})", "[2001:db8::7]"),
        ("$(hdr(Via)[1]{via.received})", "2001:db8::8"),
        ("$(hdr(Via)[-1]{via.branch})", "z9hG4bKq"),
        ("$(fu{uri.host}{s.tolower})", "atlanta.example.com"),
        ("$(fU{s.unescape.user})", "alice@home"),
        ("$(ct{nameaddr.param,expires})", "3600"),
        ("$(hdr(From){nameaddr.param,tag})", "a1"),
        ("$(tt{s.len})", "2"),
        ("$(hdr(X-Missing){s.len})", "<null>"),
        ("$(hdr(X-Missing){uri.user})", "<null>"),
        ("$(var(s){s.substr,$var(i),2})", "ex"),
        (
            "$(ru{s.select,$var(i),@})",
            "example.com:5070;transport=tcp;user=phone",
        ),
    ] {
        assert_eq!(show(&eval(&c, spec).unwrap()), want, "{spec}");
    }
}

#[test]
fn failing_transformations_name_the_spec() {
    let mut c = prepared();
    set(&mut c, "$var(x)", Value::Str("not a uri".into()));
    let e = eval(&c, "$(var(x){uri.user})").unwrap_err();
    assert!(
        e.starts_with("$(var(x){uri.user}): {uri.user}: invalid URI"),
        "{e}"
    );
    let e = eval(&c, "$(var(x){s.substr,20,1})").unwrap_err();
    assert!(e.contains("out of range"), "{e}");
    let e = eval(&c, "$(var(x){s.decode.hexa})").unwrap_err();
    assert!(e.contains("hexadecimal"), "{e}");
    // Through get (what xlog and the Lua surface use): null.
    let s = pv::parse_spec("$(var(x){uri.user})").unwrap();
    assert_eq!(pv::get(&c, &s), Value::Null);
}

#[test]
fn bad_specs_are_errors_with_positions() {
    for (spec, msg, pos) in [
        ("$nope", "unknown pseudo-variable $nope", 1),
        ("$(ru{s.nope})", "unknown transformation {s.nope}", 5),
        (
            "$(ru{s.substr,1})",
            "{s.substr} takes 2 arguments, not 1",
            5,
        ),
        ("$(ru{s.len,1})", "{s.len} takes 0 arguments, not 1", 5),
        ("$(hdr(Via)[x])", "bad index [x]", 11),
        ("$(ru", "expected )", 4),
        ("$hdr", "$hdr needs a name in parentheses", 4),
        ("$(ru{s.len}", "expected )", 11),
        ("$hdr($nope(x))", "unknown pseudo-variable $nope", 6),
    ] {
        let e = pv::parse_spec_at(spec).unwrap_err();
        assert_eq!((e.msg.as_str(), e.pos), (msg, pos), "{spec}");
    }
}

#[test]
fn sip_tr_chains() {
    let chain = pv::tr::parse_chain("{uri.user}{s.len}").unwrap();
    let c = prepared();
    assert_eq!(
        pv::tr::apply(&c, &chain, Value::Str("sip:alice@x".into())).unwrap(),
        Value::Int(5)
    );
    assert!(pv::tr::parse_chain("{uri.user").is_err());
    assert!(pv::tr::parse_chain("{nope}").is_err());
}
