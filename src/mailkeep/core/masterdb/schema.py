"""Every table of the master database, created once when it is opened. `user_version` counts
the schema's versions, so that a later release can migrate an older database."""

from __future__ import annotations

FILE = "mailkeep.db"  # the master database's file in the data directory
VERSION = 7  # 2: user_mfa, app_passwords; 3: directory_accounts; 4: compliance;
# 5: audit.chain; 6: audit_meta; 7: tree_heads, retention, deletion_requests

SCHEMA = """
-- The stores registry: every store ever attached keeps its id (store_ids), so that message
-- ids <storeId>:<number> stay valid across detach and attach.
CREATE TABLE IF NOT EXISTS stores (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('current', 'normal', 'writeProtected', 'disabled')),
    attached_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS store_ids (uuid TEXT PRIMARY KEY, id INTEGER NOT NULL UNIQUE);
CREATE UNIQUE INDEX IF NOT EXISTS one_current_store ON stores(state) WHERE state = 'current';

-- Stores whose full-text index is selected for RebuildSelectedStoreIndexes.
CREATE TABLE IF NOT EXISTS store_index_rebuild (store_id INTEGER PRIMARY KEY);

-- The compliance configuration (core/admin/compliance.py): one JSON object.
CREATE TABLE IF NOT EXISTS compliance (
    id INTEGER PRIMARY KEY CHECK (id = 1), config TEXT NOT NULL);

-- The retention policies (core/admin/retention.py): one JSON object.
CREATE TABLE IF NOT EXISTS retention (
    id INTEGER PRIMARY KEY CHECK (id = 1), config TEXT NOT NULL);
-- Four-eyes deletion: one administrator asks, a second one decides.
CREATE TABLE IF NOT EXISTS deletion_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL, reason TEXT NOT NULL,
    requested_by TEXT NOT NULL, requested_at REAL NOT NULL,
    requester TEXT NOT NULL, requester_id INTEGER,  -- the account (its id survives a rename)
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'failed')),
    decided_by TEXT, decided_at REAL, note TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS deletion_requests_pending ON deletion_requests(message_id)
    WHERE state = 'pending';

-- Every signed head of every store's Merkle tree (core/heads.py): signed, the head as JSON.
CREATE TABLE IF NOT EXISTS tree_heads (
    id INTEGER PRIMARY KEY, store_uuid TEXT NOT NULL, size INTEGER NOT NULL,
    root TEXT NOT NULL, at INTEGER NOT NULL, signed TEXT NOT NULL,
    tst TEXT);  -- an RFC 3161 time-stamp response over the signed head (base64), if asked
CREATE INDEX IF NOT EXISTS tree_heads_store ON tree_heads(store_uuid, size);

-- chain: SHA-256 of the previous record's chain and this record (core/masterdb/audit.py);
-- NULL for records written before the chain existed.
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY, at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    details TEXT NOT NULL, chain TEXT);
-- chain_from: the first audit record the chain covers (those before: from before the chain).
CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

-- Accounts.
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name_key TEXT NOT NULL UNIQUE,  -- user_name.lower(): case-insensitive beyond ASCII too
    full_name TEXT, distinguished_name TEXT,
    authentication TEXT NOT NULL CHECK (authentication IN ('integrated', 'directoryServices')),
    password_hash TEXT,
    initial_password INTEGER NOT NULL DEFAULT 0,
    password_generation INTEGER NOT NULL DEFAULT 0,
    role TEXT CHECK (role IS NULL OR role IN ('administrator', 'operator', 'developer')),
    privileges TEXT NOT NULL,  -- JSON arrays from here on
    login_privileges TEXT NOT NULL,
    email_addresses TEXT NOT NULL,
    pop3_user_names TEXT NOT NULL,
    password_changed_at INTEGER,
    created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS user_folder_privileges (
    user_id INTEGER NOT NULL, folder TEXT NOT NULL, privileges TEXT NOT NULL,
    PRIMARY KEY (user_id, folder));
-- Global, so that a password generation is never reused, not even by a later account of the
-- same name.
CREATE TABLE IF NOT EXISTS user_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);

-- Console sessions: only the SHA-256 of a session id is kept.
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    role TEXT NOT NULL,
    address TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_seen REAL NOT NULL,
    timeout_s INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_name);

CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);

-- Scheduled jobs and their runs.
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, action TEXT NOT NULL,
    owner TEXT NOT NULL, time_zone TEXT NOT NULL, type TEXT NOT NULL, date TEXT,
    interval INTEGER, time TEXT, day_of_week TEXT, day_of_month TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    next_run REAL,  -- UTC epoch seconds; NULL: not scheduled (disabled, manual, once done)
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS job_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL, job_name TEXT NOT NULL,
    action TEXT NOT NULL, owner TEXT NOT NULL,
    trigger TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    started REAL NOT NULL, completed REAL,
    result TEXT CHECK (result IS NULL OR
                       result IN ('succeeded', 'failed', 'cancelled', 'skipped')),
    error TEXT);  -- result NULL: running (while the job's lock is held)
CREATE INDEX IF NOT EXISTS job_results_started ON job_results(started);
CREATE INDEX IF NOT EXISTS job_results_job ON job_results(job_id, started);

-- Every finished process of the server's engine worth keeping.
CREATE TABLE IF NOT EXISTS process_history (
    token TEXT PRIMARY KEY, name TEXT NOT NULL, user TEXT NOT NULL, started REAL NOT NULL,
    finished REAL NOT NULL, outcome TEXT NOT NULL, error TEXT);
CREATE INDEX IF NOT EXISTS process_history_finished ON process_history(finished);

-- Archiving profiles and the results of their runs.
CREATE TABLE IF NOT EXISTS profiles (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
    user_name TEXT NOT NULL, properties TEXT NOT NULL, secrets TEXT NOT NULL DEFAULT '{}',
    seal_id TEXT NOT NULL, state TEXT NOT NULL DEFAULT '{}',
    automatic INTEGER NOT NULL DEFAULT 0, pause_s INTEGER NOT NULL DEFAULT 300,
    windows TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS worker_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT, profile_id INTEGER, profile_name TEXT NOT NULL,
    profile_type TEXT NOT NULL, user_name TEXT NOT NULL, started_by TEXT NOT NULL,
    start REAL NOT NULL, complete REAL, result TEXT NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0, duplicates INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0, error TEXT,
    failures TEXT NOT NULL DEFAULT '[]', warnings TEXT NOT NULL DEFAULT '[]',
    log TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS worker_results_start ON worker_results(start);

-- The notification outbox: events until a mail carried them, and when each kind last went out.
CREATE TABLE IF NOT EXISTS notify_events (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL,
    sent_at REAL);
CREATE INDEX IF NOT EXISTS notify_pending ON notify_events(sent_at) WHERE sent_at IS NULL;
CREATE TABLE IF NOT EXISTS notify_kinds (kind TEXT PRIMARY KEY, last_mail REAL NOT NULL);

-- Multi-factor login: an account's TOTP secret in force (sealed; NULL: none yet), the one set
-- up and not yet confirmed (pending: the secret in force stays so until then); the last time
-- step a code was accepted for (a code works once); recovery codes as SHA-256 digests (each
-- works once).
CREATE TABLE IF NOT EXISTS user_mfa (
    user_id INTEGER PRIMARY KEY, secret TEXT, pending TEXT,
    last_step INTEGER NOT NULL DEFAULT 0, recovery TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL);
-- App passwords: what the Administration API and SMTP AUTH take for an account with MFA
-- (Basic auth carries no second factor). Random, shown once, kept as SHA-256 digests.
CREATE TABLE IF NOT EXISTS app_passwords (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL, name TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE, created_at REAL NOT NULL, last_used REAL,
    UNIQUE (user_id, name));
-- Directory accounts as the last sync found them: their entry (its DN, and its identity:
-- entryUUID or objectGUID, which a reused login name does not have), disabled there, or gone.
CREATE TABLE IF NOT EXISTS directory_accounts (
    user_id INTEGER PRIMARY KEY, dn TEXT NOT NULL, entry_id TEXT,
    disabled INTEGER NOT NULL DEFAULT 0, missing INTEGER NOT NULL DEFAULT 0,
    synced_at REAL NOT NULL);
"""


# The same tables in PostgreSQL (core/pgconn.py): the types it checks, identities where SQLite
# numbers rows itself, no NOCASE (name_key is the case-insensitive key), "user" quoted (a
# reserved word there); `meta` holds the schema's version. `instr` is SQLite's function,
# written once here so that the queries read the same on both.
SCHEMA_PG = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE OR REPLACE FUNCTION instr(haystack TEXT, needle TEXT) RETURNS INTEGER
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS 'SELECT strpos(haystack, needle)';

CREATE TABLE IF NOT EXISTS stores (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('current', 'normal', 'writeProtected', 'disabled')),
    attached_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS store_ids (uuid TEXT PRIMARY KEY, id BIGINT NOT NULL UNIQUE);
CREATE UNIQUE INDEX IF NOT EXISTS one_current_store ON stores(state) WHERE state = 'current';
CREATE TABLE IF NOT EXISTS store_index_rebuild (store_id BIGINT PRIMARY KEY);

CREATE TABLE IF NOT EXISTS compliance (
    id BIGINT PRIMARY KEY CHECK (id = 1), config TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS retention (
    id BIGINT PRIMARY KEY CHECK (id = 1), config TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deletion_requests (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, message_id TEXT NOT NULL,
    reason TEXT NOT NULL, requested_by TEXT NOT NULL, requested_at DOUBLE PRECISION NOT NULL,
    requester TEXT NOT NULL, requester_id BIGINT,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'failed')),
    decided_by TEXT, decided_at DOUBLE PRECISION, note TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS deletion_requests_pending ON deletion_requests(message_id)
    WHERE state = 'pending';

CREATE TABLE IF NOT EXISTS tree_heads (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, store_uuid TEXT NOT NULL,
    size BIGINT NOT NULL, root TEXT NOT NULL, at BIGINT NOT NULL, signed TEXT NOT NULL,
    tst TEXT);
CREATE INDEX IF NOT EXISTS tree_heads_store ON tree_heads(store_uuid, size);

CREATE TABLE IF NOT EXISTS audit (
    id BIGINT PRIMARY KEY, at BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    details TEXT NOT NULL, chain TEXT);
CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO audit_meta VALUES ('chain_from', '1') ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS users (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    user_name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    full_name TEXT, distinguished_name TEXT,
    authentication TEXT NOT NULL CHECK (authentication IN ('integrated', 'directoryServices')),
    password_hash TEXT,
    initial_password BIGINT NOT NULL DEFAULT 0,
    password_generation BIGINT NOT NULL DEFAULT 0,
    role TEXT CHECK (role IS NULL OR role IN ('administrator', 'operator', 'developer')),
    privileges TEXT NOT NULL,
    login_privileges TEXT NOT NULL,
    email_addresses TEXT NOT NULL,
    pop3_user_names TEXT NOT NULL,
    password_changed_at BIGINT,
    created_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS user_folder_privileges (
    user_id BIGINT NOT NULL, folder TEXT NOT NULL, privileges TEXT NOT NULL,
    PRIMARY KEY (user_id, folder));
CREATE TABLE IF NOT EXISTS user_counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);

CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    role TEXT NOT NULL,
    address TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    timeout_s BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_name);

CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS jobs (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name TEXT NOT NULL,
    action TEXT NOT NULL, owner TEXT NOT NULL, time_zone TEXT NOT NULL, type TEXT NOT NULL,
    date TEXT, interval BIGINT, time TEXT, day_of_week TEXT, day_of_month TEXT,
    enabled BIGINT NOT NULL DEFAULT 1,
    next_run DOUBLE PRECISION,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS job_results (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, job_id BIGINT NOT NULL,
    job_name TEXT NOT NULL, action TEXT NOT NULL, owner TEXT NOT NULL,
    trigger TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    started DOUBLE PRECISION NOT NULL, completed DOUBLE PRECISION,
    result TEXT CHECK (result IS NULL OR
                       result IN ('succeeded', 'failed', 'cancelled', 'skipped')),
    error TEXT);
CREATE INDEX IF NOT EXISTS job_results_started ON job_results(started);
CREATE INDEX IF NOT EXISTS job_results_job ON job_results(job_id, started);

CREATE TABLE IF NOT EXISTS process_history (
    token TEXT PRIMARY KEY, name TEXT NOT NULL, "user" TEXT NOT NULL,
    started DOUBLE PRECISION NOT NULL, finished DOUBLE PRECISION NOT NULL,
    outcome TEXT NOT NULL, error TEXT);
CREATE INDEX IF NOT EXISTS process_history_finished ON process_history(finished);

CREATE TABLE IF NOT EXISTS profiles (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL, user_name TEXT NOT NULL, properties TEXT NOT NULL,
    secrets TEXT NOT NULL DEFAULT '{}', seal_id TEXT NOT NULL, state TEXT NOT NULL DEFAULT '{}',
    automatic BIGINT NOT NULL DEFAULT 0, pause_s BIGINT NOT NULL DEFAULT 300,
    windows TEXT, created DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS worker_results (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, profile_id BIGINT,
    profile_name TEXT NOT NULL, profile_type TEXT NOT NULL, user_name TEXT NOT NULL,
    started_by TEXT NOT NULL, start DOUBLE PRECISION NOT NULL, complete DOUBLE PRECISION,
    result TEXT NOT NULL,
    archived BIGINT NOT NULL DEFAULT 0, duplicates BIGINT NOT NULL DEFAULT 0,
    skipped BIGINT NOT NULL DEFAULT 0, failed BIGINT NOT NULL DEFAULT 0,
    deleted BIGINT NOT NULL DEFAULT 0, bytes BIGINT NOT NULL DEFAULT 0, error TEXT,
    failures TEXT NOT NULL DEFAULT '[]', warnings TEXT NOT NULL DEFAULT '[]',
    log TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS worker_results_start ON worker_results(start);

CREATE TABLE IF NOT EXISTS notify_events (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, at DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL, text TEXT NOT NULL, sent_at DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS notify_pending ON notify_events(sent_at) WHERE sent_at IS NULL;
CREATE TABLE IF NOT EXISTS notify_kinds (
    kind TEXT PRIMARY KEY, last_mail DOUBLE PRECISION NOT NULL);

CREATE TABLE IF NOT EXISTS user_mfa (
    user_id BIGINT PRIMARY KEY, secret TEXT, pending TEXT,
    last_step BIGINT NOT NULL DEFAULT 0, recovery TEXT NOT NULL DEFAULT '[]',
    created_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS app_passwords (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, user_id BIGINT NOT NULL,
    name TEXT NOT NULL, digest TEXT NOT NULL UNIQUE, created_at DOUBLE PRECISION NOT NULL,
    last_used DOUBLE PRECISION, UNIQUE (user_id, name));
CREATE TABLE IF NOT EXISTS directory_accounts (
    user_id BIGINT PRIMARY KEY, dn TEXT NOT NULL, entry_id TEXT,
    disabled BIGINT NOT NULL DEFAULT 0, missing BIGINT NOT NULL DEFAULT 0,
    synced_at DOUBLE PRECISION NOT NULL);
"""
