//! RFC 4475 torture messages as test oracles (fixtures and their source in
//! `tests/fixtures/sip-torture/`). Valid messages must parse with the values
//! the RFC states; invalid ones must be refused by parse or validate.

use bytes::Bytes;

use super::{Contacts, Message, Method, ParseError, Scheme, Uri};

fn load(name: &str) -> Bytes {
    let path = format!(
        "{}/tests/fixtures/sip-torture/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

fn parse(name: &str) -> Message {
    Message::parse(load(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Parses and validates a request that RFC 4475 calls valid.
fn valid_request(name: &str) -> Message {
    let m = parse(name);
    assert!(m.is_request(), "{name}");
    m.validate_request()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut out = Vec::new();
    m.write_to(&mut out);
    assert_eq!(out, m.as_bytes(), "{name}: round trip");
    m
}

fn valid_response(name: &str) -> Message {
    let m = parse(name);
    assert!(!m.is_request(), "{name}");
    m.validate_response()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    m
}

/// The error parse or validate gives for a message RFC 4475 calls invalid.
fn rejected(name: &str) -> ParseError {
    let m = match Message::parse(load(name)) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let r = if m.is_request() {
        m.validate_request()
    } else {
        m.validate_response()
    };
    r.err().unwrap_or_else(|| panic!("{name} was accepted"))
}

#[test]
fn wsinv_short_tortuous_invite() {
    // §3.1.1.1
    let m = valid_request("wsinv");
    assert_eq!(m.method_kind(), Method::Invite);
    assert_eq!(m.ruri(), "sip:vivekg@chair-dnrc.example.com;unknownparam");
    let ruri = Uri::parse(m.ruri()).unwrap();
    assert_eq!(ruri.param("unknownparam"), Some(None));
    assert_eq!(m.max_forwards(), Some(Ok(68)));
    let cseq = m.cseq().unwrap();
    assert_eq!((cseq.num, cseq.method), (9, "INVITE"));
    assert_eq!(m.call_id(), Some("wsinv.ndaksdj@192.0.2.1"));
    assert_eq!(m.to_tag(), Some("1918181833n"));
    assert_eq!(m.to().unwrap().uri, "sip:vivekg@chair-dnrc.example.com");
    let from = m.from().unwrap();
    assert_eq!(from.display_name().unwrap(), r#"J Rosenberg \""#);
    assert_eq!(from.tag(), Some("98asjd8"));
    let vias = m.vias();
    assert_eq!(vias.len(), 3);
    assert_eq!(
        (vias[0].transport, vias[0].host, vias[0].branch()),
        ("UDP", "192.0.2.2", Some("390skdjuw"))
    );
    assert_eq!(
        (vias[1].transport, vias[1].host, vias[1].branch()),
        ("TCP", "spindle.example.com", Some("z9hG4bK9ikj8"))
    );
    assert_eq!(
        (vias[2].transport, vias[2].host, vias[2].branch()),
        ("UDP", "192.168.255.111", Some("z9hG4bK30239"))
    );
    assert_eq!(m.top_via().unwrap().branch(), Some("390skdjuw"));
    assert_eq!(m.header("Subject"), Some(""));
    assert_eq!(
        m.header("newfangledheader"),
        Some("newfangled value\r\n continued newfangled value")
    );
    assert_eq!(m.header("UnknownHeaderWithUnusualValue"), Some(";;,,;;,;"));
    assert_eq!(m.routes().len(), 1);
    assert_eq!(
        m.routes()[0].uri,
        "sip:services.example.com;lr;unknownwith=value;unknown-no-value"
    );
    let Ok(Contacts::List(contacts)) = m.contacts() else {
        panic!("contacts")
    };
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].display_name().unwrap(), r#"Quoted string """#);
    assert_eq!(contacts[0].param("q"), Some(Some("0.33")));
    assert_eq!(contacts[0].param("secondparam"), Some(None));
    assert_eq!(contacts[0].param("newparam"), Some(Some("newvalue")));
    assert_eq!(m.body().len(), 150);
}

#[test]
fn intmeth_wide_range_of_valid_characters() {
    // §3.1.1.2
    let m = valid_request("intmeth");
    assert_eq!(m.method(), "!interesting-Method0123456789_*+`.%indeed'~");
    assert_eq!(m.method_kind(), Method::Other);
    let u = Uri::parse(m.ruri()).unwrap();
    assert_eq!(
        u.user,
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        u.password,
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(u.host, "example.com");
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK-.!%66*_+`'~"));
    assert_eq!(
        m.to().unwrap().display_name().unwrap(),
        "BEL:\x07 NUL:\0 DEL:\x7f"
    );
    let from = m.from().unwrap();
    assert_eq!(from.display, Some("token1~` token2'+_ token3*%!.-"));
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        m.call_id(),
        Some(r#"intmeth.word%ZK-!.*_+'@word`~)(><:\/"][?}{"#)
    );
    assert_eq!(m.cseq().unwrap().num, 139122385);
    assert_eq!(m.max_forwards(), Some(Ok(255)));
    assert_eq!(
        m.header("extensionHeader-!.%*+_`'~"),
        Some("\u{feff}\u{5927}\u{505c}\u{96fb}")
    );
}

#[test]
fn esc01_valid_escapes() {
    // §3.1.1.3
    let m = valid_request("esc01");
    let u = Uri::parse(m.ruri()).unwrap();
    assert_eq!(&*u.user_unescaped().unwrap(), b"sips:user@example.com");
    assert_eq!(u.host, "example.net");
    let to = m.to().unwrap();
    assert_eq!(
        &*Uri::parse(to.uri).unwrap().user_unescaped().unwrap(),
        b"user"
    );
    let from = Uri::parse(m.from().unwrap().uri).unwrap();
    assert_eq!(&*from.user_unescaped().unwrap(), b"I have spaces");
    assert_eq!(m.call_id(), Some("esc01.239409asdfakjkn23onasd0-3234"));
    assert_eq!(m.header("Content-Type"), Some("application/sdp"));
    let Ok(Contacts::List(c)) = m.contacts() else {
        panic!("contacts")
    };
    let cu = Uri::parse(c[0].uri).unwrap();
    assert_eq!(&*cu.user_unescaped().unwrap(), b"caller");
    assert_eq!(cu.param("lr"), Some(None));
    assert_eq!(cu.param("name"), Some(Some("v%61lue%25%34%31")));
    assert_eq!(
        &*super::uri::unescape(cu.param("name").flatten().unwrap()),
        b"value%41"
    );
}

#[test]
fn escnull_escaped_nulls() {
    // §3.1.1.4: %00 must not truncate the AOR.
    let m = valid_request("escnull");
    let to = Uri::parse(m.to().unwrap().uri).unwrap();
    assert_eq!(&*to.user_unescaped().unwrap(), b"null-\0-null");
    assert_eq!(m.header_count("Contact"), 2);
    let Ok(Contacts::List(c)) = m.contacts() else {
        panic!("contacts")
    };
    assert_eq!(
        &*Uri::parse(c[1].uri).unwrap().user_unescaped().unwrap(),
        b"\0\0"
    );
}

#[test]
fn esc02_percent_that_is_not_an_escape() {
    // §3.1.1.5: RE%47IST%45R is an unknown method, C%6Fntact an unknown header.
    let m = valid_request("esc02");
    assert_eq!(m.method(), "RE%47IST%45R");
    assert_eq!(m.method_kind(), Method::Other);
    assert_eq!(m.header_count("Contact"), 2);
    assert_eq!(
        m.header("C%6Fntact"),
        Some("<sip:alias2@host2.example.com>")
    );
    assert_eq!(m.from().unwrap().display, Some("\"%Z%45\""));
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK209%fzsnel234"));
}

#[test]
fn lwsdisp_no_space_before_bracket() {
    // §3.1.1.6: accepted, as the RFC asks of liberal elements.
    let m = valid_request("lwsdisp");
    assert_eq!(m.from().unwrap().display, Some("caller"));
    assert_eq!(m.from_tag(), Some("323"));
}

#[test]
fn longreq_long_values() {
    // §3.1.1.7
    let m = valid_request("longreq");
    let vias = m.vias();
    assert_eq!(vias.len(), 34);
    assert_eq!(vias[0].host, "sip33.example.com");
    assert_eq!(vias[33].host, "host.example.com");
    assert_eq!(vias[33].received(), Some("192.0.2.5"));
    assert_eq!(m.header_count("via"), 34);
    assert!(m.to().unwrap().display.unwrap().len() > 90);
    assert_eq!(m.from_tag().unwrap().len(), 155);
    assert_eq!(m.body().len(), 150);
}

#[test]
fn dblreq_extra_octets_ignored() {
    // §3.1.1.8: Content-Length frames the datagram; the INVITE after it goes.
    let m = valid_request("dblreq");
    assert_eq!(m.method_kind(), Method::Register);
    assert!(m.body().is_empty());
    assert!(m.as_bytes().ends_with(b"Content-Length: 0\r\n\r\n"));
    assert!(load("dblreq").len() > m.as_bytes().len() + 300);
    assert_eq!(m.call_id(), Some("dblreq.0ha0isndaksdj99sdfafnl3lk233412"));
}

#[test]
fn semiuri_semicolon_in_user_part() {
    // §3.1.1.9
    let m = valid_request("semiuri");
    let u = Uri::parse(m.ruri()).unwrap();
    assert_eq!(u.user, Some("user;par=u%40example.net"));
    assert_eq!(&*u.user_unescaped().unwrap(), b"user;par=u@example.net");
    assert_eq!(u.host, "example.com");
    assert_eq!(u.param("par"), None);
    assert_eq!(
        m.header_values("Accept"),
        vec![
            "application/sdp",
            "application/pkcs7-mime",
            "multipart/mixed",
            "multipart/signed",
            "message/sip",
            "message/sipfrag"
        ]
    );
}

#[test]
fn transports_varied_and_unknown() {
    // §3.1.1.10
    let m = valid_request("transports");
    let t: Vec<_> = m.vias().iter().map(|v| v.transport).collect();
    assert_eq!(t, vec!["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
}

#[test]
fn mpart01_multipart_binary_body() {
    // §3.1.1.11
    let m = valid_request("mpart01");
    assert_eq!(m.body().len(), 553);
    assert!(m.body().contains(&0));
    assert_eq!(m.top_via().unwrap().rport(), Some(None));
    assert_eq!(m.top_via().unwrap().port, Some(5070));
}

#[test]
fn unreason_and_noreason_responses() {
    // §3.1.1.12, §3.1.1.13
    let m = valid_response("unreason");
    assert_eq!(m.status(), Some(200));
    assert!(m.reason().unwrap().starts_with("= 2**3 * 5**2 "));
    assert_eq!(m.method(), "INVITE");
    assert_eq!(m.body().len(), 154);
    let m = valid_response("noreason");
    assert_eq!(m.status(), Some(100));
    assert_eq!(m.reason(), Some(""));
}

#[test]
fn invalid_messages_are_refused() {
    // §3.1.2: each with the error we give.
    let cases: &[(&str, ParseError)] = &[
        // §3.1.2.1: empty Via (and Contact) parameters; the top Via fails first.
        ("badinv01", ParseError::Header("via")),
        // §3.1.2.2: datagram shorter than Content-Length.
        ("clerr", ParseError::Truncated),
        // §3.1.2.3
        ("ncl", ParseError::ContentLength),
        // §3.1.2.4: CSeq above 2^32-1.
        ("scalar02", ParseError::Header("cseq")),
        // §3.1.2.5
        ("scalarlg", ParseError::Header("cseq")),
        // §3.1.2.6: unterminated quote in To.
        ("quotbal", ParseError::Header("to")),
        // §3.1.2.7
        ("ltgtruri", ParseError::Uri),
        // §3.1.2.8: LWS inside the Request-URI.
        ("lwsruri", ParseError::StartLine),
        // §3.1.2.9 and §3.1.2.10 are only "acceptable to reject". We reject:
        // an accepted message would be forwarded with its start line
        // untouched, extra SP included, which §3.1.2.9 forbids.
        ("lwsstart", ParseError::StartLine),
        ("trws", ParseError::StartLine),
        // §3.1.2.11 "acceptable to reject": we reject, since a proxy that
        // forwards the Request-URI as received would keep the ?headers.
        ("escruri", ParseError::Uri),
        // §3.1.2.13 (regbadct) is accepted by validation: see
        // `regbadct_contact_is_left_to_its_user`.
        // §3.1.2.14 "reasonable to reject": spaces inside <>.
        ("badaspec", ParseError::Header("to")),
        // §3.1.2.15 "reasonable to reject": a comma in a token display name.
        ("baddn", ParseError::Header("from")),
        // §3.1.2.16: the proxy answers 505.
        ("badvers", ParseError::Version),
        // §3.1.2.17
        ("mismatch01", ParseError::CSeqMismatch),
        // §3.1.2.18: 501 is preferred and 400 acceptable; the parser only
        // reports the mismatch, the caller picks the code.
        ("mismatch02", ParseError::CSeqMismatch),
        // §3.1.2.19
        ("bigcode", ParseError::StartLine),
        // §3.3.1: no To, From or Call-ID.
        ("insuf", ParseError::Missing("from")),
        // §3.3.8: To, From, Call-ID, CSeq and Max-Forwards repeated.
        ("multi01", ParseError::Header("from")),
        // §3.3.9: conflicting Content-Length values cannot frame the body.
        ("mcl01", ParseError::ContentLength),
    ];
    for (name, err) in cases {
        assert_eq!(&rejected(name), err, "{name}");
    }
}

#[test]
fn regbadct_contact_is_left_to_its_user() {
    // §3.1.2.13: a Contact addr-spec carrying ?headers is malformed. The RFC
    // calls a 400 "reasonable", and adds: "An element choosing to be liberal
    // in what it accepts could infer the angle brackets since there is no
    // ambiguity in this example." Contact is not among the fields RFC 3261
    // §16.3 step 1 asks a proxy to check, and the proxy forwards it
    // untouched, so `validate_request` accepts the message (as OpenSIPS
    // does); the Contact getter still refuses the value, so an element that
    // uses Contact (a registrar) answers 400.
    let m = valid_request("regbadct");
    assert_eq!(m.method_kind(), Method::Register);
    assert_eq!(m.contacts().unwrap_err(), ParseError::Header("contact"));
}

#[test]
fn baddate_is_accepted() {
    // §3.1.2.12: rejecting is acceptable only for elements that use Date; a
    // proxy does not, so the message passes.
    let m = valid_request("baddate");
    assert_eq!(m.header("Date"), Some("Fri, 01 Jan 2010 16:00:00 EST"));
    assert_eq!(
        m.header_values("Date"),
        vec!["Fri, 01 Jan 2010 16:00:00 EST"]
    );
}

#[test]
fn badbranch_parses() {
    // §3.2.1: the branch is just the magic cookie; parse and let the
    // transaction layer decide.
    let m = valid_request("badbranch");
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK"));
}

#[test]
fn application_layer_messages_parse() {
    // §3.3.2–§3.3.7, §3.3.11–§3.3.15: well formed; what to answer is the
    // business of the layers above.
    let m = valid_request("unkscm");
    assert_eq!(Uri::parse(m.ruri()).unwrap().scheme, Scheme::Other);
    let m = valid_request("novelsc");
    assert_eq!(m.ruri(), "soap.beep://192.0.2.103:3002");
    let m = valid_request("unksm2");
    assert_eq!(m.to().unwrap().uri, "isbn:2983792873");
    assert_eq!(m.from().unwrap().uri, "http://www.example.com");
    let m = valid_request("bext01");
    assert_eq!(
        m.header_values("Proxy-Require"),
        vec!["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]
    );
    let m = valid_request("invut");
    assert_eq!(m.header("c"), Some("application/unknownformat"));
    assert_eq!(m.body().len(), 40);
    let m = valid_request("regaut01");
    assert_eq!(
        m.header("Authorization"),
        Some("NoOneKnowsThisScheme opaque-data=here")
    );
    let m = valid_request("zeromf");
    assert_eq!(m.max_forwards(), Some(Ok(0)));
    let m = valid_request("cparam01");
    let Ok(Contacts::List(c)) = m.contacts() else {
        panic!("contacts")
    };
    assert_eq!(c[0].param("unknownparam"), Some(None));
    assert_eq!(Uri::parse(c[0].uri).unwrap().param("unknownparam"), None);
    let m = valid_request("cparam02");
    let Ok(Contacts::List(c)) = m.contacts() else {
        panic!("contacts")
    };
    assert_eq!(c[0].param("unknownparam"), None);
    assert_eq!(
        Uri::parse(c[0].uri).unwrap().param("unknownparam"),
        Some(None)
    );
    let m = valid_request("regescrt");
    let Ok(Contacts::List(c)) = m.contacts() else {
        panic!("contacts")
    };
    assert_eq!(
        Uri::parse(c[0].uri).unwrap().headers,
        Some("Route=%3Csip:sip.example.com%3E")
    );
    let m = valid_request("sdp01");
    assert_eq!(m.header("Accept"), Some("text/nobodyKnowsThis"));
}

#[test]
fn bcast_response_parses() {
    // §3.3.10: well formed; dropping it is the proxy's job.
    let m = valid_response("bcast");
    assert_eq!(m.vias()[1].host, "255.255.255.255");
}

#[test]
fn inv2543_legacy_syntax() {
    // §3.4.1: no branch, no From tag, no Content-Length, no Max-Forwards.
    let m = valid_request("inv2543");
    assert_eq!(m.top_via().unwrap().branch(), None);
    assert_eq!(m.from_tag(), None);
    assert_eq!(m.max_forwards(), None);
    assert_eq!(m.header("Content-Length"), None);
    assert!(m.body().starts_with(b"v=0\r\n"));
    assert!(m.body().ends_with(b"m=audio 49217 RTP/AVP 0\r\n"));
    assert_eq!(
        m.record_routes()[0].uri,
        "sip:UserB@example.com;maddr=ss1.example.com"
    );
}

#[test]
fn every_fixture_round_trips_or_fails_cleanly() {
    let dir = format!("{}/tests/fixtures/sip-torture", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("dat") {
            continue;
        }
        n += 1;
        let bytes = std::fs::read(&path).unwrap();
        if let Ok(m) = Message::parse(Bytes::from(bytes.clone())) {
            let mut out = Vec::new();
            m.write_to(&mut out);
            assert_eq!(out, m.as_bytes());
            assert!(bytes.starts_with(&out), "{}", path.display());
        }
    }
    assert_eq!(n, 49);
}
