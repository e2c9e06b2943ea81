//! What a proxy reads on every message, found once: where each known header
//! kind is (filled at parse time) and the typed views of From, To, CSeq, the
//! top Via and the Via list (filled on first use, or by `validate_*`, which
//! parses them anyway).
//!
//! The views are kept as spans of the buffer, not as borrowed `&str`s (a
//! `Message` cannot borrow from itself), so a repeated getter costs a slice
//! and a UTF-8 check of that slice, not a parse. They describe the message
//! as received: edits never touch the buffer or the index, so a view stays
//! true for the life of the message (see the module doc of `message.rs`).

use std::cell::OnceCell;

use super::header::HeaderKind;
use super::lex::offset_in;
use super::message::{CSeq, HeaderEntry, Message, Span};
use super::nameaddr::NameAddr;
use super::params::Params;
use super::split::CommaSplit;
use super::via::Via;
use super::MAX_HEADERS;

/// Number of [`HeaderKind`] variants (`Other` is the last).
const KINDS: usize = HeaderKind::Other as usize + 1;

/// For each header kind: the index of its first line and how many lines
/// carry it. Built while the parser classifies each line, so finding
/// Call-ID or counting From lines never scans the index.
#[derive(Debug, Clone, Copy)]
pub(super) struct KindIndex {
    first: [u16; KINDS],
    count: [u16; KINDS],
}

impl Default for KindIndex {
    fn default() -> KindIndex {
        KindIndex {
            first: [u16::MAX; KINDS],
            count: [0; KINDS],
        }
    }
}

// Header indexes must fit the u16 slots.
const _: () = assert!(MAX_HEADERS < u16::MAX as usize);

impl KindIndex {
    /// Records header line `index` of `kind` (lines arrive in order).
    pub(super) fn add(&mut self, kind: HeaderKind, index: usize) {
        let k = kind as usize;
        if self.count[k] == 0 {
            self.first[k] = index as u16;
        }
        self.count[k] += 1;
    }

    /// Index of the first line of `kind`.
    pub(super) fn first(&self, kind: HeaderKind) -> Option<usize> {
        let i = self.first[kind as usize];
        (i != u16::MAX).then_some(i as usize)
    }

    /// How many lines carry `kind`.
    pub(super) fn count(&self, kind: HeaderKind) -> usize {
        self.count[kind as usize] as usize
    }
}

/// A name-addr value (From, To) as spans of the buffer.
#[derive(Debug, Clone, Copy)]
pub(super) struct AddrSpans {
    /// The whole (trimmed) header value the others lie in.
    value: Span,
    display: Option<Span>,
    uri: Span,
    params: Span,
    tag: Option<Span>,
}

/// One Via value as spans of the buffer.
#[derive(Debug, Clone, Copy)]
pub(super) struct ViaSpans {
    /// The comma-list element the others lie in.
    piece: Span,
    transport: Span,
    host: Span,
    port: Option<u16>,
    params: Span,
}

/// The top Via with the parameters every request and reply looks at,
/// found in one pass over its parameter list.
#[derive(Debug, Clone, Copy)]
pub(super) struct TopVia {
    pub(super) via: ViaSpans,
    /// As [`Via::branch`] returns it, and so on.
    pub(super) branch: Option<Span>,
    pub(super) received: Option<Span>,
    pub(super) rport: Option<Option<u16>>,
}

/// CSeq: the number and where the method is.
#[derive(Debug, Clone, Copy)]
pub(super) struct CSeqSpans {
    num: u32,
    method: Span,
}

/// Views parsed on first use. `None` inside a filled cell means the header
/// is absent or malformed (what the getter returns as `None`).
#[derive(Debug, Clone, Default)]
pub(super) struct Cache {
    from: OnceCell<Option<AddrSpans>>,
    to: OnceCell<Option<AddrSpans>>,
    cseq: OnceCell<Option<CSeqSpans>>,
    top_via: OnceCell<Option<TopVia>>,
    /// Every well-formed Via value, in order.
    vias: OnceCell<Vec<ViaSpans>>,
}

/// Span of `part`, a subslice of `whole`, where `whole` starts at `base`.
/// An empty part may be a literal `""` (the parsers' "no parameters"), so
/// it gets an empty span at `base`.
fn span_in(base: u32, whole: &str, part: &str) -> Span {
    if part.is_empty() {
        return Span {
            start: base,
            end: base,
        };
    }
    let start = base + offset_in(whole, part) as u32;
    Span {
        start,
        end: start + part.len() as u32,
    }
}

/// The text of `part` inside `whole`, a string read from span `at`.
fn sub(whole: &str, at: Span, part: Span) -> &str {
    let start = part.start.wrapping_sub(at.start) as usize;
    let end = part.end.wrapping_sub(at.start) as usize;
    whole.get(start..end).unwrap_or("")
}

impl ViaSpans {
    fn new(base: u32, piece: &str, via: &Via<'_>) -> ViaSpans {
        ViaSpans {
            piece: span_in(base, piece, piece),
            transport: span_in(base, piece, via.transport),
            host: span_in(base, piece, via.host),
            port: via.port,
            params: span_in(base, piece, via.params),
        }
    }
}

impl Message {
    /// The first header line of `kind`.
    pub(super) fn first_of(&self, kind: HeaderKind) -> Option<&HeaderEntry> {
        self.headers.get(self.kinds.first(kind)?)
    }

    /// How many header lines are of `kind`.
    pub(super) fn count_of(&self, kind: HeaderKind) -> usize {
        self.kinds.count(kind)
    }

    /// The header lines of `kind`, in order.
    pub(super) fn lines_of(&self, kind: HeaderKind) -> impl Iterator<Item = &HeaderEntry> + '_ {
        let from = self.kinds.first(kind).unwrap_or(self.headers.len());
        self.headers
            .get(from..)
            .unwrap_or(&[])
            .iter()
            .filter(move |h| h.kind == kind)
    }

    fn addr_spans(&self, kind: HeaderKind) -> Option<AddrSpans> {
        let h = self.first_of(kind)?;
        let v = self.value_of(h);
        let na = NameAddr::parse(v).ok()?;
        let base = h.value.start;
        Some(AddrSpans {
            value: h.value,
            display: na.display.map(|d| span_in(base, v, d)),
            uri: span_in(base, v, na.uri),
            params: span_in(base, v, na.params),
            tag: na.tag().map(|t| span_in(base, v, t)),
        })
    }

    /// The first From, parsed once; None when absent or malformed.
    pub(super) fn cached_from(&self) -> Option<&AddrSpans> {
        self.cache
            .from
            .get_or_init(|| self.addr_spans(HeaderKind::From))
            .as_ref()
    }

    /// The first To, parsed once.
    pub(super) fn cached_to(&self) -> Option<&AddrSpans> {
        self.cache
            .to
            .get_or_init(|| self.addr_spans(HeaderKind::To))
            .as_ref()
    }

    /// The name-addr a cached view describes.
    pub(super) fn addr_view(&self, a: &AddrSpans) -> NameAddr<'_> {
        let v = self.text(a.value);
        NameAddr {
            display: a.display.map(|d| sub(v, a.value, d)),
            uri: sub(v, a.value, a.uri),
            params: sub(v, a.value, a.params),
        }
    }

    /// The `tag` parameter of a cached From or To.
    pub(super) fn addr_tag(&self, a: &AddrSpans) -> Option<&str> {
        a.tag.map(|t| self.text(t))
    }

    /// The first CSeq, parsed once.
    pub(super) fn cached_cseq(&self) -> Option<CSeq<'_>> {
        let c = self
            .cache
            .cseq
            .get_or_init(|| {
                let h = self.first_of(HeaderKind::CSeq)?;
                let v = self.value_of(h);
                let c = CSeq::parse(v).ok()?;
                Some(CSeqSpans {
                    num: c.num,
                    method: span_in(h.value.start, v, c.method),
                })
            })
            .as_ref()?;
        Some(CSeq {
            num: c.num,
            method: self.text(c.method),
        })
    }

    fn parse_top_via(&self) -> Option<TopVia> {
        let h = self.first_of(HeaderKind::Via)?;
        let value = self.value_of(h);
        let piece = CommaSplit::new(value).next()?;
        let via = Via::parse(piece).ok()?;
        let base = h.value.start + offset_in(value, piece) as u32;
        let mut top = TopVia {
            via: ViaSpans::new(base, piece, &via),
            branch: None,
            received: None,
            rport: None,
        };
        // One pass; the first parameter of a name wins, as `Via::param`.
        let (mut branch, mut received) = (false, false);
        for p in Params::new(via.params) {
            let span = |v: Option<&str>| v.map(|v| span_in(base, piece, v));
            if !branch && p.name.eq_ignore_ascii_case("branch") {
                branch = true;
                top.branch = span(p.value);
            } else if !received && p.name.eq_ignore_ascii_case("received") {
                received = true;
                top.received = span(p.value);
            } else if top.rport.is_none() && p.name.eq_ignore_ascii_case("rport") {
                top.rport = Some(p.value.and_then(super::via::port_value));
            }
        }
        Some(top)
    }

    /// The top Via, parsed once; None when absent or malformed.
    pub(super) fn cached_top_via(&self) -> Option<&TopVia> {
        self.cache
            .top_via
            .get_or_init(|| self.parse_top_via())
            .as_ref()
    }

    /// The Via a cached view describes.
    pub(super) fn via_view(&self, v: &ViaSpans) -> Via<'_> {
        let piece = self.text(v.piece);
        Via {
            transport: sub(piece, v.piece, v.transport),
            host: sub(piece, v.piece, v.host),
            port: v.port,
            params: sub(piece, v.piece, v.params),
        }
    }

    /// Every well-formed Via value, parsed once; the top one is taken from
    /// its own cache.
    pub(super) fn via_list(&self) -> &[ViaSpans] {
        self.cache.vias.get_or_init(|| {
            let top = self.cached_top_via().map(|t| t.via);
            let mut out = Vec::with_capacity(self.kinds.count(HeaderKind::Via) + 1);
            for h in self.lines_of(HeaderKind::Via) {
                let value = self.value_of(h);
                for piece in CommaSplit::new(value) {
                    let base = h.value.start + offset_in(value, piece) as u32;
                    match top {
                        Some(t) if t.piece.start == base => out.push(t),
                        _ => {
                            if let Ok(via) = Via::parse(piece) {
                                out.push(ViaSpans::new(base, piece, &via));
                            }
                        }
                    }
                }
            }
            out
        })
    }
}
