-- OpenSIPS 3.4's `version` and `location` tables (location version 1013),
-- as `lunasip db init URL` creates them; usrloc reads and writes them
-- (config.modules.usrloc.db_url, db_mode 1-3). The index on username is
-- lunasip's addition (lookups by user; OpenSIPS does not mind it).
--
--   psql -U postgres -d opensips -f location-postgres.sql
--
-- Generated from src/db/schema.rs (UPDATE_DOCS=1 cargo test --test db).

CREATE TABLE IF NOT EXISTS version (
    table_name VARCHAR(32) NOT NULL,
    table_version INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT version_t_name_idx UNIQUE (table_name)
);

CREATE TABLE IF NOT EXISTS location (
    contact_id BIGSERIAL PRIMARY KEY NOT NULL,
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT NULL,
    contact TEXT NOT NULL,
    received VARCHAR(255) DEFAULT NULL,
    path VARCHAR(255) DEFAULT NULL,
    expires INTEGER NOT NULL,
    q REAL DEFAULT 1.0 NOT NULL,
    callid VARCHAR(255) DEFAULT 'Default-Call-ID' NOT NULL,
    cseq INTEGER DEFAULT 13 NOT NULL,
    last_modified TIMESTAMP WITHOUT TIME ZONE DEFAULT '1900-01-01 00:00:01' NOT NULL,
    flags INTEGER DEFAULT 0 NOT NULL,
    cflags VARCHAR(255) DEFAULT NULL,
    user_agent VARCHAR(255) DEFAULT '' NOT NULL,
    socket VARCHAR(64) DEFAULT NULL,
    methods INTEGER DEFAULT NULL,
    sip_instance VARCHAR(255) DEFAULT NULL,
    kv_store TEXT DEFAULT NULL,
    attr VARCHAR(255) DEFAULT NULL
);

CREATE INDEX IF NOT EXISTS location_username_idx ON location (username, domain);

INSERT INTO version (table_name, table_version) VALUES ('location', 1013);
