//! Module parameters: the keys each module reads from
//! `config.modules.<module>` (OpenSIPS `modparam`), with their kind. The
//! daemon's drift test (`tests/vocab.rs`) keeps them equal to the `params`
//! of `lunasip::modules::ALL`; the translator turns `modparam` lines into
//! these keys.

/// What a parameter's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamKind {
    Int,
    Str,
    Bool,
    Table,
}

/// One module parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    pub module: &'static str,
    pub name: &'static str,
    /// Other names accepted for it (OpenSIPS's older spellings).
    pub also: &'static [&'static str],
    pub kind: ParamKind,
}

const fn p(module: &'static str, name: &'static str, kind: ParamKind) -> Param {
    Param {
        module,
        name,
        also: &[],
        kind,
    }
}

const fn aka(
    module: &'static str,
    name: &'static str,
    also: &'static [&'static str],
    kind: ParamKind,
) -> Param {
    Param {
        module,
        name,
        also,
        kind,
    }
}

use ParamKind::{Bool, Int, Str, Table};

/// Every parameter, in the daemon's module order.
pub static ALL: &[Param] = &[
    p("rr", "append_fromtag", Bool),
    p("statistics", "stat_series_profile", Str),
    aka("clusterer", "my_node_id", &["current_id"], Int),
    p("clusterer", "db_mode", Int),
    p("clusterer", "db_url", Str),
    p("clusterer", "db_table", Str),
    aka("clusterer", "my_node_info", &["current_info"], Str),
    aka("clusterer", "neighbor_node_info", &["neighbor_info"], Str),
    p("clusterer", "ping_interval", Int),
    p("clusterer", "ping_timeout", Int),
    p("clusterer", "node_timeout", Int),
    p("clusterer", "sharing_tag", Str),
    aka("tm", "T1", &["T1_timer", "t1"], Int),
    aka("tm", "T2", &["T2_timer", "t2"], Int),
    aka("tm", "T4", &["T4_timer", "t4"], Int),
    p("tm", "fr_timeout", Int),
    p("tm", "fr_inv_timeout", Int),
    p("tm", "wait_timer", Int),
    p("tm", "restart_fr_on_each_reply", Bool),
    p("tm", "onreply_avp_mode", Bool),
    p("tm", "tw_append", Str),
    p("tm", "tm_replication_cluster", Int),
    p("tm", "cluster_param", Str),
    p("tm", "cluster_auto_cancel", Bool),
    p("dispatcher", "partitions", Table),
    p("dispatcher", "sets", Table),
    p("dispatcher", "destinations", Table),
    p("dispatcher", "list_file", Str),
    p("dispatcher", "db_url", Str),
    p("dispatcher", "table_name", Str),
    p("dispatcher", "db_retry_interval", Int),
    p("dispatcher", "hash_pvar", Str),
    p("dispatcher", "pvar_algo_pattern", Str),
    p("dispatcher", "algo_route", Str),
    p("dispatcher", "attrs_avp", Str),
    p("dispatcher", "script_attrs_avp", Str),
    p("dispatcher", "dst_avp", Str),
    p("dispatcher", "grp_avp", Str),
    p("dispatcher", "cnt_avp", Str),
    p("dispatcher", "setid_pvar", Str),
    p("dispatcher", "ds_ping_interval", Int),
    p("dispatcher", "ds_ping_method", Str),
    p("dispatcher", "ds_ping_from", Str),
    p("dispatcher", "ds_ping_maxfwd", Int),
    p("dispatcher", "ds_probing_sock", Str),
    p("dispatcher", "ds_probing_mode", Int),
    p("dispatcher", "ds_probing_threshold", Int),
    p("dispatcher", "ds_probing_list", Str),
    p("dispatcher", "options_reply_codes", Str),
    p("cfgutils", "initial_probability", Int),
    p("cfgutils", "lock_pool_size", Int),
    p("usrloc", "db_mode", Int),
    p("usrloc", "working_mode_preset", Str),
    p("usrloc", "db_url", Str),
    p("usrloc", "use_domain", Bool),
    p("usrloc", "nat_bflag", Str),
    p("usrloc", "matching_mode", Int),
    p("usrloc", "timer_interval", Int),
    p("usrloc", "latency_event_min_us", Int),
    p("usrloc", "latency_event_min_us_delta", Int),
    p("registrar", "default_expires", Int),
    p("registrar", "min_expires", Int),
    p("registrar", "max_expires", Int),
    p("registrar", "max_contacts", Int),
    p("registrar", "default_q", Int),
    p("registrar", "case_sensitive", Bool),
    p("registrar", "received_avp", Str),
    p("registrar", "disable_gruu", Int),
    p("registrar", "gruu_secret", Str),
    p("registrar", "tcp_persistent_flag", Str),
    p("auth", "secret", Str),
    p("auth", "nonce_expire", Int),
    p("auth", "rpid_avp", Str),
    p("auth", "rpid_prefix", Str),
    p("auth", "rpid_suffix", Str),
    p("auth_db", "db_url", Str),
    p("auth_db", "user_column", Str),
    p("auth_db", "domain_column", Str),
    p("auth_db", "password_column", Str),
    p("auth_db", "hash_column_sha256", Str),
    p("auth_db", "hash_column_sha512t256", Str),
    p("auth_db", "calculate_ha1", Int),
    p("auth_db", "use_domain", Int),
    p("auth_db", "uri_user_column", Str),
    p("auth_db", "uri_domain_column", Str),
    p("auth_db", "load_credentials", Str),
    p("auth_db", "uri_uriuser_column", Str),
    p("event_flatstore", "delimiter", Str),
    p("event_flatstore", "file_permissions", Str),
    p("event_flatstore", "max_open_sockets", Int),
    p("event_flatstore", "suppress_event_name", Int),
    p("event_rabbitmq", "heartbeat", Int),
    p("event_rabbitmq", "connect_timeout", Int),
    p("event_rabbitmq", "use_tls", Int),
    p("rabbitmq", "server_id", Table),
    p("rabbitmq", "use_tls", Int),
    p("nathelper", "natping_interval", Int),
    p("nathelper", "ping_nated_only", Bool),
    p("nathelper", "sipping_bflag", Str),
    p("nathelper", "sipping_method", Str),
    p("nathelper", "sipping_from", Str),
    p("nathelper", "sipping_ignore_rpl_codes", Str),
    p("nathelper", "remove_on_timeout_bflag", Str),
    p("nathelper", "sipping_latency_flag", Str),
    p("nathelper", "ping_threshold", Int),
    p("nathelper", "max_pings_lost", Int),
    p("nathelper", "natping_tcp", Bool),
    p("nathelper", "natping_partitions", Int),
    p("nathelper", "force_socket", Str),
    p("nathelper", "received_avp", Str),
    p("nathelper", "nortpproxy_str", Str),
    p("nathelper", "oldip_skip", Str),
    p("domain", "db_url", Str),
    p("domain", "db_mode", Int),
    p("domain", "domain_table", Str),
    p("domain", "domain_col", Str),
    p("domain", "attrs_col", Str),
    p("alias_db", "db_url", Str),
    p("alias_db", "user_column", Str),
    p("alias_db", "domain_column", Str),
    p("alias_db", "alias_user_column", Str),
    p("alias_db", "alias_domain_column", Str),
    p("alias_db", "domain_prefix", Str),
    p("alias_db", "append_branches", Bool),
    p("avpops", "db_url", Str),
    p("avpops", "avp_table", Str),
    p("avpops", "use_domain", Bool),
    p("avpops", "uuid_column", Str),
    p("avpops", "username_column", Str),
    p("avpops", "domain_column", Str),
    p("avpops", "attribute_column", Str),
    p("avpops", "value_column", Str),
    p("avpops", "type_column", Str),
    p("permissions", "db_url", Str),
    p("permissions", "address_table", Str),
    p("permissions", "partition", Str),
    p("permissions", "default_allow_file", Str),
    p("permissions", "default_deny_file", Str),
    p("permissions", "check_all_branches", Int),
    p("permissions", "allow_suffix", Str),
    p("permissions", "deny_suffix", Str),
    p("dialog", "default_timeout", Int),
    p("dialog", "dlg_match_mode", Int),
    p("dialog", "rr_param", Str),
    p("dialog", "profiles_with_value", Str),
    p("dialog", "profiles_no_value", Str),
    p("dialog", "db_mode", Int),
    p("dialog", "db_url", Str),
    p("dialog", "table_name", Str),
    p("dialog", "dialog_replication_cluster", Int),
    p("dialog", "options_ping_interval", Int),
    p("dialog", "reinvite_ping_interval", Int),
    p("acc", "db_url", Str),
    p("acc", "db_table_acc", Str),
    p("acc", "db_table_missed_calls", Str),
    p("acc", "early_media", Bool),
    p("acc", "report_cancels", Bool),
    p("acc", "detect_direction", Bool),
    p("acc", "extra_fields", Str),
    p("acc", "leg_fields", Str),
    p("topology_hiding", "force_dialog", Int),
    p("topology_hiding", "th_passed_contact_uri_params", Str),
    p("topology_hiding", "th_passed_contact_params", Str),
    p("topology_hiding", "th_callid_passwd", Str),
    p("topology_hiding", "th_callid_prefix", Str),
    p("topology_hiding", "th_contact_encode_passwd", Str),
    p("topology_hiding", "th_contact_encode_scheme", Str),
    p("topology_hiding", "th_contact_encode_param", Str),
];

/// Looks a parameter up by module and name (or an accepted older name).
pub fn lookup(module: &str, name: &str) -> Option<&'static Param> {
    ALL.iter()
        .find(|p| p.module == module && (p.name == name || p.also.contains(&name)))
}

/// Whether the module has parameters at all.
pub fn has_module(module: &str) -> bool {
    ALL.iter().any(|p| p.module == module)
}

#[cfg(test)]
mod tests {
    #[test]
    fn lookups() {
        assert_eq!(super::lookup("tm", "T1_timer").unwrap().name, "T1");
        assert_eq!(
            super::lookup("tm", "fr_timeout").unwrap().kind,
            super::ParamKind::Int
        );
        assert!(super::lookup("tm", "nothing").is_none());
        assert!(super::has_module("registrar") && !super::has_module("rtpengine"));
    }
}
