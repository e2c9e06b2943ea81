//! Pseudo-variables and transformations, table-driven: one case at least
//! for every variable and every transformation in the registries (a test
//! below fails when one is added without a case). Expected values follow
//! the OpenSIPS 3.4 documentation examples where it gives one.

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
