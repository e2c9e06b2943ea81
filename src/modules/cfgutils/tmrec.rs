//! Time recurrences for `check_time_rec` (OpenSIPS 3.4 `time_rec.c`):
//! `[tz|]dtstart|dtend|duration|freq|until|interval|byday|bymday|byyday|
//! byweekno|bymonth` (RFC 2445 field syntax), combined with `&` (and),
//! `/` (or), `!` (not) and parentheses, one operator kind per level.
//! Pure: no I/O, the time zone database aside (jiff).

use jiff::tz::TimeZone;

const SEC_DAILY: i64 = 86400;
const SEC_WEEKLY: i64 = 7 * SEC_DAILY;
const SEC_MONTHLY_MAX: i64 = 31 * SEC_DAILY;
const SEC_YEARLY_MAX: i64 = 366 * SEC_DAILY;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Freq {
    None,
    Yearly,
    Monthly,
    Weekly,
    Daily,
}

/// A broken-down time as `struct tm` has it (month 0..11, wday 0 = Sunday,
/// yday 0-based).
#[derive(Debug, Clone, Copy)]
struct Tm {
    year: i64,
    mon: i64,
    mday: i64,
    hour: i64,
    min: i64,
    sec: i64,
    wday: i64,
    yday: i64,
}

impl Tm {
    fn secs(&self) -> i64 {
        self.hour * 3600 + self.min * 60 + self.sec
    }
}

fn local(tz: &TimeZone, t: i64) -> Result<Tm, String> {
    let z = tz.to_datetime(jiff::Timestamp::from_second(t).map_err(|e| e.to_string())?);
    Ok(Tm {
        year: z.year() as i64,
        mon: z.month() as i64 - 1,
        mday: z.day() as i64,
        hour: z.hour() as i64,
        min: z.minute() as i64,
        sec: z.second() as i64,
        wday: z.weekday().to_sunday_zero_offset() as i64,
        yday: z.day_of_year() as i64 - 1,
    })
}

fn mktime(tz: &TimeZone, y: i64, mon0: i64, d: i64, h: i64, mi: i64, s: i64) -> Result<i64, String> {
    let dt = jiff::civil::DateTime::new(y as i16, (mon0 + 1) as i8, d as i8, h as i8, mi as i8, s as i8, 0)
        .map_err(|e| e.to_string())?;
    Ok(tz.to_timestamp(dt).map_err(|e| e.to_string())?.as_second())
}

/// `yyyymmddThhmmss` (OpenSIPS `ic_parse_datetime`).
fn datetime(tz: &TimeZone, s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Result<i64, String> {
        s.get(r.clone())
            .filter(|d| d.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| format!("bad date-time {s:?}"))
    };
    if b.len() != 15 || !matches!(b[8], b'T' | b't') {
        return Err(format!("bad date-time {s:?} (yyyymmddThhmmss)"));
    }
    let y = digits(0..4)?;
    if y < 1970 {
        return Err(format!("year before 1970 in {s:?}"));
    }
    mktime(tz, y, digits(4..6)? - 1, digits(6..8)?, digits(9..11)?, digits(11..13)?, digits(13..15)?)
}

/// `PnWnDTnHnMnS` or `nHnMnS` (OpenSIPS `ic_parse_duration`).
fn duration(s: &str) -> Result<i64, String> {
    let (mut date_part, rest) = match s.strip_prefix(['P', 'p']) {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (mut total, mut n) = (0i64, 0i64);
    for c in rest.chars() {
        let unit = match c.to_ascii_lowercase() {
            d @ '0'..='9' => {
                n = n.saturating_mul(10).saturating_add(d as i64 - '0' as i64);
                continue;
            }
            't' if date_part => {
                date_part = false;
                continue;
            }
            'w' if date_part => SEC_WEEKLY,
            'd' if date_part => SEC_DAILY,
            'h' if !date_part => 3600,
            'm' if !date_part => 60,
            's' if !date_part => 1,
            _ => return Err(format!("bad duration {s:?}")),
        };
        total = total.saturating_add(n.saturating_mul(unit));
        n = 0;
    }
    Ok(total)
}

/// A `byxxx` list entry: value and sign (byday: weekday and ordinal).
type ByList = Vec<(i64, i64)>;

fn byxxx(s: &str) -> Result<ByList, String> {
    s.split(',')
        .map(|v| {
            let v = v.trim();
            let (sign, n) = match v.strip_prefix('-') {
                Some(n) => (-1, n),
                None => (1, v.trim_start_matches('+')),
            };
            n.trim().parse::<i64>().map(|n| (n, sign)).map_err(|_| format!("bad list entry {v:?}"))
        })
        .collect()
}

fn byday(s: &str) -> Result<ByList, String> {
    const DAYS: [&str; 7] = ["SU", "MO", "TU", "WE", "TH", "FR", "SA"];
    s.split(',')
        .map(|v| {
            let v = v.trim();
            let split = v.len().checked_sub(2).filter(|i| v.is_char_boundary(*i)).ok_or_else(|| format!("bad day {v:?}"))?;
            let (ord, day) = v.split_at(split);
            let wday = DAYS
                .iter()
                .position(|d| d.eq_ignore_ascii_case(day))
                .ok_or_else(|| format!("bad day {v:?}"))? as i64;
            let ord = match ord.trim_start_matches('+') {
                "" => 0,
                o => o.parse::<i64>().map_err(|_| format!("bad day {v:?}"))?,
            };
            // OpenSIPS keeps positive ordinals 0-based.
            Ok((wday, if ord > 0 { ord - 1 } else { ord }))
        })
        .collect()
}

/// One parsed recurrence.
struct Rec {
    tz: TimeZone,
    dtstart: i64,
    ts: Tm,
    dtend: i64,
    duration: i64,
    freq: Freq,
    until: Option<i64>,
    interval: Option<i64>,
    byday: Option<ByList>,
    bymday: Option<ByList>,
    byyday: Option<ByList>,
    byweekno: Option<ByList>,
    bymonth: Option<ByList>,
}

impl Rec {
    fn parse(s: &str) -> Result<Option<Rec>, String> {
        let mut fields: Vec<&str> = s.split('|').collect();
        let tz = match fields.first() {
            Some(f) if f.starts_with(|c: char| c.is_ascii_uppercase()) => {
                let name = fields.remove(0);
                TimeZone::get(name).map_err(|_| format!("unknown time zone {name:?}"))?
            }
            _ => TimeZone::system(),
        };
        let field = |i: usize| fields.get(i).copied().filter(|f| !f.is_empty());
        let Some(start) = field(0) else {
            // No dtstart: OpenSIPS takes the recurrence as always valid.
            return Ok(None);
        };
        let dtstart = datetime(&tz, start)?;
        let dtend = field(1).map(|f| datetime(&tz, f)).transpose()?;
        let dur = field(2).map(duration).transpose()?;
        let freq = match field(3).map(str::to_ascii_lowercase).as_deref() {
            Some("daily") => Freq::Daily,
            Some("weekly") => Freq::Weekly,
            Some("monthly") => Freq::Monthly,
            Some("yearly") => Freq::Yearly,
            _ => Freq::None,
        };
        let until = field(4).map(|f| datetime(&tz, f)).transpose()?;
        let interval = field(5).map(|f| f.trim().parse::<i64>().unwrap_or(0));
        let byday = field(6).map(byday).transpose()?;
        let bymday = field(7).map(byxxx).transpose()?;
        let byyday = field(8).map(byxxx).transpose()?;
        let byweekno = field(9).map(byxxx).transpose()?;
        let bymonth = field(10).map(byxxx).transpose()?;
        let ts = local(&tz, dtstart)?;
        let has_by = byday.is_some() || bymday.is_some() || byyday.is_some() || byweekno.is_some() || bymonth.is_some();
        let mut r = Rec { tz, dtstart, ts, dtend: 0, duration: 0, freq, until, interval, byday, bymday, byyday, byweekno, bymonth };
        match (dur, dtend) {
            (Some(d), _) => {
                r.duration = d;
                r.dtend = dtstart + d;
            }
            (None, Some(e)) => {
                r.dtend = e;
                r.duration = e - dtstart;
            }
            (None, None) => {
                // Until the end of the smallest unit (OpenSIPS `_tmrec_parse`).
                let t = &r.ts;
                r.dtend = match r.min_interval() {
                    Freq::Daily => dtstart + SEC_DAILY - t.secs(),
                    Freq::Weekly => dtstart + SEC_WEEKLY - (t.wday * SEC_DAILY + t.secs()),
                    Freq::Monthly => dtstart + SEC_MONTHLY_MAX - (t.mday * SEC_DAILY + t.secs()),
                    Freq::Yearly => dtstart + SEC_YEARLY_MAX - (t.yday * SEC_DAILY + t.secs()),
                    Freq::None => 4_294_967_295,
                };
                r.duration = r.dtend - dtstart;
            }
        }
        if r.freq == Freq::None && (r.until.is_some() || r.interval.is_some() || has_by) {
            return Err(format!("missing freq in {s:?}"));
        }
        Ok(Some(r))
    }

    fn min_interval(&self) -> Freq {
        if self.freq == Freq::Daily || self.byday.is_some() || self.bymday.is_some() || self.byyday.is_some() {
            Freq::Daily
        } else if self.freq == Freq::Weekly || self.byweekno.is_some() {
            Freq::Weekly
        } else if self.freq == Freq::Monthly || self.bymonth.is_some() {
            Freq::Monthly
        } else {
            self.freq
        }
    }

    /// OpenSIPS `check_tmrec`.
    fn check(&self, t: i64) -> Result<bool, String> {
        if t < self.dtstart || (self.freq == Freq::None && t >= self.dtend) {
            return Ok(false);
        }
        if self.freq == Freq::None {
            return Ok(true);
        }
        let x = local(&self.tz, t)?;
        Ok(self.freq_interval(&x)?
            && self.min_unit(&x)?
            && self.by(&x)?
            && self.until.is_none_or(|u| t <= u))
    }

    fn freq_interval(&self, x: &Tm) -> Result<bool, String> {
        let n = match self.interval {
            None | Some(1) => return Ok(true),
            Some(n) if n <= 0 => return Ok(false),
            Some(n) => n,
        };
        let day0 = |t: &Tm| mktime(&self.tz, t.year, t.mon, t.mday, 0, 0, 0);
        Ok(match self.freq {
            Freq::Daily | Freq::Weekly => {
                let (mut t0, mut t1) = (day0(&self.ts)?, day0(x)?);
                if self.freq == Freq::Daily {
                    return Ok(((t1 - t0) / SEC_DAILY) % n == 0);
                }
                t0 -= ((self.ts.wday + 6) % 7) * SEC_DAILY;
                t1 -= ((x.wday + 6) % 7) * SEC_DAILY;
                ((t1 - t0) / SEC_WEEKLY) % n == 0
            }
            Freq::Monthly => ((x.year - self.ts.year) * 12 + x.mon - self.ts.mon) % n == 0,
            Freq::Yearly => (x.year - self.ts.year) % n == 0,
            Freq::None => false,
        })
    }

    fn min_unit(&self, x: &Tm) -> Result<bool, String> {
        let freq = self.min_interval();
        let whole = match freq {
            Freq::Daily => SEC_DAILY,
            Freq::Weekly => SEC_WEEKLY,
            Freq::Monthly => SEC_MONTHLY_MAX,
            Freq::Yearly => SEC_YEARLY_MAX,
            Freq::None => return Ok(false),
        };
        if self.duration >= whole {
            return Ok(true);
        }
        let end = local(&self.tz, self.dtend)?;
        Ok(recur_itv(x, &self.ts, &end, self.duration, freq))
    }

    /// OpenSIPS `check_byxxx`.
    fn by(&self, x: &Tm) -> Result<bool, String> {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let ydays = 365 + i64::from(leap(x.year));
        let mdays = match x.mon {
            1 => 28 + i64::from(leap(x.year)),
            3 | 5 | 8 | 10 => 30,
            _ => 31,
        };
        let dec31 = local(&self.tz, mktime(&self.tz, x.year, 11, 31, 12, 0, 0)?)?;
        let v = if x.wday > dec31.wday { x.wday - dec31.wday + 1 } else { dec31.wday - x.wday };
        let max_ywday = (dec31.yday - v) / 7 + 1;
        let mon_week = |t: &Tm| (t.yday + 7 - if t.wday > 0 { t.wday - 1 } else { 6 }) / 7;
        let max_yweek = mon_week(&dec31) + 1;
        let max_mwday = (mdays - 1 - (mdays - x.mday) % 7) / 7 + 1;
        let any = |l: &Option<ByList>, f: &dyn Fn(i64, i64) -> bool| l.as_ref().is_none_or(|l| l.iter().any(|(v, s)| f(*v, *s)));
        Ok(any(&self.bymonth, &|v, s| x.mon == ((v - 1) * s + 12).rem_euclid(12))
            && (self.freq != Freq::Yearly
                || any(&self.byweekno, &|v, s| mon_week(x) == ((v - 1) * s + max_yweek).rem_euclid(max_yweek)))
            && any(&self.byyday, &|v, s| x.yday == ((v - 1) * s + ydays).rem_euclid(ydays))
            && any(&self.bymday, &|v, s| x.mday == (v * s + mdays).rem_euclid(mdays) + i64::from(s < 0))
            && any(&self.byday, &|wday, ord| {
                x.wday == wday
                    && match self.freq {
                        Freq::Yearly => x.yday / 7 == (ord + max_ywday).rem_euclid(max_ywday),
                        Freq::Monthly => (x.mday - 1) / 7 == (ord + max_mwday).rem_euclid(max_mwday),
                        _ => true,
                    }
            }))
    }
}

/// OpenSIPS `check_recur_itv`: whether `x` falls in the interval
/// [bgn, end) repeated every `freq` unit.
fn recur_itv(x: &Tm, bgn: &Tm, end: &Tm, dur: i64, freq: Freq) -> bool {
    let (d1, d2, dx) = match freq {
        Freq::Yearly => (bgn.yday, end.yday, x.yday),
        Freq::Monthly => (bgn.mday, end.mday, x.mday),
        Freq::Weekly => (bgn.wday, end.wday, x.wday),
        _ => {
            return if bgn.mday == end.mday {
                x.secs() >= bgn.secs() && end.secs() > x.secs()
            } else {
                bgn.secs() <= x.secs() || x.secs() < end.secs()
            };
        }
    };
    if d1 < d2 {
        if dx < d1 || dx > d2 {
            return false;
        }
        if dx > d1 && dx < d2 {
            return true;
        }
    } else if d2 < d1 {
        if dx > d2 && dx < d1 {
            return false;
        }
        if dx < d2 || dx > d1 {
            return true;
        }
    } else if dx != d1 {
        return dur > SEC_DAILY;
    } else {
        return x.secs() >= bgn.secs() && end.secs() > x.secs();
    }
    if dx == d1 {
        x.secs() > bgn.secs()
    } else {
        end.secs() > x.secs()
    }
}

/// One recurrence string at `t`: OpenSIPS `_tmrec_check_str`.
fn check_one(s: &str, t: i64) -> Result<bool, String> {
    Ok(match Rec::parse(s.trim())? {
        None => true,
        Some(r) => r.check(t)?,
    })
}

/// `check_time_rec`'s expression (OpenSIPS `_tmrec_expr_check_str`).
pub fn check(expr: &str, t: i64) -> Result<bool, String> {
    let e = expr.trim();
    if e.is_empty() {
        return Err("empty time recurrence".into());
    }
    // Split the top level at '&' or '/'; a '/' inside a recurrence (a
    // time zone name) counts as an operator only after that operand's
    // first '|'.
    let mut operands: Vec<&str> = Vec::new();
    let mut op: Option<char> = None;
    let (mut depth, mut start, mut seen_bar) = (0i32, 0usize, false);
    for (i, c) in e.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("bad parentheses in {e:?}"));
                }
            }
            '|' => seen_bar = true,
            '&' | '/' if depth == 0 && (c == '&' || seen_bar || e[start..i].trim_end().ends_with(')')) => {
                if op.is_some_and(|o| o != c) {
                    return Err(format!("only one operator kind per level in {e:?}"));
                }
                op = Some(c);
                operands.push(&e[start..i]);
                start = i + 1;
                seen_bar = false;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("bad parentheses in {e:?}"));
    }
    operands.push(&e[start..]);
    let mut results = Vec::with_capacity(operands.len());
    for o in operands {
        let mut o = o.trim();
        let mut invert = false;
        while let Some(rest) = o.strip_prefix('!') {
            invert = !invert;
            o = rest.trim_start();
        }
        if o.is_empty() {
            return Err(format!("missing operand in {e:?}"));
        }
        let v = match o.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
            Some(inner) => check(inner, t)?,
            None => check_one(o, t)?,
        };
        results.push(v != invert);
    }
    Ok(match op {
        Some('/') => results.iter().any(|r| *r),
        _ => results.iter().all(|r| *r),
    })
}

#[cfg(test)]
mod tests {
    use super::check;

    /// 2024-03-15 (a Friday) 10:30:00 UTC.
    const T: i64 = 1_710_498_600;

    #[test]
    fn intervals_and_recurrences() {
        let c = |s: &str| check(s, T).unwrap();
        assert!(c("UTC|20240315T100000|20240315T110000"));
        assert!(!c("UTC|20240315T110000|20240315T120000"));
        assert!(c("UTC|20240101T000000||p100d"));
        assert!(!c("UTC|20240101T000000||p30d"));
        // Every day 09:00-17:00, and Fridays only.
        assert!(c("UTC|20240101T090000|20240101T170000||daily"));
        assert!(!c("UTC|20240101T180000|20240101T200000||daily"));
        assert!(c("UTC|20240101T090000|20240101T170000||weekly|||FR"));
        assert!(!c("UTC|20240101T090000|20240101T170000||weekly|||MO,TU"));
        // The third Friday of the month; the 15th; March.
        assert!(c("UTC|20240101T000000||p1d|monthly|||3FR"));
        assert!(!c("UTC|20240101T000000||p1d|monthly|||-1FR"));
        assert!(c("UTC|20240101T000000||p1d|monthly||||15"));
        // March (a duration of a whole month, else only its first day).
        assert!(c("UTC|20240101T000000||p5w|yearly|||||||3"));
        assert!(!c("UTC|20240101T000000||p5w|yearly|||||||4"));
        assert!(!c("UTC|20240101T000000||p1d|yearly|||||||3"));
        // until, interval.
        assert!(!c("UTC|20240101T000000||p1d|daily|20240301T000000"));
        assert!(c("UTC|20240101T000000||p1d|daily||2"));
        assert!(!c("UTC|20240102T000000||p1d|daily||2"));
        // Time zones: 10:30 UTC is 11:30 in Paris.
        assert!(c("Europe/Paris|20240315T113000|20240315T114000"));
        assert!(!c("Europe/Paris|20240315T103000|20240315T104000"));
    }

    #[test]
    fn expressions() {
        let c = |s: &str| check(s, T).unwrap();
        let yes = "UTC|20240315T100000|20240315T110000";
        let no = "UTC|20240315T110000|20240315T120000";
        assert!(c(&format!("{yes} & !{no}")));
        assert!(c(&format!("{no} / {yes}")));
        assert!(!c(&format!("{no} & {yes}")));
        assert!(c(&format!("!({no} / {no}) & {yes}")));
        assert!(c("Europe/Paris|20240315T113000|20240315T114000 / UTC|20200101T000000|20200102T000000"));
        assert!(check(&format!("{yes} & {no} / {yes}"), T).is_err());
        assert!(check("UTC|2024", T).is_err());
        assert!(check("UTC|20240101T000000||||||MO", T).is_err());
        assert!(check("(", T).is_err());
    }
}
