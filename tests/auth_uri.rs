//! auth_db's URI checks (OpenSIPS 3.4 modules/auth_db/checks.c, the 2.x
//! uri module) end to end on MariaDB: a request authenticated by
//! `www_authorize`, then `db_is_to_authorized` / `db_is_from_authorized`
//! against OpenSIPS's `uri` table, `db_does_uri_exist` against the
//! subscriber table and `db_get_auth_id`; the codes the route got go back
//! in the reply's reason.

mod common;

use common::mysql::{sql, Tables, URL};
use lunasip::modules::auth::digest::Alg;
use std::net::UdpSocket;
use std::time::Duration;

fn script(t: &Tables) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 1,
  modules = {{
    mi_fifo = false,
    auth_db = {{ db_url = "{URL}", use_domain = 1 }},
  }},
}}

function route.main()
  if sip.pv.get("$hdr(X-Skip-Auth)") == nil then
    local ok, rc = sip.auth_db.www_authorize("example.com", "{sub}")
    if not ok then
      sip.auth.www_challenge("example.com", "auth")
      sip.exit()
    end
  end
  local _, to = sip.auth_db.db_is_to_authorized("{uri}")
  local _, from = sip.auth_db.db_is_from_authorized("{uri}")
  local _, ex = sip.auth_db.db_does_uri_exist("$ru", "{sub}")
  sip.var.u = "-"
  sip.var.r = "-"
  local _, id = sip.auth_db.db_get_auth_id("{uri}", "$tu", "$var(u)", "$var(r)")
  sip.sl.sl_send_reply(200, "to=" .. to .. " from=" .. from .. " exist=" .. ex .. " id=" .. id .. " " .. sip.var.u .. "@" .. sip.var.r)
end
"#,
        sub = t.subscriber,
        uri = t.uri
    )
}

/// A MESSAGE from `from_user` to `to_user`, R-URI `ruri_user`; `auth`:
/// the Authorization value. Returns the first line of the answer.
fn send(
    s: &UdpSocket,
    port: u16,
    users: (&str, &str, &str),
    auth: Option<&str>,
    extra: &str,
) -> String {
    let (from, to, ruri) = users;
    let local = s.local_addr().expect("local");
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let msg = format!(
        "MESSAGE sip:{ruri}@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{}\r\n\
         From: <sip:{from}@example.com>;tag=f1\r\nTo: <sip:{to}@example.com>\r\nCall-ID: au-{}\r\n\
         CSeq: 1 MESSAGE\r\n{auth}{extra}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        rand(),
        rand()
    );
    s.send_to(msg.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let mut buf = [0u8; 65536];
    match s.recv_from(&mut buf) {
        Ok((n, _)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(_) => String::new(),
    }
}

fn rand() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

fn creds(user: &str, password: &str, nonce: &str, ruri_user: &str) -> String {
    let alg = Alg::Md5;
    let uri = format!("sip:{ruri_user}@example.com");
    let ha1 = alg.ha1(user, "example.com", password);
    let ha2 = alg.hex(format!("MESSAGE:{uri}").as_bytes());
    let resp = alg.hex(format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}").as_bytes());
    format!(
        "Digest username=\"{user}\", realm=\"example.com\", nonce=\"{nonce}\", uri=\"{uri}\", qop=auth, nc=00000001, cnonce=\"c0ffee\", response=\"{resp}\""
    )
}

/// Authenticates as alice and sends with `users`; the reply's first line.
fn ask(s: &UdpSocket, port: u16, users: (&str, &str, &str)) -> String {
    let challenge = send(s, port, users, None, "");
    assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
    let i = challenge.find("nonce=\"").expect("nonce") + 7;
    let nonce = challenge[i..].split('"').next().unwrap_or("");
    let r = send(
        s,
        port,
        users,
        Some(&creds("alice", "secret", nonce, users.2)),
        "",
    );
    r.lines().next().unwrap_or("").to_string()
}

#[test]
fn uri_checks_against_the_uri_and_subscriber_tables() {
    let t = Tables::new("au");
    t.add_user("alice@example.com", "secret");
    t.add_user("bob@example.com", "pw");
    sql(&format!(
        "INSERT INTO {} (username, domain, uri_user) VALUES ('alice', 'example.com', 'alice'), ('alice', 'example.com', 'sales')",
        t.uri
    ));
    let p = common::Proxy::start(&script(&t));
    let log = || p.log_text();
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");

    // alice may use alice and sales; the R-URI user bob is a subscriber.
    assert_eq!(
        ask(&s, p.port, ("alice", "sales", "bob")),
        "SIP/2.0 200 to=1 from=1 exist=1 id=1 alice@example.com",
        "{}",
        log()
    );
    // To carol: not hers (-9), carol not in the uri table (-4), nor a
    // subscriber (-5).
    assert_eq!(
        ask(&s, p.port, ("alice", "carol", "carol")),
        "SIP/2.0 200 to=-9 from=1 exist=-5 id=-4 -@-"
    );
    // Spoofed From.
    assert_eq!(
        ask(&s, p.port, ("bob", "alice", "alice")),
        "SIP/2.0 200 to=1 from=-9 exist=1 id=1 alice@example.com"
    );
    // Without authorized credentials the ownership checks are -2.
    let r = send(
        &s,
        p.port,
        ("alice", "alice", "x'OR'1'='1"),
        None,
        "X-Skip-Auth: 1\r\n",
    );
    assert_eq!(
        r.lines().next().unwrap_or(""),
        "SIP/2.0 200 to=-2 from=-2 exist=-5 id=1 alice@example.com"
    );
}
