//! auth + auth_db end to end (OpenSIPS modules/auth/{api,challenge}.c,
//! modules/auth_db/authorize.c): the built binary challenging REGISTERs
//! and checking them against OpenSIPS 3.4's `subscriber` table on MariaDB
//! (127.0.0.1:3306, db `test`), made with `lunasip db init` and filled
//! with `lunasip db add-user`; SIPp with `[authentication]`, and raw UDP
//! exchanges where the test must replay or forge credentials. Each test
//! has its own tables.

mod common;

use common::mysql::{sql, Tables, URL};
use common::*;
use lunasip::modules::auth::digest::Alg;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

const MYSQL: &str = URL;

/// The tables of one test; `db init` must have recorded the subscriber
/// table's version.
fn tables() -> Tables {
    let t = Tables::new("ad");
    assert!(
        t.init_output
            .contains(&format!("version of {} set to 8", t.subscriber)),
        "{}",
        t.init_output
    );
    t
}

/// A registrar that challenges every REGISTER (realm example.com, qop
/// auth) and saves it once authorized; the second result of
/// www_authorize goes out in a header of the challenge.
fn script(t: &Tables, db_url: &str, auth: &str) -> String {
    script_with(t, db_url, auth, "use_domain = 1", r#""auth""#)
}

/// [`script`] with other auth_db settings and www_challenge arguments
/// after the realm.
fn script_with(t: &Tables, db_url: &str, auth: &str, auth_db: &str, challenge: &str) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 1,
  modules = {{
    mi_fifo = false,
    auth = {{ {auth} }},
    auth_db = {{ db_url = "{db_url}", {auth_db} }},
    usrloc = {{ db_mode = 3, db_url = "{MYSQL}" }},
  }},
}}

function route.main()
  if sip.is_method("REGISTER") then
    local ok, rc = sip.auth_db.www_authorize("example.com", "{sub}")
    if not ok then
      if rc == 0 then sip.exit() end
      sip.xlog("L_INFO", "authorize rc=" .. rc)
      sip.auth.www_challenge("example.com", {challenge})
      sip.exit()
    end
    sip.auth.consume_credentials()
    sip.registrar.save("{loc}")
    sip.exit()
  end
  sip.sl.sl_send_reply(200, "Alive")
end
"#,
        sub = t.subscriber,
        loc = t.location
    )
}

/// One authenticated REGISTER. No UDP retransmissions (`-nr`): on a
/// loaded machine a REGISTER answered after T1 would be sent again with
/// the same nonce count, and the copy is refused as a replay (stale=true,
/// as OpenSIPS's auth does), racing the first one's 200.
fn reg_auth(scen: &str, port: u16, user: &str, password: &str) -> SippRun {
    uac(
        scen,
        port,
        "u1",
        1,
        1,
        &["-s", user, "-au", user, "-ap", password, "-nr"],
    )
}

#[test]
fn register_challenged_answered_saved_and_wrong_password_rechallenged() {
    let t = tables();
    t.add_user("alice@example.com", "wonder");
    let p = Proxy::start(&script(&t, MYSQL, "secret = \"s1\""));
    let r = reg_auth("reg_auth.xml", p.port, "alice", "wonder");
    assert_eq!(
        r.successful,
        1,
        "{}\n{}\n{}",
        r.errors,
        r.messages,
        p.log_text()
    );
    assert!(
        r.messages
            .contains("WWW-Authenticate: Digest realm=\"example.com\""),
        "{}",
        r.messages
    );
    assert!(r.messages.contains("qop=\"auth\""), "{}", r.messages);
    // Saved by the registrar into the location table.
    assert_eq!(
        sql(&format!(
            "SELECT COUNT(*) FROM {} WHERE username = 'alice'",
            t.location
        )),
        "1"
    );
    // A wrong password is challenged again (code -2).
    let r = reg_auth("reg_auth_wrong.xml", p.port, "alice", "nope");
    assert_eq!(r.successful, 1, "{}\n{}", r.errors, r.messages);
    // An unknown user too (-1), never registered.
    let r = reg_auth("reg_auth_wrong.xml", p.port, "mallory", "x");
    assert_eq!(r.successful, 1, "{}\n{}", r.errors, r.messages);
    let log = p.stop();
    assert!(log.contains("authorize rc=-2"), "{log}");
    assert!(log.contains("authorize rc=-1"), "{log}");
    assert!(log.contains("authorize rc=-4"), "{log}");
    assert_eq!(
        sql(&format!(
            "SELECT COUNT(*) FROM {} WHERE username IN ('mallory')",
            t.location
        )),
        "0"
    );
}

/// A raw REGISTER over `sock` to 127.0.0.1:`port`; `auth`: the
/// Authorization value. Returns the answer.
fn register(sock: &UdpSocket, port: u16, user: &str, cseq: u32, auth: Option<&str>) -> String {
    let local = sock.local_addr().expect("local");
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let msg = format!(
        "REGISTER sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{cseq}-{}\r\nFrom: <sip:{user}@example.com>;tag=f1\r\nTo: <sip:{user}@example.com>\r\nCall-ID: raw-{}@t\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:x@{local}>\r\n{auth}Expires: 60\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        Instant::now().elapsed().as_nanos(),
        local.port(),
    );
    sock.send_to(msg.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let mut buf = [0u8; 65536];
    let (n, _) = sock.recv_from(&mut buf).expect("an answer");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn sock() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(8)))
        .expect("timeout");
    s
}

fn status(reply: &str) -> &str {
    reply.split(' ').nth(1).unwrap_or("")
}

fn nonce_of(reply: &str) -> String {
    let i = reply.find("nonce=\"").expect("a nonce") + 7;
    reply[i..].split('"').next().unwrap_or("").to_string()
}

/// Digest credentials (MD5, qop=auth) for `user` with `password`.
fn creds(user: &str, password: &str, nonce: &str, nc: u32) -> String {
    creds_alg(Alg::Md5, user, password, nonce, nc)
}

fn creds_alg(alg: Alg, user: &str, password: &str, nonce: &str, nc: u32) -> String {
    let uri = "sip:127.0.0.1";
    let ha1 = alg.ha1(user, "example.com", password);
    let ha2 = alg.hex(format!("REGISTER:{uri}").as_bytes());
    let nc = format!("{nc:08x}");
    let resp = alg.hex(format!("{ha1}:{nonce}:{nc}:c0ffee:auth:{ha2}").as_bytes());
    format!(
        "Digest username=\"{user}\", realm=\"example.com\", nonce=\"{nonce}\", uri=\"{uri}\", qop=auth, nc={nc}, cnonce=\"c0ffee\", response=\"{resp}\", algorithm={}",
        alg.name()
    )
}

#[test]
fn replayed_and_expired_nonces_are_stale() {
    let t = tables();
    t.add_user("bob@example.com", "pw");
    let p = Proxy::start(&script(&t, MYSQL, "secret = \"s2\", nonce_expire = 2"));
    let s = sock();
    let ch = register(&s, p.port, "bob", 1, None);
    assert_eq!(status(&ch), "401", "{ch}");
    let n = nonce_of(&ch);
    let a1 = creds("bob", "pw", &n, 1);
    let ok = register(&s, p.port, "bob", 2, Some(&a1));
    assert_eq!(status(&ok), "200", "{ok}\n{}", p.log_text());
    // The same credentials again (same nc): replayed → stale challenge.
    let re = register(&s, p.port, "bob", 3, Some(&a1));
    assert_eq!(status(&re), "401", "{re}");
    assert!(re.contains("stale=true"), "{re}");
    // The next nc of the same nonce is fine.
    let ok2 = register(&s, p.port, "bob", 4, Some(&creds("bob", "pw", &n, 2)));
    assert_eq!(status(&ok2), "200", "{ok2}");
    // Past nonce_expire: stale.
    std::thread::sleep(Duration::from_millis(3100));
    let old = register(&s, p.port, "bob", 5, Some(&creds("bob", "pw", &n, 3)));
    assert_eq!(status(&old), "401", "{old}");
    assert!(old.contains("stale=true"), "{old}");
    // A forged nonce (not signed with the secret) is refused as well.
    // (the expiry bumped by one: the signature no longer matches)
    let last = if n.as_bytes()[15] == b'0' { '1' } else { '0' };
    let forged = format!("{}{last}{}", &n[..15], &n[16..]);
    assert_ne!(forged, n);
    let f = register(&s, p.port, "bob", 6, Some(&creds("bob", "pw", &forged, 1)));
    assert_eq!(status(&f), "401", "{f}");
    let log = p.stop();
    assert!(log.matches("authorize rc=-3").count() >= 2, "{log}");
}

#[test]
fn two_instances_with_one_secret_accept_each_others_nonces() {
    let t = tables();
    t.add_user("carol@example.com", "pw");
    let a = Proxy::start(&script(&t, MYSQL, "secret = \"shared\""));
    let b = Proxy::start(&script(&t, MYSQL, "secret = \"shared\""));
    let c = Proxy::start(&script(&t, MYSQL, "secret = \"other\""));
    let s = sock();
    let n = nonce_of(&register(&s, a.port, "carol", 1, None));
    let r = register(&s, b.port, "carol", 2, Some(&creds("carol", "pw", &n, 1)));
    assert_eq!(status(&r), "200", "{r}\n{}", b.log_text());
    let r = register(&s, c.port, "carol", 3, Some(&creds("carol", "pw", &n, 2)));
    assert_eq!(status(&r), "401", "{r}");
    assert!(r.contains("stale=true"), "{r}");
}

#[test]
fn username_with_sql_metacharacters_stays_data() {
    let t = tables();
    let odd = "o'neil\"; DROP TABLE x; --";
    t.add_user(&format!("{odd}@example.com"), "pw");
    t.add_user("dave@example.com", "pw");
    let p = Proxy::start(&script(&t, MYSQL, "secret = \"s3\""));
    let s = sock();
    // A classic injection as username: no such user, challenged again.
    let n = nonce_of(&register(&s, p.port, "eve", 1, None));
    let inj = "x' OR '1'='1";
    let r = register(&s, p.port, "eve", 2, Some(&creds(inj, "pw", &n, 1)));
    assert_eq!(status(&r), "401", "{r}");
    // A name full of SQL is found as the data it is (without the double
    // quote, which a quoted-string cannot carry unescaped).
    let odd2 = "o'neil; DROP TABLE x; --";
    t.add_user(&format!("{odd2}@example.com"), "pw2");
    let n = nonce_of(&register(&s, p.port, "eve", 3, None));
    let r = register(&s, p.port, "eve", 4, Some(&creds(odd2, "pw2", &n, 1)));
    assert_eq!(status(&r), "200", "{r}\n{}", p.log_text());
    assert_eq!(sql(&format!("SELECT COUNT(*) FROM {}", t.subscriber)), "3");
    let log = p.stop();
    assert!(log.contains("authorize rc=-1"), "{log}");
}

#[test]
fn database_down_answers_500_and_the_worker_stays_free() {
    let t = tables();
    // A server that accepts and never answers: each query waits for its
    // time limit while the only worker goes on serving.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hport = hole.local_addr().expect("addr").port();
    let held = std::thread::spawn(move || {
        let mut keep = Vec::new();
        for c in hole.incoming().take(4).flatten() {
            keep.push(c);
        }
        std::thread::sleep(Duration::from_secs(12));
    });
    let url = format!("mysql://root@127.0.0.1:{hport}/test");
    let p = Proxy::start(&script(&t, &url, "secret = \"s4\""));
    let s = sock();
    let n = nonce_of(&register(&s, p.port, "frank", 1, None));
    let started = Instant::now();
    let s2 = sock();
    let pport = p.port;
    let slow = std::thread::spawn(move || {
        register(&s2, pport, "frank", 2, Some(&creds("frank", "pw", &n, 1)))
    });
    std::thread::sleep(Duration::from_millis(300));
    // Meanwhile the single worker answers at once.
    let o = udp_exchange(
        &format!("127.0.0.1:{}", p.port),
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bK-o1\r\nFrom: <sip:t@x>;tag=1\r\nTo: <sip:t@x>\r\nCall-ID: o1@t\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        Duration::from_secs(2),
    )
    .expect("OPTIONS answered while the database hangs");
    assert!(o.starts_with("SIP/2.0 200"), "{o}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let r = slow.join().expect("register thread");
    assert_eq!(status(&r), "500", "{r}\n{}", p.log_text());
    drop(p);
    drop(held);
}

/// RFC 8760: the challenge offers SHA-256 before MD5 (one header each, as
/// OpenSIPS), a SHA-256 answer is checked against ha1_sha256, and a SHA-256
/// answer to the MD5 nonce is stale (the nonce names its algorithm).
#[test]
fn sha256_challenge_and_answer() {
    let t = tables();
    t.add_user("gina@example.com", "pw");
    let p = Proxy::start(&script_with(
        &t,
        MYSQL,
        "secret = \"s5\"",
        "use_domain = 1",
        r#""auth", "MD5,SHA-256""#,
    ));
    let s = sock();
    let ch = register(&s, p.port, "gina", 1, None);
    assert_eq!(status(&ch), "401", "{ch}");
    let hs: Vec<&str> = ch
        .lines()
        .filter(|l| l.starts_with("WWW-Authenticate:"))
        .collect();
    assert_eq!(hs.len(), 2, "{ch}");
    assert!(
        hs[0].ends_with("algorithm=SHA-256") && hs[1].ends_with("algorithm=MD5"),
        "{ch}"
    );
    let n256 = nonce_of(hs[0]);
    let n5 = nonce_of(hs[1]);
    let r = register(
        &s,
        p.port,
        "gina",
        2,
        Some(&creds_alg(Alg::Sha256, "gina", "pw", &n5, 1)),
    );
    assert_eq!(status(&r), "401", "{r}");
    assert!(r.contains("stale=true"), "{r}");
    let r = register(
        &s,
        p.port,
        "gina",
        3,
        Some(&creds_alg(Alg::Sha256, "gina", "pw", &n256, 1)),
    );
    assert_eq!(status(&r), "200", "{r}\n{}", p.log_text());
}

/// calculate_ha1 with password_column = "password": HA1 computed from the
/// plain password (OpenSIPS auth_db get_ha1); the ha1 columns are ignored.
#[test]
fn calculate_ha1_from_plain_password() {
    let t = tables();
    t.add_user("hal@example.com", "plain1");
    sql(&format!(
        "UPDATE {} SET ha1 = 'x' WHERE username = 'hal'",
        t.subscriber
    ));
    let p = Proxy::start(&script_with(
        &t,
        MYSQL,
        "secret = \"s6\"",
        "calculate_ha1 = 1, password_column = \"password\"",
        r#""auth""#,
    ));
    let s = sock();
    let n = nonce_of(&register(&s, p.port, "hal", 1, None));
    let r = register(&s, p.port, "hal", 2, Some(&creds("hal", "plain1", &n, 1)));
    assert_eq!(status(&r), "200", "{r}\n{}", p.log_text());
}

/// The corpus form (astpp-fs-frontend.cfg, clusterer-drouting.cfg):
/// `www_authorize("", "subscriber")` and `www_challenge("", "0")`: the
/// realm is the To host of the REGISTER, no qop (RFC 2069 response).
#[test]
fn corpus_form_empty_realm_no_qop() {
    let t = tables();
    t.add_user("ivy@example.com", "pw");
    let cfg = script_with(&t, MYSQL, "secret = \"s7\"", "use_domain = 1", r#""0""#)
        .replace(r#"www_authorize("example.com""#, r#"www_authorize("""#)
        .replace(r#"www_challenge("example.com""#, r#"www_challenge("""#);
    let p = Proxy::start(&cfg);
    let s = sock();
    let ch = register(&s, p.port, "ivy", 1, None);
    assert!(
        ch.contains("WWW-Authenticate: Digest realm=\"example.com\", nonce=\""),
        "{ch}"
    );
    assert!(!ch.contains("qop="), "{ch}");
    let n = nonce_of(&ch);
    let uri = "sip:127.0.0.1";
    let ha1 = Alg::Md5.ha1("ivy", "example.com", "pw");
    let ha2 = Alg::Md5.hex(format!("REGISTER:{uri}").as_bytes());
    let resp = Alg::Md5.hex(format!("{ha1}:{n}:{ha2}").as_bytes());
    let a = format!("Digest username=\"ivy\", realm=\"example.com\", nonce=\"{n}\", uri=\"{uri}\", response=\"{resp}\"");
    let r = register(&s, p.port, "ivy", 2, Some(&a));
    assert_eq!(status(&r), "200", "{r}\n{}", p.log_text());
    // Without qop a nonce is good once.
    let r = register(&s, p.port, "ivy", 3, Some(&a));
    assert_eq!(status(&r), "401", "{r}");
    assert!(r.contains("stale=true"), "{r}");
}
