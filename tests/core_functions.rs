//! OpenSIPS core functions (3.4 `core_cmds.c`) as routes use them: what
//! the next hop and the caller receive.

mod common;

use common::worker::{run, worker, OutKind, Proto, INVITE};

/// The requests a route relayed, in order.
fn relayed(out: &[(OutKind, common::worker::Dest, String)]) -> Vec<String> {
    out.iter()
        .filter(|o| o.0 == OutKind::Request)
        .map(|o| o.2.clone())
        .collect()
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n")
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

/// A final reply of the callee to `request` as relayed.
fn reply_to(request: &str, status: &str) -> String {
    let mut reply = format!("SIP/2.0 {status}\r\n");
    for l in request.split("\r\n") {
        let lower = l.to_ascii_lowercase();
        if ["via:", "from:", "call-id:", "cseq:"]
            .iter()
            .any(|p| lower.starts_with(p))
        {
            reply.push_str(l);
            reply.push_str("\r\n");
        } else if lower.starts_with("to:") {
            reply.push_str(l);
            reply.push_str(";tag=callee\r\n");
        }
    }
    reply.push_str("Content-Length: 0\r\n\r\n");
    reply
}

/// OpenSIPS `dset.c`/tm `t_fwd.c`: branch 0 is the R-URI's; an appended
/// branch starts with the flags in force and keeps its own; each branch
/// route sees the flags of its branch.
#[test]
fn branch_flags_belong_to_their_branch() {
    let w = worker(
        r#"function route.main()
  sip.setbflag(3)
  sip.setbflag("NAT")
  sip.append_branch("sip:b@127.0.0.3:5060")
  sip.resetbflag("NAT", 1)
  sip.setbflag(5, 1)
  if sip.setbflag(6, 2) then sip.setbflag(60) end
  sip.pv.ru = "sip:a@127.0.0.2:5060"
  sip.tm.t_on_branch("mark")
  sip.tm.t_relay()
end
function branch_route.mark()
  sip.append_hf("X-BF: $bf nat=" .. tostring(sip.isbflagset("NAT")) .. " five=" .. tostring(sip.isbflagset(5)) .. "\r\n")
end"#,
    );
    let out = relayed(&run(&w, INVITE, Proto::Udp));
    assert_eq!(out.len(), 2, "{out:?}");
    let nat = |m: &str| header(m, "X-BF").unwrap_or_default().to_string();
    let a = out.iter().find(|m| m.starts_with("INVITE sip:a@")).unwrap();
    let b = out.iter().find(|m| m.starts_with("INVITE sip:b@")).unwrap();
    // Branch 0: flag 3 and NAT; the failed setbflag(6, 2) (no branch 2) set nothing.
    let (bf_a, rest_a) = nat(a)
        .split_once(' ')
        .map(|(x, y)| (x.to_string(), y.to_string()))
        .unwrap();
    assert_eq!(rest_a, "nat=true five=false", "{a}");
    // Named flags take bits from 63 down: $bf may read negative.
    let bf_a = bf_a.parse::<i64>().unwrap() as u64;
    assert_eq!(bf_a & 0xff, 1 << 3);
    assert_eq!(bf_a & (1 << 60), 0, "setbflag on a missing branch is false");
    // Branch 1: took flag 3 when appended, lost NAT, got 5.
    assert_eq!(
        nat(b),
        format!("{} nat=false five=true", (1u64 << 3) | (1 << 5)),
        "{b}"
    );
}

/// tm `t_reply.c`: a reply route works on its branch's flags, and the
/// failure route sees those of the winning branch. The failure route
/// answers with `signaling.send_reply`, statefully (its transaction).
#[test]
fn reply_and_failure_routes_see_the_branch_flags() {
    let w = worker(
        r#"function route.main()
  sip.pv.ru = "sip:a@127.0.0.2:5060"
  sip.tm.t_on_branch("mark")
  sip.tm.t_on_reply("rep")
  sip.tm.t_on_failure("busy")
  sip.tm.t_relay()
end
function branch_route.mark()
  sip.setbflag(7)
end
function onreply_route.rep()
  if sip.isbflagset(7) then sip.setbflag(9) end
end
function failure_route.busy()
  sip.signaling.send_reply(480, "bf=$bf in $route.type")
end"#,
    );
    let out = relayed(&run(&w, INVITE, Proto::Udp));
    assert_eq!(out.len(), 1, "{out:?}");
    let back = run(&w, &reply_to(&out[0], "486 Busy Here"), Proto::Udp);
    let answer = back
        .iter()
        .find(|o| o.2.starts_with("SIP/2.0 480 "))
        .map(|o| o.2.clone())
        .unwrap_or_else(|| panic!("no 480 to the caller: {back:?}"));
    let want = (1u64 << 7) | (1 << 9);
    assert!(
        answer.starts_with(&format!("SIP/2.0 480 bf={want} in failure\r\n")),
        "{answer}"
    );
}

/// OpenSIPS `check_self`: listening addresses and aliases, any port when
/// none is given; a URI is taken apart.
#[test]
fn is_myself_names_the_listening_addresses() {
    let w = worker(
        r#"function route.main()
  local r = {}
  for _, t in ipairs({ {"$rd"}, {"127.0.0.1"}, {"127.0.0.1", 5060}, {"127.0.0.1", 5070},
                       {"192.0.2.1"}, {"sip:x@127.0.0.1:5060"}, {"sip:x@127.0.0.1:5999"},
                       {"sip:127.0.0.1"}, {"$fd"} }) do
    r[#r + 1] = tostring(sip.is_myself(t[1], t[2]))
  end
  sip.sl.sl_send_reply(200, table.concat(r, " "))
end"#,
    );
    let msg = INVITE.replace("INVITE sip:bob@example.com", "INVITE sip:bob@127.0.0.1");
    let out = run(&w, &msg, Proto::Udp);
    let reply = &out.first().expect("a reply").2;
    assert!(
        reply.starts_with("SIP/2.0 200 true true true false false true false true false\r\n"),
        "{reply}"
    );
}
