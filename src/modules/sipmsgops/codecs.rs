//! SDP codec functions (OpenSIPS modules/sipmsgops/codecs.c): find,
//! delete and reorder payload types of every stream by encoding name
//! (and clock) or by a regular expression on the name.
//!
//! As in OpenSIPS, each stream's payload list is kept as one change that
//! later codec calls read and rewrite, so `codec_delete` then
//! `codec_move_up` work on the list the first left. Deleting a dynamic
//! payload type also deletes its `a=rtpmap`, `a=fmtp` and other
//! `a=name:PT` lines; a stream left with no payload type gets port 0.

use mlua::{Lua, MultiValue};
use regex::Regex;
use std::ops::Range;
use std::rc::Rc;

use super::body::sdp_text;
use super::{msg_mut, ret_code};
use crate::pv::re::{posix, Posix};
use crate::script::exports::Args;
use crate::script::host::State;
use crate::sip::sdp::{self, STATIC_PAYLOADS};
use crate::sip::Message;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Find,
    Delete,
    Front,
    Back,
}

/// How a payload type is chosen (codecs.c DESC_*).
enum Desc {
    /// Encoding name, case-insensitive; the clock too when `use_clock`
    /// (codec_exists gives a clock but compares the name only).
    Name {
        name: String,
        clock: Option<String>,
        use_clock: bool,
    },
    /// A regular expression on the encoding name; `except` inverts it.
    Re { re: Rc<Regex>, except: bool },
}

impl Desc {
    fn matches(&self, enc: &str, clock: &str) -> bool {
        match self {
            Desc::Name {
                name,
                clock: want,
                use_clock,
            } => {
                name.eq_ignore_ascii_case(enc)
                    && (!use_clock
                        || want
                            .as_deref()
                            .is_none_or(|w| w.eq_ignore_ascii_case(clock)))
            }
            Desc::Re { re, except } => re.is_match(enc) != *except,
        }
    }

    fn wants_clock(&self) -> bool {
        matches!(self, Desc::Name { clock: Some(_), .. })
    }
}

/// codecs.c `do_for_all_streams`/`stream_process`: true when a stream had
/// a matching payload type (and, but for `Find`, changed it).
fn for_all_streams(m: &mut Message, op: Op, desc: &Desc) -> bool {
    let Some(text) = sdp_text(m) else {
        return false;
    };
    let base = m.body_range().start;
    let abs = |r: &Range<usize>| base + r.start..base + r.end;
    let streams = sdp::streams(text);
    let mut found = false;
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    for s in &streams {
        if m.is_removed(abs(&s.range)) {
            continue;
        }
        let prange = abs(&s.payloads);
        let cur = m
            .replaced_text(prange.clone())
            .unwrap_or(&text[s.payloads.clone()])
            .to_string();
        let mut list: Vec<String> = cur.split_ascii_whitespace().map(str::to_string).collect();
        if list.is_empty() {
            continue;
        }
        let dynamic = s.attrs.iter().filter_map(|a| {
            a.rtpmap
                .as_ref()
                .map(|(e, c)| (a.pt.as_str(), e.as_str(), c.as_str(), false))
        });
        let statics = STATIC_PAYLOADS.iter().map(|(p, e, c)| (*p, *e, *c, true));
        let mut moved = Vec::new();
        let mut hit = false;
        for (pt, enc, clock, is_static) in dynamic.chain(statics) {
            if (clock.is_empty() && desc.wants_clock()) || !desc.matches(enc, clock) {
                continue;
            }
            let Some(i) = list.iter().position(|p| p == pt) else {
                continue;
            };
            if op == Op::Find {
                return true;
            }
            if op == Op::Delete && !is_static {
                for a in s.attrs.iter().filter(|a| a.pt == pt) {
                    edits.push((abs(&a.line), String::new()));
                }
            }
            moved.push(list.remove(i));
            hit = true;
        }
        if !hit {
            continue;
        }
        found = true;
        match op {
            Op::Front => {
                moved.append(&mut list);
                list = moved;
            }
            Op::Back => list.append(&mut moved),
            Op::Find | Op::Delete => {}
        }
        let new: String = list.iter().map(|p| format!(" {p}")).collect();
        edits.push((prange, new));
        if list.is_empty() && s.port.start > 0 {
            // No payload left: the stream is disabled (port 0).
            let port = abs(&s.port);
            edits.push((port.start - 1..port.end + 1, " 0 ".to_string()));
        }
    }
    for (r, t) in edits {
        let _ = m.replace_at(r, t);
    }
    found
}

fn by_name(lua: &Lua, st: &State, a: Args, op: Op, use_clock: bool) -> mlua::Result<MultiValue> {
    let desc = Desc::Name {
        name: a.str(0)?,
        clock: a.opt_str(1)?,
        use_clock,
    };
    let mut call = st.call.borrow_mut();
    let m = msg_mut(&mut call, &a)?;
    ret_code(lua, if for_all_streams(m, op, &desc) { 1 } else { -1 })
}

fn by_re(lua: &Lua, st: &State, a: Args, op: Op, except: bool) -> mlua::Result<MultiValue> {
    let re = posix(&a.str(0)?, Posix::PARAM).map_err(|e| a.err(e))?;
    let desc = Desc::Re { re, except };
    let mut call = st.call.borrow_mut();
    let m = msg_mut(&mut call, &a)?;
    ret_code(lua, if for_all_streams(m, op, &desc) { 1 } else { -1 })
}

pub fn codec_exists(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    by_name(lua, st, a, Op::Find, false)
}

pub fn codec_exists_re(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    by_re(lua, st, a, Op::Find, false)
}

pub fn codec_delete(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    by_name(lua, st, a, Op::Delete, true)
}

pub fn codec_delete_re(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    by_re(lua, st, a, Op::Delete, false)
}

pub fn codec_delete_except_re(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    by_re(lua, st, a, Op::Delete, true)
}

pub fn codec_move_up(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    by_name(lua, st, a, Op::Front, true)
}

pub fn codec_move_up_re(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    by_re(lua, st, a, Op::Front, false)
}

pub fn codec_move_down(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    by_name(lua, st, a, Op::Back, true)
}

pub fn codec_move_down_re(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    by_re(lua, st, a, Op::Back, false)
}
