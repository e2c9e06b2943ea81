//! The proxy driven through [`Phases`] with routes written in Rust: no
//! Lua, no sockets. What a phase queues in the outbox is what would go on
//! the wire.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;

use super::context::{Current, Dest, Env, OutKind, Outgoing, Source, Unwind};
use super::phases::{Outcome, ParseFailure, Phases, Resume, Started};
use super::{stateless, tm};
use crate::config::{parse_listen, Config};
use crate::sip::Message;
use crate::transport::{Proto, Sockets};
use vocab::route::RouteType;

type Route = Box<dyn Fn(&Routes) -> Outcome>;

/// Routes as closures over the phases object itself (so a route can call
/// `t_relay`, which runs branch routes).
struct Routes {
    cur: Current,
    request: Option<Route>,
    failure: HashMap<&'static str, Route>,
    /// Failure routes that suspend (and end without doing anything).
    waiting: Vec<&'static str>,
    branch: HashMap<&'static str, Route>,
}

impl Routes {
    fn new() -> Routes {
        let cfg = Config {
            listen: vec![parse_listen("udp:127.0.0.1:5060").expect("listen")],
            ..Config::default()
        };
        let env = Env {
            worker: 0,
            sockets: Arc::new(Sockets::new(&cfg.listen, &cfg.aliases).with_mhomed(cfg.mhomed)),
            config: Arc::new(cfg),
            tm: Arc::new(tm::Tm::new(Default::default())),
            modules: crate::state::current(),
            tcp: Default::default(),
            load: Default::default(),
        };
        Routes {
            cur: Current::new(env),
            request: None,
            failure: HashMap::new(),
            waiting: Vec::new(),
            branch: HashMap::new(),
        }
    }

    /// Runs the request route on `text` from 10.0.0.9:5070 and takes what
    /// it queued.
    fn request(&self, text: &str) -> Vec<Outgoing> {
        let msg = Message::parse(Bytes::from(text.to_string())).expect("parses");
        self.cur
            .call
            .borrow_mut()
            .reset(msg, caller(), RouteType::Request);
        match Phases::request(self) {
            Started::Ended(Outcome::Failed(e)) => panic!("route failed: {e}"),
            Started::Ended(_) => {}
            Started::Waiting(_) => panic!("these routes never wait"),
        }
        self.take()
    }

    /// A reply from `from` to the branch it names; what tm queued.
    fn reply(&self, text: &str, from: &str) -> Vec<Outgoing> {
        let msg = Message::parse(Bytes::from(text.to_string())).expect("parses");
        let key = crate::transaction::key::client_key(&msg).expect("a client key");
        let (txn, role) = self
            .cur
            .env
            .tm
            .client
            .get(&key)
            .map(|e| e.clone())
            .expect("a branch of a transaction");
        let src = Source {
            addr: from.parse().expect("addr"),
            proto: Proto::Udp,
            socket: 0,
        };
        let resume = tm::response::on_reply(self, txn, role, msg, src);
        assert!(resume.is_none(), "a failure route waits");
        self.take()
    }

    /// A reply whose failure route suspends: what tm queued and the
    /// [`Resume`] the worker would park.
    fn reply_waiting(&self, text: &str, from: &str) -> (Vec<Outgoing>, Resume) {
        let msg = Message::parse(Bytes::from(text.to_string())).expect("parses");
        let key = crate::transaction::key::client_key(&msg).expect("a client key");
        let (txn, role) = self
            .cur
            .env
            .tm
            .client
            .get(&key)
            .map(|e| e.clone())
            .expect("txn");
        let src = Source {
            addr: from.parse().expect("addr"),
            proto: Proto::Udp,
            socket: 0,
        };
        let resume = tm::response::on_reply(self, txn, role, msg, src).expect("waits");
        (self.take(), resume)
    }

    fn take(&self) -> Vec<Outgoing> {
        std::mem::take(&mut self.cur.call.borrow_mut().outbox)
    }
}

fn caller() -> Source {
    Source {
        addr: "10.0.0.9:5070".parse().expect("addr"),
        proto: Proto::Udp,
        socket: 0,
    }
}

impl Phases for Routes {
    fn current(&self) -> &Current {
        &self.cur
    }
    fn request(&self) -> Started {
        Started::Ended(self.request.as_ref().map_or(Outcome::Done, |r| r(self)))
    }
    fn error(&self, _: &ParseFailure) -> Option<Outcome> {
        None
    }
    fn reply(&self, _: Option<&str>) -> Outcome {
        Outcome::Done
    }
    fn failure(&self, name: &str) -> Option<Started> {
        if self.waiting.contains(&name) {
            return Some(Started::Waiting(Box::pin(std::future::ready(
                Outcome::Done,
            ))));
        }
        self.failure.get(name).map(|r| Started::Ended(r(self)))
    }
    fn branch(&self, name: &str) -> Outcome {
        self.branch.get(name).map_or(Outcome::Done, |r| r(self))
    }
    fn local(&self) -> Outcome {
        Outcome::Done
    }
    fn startup(&self) -> Option<Outcome> {
        None
    }
    fn timer(&self, _: &str) -> Option<Started> {
        None
    }
    fn timers(&self) -> Vec<(String, std::time::Duration)> {
        Vec::new()
    }
    fn event(&self, _: &str, _: &serde_json::Map<String, serde_json::Value>) -> Option<Started> {
        None
    }
}

const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKcaller1\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@example.com>;tag=a1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: phases-1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@10.0.0.9:5070>\r\n\
Content-Length: 0\r\n\r\n";

fn text(o: &Outgoing) -> String {
    String::from_utf8_lossy(&o.bytes).into_owned()
}

fn to(o: &Outgoing) -> String {
    match &o.dest {
        Dest::Addr(a) => a.to_string(),
        Dest::Name(h) => h.host.clone(),
    }
}

/// A response to the copy `sent`, as the callee at `sent`'s address writes it.
fn answer(sent: &Outgoing, code: u16, reason: &str) -> String {
    let vias: String = text(sent)
        .split("\r\n")
        .filter(|l| l.starts_with("Via:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    format!(
        "SIP/2.0 {code} {reason}\r\n{vias}From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>;tag=b{code}\r\nCall-ID: phases-1\r\nCSeq: 1 INVITE\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[test]
fn stateless_forward_queues_one_copy_with_our_via() {
    let mut r = Routes::new();
    r.request = Some(Box::new(|r: &Routes| {
        match stateless::forward(r.current(), Some("sip:192.0.2.5:5080")) {
            Ok(true) => Outcome::Done,
            other => Outcome::Failed(format!("{other:?}")),
        }
    }));
    let out = r.request(INVITE);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].kind, to(&out[0])),
        (OutKind::Request, "192.0.2.5:5080".into())
    );
    let t = text(&out[0]);
    assert!(
        t.starts_with(
            "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK"
        ),
        "{t}"
    );
    assert!(t.contains("Max-Forwards: 69\r\n"), "{t}");
}

#[test]
fn stateless_forward_refuses_a_loop_with_482() {
    let mut r = Routes::new();
    r.request = Some(Box::new(|r: &Routes| {
        let _ = stateless::forward(r.current(), Some("sip:192.0.2.5:5080"));
        Outcome::Done
    }));
    let first = r.request(INVITE);
    // The copy comes back to us: it carries our Via with the same loop hash.
    let looped = text(&first[0]);
    let out = r.request(&looped);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(
        text(&out[0]).starts_with("SIP/2.0 482 "),
        "{}",
        text(&out[0])
    );
}

fn relay_to(target: &'static str) -> Route {
    Box::new(move |r: &Routes| {
        r.current().call.borrow_mut().du = Some(target.to_string());
        match tm::relay::t_relay(r) {
            Ok(true) => Outcome::Done,
            Ok(false) => Outcome::Unwound(Unwind::Exit),
            Err(e) => Outcome::Failed(e.to_string()),
        }
    })
}

#[test]
fn t_relay_answers_100_and_sends_the_branch() {
    let mut r = Routes::new();
    r.request = Some(relay_to("sip:192.0.2.5:5080"));
    let out = r.request(INVITE);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(text(&out[0]).starts_with("SIP/2.0 100 Giving it a try\r\n"));
    assert_eq!(to(&out[0]), "10.0.0.9:5070");
    assert!(text(&out[1]).starts_with("INVITE sip:bob@example.com SIP/2.0\r\n"));
    assert_eq!(to(&out[1]), "192.0.2.5:5080");
    assert_eq!(r.cur.env.tm.in_use(), 1);
    // The retransmission is absorbed: the 100 again, no second branch.
    let again = r.request(INVITE);
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(text(&again[0]).starts_with("SIP/2.0 100 Giving it a try\r\n"));
}

#[test]
fn a_branch_route_that_drops_leaves_nothing_to_send() {
    let mut r = Routes::new();
    r.request = Some(Box::new(|r: &Routes| {
        r.current().call.borrow_mut().tm.armed.on_branch = Some("b".into());
        relay_to("sip:192.0.2.5:5080")(r)
    }));
    r.branch
        .insert("b", Box::new(|_: &Routes| Outcome::Unwound(Unwind::Drop)));
    let out = r.request(INVITE);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(text(&out[0]).starts_with("SIP/2.0 100 Giving it a try\r\n"));
    assert_eq!(
        r.cur.call.borrow().last_error,
        Some((500, "No Destination"))
    );
}

#[test]
fn a_486_runs_the_failure_route_which_relays_again() {
    let mut r = Routes::new();
    r.request = Some(Box::new(|r: &Routes| {
        r.current().call.borrow_mut().tm.armed.on_failure = Some("next".into());
        relay_to("sip:192.0.2.5:5080")(r)
    }));
    r.failure.insert("next", relay_to("sip:192.0.2.6:5080"));
    let out = r.request(INVITE);
    let branch = &out[1];
    let out = r.reply(&answer(branch, 486, "Busy Here"), "192.0.2.5:5080");
    // The ACK of the 486 to the first callee, the INVITE to the second.
    let sent: Vec<(String, String)> = out
        .iter()
        .map(|o| (text(o).lines().next().unwrap_or("").to_string(), to(o)))
        .collect();
    assert_eq!(
        sent,
        [
            (
                "ACK sip:bob@example.com SIP/2.0".to_string(),
                "192.0.2.5:5080".to_string()
            ),
            (
                "INVITE sip:bob@example.com SIP/2.0".to_string(),
                "192.0.2.6:5080".to_string()
            ),
        ]
    );
}

#[test]
fn without_a_failure_route_the_486_goes_upstream_and_a_200_ends_it() {
    let mut r = Routes::new();
    r.request = Some(relay_to("sip:192.0.2.5:5080"));
    let out = r.request(INVITE);
    let branch = out[1].clone();
    let out = r.reply(&answer(&branch, 486, "Busy Here"), "192.0.2.5:5080");
    let up: Vec<&Outgoing> = out.iter().filter(|o| o.kind == OutKind::Reply).collect();
    assert_eq!(up.len(), 1, "{out:?}");
    assert!(text(up[0]).starts_with("SIP/2.0 486 Busy Here\r\n"));
    assert_eq!(to(up[0]), "10.0.0.9:5070");
    // Our Via is gone from what the caller gets.
    assert!(!text(up[0]).contains("127.0.0.1:5060"), "{}", text(up[0]));

    let mut r = Routes::new();
    r.request = Some(relay_to("sip:192.0.2.5:5080"));
    let out = r.request(INVITE);
    let out = r.reply(&answer(&out[1], 200, "OK"), "192.0.2.5:5080");
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(text(&out[0]).starts_with("SIP/2.0 200 OK\r\n"));
}

#[test]
fn a_failure_route_that_waits_holds_the_final_until_it_ended() {
    let mut r = Routes::new();
    r.request = Some(Box::new(|r: &Routes| {
        r.current().call.borrow_mut().tm.armed.on_failure = Some("slow".into());
        relay_to("sip:192.0.2.5:5080")(r)
    }));
    r.waiting.push("slow");
    let out = r.request(INVITE);
    let (out, resume) = r.reply_waiting(&answer(&out[1], 486, "Busy Here"), "192.0.2.5:5080");
    // Only the ACK of the 486 leaves; the caller hears nothing yet.
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(text(&out[0]).starts_with("ACK "), "{}", text(&out[0]));
    // The route ends having done nothing: the 486 goes upstream.
    let mut run = resume.run;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let outcome = match run.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(o) => o,
        std::task::Poll::Pending => panic!("ready"),
    };
    assert!((resume.then)(&r, outcome).is_none());
    let out = r.take();
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(text(&out[0]).starts_with("SIP/2.0 486 Busy Here\r\n"));
    assert_eq!(to(&out[0]), "10.0.0.9:5070");
}

/// Records what tm tells its subscribers.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

impl tm::hooks::Observer for Recorder {
    fn request_out(&self, t: &tm::Txn, branch: usize) {
        let to = t.branches.get(branch).map(|b| b.dest.to_string());
        self.push(format!("out {branch} {}", to.unwrap_or_default()));
    }
    fn reply_in(&self, _: &tm::Txn, branch: usize, reply: &Message) {
        self.push(format!("in {branch} {}", reply.status().unwrap_or(0)));
    }
    fn completed(&self, _: &tm::Txn, code: u16) {
        self.push(format!("final {code}"));
    }
}

impl Recorder {
    fn push(&self, s: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    }
}

#[test]
fn tm_tells_its_subscribers_of_branches_replies_and_the_final() {
    let mut r = Routes::new();
    let rec = Arc::new(Recorder::default());
    assert!(r.cur.env.tm.set_observers(vec![rec.clone()]));
    r.request = Some(Box::new(|r: &Routes| {
        r.current().call.borrow_mut().tm.armed.on_failure = Some("next".into());
        relay_to("sip:192.0.2.5:5080")(r)
    }));
    r.failure.insert("next", relay_to("sip:192.0.2.6:5080"));
    let out = r.request(INVITE);
    let out = r.reply(&answer(&out[1], 486, "Busy Here"), "192.0.2.5:5080");
    let second = out
        .iter()
        .find(|o| to(o) == "192.0.2.6:5080")
        .expect("second branch");
    r.reply(&answer(second, 200, "OK"), "192.0.2.6:5080");
    let seen = rec.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            "out 0 192.0.2.5:5080",
            "in 0 486",
            "out 1 192.0.2.6:5080",
            "in 1 200",
            "final 200"
        ]
    );
}
