//! Statistic series (OpenSIPS 3.4 modules/statistics/statistics.c:
//! `stat_series_profile`, `update_stat_series`): values kept in a sliding
//! window of `window` seconds cut into `slots`, read as their sum
//! (`accumulate`), mean (`average`) or share of positive updates
//! (`percentage`, times `percentage_factor`). Each series is a computed
//! statistic of the profile's group (`dynamic` when a module has that
//! group), so MI `get_statistics` reads it; it
//! cannot be reset (OpenSIPS registers them `STAT_NO_RESET`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How a series reads its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Accumulate,
    Average,
    Percentage,
}

/// One `stat_series_profile` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    /// The statistics group the series are shown in (the profile's name
    /// unless `group=` says otherwise).
    pub group: String,
    /// Window in seconds.
    pub window: u64,
    pub slots: u64,
    pub factor: u64,
    pub alg: Alg,
}

impl Profile {
    fn window_ms(&self) -> u64 {
        self.window * 1000
    }

    fn slot_ms(&self) -> u64 {
        self.window_ms() / self.slots
    }

    fn slot_of(&self, now_ms: u64) -> usize {
        ((now_ms % self.window_ms()) / self.slot_ms()) as usize
    }
}

/// Parses `name: key=value key=value…` (keys `algorithm`, `window`,
/// `slots`, `percentage_factor`, `group`, `hash_size`). Where OpenSIPS
/// logs a bad value and keeps the default, lunasip refuses the profile.
pub fn parse_profile(line: &str) -> Result<Profile, String> {
    let (name, params) = line.split_once(':').unwrap_or((line, ""));
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("stat_series_profile '{line}': no profile name"));
    }
    let bad = |what: &str| format!("stat_series_profile '{name}': {what}");
    let mut p = Profile {
        name: name.to_string(),
        group: String::new(),
        window: 60,
        slots: 0,
        factor: 100,
        alg: Alg::Accumulate,
    };
    // `key=value`, `key = value` and `key= value` are all one pair.
    let spaced = params.replace('=', " = ");
    let mut words = spaced.split_whitespace().peekable();
    while let Some(k) = words.next() {
        if words.next() != Some("=") {
            return Err(bad(&format!("malformed key=value pair at '{k}'")));
        }
        let v = words
            .next()
            .ok_or_else(|| bad(&format!("no value for '{k}'")))?;
        let num = || {
            v.parse::<u64>()
                .map_err(|_| bad(&format!("{k} '{v}' is not a whole number")))
        };
        match k.to_ascii_lowercase().as_str() {
            "algorithm" => {
                p.alg = match v.to_ascii_lowercase().as_str() {
                    "accumulate" => Alg::Accumulate,
                    "average" => Alg::Average,
                    "percentage" => Alg::Percentage,
                    _ => return Err(bad(&format!("unknown algorithm '{v}' (accumulate, average, percentage)"))),
                }
            }
            "window" => p.window = num()?,
            "slots" => p.slots = num()?,
            "hash_size" => {
                num()?;
            }
            "group" => p.group = v.to_string(),
            "percentage_factor" => {
                let f = num()?;
                let mut t = f;
                while t > 9 && t % 10 == 0 {
                    t /= 10;
                }
                if t != 1 {
                    return Err(bad(&format!("percentage_factor {f} is not a power of 10")));
                }
                p.factor = f;
            }
            _ => return Err(bad(&format!("unknown parameter '{k}'"))),
        }
    }
    if p.window == 0 {
        return Err(bad("window must be at least 1 second"));
    }
    if p.slots == 0 {
        p.slots = p.window;
    }
    if p.slots > p.window * 1000 {
        return Err(bad("more slots than milliseconds in the window"));
    }
    if p.group.is_empty() {
        p.group = p.name.clone();
    }
    crate::stats::split_name(&format!("{}:{}", p.group, "x"), "")?;
    Ok(p)
}

/// A slot: sum and count (`average`), positive and negative totals
/// (`percentage`), or the sum in `a` (`accumulate`).
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    a: i64,
    b: i64,
}

/// One series' window.
#[derive(Debug)]
pub struct Series {
    profile: Profile,
    slots: Vec<Slot>,
    /// The sum of `slots`.
    cache: Slot,
    last_slot: usize,
    /// Time of the last update or read in ms; 0: never.
    last_ts: u64,
}

impl Series {
    pub fn new(profile: Profile) -> Series {
        Series {
            slots: vec![Slot::default(); profile.slots as usize],
            profile,
            cache: Slot::default(),
            last_slot: 0,
            last_ts: 0,
        }
    }

    /// Clears the slots passed since the last access; the slot of `now`.
    fn advance(&mut self, now: u64) -> usize {
        let new = self.profile.slot_of(now);
        if now.saturating_sub(self.last_ts) >= self.profile.window_ms() {
            self.slots.iter_mut().for_each(|s| *s = Slot::default());
            self.cache = Slot::default();
            return new;
        }
        if new == self.last_slot {
            return new;
        }
        let n = self.slots.len();
        let mut i = (self.last_slot + 1) % n;
        loop {
            let s = std::mem::take(&mut self.slots[i]);
            self.cache.a -= s.a;
            self.cache.b -= s.b;
            if i == new {
                break;
            }
            i = (i + 1) % n;
        }
        new
    }

    /// `update_stat_series`: adds `v` at time `now` (ms).
    pub fn update(&mut self, v: i64, now: u64) {
        let i = if self.last_ts == 0 {
            self.cache = Slot::default();
            self.profile.slot_of(now)
        } else {
            self.advance(now)
        };
        self.last_ts = now;
        self.last_slot = i;
        let (da, db) = match self.profile.alg {
            Alg::Accumulate => (v, 0),
            Alg::Average => (v, 1),
            Alg::Percentage if v > 0 => (v, 0),
            Alg::Percentage => (0, -v),
        };
        self.slots[i].a += da;
        self.slots[i].b += db;
        self.cache.a += da;
        self.cache.b += db;
    }

    /// The value over the window ending at `now`; a negative sum or mean
    /// reads as 0 (statistics are unsigned, as OpenSIPS's).
    pub fn read(&mut self, now: u64) -> u64 {
        if self.last_ts == 0 || now.saturating_sub(self.last_ts) >= self.profile.window_ms() {
            return 0;
        }
        let i = self.advance(now);
        self.last_ts = now;
        self.last_slot = i;
        let c = self.cache;
        let v = match self.profile.alg {
            Alg::Accumulate => c.a,
            Alg::Average if c.b != 0 => c.a / c.b,
            Alg::Average => 0,
            Alg::Percentage if c.a + c.b != 0 => c.a * self.profile.factor as i64 / (c.a + c.b),
            Alg::Percentage => 0,
        };
        v.max(0) as u64
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Every series created, by profile and name (they are statistics, which
/// live as long as the process).
static SERIES: Mutex<Option<SeriesMap>> = Mutex::new(None);

/// Series by (profile, name).
type SeriesMap = HashMap<(String, String), Arc<Mutex<Series>>>;

/// Adds `v` to the series `name` of `profile`, creating it (a statistic
/// `group:name`) on first use. Errors: the name is taken by another
/// statistic, or is not a valid statistic name.
pub fn update(profile: &Profile, name: &str, v: i64) -> Result<(), String> {
    let key = (profile.name.clone(), name.to_string());
    let series = {
        let mut all = SERIES.lock().unwrap_or_else(|e| e.into_inner());
        let all = all.get_or_insert_with(HashMap::new);
        match all.get(&key) {
            Some(s) => s.clone(),
            None => {
                // statistics.c mod_init: a group a module already has
                // (not dynamic) gives way to `dynamic`.
                let group = if crate::stats::declared().any(|g| g.name == profile.group) {
                    tracing::warn!(
                        "stat_series_profile {}: group {} belongs to a module, series go to {}",
                        profile.name,
                        profile.group,
                        crate::stats::DYNAMIC_GROUP
                    );
                    crate::stats::DYNAMIC_GROUP
                } else {
                    profile.group.as_str()
                };
                let full = format!("{group}:{name}");
                crate::stats::split_name(&full, "")?;
                // OpenSIPS `get_stat(name)`: a statistic of that name in
                // any group.
                if crate::stats::get(name).is_some() {
                    return Err(format!("a statistic named {name} already exists"));
                }
                let s = Arc::new(Mutex::new(Series::new(profile.clone())));
                let read = s.clone();
                crate::stats::register_gauge(group, name, move || {
                    read.lock().unwrap_or_else(|e| e.into_inner()).read(now_ms())
                })?;
                all.insert(key, s.clone());
                s
            }
        }
    };
    series
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .update(v, now_ms());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(line: &str) -> Series {
        Series::new(parse_profile(line).unwrap())
    }

    #[test]
    fn profiles_as_opensips_parses_them() {
        let p = parse_profile("perc_1h: algorithm=percentage window=3600 slots=6").unwrap();
        assert_eq!((p.window, p.slots, p.factor, p.alg), (3600, 6, 100, Alg::Percentage));
        assert_eq!(p.group, "perc_1h");
        let p = parse_profile("avg").unwrap();
        assert_eq!((p.window, p.slots, p.alg), (60, 60, Alg::Accumulate));
        let p = parse_profile("a: group = calls algorithm= average").unwrap();
        assert_eq!((p.group.as_str(), p.alg), ("calls", Alg::Average));
        for bad in [
            "x: algorithm=median",
            "x: window=ten",
            "x: percentage_factor=50",
            "x: window=0",
            "x: colour=red",
            "x: window",
            ": window=5",
        ] {
            assert!(parse_profile(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn accumulate_forgets_slots_that_left_the_window() {
        // 10 s window, 10 slots of 1 s.
        let mut s = series("acc: window=10 slots=10");
        let t0 = 1_000_000_000_000;
        s.update(5, t0);
        s.update(2, t0 + 3_000);
        assert_eq!(s.read(t0 + 3_500), 7);
        // At t0+10 s the first slot is reused: its 5 is gone.
        assert_eq!(s.read(t0 + 10_000), 2);
        s.update(1, t0 + 12_000);
        assert_eq!(s.read(t0 + 12_000), 3);
        // Nothing for a whole window: empty.
        assert_eq!(s.read(t0 + 30_000), 0);
    }

    #[test]
    fn average_and_percentage() {
        let mut s = series("avg: algorithm=average window=60");
        let t = 1_000_000_000_000;
        for v in [100, 200, 600] {
            s.update(v, t);
        }
        assert_eq!(s.read(t + 1), 300);
        let mut s = series("asr: algorithm=percentage percentage_factor=1000");
        s.update(1, t);
        s.update(-1, t);
        s.update(-1, t);
        s.update(1, t);
        s.update(1, t);
        assert_eq!(s.read(t + 1), 600);
    }
}
