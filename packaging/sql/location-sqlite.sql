-- OpenSIPS 3.4's `version` and `location` tables (location version 1013),
-- as `lunasip db init URL` creates them; usrloc reads and writes them
-- (config.modules.usrloc.db_url, db_mode 1-3). The index on username is
-- lunasip's addition (lookups by user; OpenSIPS does not mind it).
--
--   sqlite3 /var/lib/lunasip/lunasip.db < location-sqlite.sql
--
-- Generated from src/db/schema.rs (UPDATE_DOCS=1 cargo test --test db).

CREATE TABLE IF NOT EXISTS version (
    table_name CHAR(32) NOT NULL,
    table_version INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT version_t_name_idx UNIQUE (table_name)
);

CREATE TABLE IF NOT EXISTS location (
    contact_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    username CHAR(64) DEFAULT '' NOT NULL,
    domain CHAR(64) DEFAULT NULL,
    contact TEXT NOT NULL,
    received CHAR(255) DEFAULT NULL,
    path CHAR(255) DEFAULT NULL,
    expires INTEGER NOT NULL,
    q FLOAT(10,2) DEFAULT 1.0 NOT NULL,
    callid CHAR(255) DEFAULT 'Default-Call-ID' NOT NULL,
    cseq INTEGER DEFAULT 13 NOT NULL,
    last_modified DATETIME DEFAULT '1900-01-01 00:00:01' NOT NULL,
    flags INTEGER DEFAULT 0 NOT NULL,
    cflags CHAR(255) DEFAULT NULL,
    user_agent CHAR(255) DEFAULT '' NOT NULL,
    socket CHAR(64) DEFAULT NULL,
    methods INTEGER DEFAULT NULL,
    sip_instance CHAR(255) DEFAULT NULL,
    kv_store TEXT(512) DEFAULT NULL,
    attr CHAR(255) DEFAULT NULL
);

CREATE INDEX IF NOT EXISTS location_username_idx ON location (username, domain);

INSERT INTO version (table_name, table_version) VALUES ('location', 1013);
