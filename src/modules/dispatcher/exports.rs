//! The dispatcher's whole surface: Lua functions (`lua.rs`), MI commands
//! (`mi.rs`), statistics, the keys of `config.modules.dispatcher` (parsed
//! in `conf.rs` and `probe.rs`) and the probing task started in the first
//! worker.

use std::rc::Rc;

use crate::modules::{param, Module, Param, ParamKind};
use crate::stats::{stat_group, StatDecl};

stat_group! {
    /// Dispatcher counters, declared in [`MODULE`]'s `stats`.
    pub struct Dispatcher: "dispatcher" {
        probes_sent,
    }
}

pub static DISPATCHER: Dispatcher = Dispatcher::new();

pub static MODULE: Module = Module {
    name: "dispatcher",
    table: Some("dispatcher"),
    doc: "Load balancing and failover over sets of destinations (OpenSIPS dispatcher). See docs/dispatcher.md.",
    exports: super::lua::EXPORTS,
    mi: super::mi::COMMANDS,
    events: super::EVENTS,
    stats: &[
        StatDecl::counter(
            "probes_sent",
            &DISPATCHER.probes_sent,
            "Probes (OPTIONS or `ds_ping_method`) sent to destinations.",
        ),
        StatDecl::computed(
            "bad_rows",
            super::bad_rows,
            "Rows skipped as malformed by the last load of every partition.",
        ),
    ],
    params: PARAMS,
    child_init: Some(child_init),    setup: Some(|m| crate::modules::settings(super::prepare(m))),
    ..Module::NONE
};

/// Probes go out from the first worker; replies come to any worker.
fn child_init(rank: usize, worker: &Rc<crate::proxy::worker::Worker>) {
    if rank == 0 {
        tokio::task::spawn_local(super::probe::run(worker.clone()));
    }
}

const T: ParamKind = ParamKind::Table;
const S: ParamKind = ParamKind::Str;
const I: ParamKind = ParamKind::Int;

/// Partition keys sit at the top of `config.modules.dispatcher` (partition
/// `default`) or in each entry of `partitions`; probing keys are
/// module-wide. docs/dispatcher.md explains them.
static PARAMS: &[Param] = &[
    param("partitions", T, "none", "`name = { … }` per partition, each with the partition keys below; without it the top-level table is partition `default`."),
    param("sets", T, "none", "Partition key: `[setid] = { \"sip:a\", { uri = \"sip:b\", weight = 3, priority, state, socket, attrs, description } }`."),
    param("destinations", T, "none", "Partition key: rows with the columns of OpenSIPS's table (`setid`, `destination`, `weight`, …)."),
    param("list_file", S, "none", "Partition key: an OpenSIPS dispatcher.list file (a relative path is in the script's directory)."),
    param("db_url", S, "none", "Partition key: `mysql://user:password@host:port/database` (TCP; no TLS)."),
    param("table_name", S, "dispatcher", "Partition key: the table, or `database.table`."),
    param("db_retry_interval", I, "5", "Partition key: seconds between attempts while the database cannot be read."),
    param("hash_pvar", S, "none", "Partition key: format string hashed by algorithm 7."),
    param("pvar_algo_pattern", S, "none", "Partition key: load variable of algorithm 9, `%u` is the destination URI."),
    param("algo_route", S, "none", "Partition key: route or Lua function ordering destinations for algorithm 10."),
    param("attrs_avp", S, "none", "Partition key: AVP that gets the chosen destination's attrs."),
    param("script_attrs_avp", S, "none", "Partition key: AVP that gets the chosen destination's script attrs (`ds_push_script_attrs`)."),
    param("dst_avp", S, "ds_dst_failover", "Partition key: AVP of the failover list (other partitions: `ds_dst_failover_NAME`)."),
    param("grp_avp", S, "ds_grp_failover", "Partition key: AVP of the chosen set (other partitions: `ds_grp_failover_NAME`)."),
    param("cnt_avp", S, "ds_cnt_failover", "Partition key: AVP of the number of destinations (other partitions: `ds_cnt_failover_NAME`)."),
    param("setid_pvar", S, "none", "Partition key: pseudo-variable that gets the chosen set id."),
    param("ds_ping_interval", I, "0", "Seconds between two rounds of probes (0: off)."),
    param("ds_ping_method", S, "OPTIONS", "Method of the probes."),
    param("ds_ping_from", S, "sip:dispatcher@localhost", "From URI of the probes."),
    param("ds_ping_maxfwd", I, "70", "Max-Forwards of the probes."),
    param("ds_probing_sock", S, "none", "`proto:ip:port` of a listen socket to send probes from (a destination's own socket wins)."),
    param("ds_probing_mode", I, "0", "0: probe only destinations in probing state; 1: every destination that is not inactive."),
    param("ds_probing_threshold", I, "3", "Failures in a row before an active destination goes to probing."),
    param("ds_probing_list", S, "all sets", "Only these sets: `\"1,3\"` or `{ 1, 3 }`."),
    param("options_reply_codes", S, "none", "Codes besides 200 that count as alive: `\"404,501\"`."),
];

impl crate::modules::Settings for super::Prepared {
    fn commit(
        self: Box<Self>,
        listen: &[crate::config::Listen],
        staged: &mut crate::state::Staged,
    ) -> Result<(), crate::modules::SettingsError> {
        Ok(super::Prepared::commit(*self, listen, staged)?)
    }

    fn verify(
        &self,
        listen: &[crate::config::Listen],
        connect: bool,
    ) -> Result<Vec<String>, crate::modules::SettingsError> {
        let db = match connect {
            true => super::DbLoad::Required,
            false => super::DbLoad::Skip,
        };
        Ok(super::Prepared::verify(self, listen, db)?)
    }
}
