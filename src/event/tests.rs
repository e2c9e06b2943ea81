use super::socket::rabbit;
use super::*;

#[test]
fn rabbitmq_socket_as_event_rabbitmq_parses_it() {
    // modules/event_rabbitmq/event_rabbitmq.c rmq_parse: defaults guest/guest, 5672.
    let t = rabbit("127.0.0.1/key").expect("minimal");
    assert_eq!(
        (
            t.user.as_str(),
            t.password.as_str(),
            t.port,
            t.exchange.as_str(),
            t.routing_key.as_str()
        ),
        ("guest", "guest", 5672, "", "key")
    );
    let t = rabbit("u:p w@rmq.local:5673/exchange=ev;persistent?calls.new").expect("full");
    assert_eq!(
        (
            t.user.as_str(),
            t.password.as_str(),
            t.host.as_str(),
            t.port
        ),
        ("u", "p w", "rmq.local", 5673)
    );
    assert_eq!(
        (t.exchange.as_str(), t.routing_key.as_str(), t.persistent),
        ("ev", "calls.new", true)
    );
    assert_eq!(t.uri(), "amqp://u:p%20w@rmq.local:5673/%2f");
}

#[test]
fn udp_sockets_keep_names_for_the_delivery_thread() {
    use super::socket::UdpTo;
    let kind = |s: &str| match Socket::parse(s).map(|s| s.kind) {
        Ok(Kind::Udp(to)) => Some(to),
        _ => None,
    };
    assert_eq!(
        kind("udp:127.0.0.1:9000"),
        Some(UdpTo::Addr("127.0.0.1:9000".parse().expect("addr")))
    );
    assert_eq!(
        kind("udp:[::1]:9000"),
        Some(UdpTo::Addr("[::1]:9000".parse().expect("addr")))
    );
    // Parsing a name never looks it up (it runs on a worker).
    assert_eq!(
        kind("udp:Events.Example.invalid:9000"),
        Some(UdpTo::Name("events.example.invalid".into(), 9000))
    );
}

#[test]
fn bad_sockets_name_the_wrong_part() {
    for (s, want) in [
        ("127.0.0.1:5060", "unknown transport"),
        ("nothing", "no transport"),
        ("udp:127.0.0.1", "no port"),
        ("udp:127.0.0.1:0", "bad port"),
        ("udp:127.0.0.1:x", "bad port"),
        ("udp:bad host:9", "bad host"),
        ("udp:a/b:9", "bad host"),
        ("rabbitmq:127.0.0.1", "no '/'"),
        ("rabbitmq:127.0.0.1/", "empty routing key"),
        ("rabbitmq:127.0.0.1:99999/k", "bad port"),
        ("rabbitmq:/k", "no host"),
        ("rabbitmq:h/foo=bar?k", "unknown parameter"),
    ] {
        let e = Socket::parse(s).err().unwrap_or_default();
        assert!(e.contains(want), "{s}: {e}");
    }
}

#[test]
fn unknown_events_are_refused_and_script_events_declared_by_raising() {
    assert!(raise("E_NO_SUCH_EVENT", &Map::new()).is_err());
    assert!(subscribe("E_NO_SUCH_EVENT", "udp:127.0.0.1:9", 10).is_err());
    assert!(declare_script_event("bad name").is_err());
    declare_script_event("E_UNIT_MINE").expect("declared");
    assert!(declared().iter().any(|n| n == "E_UNIT_MINE"));
    assert!(declared().iter().any(|n| n == "E_DISPATCHER_STATUS"));
    subscribe("E_UNIT_MINE", "udp:127.0.0.1:9", 10).expect("subscribed");
    assert!(subscribers()
        .iter()
        .any(|(e, s, l)| e == "E_UNIT_MINE" && s == "udp:127.0.0.1:9" && *l <= Some(10)));
    subscribe("E_UNIT_MINE", "udp:127.0.0.2:9", u64::MAX).expect("a huge expire never expires");
    assert!(subscribers()
        .iter()
        .any(|(_, s, l)| s == "udp:127.0.0.2:9" && l.is_none()));
    subscribe("E_UNIT_MINE", "udp:127.0.0.2:9", 0).expect("expire 0 unsubscribes");
    subscribe("E_UNIT_MINE", "udp:127.0.0.1:9", 0).expect("expire 0 unsubscribes");
    assert!(!subscribers().iter().any(|(e, _, _)| e == "E_UNIT_MINE"));
}

#[test]
fn payload_is_the_jsonrpc_notification() {
    let mut m = Map::new();
    m.insert("group".into(), 1.into());
    m.insert("status".into(), "inactive".into());
    assert_eq!(
        payload("E_DISPATCHER_STATUS", &m),
        r#"{"jsonrpc":"2.0","method":"E_DISPATCHER_STATUS","params":{"group":1,"status":"inactive"}}"#
    );
}
