//! Event-based routing's subscriptions (OpenSIPS 3.4
//! modules/event_routing/ebr_data.c): a route subscribes to an event with
//! `key=value` filters for some seconds, and each raise whose parameters
//! pass the filters is handed to the subscriber. What the subscriber does
//! with it (run a route, resume a waiting one) is the event_routing
//! module's; this registry only matches and hands over, never waiting.
//!
//! Matching as `ebr_data.c` does it: each filter names a parameter (case
//! insensitive) and a shell wildcard pattern (`fnmatch(3)` without flags)
//! for its value as text; a filter naming a parameter the event lacks is
//! ignored; a parameter that is neither text nor a whole number matches
//! nothing. A notification subscription stays until it expires (it may
//! fire several times); a waiting one goes at its first match.

use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::format::{Param, Params};

/// One `key=value` filter of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub key: String,
    /// A shell wildcard pattern (`bob@*`).
    pub pattern: String,
}

impl Filter {
    /// Reads `key=value` (OpenSIPS `pack_ebr_filters`): no `=`, or
    /// nothing after it, is refused with the reason.
    pub fn parse(s: &str) -> Result<Filter, String> {
        let Some((key, val)) = s.split_once('=') else {
            return Err(format!("filter <{s}> has no key separator '='"));
        };
        if val.is_empty() {
            return Err(format!("filter <{s}> has no value"));
        }
        Ok(Filter {
            key: key.to_string(),
            pattern: val.to_string(),
        })
    }
}

/// A notification subscriber's callback, given the event's parameters.
pub type NotifyFn = Arc<dyn Fn(Map<String, Value>) + Send + Sync>;

/// What a matching raise is handed to.
pub enum Deliver {
    /// Called with the event's parameters at each match until the
    /// subscription expires (`notify_on_event`). It must not wait.
    Notify(NotifyFn),
    /// Sent the parameters of the first match, then the subscription
    /// ends (`wait_for_event`); a receiver gone ends it too.
    Wait(tokio::sync::oneshot::Sender<Map<String, Value>>),
}

struct Sub {
    id: u64,
    event: String,
    filters: Vec<Filter>,
    until: Instant,
    deliver: Deliver,
}

impl Sub {
    fn live(&self, now: Instant) -> bool {
        match &self.deliver {
            Deliver::Notify(_) => self.until >= now,
            Deliver::Wait(tx) => self.until >= now && !tx.is_closed(),
        }
    }
}

static SUBS: Mutex<Vec<Sub>> = Mutex::new(Vec::new());
/// Subscriptions held, read without the lock: a raise with none pays
/// one atomic load.
static COUNT: AtomicUsize = AtomicUsize::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn subs() -> MutexGuard<'static, Vec<Sub>> {
    SUBS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Drops what expired or whose waiter is gone, and keeps the count.
fn sweep(s: &mut Vec<Sub>, now: Instant) {
    s.retain(|x| x.live(now));
    COUNT.store(s.len(), Ordering::Relaxed);
}

/// Subscribes to `event` for `lifetime`; the id ends it early
/// ([`unsubscribe`]).
pub fn subscribe(event: &str, filters: Vec<Filter>, lifetime: Duration, deliver: Deliver) -> u64 {
    let now = Instant::now();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    // Ten years is for ever here; a longer one must not overflow the clock.
    let until = now + lifetime.min(Duration::from_secs(10 * 365 * 86_400));
    let mut s = subs();
    sweep(&mut s, now);
    s.push(Sub {
        id,
        event: event.to_string(),
        filters,
        until,
        deliver,
    });
    COUNT.store(s.len(), Ordering::Relaxed);
    id
}

/// Ends subscription `id` (a waiter that timed out or was abandoned).
pub fn unsubscribe(id: u64) {
    if COUNT.load(Ordering::Relaxed) == 0 {
        return;
    }
    let mut s = subs();
    s.retain(|x| x.id != id);
    COUNT.store(s.len(), Ordering::Relaxed);
}

/// Live subscriptions to `event` (for `event::wanted`).
pub fn wanted(event: &str) -> bool {
    if COUNT.load(Ordering::Relaxed) == 0 {
        return false;
    }
    let now = Instant::now();
    subs().iter().any(|x| x.event == event && x.live(now))
}

/// A parameter's value as filters see it: text as is, a whole number in
/// decimal; anything else is not matched (OpenSIPS: "non-string EVI
/// params are not supported").
fn as_text(v: Param<'_>) -> Option<String> {
    match v {
        Param::Str(s) => Some(s.to_string()),
        Param::Int(n) => Some(n.to_string()),
        Param::Num(n) if n.fract() == 0.0 && n.is_finite() => Some(format!("{}", n as i64)),
        Param::Num(_) | Param::Bool(_) => None,
        Param::Json(Value::String(s)) => Some(s.clone()),
        Param::Json(Value::Number(n)) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Some(i.to_string()),
            (None, Some(u)) => Some(u.to_string()),
            _ => None,
        },
        Param::Json(_) => None,
    }
}

fn matches(filters: &[Filter], params: &[(String, Option<String>)]) -> bool {
    filters.iter().all(|f| {
        match params.iter().find(|(k, _)| k.eq_ignore_ascii_case(&f.key)) {
            // A filter naming no parameter of the event is ignored.
            None => true,
            Some((_, None)) => false,
            Some((_, Some(v))) => fnmatch(&f.pattern, v),
        }
    })
}

/// Hands a raise of `event` to the subscriptions its parameters pass
/// (OpenSIPS `notify_ebr_subscriptions`). The parameters are read only
/// when someone subscribed to this event; an error is a parameter that
/// cannot be read.
pub fn notify(event: &str, params: &dyn Params) -> Result<(), String> {
    if COUNT.load(Ordering::Relaxed) == 0 {
        return Ok(());
    }
    let now = Instant::now();
    let mut notify: Vec<NotifyFn> = Vec::new();
    let mut wake: Vec<tokio::sync::oneshot::Sender<Map<String, Value>>> = Vec::new();
    {
        let mut s = subs();
        sweep(&mut s, now);
        if !s.iter().any(|x| x.event == event) {
            return Ok(());
        }
        let mut texts: Vec<(String, Option<String>)> = Vec::new();
        params.visit(&mut |k, v| texts.push((k.to_string(), as_text(v))))?;
        let mut i = 0;
        while i < s.len() {
            if s[i].event != event || !matches(&s[i].filters, &texts) {
                i += 1;
                continue;
            }
            if let Deliver::Notify(f) = &s[i].deliver {
                notify.push(f.clone());
                i += 1;
                continue;
            }
            if let Deliver::Wait(tx) = s.swap_remove(i).deliver {
                wake.push(tx);
            }
        }
        COUNT.store(s.len(), Ordering::Relaxed);
    }
    if notify.is_empty() && wake.is_empty() {
        return Ok(());
    }
    // Handed over outside the lock: a callback may subscribe again.
    let map = params.to_map()?;
    for tx in wake {
        let _ = tx.send(map.clone());
    }
    for f in notify {
        f(map.clone());
    }
    Ok(())
}

/// fnmatch(3) with no flags: `*` and `?` match any character (`/` and a
/// leading `.` too), `[...]` a class (`!` or `^` negates, `a-z` ranges,
/// a `]` first is literal), `\` quotes the next character.
pub fn fnmatch(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where to go back to: after the last `*`, and the text it covers.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            let step = match p[pi] {
                '*' => {
                    star = Some((pi + 1, ti));
                    pi += 1;
                    continue;
                }
                '?' if ti < t.len() => Some(pi + 1),
                '[' if ti < t.len() => match class(&p, pi + 1, t[ti]) {
                    Some((true, next)) => Some(next),
                    Some((false, _)) => None,
                    // No closing `]`: a literal `[`.
                    None => (t[ti] == '[').then_some(pi + 1),
                },
                '\\' if pi + 1 < p.len() => (t.get(ti) == Some(&p[pi + 1])).then_some(pi + 2),
                c if ti < t.len() && t[ti] == c => Some(pi + 1),
                _ => None,
            };
            if let Some(next) = step {
                pi = next;
                ti += 1;
                continue;
            }
        } else if ti == t.len() {
            return true;
        }
        // A mismatch: let the last `*` take one more character.
        match star {
            Some((sp, st)) if st < t.len() => {
                star = Some((sp, st + 1));
                pi = sp;
                ti = st + 1;
            }
            _ => return false,
        }
    }
}

/// A `[...]` class starting after its `[` at `i`: whether `c` is in it
/// and where the pattern goes on; None when it never closes.
fn class(p: &[char], mut i: usize, c: char) -> Option<(bool, usize)> {
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        let lo = p[i];
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|h| *h != ']') {
            let hi = p[i + 2];
            hit |= lo <= c && c <= hi;
            i += 3;
        } else {
            hit |= lo == c;
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fnmatch_without_flags() {
        assert!(fnmatch("bob@*", "bob@example.com"));
        assert!(!fnmatch("bob@*", "alice@example.com"));
        assert!(fnmatch("*", ".hidden"), "no FNM_PERIOD");
        assert!(fnmatch("a*/c", "ab/x/c"), "no FNM_PATHNAME");
        assert!(fnmatch("a?c", "abc") && !fnmatch("a?c", "ac"));
        assert!(fnmatch("[a-c]x", "bx") && !fnmatch("[!a-c]x", "bx"));
        assert!(fnmatch("[]]", "]") && fnmatch("[^x]", "y"));
        assert!(fnmatch("a\\*", "a*") && !fnmatch("a\\*", "ab"));
        assert!(fnmatch("*a*b*", "xxaxxbxx") && !fnmatch("*a*b", "xxbxxa"));
        assert!(fnmatch("exact", "exact") && !fnmatch("exact", "exactly"));
        assert!(fnmatch("[abc", "[abc"), "an unclosed class is literal");
        assert!(fnmatch("", "") && !fnmatch("", "x"));
    }

    #[test]
    fn filters_parse_as_pack_ebr_filters() {
        assert_eq!(
            Filter::parse("aor=bob@*"),
            Ok(Filter {
                key: "aor".into(),
                pattern: "bob@*".into()
            })
        );
        assert_eq!(Filter::parse("a=b=c").map(|f| f.pattern), Ok("b=c".into()));
        assert!(Filter::parse("aor").is_err());
        assert!(Filter::parse("aor=").is_err());
    }

    #[test]
    fn filters_match_as_ebr_data() {
        let p = |v: Value| -> Vec<(String, Option<String>)> {
            let m = v.as_object().cloned().unwrap_or_default();
            let mut out = Vec::new();
            m.visit(&mut |k, v| out.push((k.to_string(), as_text(v))))
                .expect("visit");
            out
        };
        let f = |s: &str| Filter::parse(s).expect("filter");
        let ev = p(json!({"aor": "bob@x", "qval": 1000, "ok": true}));
        assert!(matches(&[f("AOR=bob@*")], &ev), "keys case-insensitive");
        assert!(matches(&[f("qval=1*")], &ev), "numbers as text");
        assert!(matches(&[f("nothing=1")], &ev), "unknown keys ignored");
        assert!(!matches(&[f("ok=*")], &ev), "booleans match nothing");
        assert!(
            !matches(&[f("aor=bob@*"), f("qval=5")], &ev),
            "all must pass"
        );
        assert!(matches(&[], &ev));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn waiters_go_at_their_first_match_notifiers_stay() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let ev = "E_UNIT_EBR";
        let w = subscribe(
            ev,
            vec![Filter::parse("aor=a*").expect("f")],
            Duration::from_secs(60),
            Deliver::Wait(tx),
        );
        let n = subscribe(
            ev,
            vec![Filter::parse("aor=b*").expect("f")],
            Duration::from_secs(60),
            Deliver::Notify(Arc::new(move |m| s2.lock().expect("lock").push(m))),
        );
        notify(
            ev,
            &json!({"aor": "bob"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .expect("raise");
        notify(
            ev,
            &json!({"aor": "bill"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .expect("raise");
        notify(
            ev,
            &json!({"aor": "ann"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .expect("raise");
        assert_eq!(seen.lock().expect("lock").len(), 2);
        assert_eq!(rx.await.expect("woken")["aor"], "ann");
        assert!(wanted(ev));
        unsubscribe(n);
        unsubscribe(w);
        assert!(!wanted(ev));
    }
}
