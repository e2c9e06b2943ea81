//! The typed views of a [`Message`]'s headers (RFC 3261 §20): CSeq,
//! From/To and their tags, Max-Forwards, Via, Route, Record-Route and
//! Contact. Each is parsed from the span index when first asked for;
//! the ones a proxy reads on every message are kept (`cache.rs`).

use super::Message;
use crate::sip::header::HeaderKind;
use crate::sip::lex;
use crate::sip::nameaddr::{Contacts, NameAddr};
use crate::sip::split::CommaSplit;
use crate::sip::via::Via;
use crate::sip::ParseError;

/// The CSeq header: sequence number and method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub num: u32,
    pub method: &'a str,
}

impl<'a> CSeq<'a> {
    /// Parses `1*DIGIT LWS Method` (RFC 3261 §20.16). Leading zeros are
    /// fine (RFC 4475 §3.1.1.1); a number above 2^32-1 is not (§3.1.2.4).
    pub fn parse(value: &'a str) -> Result<CSeq<'a>, ParseError> {
        const BAD: ParseError = ParseError::Header("cseq");
        let v = lex::trim_lws(value);
        let (rest, digits) = lex::take_ascii1(v, |b| b.is_ascii_digit()).map_err(|_| BAD)?;
        let (rest, _) = lex::lws(rest).map_err(|_| BAD)?;
        let (rest, method) = lex::token(rest).map_err(|_| BAD)?;
        if !rest.is_empty() {
            return Err(BAD);
        }
        let num = lex::parse_u32(digits).ok_or(BAD)?;
        Ok(CSeq { num, method })
    }
}

impl Message {
    /// The first CSeq; None when absent or malformed. Parsed once.
    pub fn cseq(&self) -> Option<CSeq<'_>> {
        self.cached_cseq()
    }

    /// The first From; None when absent or malformed. Parsed once.
    pub fn from(&self) -> Option<NameAddr<'_>> {
        self.cached_from().map(|a| self.addr_view(a))
    }

    /// The first To; None when absent or malformed. Parsed once.
    pub fn to(&self) -> Option<NameAddr<'_>> {
        self.cached_to().map(|a| self.addr_view(a))
    }

    /// The From tag (dialog and transaction matching, RFC 3261 §19.3).
    /// Found once; later calls are a slice.
    pub fn from_tag(&self) -> Option<&str> {
        self.addr_tag(self.cached_from()?)
    }

    /// The To tag; None outside a dialog. Found once.
    pub fn to_tag(&self) -> Option<&str> {
        self.addr_tag(self.cached_to()?)
    }

    /// None when absent, Some(Err) when not a number.
    pub fn max_forwards(&self) -> Option<Result<u32, ParseError>> {
        let h = self.first_of(HeaderKind::MaxForwards)?;
        let digits = self.buf.get(h.value.range()).unwrap_or(&[]);
        Some(lex::parse_u32_bytes(digits).ok_or(ParseError::Header("max-forwards")))
    }

    /// The first Via value; None when absent or malformed. Parsed once.
    pub fn top_via(&self) -> Option<Via<'_>> {
        self.cached_top_via().map(|t| self.via_view(&t.via))
    }

    /// `top_via()?.branch()` without scanning the parameters again: the
    /// top Via's branch, found when the top Via was first parsed.
    pub fn top_via_branch(&self) -> Option<&str> {
        self.cached_top_via()?.branch.map(|b| self.text(b))
    }

    /// `top_via()?.rport()`, kept: None when there is no (well-formed) top
    /// Via or it has no `rport`; Some(None) for a bare `;rport`.
    pub fn top_via_rport(&self) -> Option<Option<u16>> {
        self.cached_top_via()?.rport
    }

    /// `top_via()?.received()`, kept.
    pub fn top_via_received(&self) -> Option<&str> {
        self.cached_top_via()?.received.map(|r| self.text(r))
    }

    /// All Via values in order (split across and within header lines).
    /// Values that do not parse are left out. Parsed once; each call still
    /// builds the Vec, so prefer [`Message::via`] and
    /// [`Message::via_count`] when one or two values are enough.
    pub fn vias(&self) -> Vec<Via<'_>> {
        self.via_list().iter().map(|v| self.via_view(v)).collect()
    }

    /// `vias().get(i)` without building the list.
    pub fn via(&self, i: usize) -> Option<Via<'_>> {
        self.via_list().get(i).map(|v| self.via_view(v))
    }

    /// `vias().len()` without building the list.
    pub fn via_count(&self) -> usize {
        self.via_list().len()
    }

    /// Route values in order (each a name-addr); malformed ones left out.
    pub fn routes(&self) -> Vec<NameAddr<'_>> {
        self.kind_values(HeaderKind::Route)
            .filter_map(|v| NameAddr::parse(v).ok())
            .collect()
    }

    /// Record-Route values in order; malformed ones left out.
    pub fn record_routes(&self) -> Vec<NameAddr<'_>> {
        self.kind_values(HeaderKind::RecordRoute)
            .filter_map(|v| NameAddr::parse(v).ok())
            .collect()
    }

    /// The Contact values (RFC 3261 §20.10): `Star` for a lone `*`, else the
    /// list (empty when there is no Contact). A malformed value, or `*`
    /// mixed with addresses, is an error.
    pub fn contacts(&self) -> Result<Contacts<'_>, ParseError> {
        const BAD: ParseError = ParseError::Header("contact");
        let mut list = Vec::new();
        let mut star = false;
        for v in self.kind_values(HeaderKind::Contact) {
            if v == "*" {
                star = true;
            } else {
                list.push(NameAddr::parse(v).map_err(|_| BAD)?);
            }
        }
        match (star, list.is_empty()) {
            (true, true) => Ok(Contacts::Star),
            (true, false) => Err(BAD),
            (false, _) => Ok(Contacts::List(list)),
        }
    }

    /// Comma-split values of every header of `kind`.
    fn kind_values(&self, kind: HeaderKind) -> impl Iterator<Item = &str> + '_ {
        self.lines_of(kind)
            .flat_map(|h| CommaSplit::new(self.value_of(h)))
    }
}
