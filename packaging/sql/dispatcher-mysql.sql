-- The dispatcher table lunasip reads with
--   config.modules.dispatcher = { db_url = "mysql://…", table_name = "dispatcher" }
-- on MySQL or MariaDB. Its columns, names and types are those of the table
-- OpenSIPS 3.x uses (its table version 9), so a proxy migrating from
-- OpenSIPS keeps the table it has, and both can read the same one.
--
--   mariadb -u root opensips < dispatcher-mysql.sql
--
-- lunasip reads columns by name: a table from an older OpenSIPS (no
-- probe_mode, an integer weight) or with extra columns loads as well.
-- OpenSIPS itself also wants a row in its `version` table
-- ('dispatcher', 9); lunasip does not look at it.

CREATE TABLE IF NOT EXISTS dispatcher (
    -- Named in the log when the row is skipped as malformed.
    id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,
    -- The set (group) the destination belongs to: ds_select_dst(setid, …).
    setid INT DEFAULT 0 NOT NULL,
    -- A SIP URI: sip:10.0.0.11:5060, sip:fs1.example.com;transport=tcp.
    destination CHAR(192) DEFAULT '' NOT NULL,
    -- Local socket to send from, one of config.listen (udp:10.0.0.1:5060);
    -- NULL or empty: chosen by routing.
    socket CHAR(128) DEFAULT NULL,
    -- 0 active, 1 inactive, 2 probing (the state at load; a reload keeps
    -- the state of destinations that survive unless told not to).
    state INT DEFAULT 0 NOT NULL,
    -- Per-destination probing mode (kept for OpenSIPS; see dispatcher.md).
    probe_mode INT(11) UNSIGNED DEFAULT 0 NOT NULL,
    -- A whole number, kept as text as OpenSIPS 3.x does; empty means 1.
    weight CHAR(64) DEFAULT '1' NOT NULL,
    -- Lower values are tried first.
    priority INT DEFAULT 0 NOT NULL,
    -- Opaque text handed to the script (attrs_avp).
    attrs CHAR(128) DEFAULT NULL,
    description CHAR(64) DEFAULT NULL
) ENGINE=InnoDB;
