//! `save`'s bindings as RFC 3261 §10.3 changes them.

use super::*;

fn req(contacts: Cts, callid: &str, cseq: i64) -> Req {
    Req {
        aor: "alice".into(),
        callid: callid.into(),
        cseq,
        contacts,
        path: None,
        echo_path: false,
        user_agent: String::new(),
        received: None,
        socket: None,
        cflags: 0,
        matching_mode: 0,
        max_contacts: 2,
        force: false,
        gruu: None,
    }
}

fn ct(uri: &str, secs: u32, q: i32) -> Ct {
    Ct {
        uri: uri.into(),
        secs,
        q,
        instance: None,
        reg_id: 0,
        methods: None,
    }
}

#[test]
fn rfc3261_10_3_bindings() {
    let mut v = Vec::new();
    let t = 1000;
    apply(&mut v, &req(Cts::List(vec![ct("sip:a@1", 60, 500), ct("sip:b@2", 60, 900)]), "c1", 1), t)
        .expect("two");
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].uri, "sip:b@2", "highest q first");
    // A stale CSeq of the same Call-ID changes nothing.
    apply(&mut v, &req(Cts::List(vec![ct("sip:a@1", 0, -1)]), "c1", 1), t).expect("stale");
    assert_eq!(v.len(), 2);
    // A newer one removes with expires 0.
    apply(&mut v, &req(Cts::List(vec![ct("sip:a@1", 0, -1)]), "c1", 2), t).expect("rm");
    assert_eq!(v.len(), 1);
    // max_contacts 2: a third is refused, the bindings unchanged.
    apply(&mut v, &req(Cts::List(vec![ct("sip:c@3", 60, -1)]), "c2", 1), t).expect("c");
    let e = apply(&mut v, &req(Cts::List(vec![ct("sip:d@4", 60, -1)]), "c3", 1), t).unwrap_err();
    assert_eq!(e.code, 503);
    assert_eq!(v.len(), 2);
    apply(&mut v, &req(Cts::Star, "c4", 1), t).expect("star");
    assert!(v.is_empty());
    // matching_mode 1: the same URI from another Call-ID is another
    // binding.
    let mut r1 = req(Cts::List(vec![ct("sip:z@9", 60, -1)]), "k1", 1);
    r1.matching_mode = 1;
    r1.max_contacts = 0;
    apply(&mut v, &r1, t).expect("k1");
    r1.callid = "k2".into();
    apply(&mut v, &r1, t).expect("k2");
    assert_eq!(v.iter().filter(|c| c.uri == "sip:z@9").count(), 2);
    r1.matching_mode = 0;
    r1.callid = "k3".into();
    r1.contacts = Cts::List(vec![ct("sip:z@9", 0, -1)]);
    apply(&mut v, &r1, t).expect("k3");
    assert_eq!(v.iter().filter(|c| c.uri == "sip:z@9").count(), 1);
    assert_eq!(method_bit("invite"), 1);
    assert_eq!(methods_of("INVITE, BYE"), 9);
}
