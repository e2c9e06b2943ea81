//! Pseudo-variables and transformations, table-driven: one case at least
//! for every variable and every transformation in the registries (a test
//! below fails when one is added without a case). Expected values follow
//! the OpenSIPS 3.4 documentation examples where it gives one.

mod transformations;
mod writes;

use bytes::Bytes;
use std::collections::HashSet;
use std::sync::Arc;

use lunasip::config::{parse_listen, Config};
use lunasip::proxy::context::{Call, Source};
use lunasip::pv::{self, Value};
use lunasip::script::route::RouteType;
use lunasip::sip::Message;
use lunasip::transport::{Proto, Sockets};

const INVITE: &str = "INVITE sip:bob@example.com:5070;transport=tcp;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc;rport, SIP/2.0/TCP [2001:db8::7]:5061;branch=z9hG4bK7a;received=2001:db8::8\r\n\
v: SIP/2.0/UDP 192.0.2.3;branch=z9hG4bKq\r\n\
Max-Forwards: 70\r\n\
From: \"Alice A\" <sip:alice%40home@atlanta.example.com>;tag=a1\r\n\
To: Bob <sip:bob@example.com>;tag=b2\r\n\
Call-ID: call-1@10.0.0.1\r\n\
CSeq: 7 INVITE\r\n\
Contact: \"Al\" <sip:alice@10.0.0.1:5062;transport=tcp>;expires=3600;q=0.5;methods=\"INVITE,BYE\";received=\"sip:1.2.3.4\", <sip:alice@pc2>\r\n\
User-Agent: TestUA/1.0\r\n\
P-Asserted-Identity: \"Alice\" <sip:+4930123@atlanta.example.com>\r\n\
Remote-Party-ID: <sip:rpid@atlanta.example.com>;party=calling\r\n\
Refer-To: <sip:carol@example.com>\r\n\
Diversion: <sip:dan@example.com>;reason=unconditional;privacy=off\r\n\
P-Preferred-Identity: \"Pref\" <sip:pref@pref.example.com>\r\n\
Path: <sip:edge1.example.com;lr>, <sip:edge2.example.com;lr>\r\n\
Proxy-Authorization: Digest username=\"alice@atlanta.example.com\", realm=\"atlanta.example.com\", nonce=\"n0nce\", uri=\"sip:bob@example.com\", response=\"deadbeef\", algorithm=MD5, cnonce=\"cn\", opaque=\"op\", qop=auth, nc=00000001\r\n\
X-Multi: one\r\n\
x-multi: two\r\n\
Content-Type: multipart/mixed;boundary=\"b1\"\r\n\
Content-Length: 129\r\n\
\r\n\
--b1\r\n\
Content-Type: application/sdp\r\n\
\r\n\
v=0\r\n\
m=audio 49170 RTP/AVP 0\r\n\
--b1\r\n\
Content-Type: application/isup\r\n\
\r\n\
isup-bytes\r\n\
--b1--\r\n";

const REPLY: &str = "SIP/2.0 486 Busy Here\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc\r\n\
From: <sip:alice@a.example.com>;tag=a1\r\n\
To: <sip:bob@example.com>;tag=b2\r\n\
Call-ID: c2\r\n\
CSeq: 7 INVITE\r\n\
Content-Length: 0\r\n\r\n";

fn call_for(text: &str) -> Call {
    // The modules' pseudo-variables ($T_*) join the registry.
    lunasip::modules::register();
    let msg = Message::parse(Bytes::from(text.to_string())).expect("message parses");
    let cfg = Config {
        listen: vec![parse_listen("udp:127.0.0.1:5060").unwrap()],
        ..Config::default()
    };
    let mut c = Call::new();
    c.sockets = Some(Arc::new(Sockets::new(&cfg.listen, &cfg.aliases)));
    let route = if msg.is_request() {
        RouteType::Request
    } else {
        RouteType::OnReply
    };
    c.reset(
        msg,
        Source {
            addr: "192.0.2.9:5070".parse().unwrap(),
            proto: Proto::Udp,
            socket: 0,
        },
        route,
    );
    c.du = Some("sip:proxy.example.com:5080;transport=tls".into());
    c
}

fn set(c: &mut Call, spec: &str, v: Value) {
    let s = pv::parse_spec(spec).unwrap();
    pv::set(c, &s, v).unwrap_or_else(|e| panic!("{spec}: {e}"));
}

fn eval(c: &Call, spec: &str) -> Result<Value, String> {
    let s = pv::parse_spec(spec)?;
    pv::eval(c, &s)
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "<null>".into(),
        Value::Int(i) => format!("{i}"),
        Value::Str(s) => s.clone(),
    }
}

/// (spec, expected as text, `<null>` for null).
const PVS: &[(&str, &str)] = &[
    ("$rm", "INVITE"),
    ("$ru", "sip:bob@example.com:5070;transport=tcp;user=phone"),
    ("$rU", "bob"),
    ("$rd", "example.com"),
    ("$rp", "5070"),
    ("$rP", "tcp"),
    ("$ru_q", "<null>"),
    ("$ou", "sip:bob@example.com:5070;transport=tcp;user=phone"),
    ("$oU", "bob"),
    ("$od", "example.com"),
    ("$op", "5070"),
    ("$oP", "tcp"),
    ("$du", "sip:proxy.example.com:5080;transport=tls"),
    ("$dd", "proxy.example.com"),
    ("$dp", "5080"),
    ("$dP", "tls"),
    ("$fu", "sip:alice%40home@atlanta.example.com"),
    ("$fU", "alice%40home"),
    ("$fd", "atlanta.example.com"),
    ("$fn", "\"Alice A\""),
    ("$ft", "a1"),
    ("$tu", "sip:bob@example.com"),
    ("$tU", "bob"),
    ("$td", "example.com"),
    ("$tn", "Bob"),
    ("$tt", "b2"),
    ("$ci", "call-1@10.0.0.1"),
    ("$cs", "7"),
    ("$rs", "<null>"),
    ("$rr", "<null>"),
    ("$cl", "129"),
    ("$cT", "multipart/mixed;boundary=\"b1\""),
    ("$ua", "TestUA/1.0"),
    ("$ct", "\"Al\" <sip:alice@10.0.0.1:5062;transport=tcp>;expires=3600;q=0.5;methods=\"INVITE,BYE\";received=\"sip:1.2.3.4\""),
    ("$(ct[1])", "<sip:alice@pc2>"),
    ("$(ct[-1])", "<sip:alice@pc2>"),
    ("$ct.fields(uri)", "sip:alice@10.0.0.1:5062;transport=tcp"),
    ("$ct.fields(name)", "\"Al\""),
    ("$ct.fields(q)", "0.5"),
    ("$ct.fields(expires)", "3600"),
    ("$ct.fields(methods)", "\"INVITE,BYE\""),
    ("$ct.fields(received)", "\"sip:1.2.3.4\""),
    ("$(ct.fields(uri)[1])", "sip:alice@pc2"),
    ("$hdr(User-Agent)", "TestUA/1.0"),
    ("$hdr(X-Multi)", "one"),
    ("$(hdr(x-multi)[1])", "two"),
    ("$(hdr(X-Multi)[-1])", "two"),
    ("$(hdr(X-Multi)[*])", "one, two"),
    ("$(hdr(Via)[2])", "SIP/2.0/UDP 192.0.2.3;branch=z9hG4bKq"),
    ("$(hdr(Via)[5])", "<null>"),
    ("$hdr(X-Missing)", "<null>"),
    ("$hdrcnt(Via)", "3"),
    ("$hdrcnt(X-Missing)", "0"),
    ("$(hdr_name[0])", "Via"),
    ("$(hdr_name[2])", "Max-Forwards"),
    ("$(hdr_name[1])", "v"),
    ("$rb(application/isup)", "isup-bytes"),
    ("$rb(application/sdp)", "v=0\r\nm=audio 49170 RTP/AVP 0"),
    ("$rb(text/plain)", "<null>"),
    ("$(rb{s.len})", "129"),
    ("$(mb{s.len})", "$ml"),
    ("$ml", "$ml"),
    ("$mi", "1"),
    ("$mf", "0"),
    ("$bf", "0"),
    ("$msg.flag(3)", "0"),
    ("$branch.flag(2)", "0"),
    ("$msg.is_request", "1"),
    ("$msg.type", "request"),
    ("$si", "192.0.2.9"),
    ("$sp", "5070"),
    ("$pr", "udp"),
    ("$proto", "udp"),
    ("$af", "INET"),
    ("$socket_in", "udp:127.0.0.1:5060"),
    ("$socket_in(ip)", "127.0.0.1"),
    ("$socket_in(port)", "5060"),
    ("$socket_in(proto)", "udp"),
    ("$socket_out", "<null>"),
    ("$Ri", "127.0.0.1"),
    ("$Rp", "5060"),
    ("$ai", "sip:+4930123@atlanta.example.com"),
    ("$re", "sip:rpid@atlanta.example.com"),
    ("$rt", "sip:carol@example.com"),
    ("$di", "sip:dan@example.com"),
    ("$dir", "unconditional"),
    ("$dip", "off"),
    ("$pu", "sip:pref@pref.example.com"),
    ("$pU", "pref"),
    ("$pd", "pref.example.com"),
    ("$pn", "\"Pref\""),
    ("$path", "<sip:edge1.example.com;lr>,<sip:edge2.example.com;lr>"),
    ("$rr_params", "<null>"),
    ("$au", "alice@atlanta.example.com"),
    ("$Au", "alice@atlanta.example.com"),
    ("$aU", "alice"),
    ("$ad", "atlanta.example.com"),
    ("$ar", "atlanta.example.com"),
    ("$adu", "sip:bob@example.com"),
    ("$an", "n0nce"),
    ("$auth.nonce", "n0nce"),
    ("$auth.resp", "deadbeef"),
    ("$auth(alg)", "MD5"),
    ("$auth.cnonce", "cn"),
    ("$auth.opaque", "op"),
    ("$auth.qop", "auth"),
    ("$auth.nc", "00000001"),
    ("$var(missing)", "<null>"),
    ("$var(n)", "5"),
    ("$var(s)", "text"),
    ("$avp(list)", "newest"),
    ("$(avp(list)[0])", "newest"),
    ("$(avp(list)[1])", "older"),
    ("$(avp(list)[-1])", "oldest"),
    ("$(avp(list)[9])", "<null>"),
    ("$shv(pv_test_shared)", "shared"),
    ("$hdr($var(h))", "TestUA/1.0"),
    ("$(avp(list)[$var(i)])", "older"),
    ("$stat(no_such_statistic_anywhere)", "<null>"),
    ("$rc", "<null>"),
    ("$retcode", "<null>"),
    ("$route.type", "route"),
    ("$route.name", "main"),
    ("$(route.name[0])", "main"),
    ("$(route.name[-1])", "main"),
    ("$(route.name[1])", "<null>"),
    ("$(route.type[-2])", "<null>"),
    ("$route", "route"),
    ("$(route[*])", "route"),
    ("$cfg_line", "<null>"),
    ("$cfg_file", "<null>"),
    ("$argv(x)", "<null>"),
    ("$param(1)", "<null>"),
    ("$err.class", "<null>"),
    ("$err.level", "<null>"),
    ("$err.info", "<null>"),
    ("$err.rcode", "<null>"),
    ("$err.rreason", "<null>"),
    ("$branch(uri)", "<null>"),
    ("$branch(duri)", "<null>"),
    ("$(branch(uri)[1])", "<null>"),
    ("$ds", "<null>"),
    ("$T_branch_idx", "<null>"),
    ("$T_reply_code", "<null>"),
    ("$T_ruri", "<null>"),
    ("$T_id", "<null>"),
    ("$T_fr_timeout", "<null>"),
    ("$T_fr_inv_timeout", "<null>"),
    ("$bavp(x)", "<null>"),
    ("$cluster.sh_tag(vip/1)", "backup"),
    ("$DLG_count", "0"),
    ("$DLG_status", "<null>"),
    ("$DLG_lifetime", "<null>"),
    ("$DLG_flags", "<null>"),
    ("$DLG_dir", "<null>"),
    ("$DLG_did", "<null>"),
    ("$DLG_end_reason", "<null>"),
    ("$DLG_timeout", "<null>"),
    ("$dlg_val(x)", "<null>"),
    ("$acc_extra(x)", "<null>"),
    ("$acc_leg(x)", "<null>"),
    ("$TH_callee_callid", "<null>"),
    ("$null", "<null>"),
    ("$C(rx)", "\x1b[0;31m"),
    ("$(time(%Y){s.len})", "4"),
    ("$(Tf{s.len})", "24"),
    ("$pp", "$pp"),
    ("$log_level", "$log_level"),
    ("$xlog_level", "$xlog_level"),
    // OpenSIPS 3.4 pvar.c's long names.
    ("$ruri", "sip:bob@example.com:5070;transport=tcp;user=phone"),
    ("$ruri.user", "bob"),
    ("$ruri.domain", "example.com"),
    ("$ouri", "sip:bob@example.com:5070;transport=tcp;user=phone"),
    ("$duri", "sip:proxy.example.com:5080;transport=tls"),
    ("$from", "sip:alice%40home@atlanta.example.com"),
    ("$from.user", "alice%40home"),
    ("$from.domain", "atlanta.example.com"),
    ("$to", "sip:bob@example.com"),
    ("$to.user", "bob"),
    ("$to.domain", "example.com"),
    ("$src_ip", "192.0.2.9"),
];

fn prepared() -> Call {
    let mut c = call_for(INVITE);
    set(&mut c, "$var(n)", Value::Int(5));
    set(&mut c, "$var(s)", Value::Str("text".into()));
    set(&mut c, "$var(h)", Value::Str("User-Agent".into()));
    set(&mut c, "$var(i)", Value::Int(1));
    for v in ["oldest", "older", "newest"] {
        set(&mut c, "$avp(list)", Value::Str(v.into()));
    }
    set(&mut c, "$shv(pv_test_shared)", Value::Str("shared".into()));
    c
}

#[test]
fn every_pseudo_variable() {
    let c = prepared();
    let mut bad = Vec::new();
    for (spec, want) in PVS {
        let got = show(&eval(&c, spec).unwrap_or_else(|e| panic!("{spec}: {e}")));
        // A `$x` expectation is "same as that variable" (values that vary).
        let want = if want.starts_with('$') {
            show(&eval(&c, want).unwrap())
        } else {
            want.to_string()
        };
        if got != want {
            bad.push(format!("{spec}: got {got:?}, want {want:?}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn every_variable_has_a_case() {
    lunasip::modules::register();
    let covered: HashSet<&str> = PVS
        .iter()
        .map(|(s, _)| pv::parse_spec(s).unwrap().def.name)
        .collect();
    let missing: Vec<_> = pv::all()
        .map(|d| d.name)
        .filter(|n| !covered.contains(n) && !["Ts", "Tsm", "TS", "time"].contains(n))
        .collect();
    assert!(missing.is_empty(), "no case for {missing:?}");
}

#[test]
fn time_variables() {
    let c = prepared();
    let ts = eval(&c, "$Ts").unwrap().to_int().unwrap();
    assert!(ts > 1_700_000_000);
    let tsm = eval(&c, "$Tsm").unwrap().to_int().unwrap();
    assert!((0..1_000_000).contains(&tsm));
    let started = eval(&c, "$TS").unwrap().to_int().unwrap();
    assert!(started <= ts && started > 1_700_000_000);
    assert_eq!(
        eval(&c, "$time(%Y)").unwrap(),
        Value::Str(lunasip::pv::misc::strftime("%Y", ts).expect("a year"))
    );
}

/// `$ds` prints the destination set as OpenSIPS's print_dset does: the
/// R-URI once the script changed it (with its q), then the appended
/// branches.
#[test]
fn destination_set() {
    let mut c = prepared();
    assert_eq!(eval(&c, "$ds").unwrap(), Value::Null);
    c.tm.branches.push("sip:carol@192.0.2.7".into());
    assert_eq!(
        eval(&c, "$ds").unwrap(),
        Value::Str("Contact: <sip:carol@192.0.2.7>".into())
    );
    set(&mut c, "$ru", Value::Str("sip:dave@192.0.2.8".into()));
    set(&mut c, "$ru_q", Value::Int(500));
    assert_eq!(
        eval(&c, "$ds").unwrap(),
        Value::Str("Contact: <sip:dave@192.0.2.8>;q=0.5, <sip:carol@192.0.2.7>".into())
    );
    assert!(pv::parse_spec("$ds(count)").is_err(), "$ds takes no name");
}

#[test]
fn typed_results() {
    let c = prepared();
    assert_eq!(eval(&c, "$cs").unwrap(), Value::Int(7));
    assert_eq!(eval(&c, "$rp").unwrap(), Value::Int(5070));
    assert_eq!(eval(&c, "$(ru{s.len})").unwrap(), Value::Int(49));
    assert_eq!(eval(&c, "$ru").unwrap().as_str().map(str::len), Some(49));
    assert_eq!(eval(&c, "$ml").unwrap(), Value::Int(INVITE.len() as i64));
}

#[test]
fn replies() {
    let c = call_for(REPLY);
    for (spec, want) in [
        ("$rs", "486"),
        ("$rr", "Busy Here"),
        ("$rm", "INVITE"),
        ("$ru", "<null>"),
        ("$rU", "<null>"),
        ("$msg.type", "reply"),
        ("$msg.is_request", "0"),
        ("$route.type", "onreply_route"),
        ("$rb", "<null>"),
        ("$au", "<null>"),
    ] {
        assert_eq!(show(&eval(&c, spec).unwrap()), want, "{spec}");
    }
}

#[test]
fn docs_list_every_variable_and_transformation() {
    let root = env!("CARGO_MANIFEST_DIR");
    let pvd = std::fs::read_to_string(format!("{root}/docs/pseudo-variables.md")).unwrap();
    let trd = std::fs::read_to_string(format!("{root}/docs/transformations.md")).unwrap();
    let missing: Vec<_> = pv::all()
        .map(|d| d.name)
        .filter(|n| {
            !pvd.contains(&format!("`${n}"))
                && !pvd.contains(&format!(", ${n}"))
                && !pvd.contains(&format!("`${n}("))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/pseudo-variables.md: {missing:?}"
    );
    let missing: Vec<_> = pv::tr::all()
        .map(|d| d.name)
        .filter(|n| !trd.contains(&format!("{{{n}")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/transformations.md: {missing:?}"
    );
}
