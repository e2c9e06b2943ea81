//! The dispatcher's status reports (OpenSIPS 3.4 modules/dispatcher/
//! dispatch.c, `ds_srg`): group `dispatcher`, one identifier per partition
//! (-2 "no data loaded", -1 "startup data loading", 1 "data available", 2
//! "data re-loading", with a report per load) and `NAME;events` (1, a
//! report per destination state change). MI `sr_*` and `sr_check_status`
//! read them.

use crate::modules::core as status;

pub const GROUP: &str = "dispatcher";

/// OpenSIPS `sr_status` values.
const NO_DATA: i64 = -2;
const LOADING: i64 = -1;
const READY: i64 = 1;
const RELOADING: i64 = 2;

fn events(partition: &str) -> String {
    format!("{partition};events")
}

/// A partition is being (re)loaded; the status before, to put back if the
/// load fails.
pub fn loading(partition: &str) -> Option<(i64, String)> {
    let before = status::status_of(GROUP, partition);
    if status::status_of(GROUP, &events(partition)).is_none() {
        status::set_status(GROUP, &events(partition), READY, "");
    }
    match before {
        Some((s, _)) if s >= READY => {
            status::set_status(GROUP, partition, RELOADING, "data re-loading")
        }
        _ => status::set_status(GROUP, partition, LOADING, "startup data loading"),
    }
    before
}

/// The load succeeded with `n` destinations (`discarded` rows skipped).
pub fn loaded(partition: &str, n: usize, discarded: usize) {
    status::add_report(GROUP, partition, "data loading successfully completed");
    status::add_report(
        GROUP,
        partition,
        &format!("{n} destinations loaded ({discarded} discarded)"),
    );
    status::set_status(GROUP, partition, READY, "data available");
}

/// The load failed: the partition keeps what it had (`before`), or has
/// no data.
pub fn failed(partition: &str, before: Option<(i64, String)>) {
    status::add_report(GROUP, partition, "data loading failed, discarding");
    match before {
        Some((s, _)) if s >= READY => {
            status::set_status(GROUP, partition, READY, "data available")
        }
        _ => status::set_status(GROUP, partition, NO_DATA, "no data loaded"),
    }
}

/// A destination's state changed (dispatch.c `ds_set_state`'s report).
pub fn state_changed(partition: &str, setid: i64, uri: &str, active: bool) {
    let state = if active { "active" } else { "inactive" };
    status::add_report(
        GROUP,
        &events(partition),
        &format!("DESTINATION <{uri}>, set {setid} switched to [{state}]"),
    );
}
