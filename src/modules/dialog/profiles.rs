//! Dialog profiles (OpenSIPS `dlg_profile.c`): named sets of dialogs,
//! with or without a value per membership (`profiles_with_value`,
//! `profiles_no_value`), counted so that `get_profile_size` costs a map
//! lookup whatever the number of dialogs.

use dashmap::DashMap;

use super::conf;
use super::store::Dlg;

#[derive(Default)]
struct Counts {
    /// Dialogs per profile.
    total: DashMap<String, u64>,
    /// Dialogs per (profile, value).
    per_value: DashMap<(String, String), u64>,
}

/// (The registry's long-lived state, with the dialogs.)
fn counts() -> std::sync::Arc<Counts> {
    crate::state::state::<Counts>()
}

/// Whether `name` is a declared profile, and whether it takes values.
pub fn has_value(name: &str) -> Option<bool> {
    has_value_in(&conf(), name)
}

/// [`has_value`] with settings `c` (a commit reads rows before they are
/// installed).
pub fn has_value_in(c: &super::DlgConf, name: &str) -> Option<bool> {
    c.profiles.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}

/// Parses `profiles_with_value` / `profiles_no_value`: names separated by
/// `;` (a `/s`-style suffix, OpenSIPS's sharing mark, is dropped).
pub fn parse_list(s: &str) -> Vec<String> {
    s.split(';')
        .map(|n| n.split('/').next().unwrap_or("").trim().to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

fn add(profile: &str, value: Option<&str>, delta: i64) {
    let c = counts();
    let bump = |v: &mut u64| {
        *v = if delta < 0 {
            v.saturating_sub(delta.unsigned_abs())
        } else {
            v.saturating_add(delta as u64)
        }
    };
    bump(&mut c.total.entry(profile.to_string()).or_insert(0));
    c.total.remove_if(profile, |_, v| *v == 0);
    if let Some(v) = value {
        let k = (profile.to_string(), v.to_string());
        bump(&mut c.per_value.entry(k.clone()).or_insert(0));
        c.per_value.remove_if(&k, |_, v| *v == 0);
    }
}

/// Puts `d` into `profile` (with `value` for a profile with values).
/// A dialog is in a profile without values once; with values, once per
/// value.
pub fn set(d: &mut Dlg, profile: &str, value: Option<&str>) {
    let entry = (profile.to_string(), value.map(str::to_string));
    if d.profiles.contains(&entry) {
        return;
    }
    add(profile, value, 1);
    d.profiles.push(entry);
}

/// Takes `d` out of `profile` (`value` None on a profile with values:
/// every value). False when it was not in it.
pub fn unset(d: &mut Dlg, profile: &str, value: Option<&str>, any_value: bool) -> bool {
    let before = d.profiles.len();
    let mut gone = Vec::new();
    d.profiles.retain(|(p, v)| {
        let hit = p == profile && (any_value || v.as_deref() == value);
        if hit {
            gone.push(v.clone());
        }
        !hit
    });
    for v in gone {
        add(profile, v.as_deref(), -1);
    }
    d.profiles.len() != before
}

pub fn is_in(d: &Dlg, profile: &str, value: Option<&str>) -> bool {
    d.profiles
        .iter()
        .any(|(p, v)| p == profile && (value.is_none() || v.as_deref() == value))
}

/// Leaves every profile (the dialog ended).
pub fn leave_all(d: &mut Dlg) {
    for (p, v) in std::mem::take(&mut d.profiles) {
        add(&p, v.as_deref(), -1);
    }
}

/// Dialogs in `profile` (with `value`: those with that value).
pub fn size(profile: &str, value: Option<&str>) -> u64 {
    let c = counts();
    match value {
        None => c.total.get(profile).map_or(0, |v| *v),
        Some(v) => c
            .per_value
            .get(&(profile.to_string(), v.to_string()))
            .map_or(0, |n| *n),
    }
}
