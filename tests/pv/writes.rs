use super::*;

#[test]
fn writes() {
    let mut c = prepared();
    set(&mut c, "$ru", Value::Str("sip:carol@10.0.0.5:5080".into()));
    assert_eq!(show(&eval(&c, "$rd").unwrap()), "10.0.0.5");
    assert_eq!(
        show(&eval(&c, "$ou").unwrap()),
        "sip:bob@example.com:5070;transport=tcp;user=phone"
    );
    set(&mut c, "$rU", Value::Str("dave".into()));
    set(&mut c, "$rp", Value::Int(5090));
    assert_eq!(show(&eval(&c, "$ru").unwrap()), "sip:dave@10.0.0.5:5090");
    set(&mut c, "$du", Value::Null);
    assert_eq!(eval(&c, "$du").unwrap(), Value::Null);
    set(&mut c, "$mf", Value::Int(5));
    assert_eq!(eval(&c, "$msg.flag(2)").unwrap(), Value::Int(1));
    set(&mut c, "$msg.flag(2)", Value::Int(0));
    assert_eq!(eval(&c, "$mf").unwrap(), Value::Int(1));
    set(&mut c, "$branch.flag(4)", Value::Int(1));
    assert_eq!(eval(&c, "$bf").unwrap(), Value::Int(16));
    set(&mut c, "$bf", Value::Int(0));
    assert_eq!(eval(&c, "$branch.flag(4)").unwrap(), Value::Int(0));
    set(&mut c, "$ru_q", Value::Int(500));
    assert_eq!(eval(&c, "$ru_q").unwrap(), Value::Int(500));
    set(&mut c, "$rc", Value::Int(-2));
    assert_eq!(eval(&c, "$retcode").unwrap(), Value::Int(-2));
    set(
        &mut c,
        "$socket_out",
        Value::Str("udp:127.0.0.1:5060".into()),
    );
    assert_eq!(show(&eval(&c, "$socket_out(port)").unwrap()), "5060");
    let s = pv::parse_spec("$socket_out").unwrap();
    assert!(pv::set(&mut c, &s, Value::Str("udp:9.9.9.9:1".into())).is_err());
    for ro in ["$fu", "$hdr(Via)", "$si", "$rm", "$(ru{uri.user})"] {
        let s = pv::parse_spec(ro).unwrap();
        assert!(pv::set(&mut c, &s, Value::Str("x".into())).is_err(), "{ro}");
    }
    let s = pv::parse_spec("$ru").unwrap();
    let e = pv::set(&mut c, &s, Value::Str("not a uri".into())).unwrap_err();
    assert!(e.contains("not a valid URI"), "{e}");
}

#[test]
fn avp_list_semantics() {
    let mut c = prepared();
    // = NULL deletes the newest value.
    set(&mut c, "$avp(list)", Value::Null);
    assert_eq!(show(&eval(&c, "$avp(list)").unwrap()), "older");
    // Indexed write overwrites; indexed null deletes that one.
    set(&mut c, "$(avp(list)[-1])", Value::Str("first".into()));
    assert_eq!(show(&eval(&c, "$(avp(list)[1])").unwrap()), "first");
    set(&mut c, "$(avp(list)[0])", Value::Null);
    assert_eq!(show(&eval(&c, "$avp(list)").unwrap()), "first");
    // [*] = v replaces all; [*] = NULL deletes all.
    set(&mut c, "$avp(list)", Value::Int(1));
    set(&mut c, "$(avp(list)[*])", Value::Int(9));
    assert_eq!(pv::vars::avp_values(&c, "list"), vec![Value::Int(9)]);
    set(&mut c, "$(avp(list)[*])", Value::Null);
    assert_eq!(eval(&c, "$avp(list)").unwrap(), Value::Null);
    // AVPs live for one message; $var survives.
    set(&mut c, "$avp(a)", Value::Int(1));
    let again = call_for(INVITE).msg.unwrap();
    let src = c.src;
    c.reset(again, src, RouteType::Request);
    assert_eq!(eval(&c, "$avp(a)").unwrap(), Value::Null);
    assert_eq!(eval(&c, "$var(n)").unwrap(), Value::Int(5));
    assert_eq!(eval(&c, "$mi").unwrap(), Value::Int(2));
}

#[test]
fn assignment_operators() {
    let mut c = prepared();
    let a = |c: &mut Call, spec: &str, op: &str, v: Value| {
        let s = pv::parse_spec(spec).unwrap();
        pv::vars::assign(c, &s, op, v).unwrap_or_else(|e| panic!("{spec} {op}: {e}"));
    };
    a(&mut c, "$var(n)", "+=", Value::Int(3));
    assert_eq!(eval(&c, "$var(n)").unwrap(), Value::Int(8));
    a(&mut c, "$var(n)", "-=", Value::Int(1));
    a(&mut c, "$var(n)", "*=", Value::Int(6));
    a(&mut c, "$var(n)", "/=", Value::Int(4));
    a(&mut c, "$var(n)", "%=", Value::Int(7));
    assert_eq!(eval(&c, "$var(n)").unwrap(), Value::Int(3));
    a(&mut c, "$var(n)", "|=", Value::Int(12));
    a(&mut c, "$var(n)", "&=", Value::Int(6));
    a(&mut c, "$var(n)", "^=", Value::Int(1));
    assert_eq!(eval(&c, "$var(n)").unwrap(), Value::Int(7));
    a(&mut c, "$var(s)", "+=", Value::Str("-more".into()));
    assert_eq!(show(&eval(&c, "$var(s)").unwrap()), "text-more");
    a(&mut c, "$avp(list)", ":=", Value::Str("only".into()));
    assert_eq!(
        pv::vars::avp_values(&c, "list"),
        vec![Value::Str("only".into())]
    );
    a(&mut c, "$avp(cnt)", "=", Value::Int(1));
    a(&mut c, "$avp(cnt)", "+=", Value::Int(1));
    assert_eq!(pv::vars::avp_values(&c, "cnt"), vec![Value::Int(2)]);
    let s = pv::parse_spec("$var(n)").unwrap();
    assert!(pv::vars::assign(&mut c, &s, "/=", Value::Int(0)).is_err());
    assert!(pv::vars::assign(&mut c, &s, "<<=", Value::Int(1)).is_err());
}

#[test]
fn shared_variables_cross_threads() {
    let mut c = prepared();
    set(&mut c, "$shv(pv_cross)", Value::Int(41));
    std::thread::spawn(|| {
        let mut other = call_for(INVITE);
        let s = pv::parse_spec("$shv(pv_cross)").unwrap();
        pv::vars::assign(&mut other, &s, "+=", Value::Int(1)).unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(eval(&c, "$shv(pv_cross)").unwrap(), Value::Int(42));
}

#[test]
fn formats() {
    let c = prepared();
    let parts =
        pv::parse_format("$rm $(ru{uri.user}) from $si:$sp [$hdr(X-Missing)] \\$x $fU.").unwrap();
    let mut out = String::new();
    pv::format(&c, &parts, &mut out);
    assert_eq!(
        out,
        "INVITE bob from 192.0.2.9:5070 [<null>] $x alice%40home."
    );
}

#[test]
fn hostile_values_do_not_panic() {
    let mut c = prepared();
    let long = "%".repeat(70_000);
    for input in [
        "",
        "%",
        "%zz",
        "\u{e9}\u{e9}",
        &long,
        "[",
        "sip:",
        "SIP/2.0/UDP",
        "a=\"b;c",
        "\"",
        ",",
    ] {
        set(&mut c, "$var(x)", Value::Str(input.to_string()));
        for t in pv::tr::all() {
            let args = match t.min_args {
                0 => String::new(),
                1 => ",1".into(),
                _ => ",1,1".into(),
            };
            let spec = format!("$(var(x){{{}{args}}})", t.name);
            if let Ok(s) = pv::parse_spec(&spec) {
                let _ = pv::eval(&c, &s);
            }
        }
    }
    // A message with many Via values: indexes stay bounded.
    let mut m = String::from("OPTIONS sip:a@b SIP/2.0\r\n");
    for i in 0..200 {
        m.push_str(&format!("Via: SIP/2.0/UDP h{i};branch=z9hG4bK{i}\r\n"));
    }
    m.push_str("Content-Length: 0\r\n\r\n");
    let c = call_for(&m);
    assert_eq!(eval(&c, "$hdrcnt(Via)").unwrap(), Value::Int(200));
    assert_eq!(
        show(&eval(&c, "$(hdr(Via)[-1]{via.branch})").unwrap()),
        "z9hG4bK199"
    );
    assert_eq!(eval(&c, "$(hdr(Via)[-201])").unwrap(), Value::Null);
    assert_eq!(eval(&c, "$(hdr(Via)[2147483647])").unwrap(), Value::Null);
}

#[test]
fn statistics() {
    let c = prepared();
    assert!(matches!(eval(&c, "$stat(rcv_requests)"), Ok(Value::Int(_))));
    assert!(matches!(
        eval(&c, "$stat(core:rcv_requests)"),
        Ok(Value::Int(_))
    ));
}

#[test]
fn borrowing_reads_agree_with_getters() {
    for c in [prepared(), call_for(REPLY)] {
        let mut seen = 0;
        for (spec, _) in PVS {
            let s = pv::parse_spec(spec).unwrap();
            if let Some(p) = pv::peek(&c, &s) {
                seen += 1;
                let want = pv::get(&c, &s);
                assert_eq!(
                    p.map(|t| Value::Str(t.to_string())).unwrap_or(Value::Null),
                    want,
                    "{spec}"
                );
            }
        }
        assert!(seen >= 10, "{seen}");
    }
    // A dynamic name takes the full path.
    let c = prepared();
    let s = pv::parse_spec("$hdr($var(h))").unwrap();
    assert_eq!(pv::peek(&c, &s), None);
}

/// `$branch(...)` reads and writes the branches append_branch added, the
/// first being 0 and -1 the last, as in OpenSIPS.
#[test]
fn appended_branches_fields() {
    let mut c = prepared();
    assert_eq!(eval(&c, "$branch(uri)").unwrap(), Value::Null);
    c.tm.branches.push("sip:carol@192.0.2.7".into());
    c.tm.branches.push(lunasip::proxy::context::PendingBranch {
        uri: "sip:dave@192.0.2.8".into(),
        duri: Some("sip:192.0.2.1:5080".into()),
        q: Some(500),
        ..Default::default()
    });
    assert_eq!(
        show(&eval(&c, "$branch(uri)").unwrap()),
        "sip:carol@192.0.2.7"
    );
    assert_eq!(
        show(&eval(&c, "$(branch(uri)[1])").unwrap()),
        "sip:dave@192.0.2.8"
    );
    assert_eq!(
        show(&eval(&c, "$(branch(duri)[-1])").unwrap()),
        "sip:192.0.2.1:5080"
    );
    assert_eq!(eval(&c, "$(branch(q)[1])").unwrap(), Value::Int(500));
    assert_eq!(eval(&c, "$(branch(uri)[2])").unwrap(), Value::Null);
    set(
        &mut c,
        "$(branch(duri)[0])",
        Value::Str("sip:192.0.2.2".into()),
    );
    assert_eq!(c.tm.branches[0].duri.as_deref(), Some("sip:192.0.2.2"));
    set(&mut c, "$(branch(duri)[1])", Value::Null);
    assert_eq!(c.tm.branches[1].duri, None);
    let spec = pv::parse_spec("$(branch(uri)[0])").unwrap();
    assert!(pv::set(&mut c, &spec, Value::Str("not a uri".into())).is_err());
}
