-- The SQLite schema of mailbridge, as an ordered list of migrations.
--
-- File format (read by mailbridge.storage.sqlite):
--     -- migration <n> --
--     -- description
--     statements;
-- Migration n brings the database from PRAGMA user_version n-1 to n. Never edit
-- a migration that has shipped: append a new one.
--
-- Times are UTC epoch seconds (REAL). SMS states are the values of
-- mailbridge.models.SmsState; reply states are queued | sending | sent.

-- migration 1 --
-- The first schema: mails, requests, SMS rows, attempts, replies, limit counters.
CREATE TABLE requests (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    account TEXT,
    client_ip TEXT NOT NULL,
    mail_from TEXT NOT NULL,
    rcpt_to TEXT NOT NULL,
    mode TEXT NOT NULL,
    received_at REAL NOT NULL,
    result TEXT NOT NULL,
    error INTEGER,
    error_detail TEXT NOT NULL DEFAULT '',
    test INTEGER NOT NULL DEFAULT 0,
    sender TEXT,
    format INTEGER,
    translit INTEGER,
    due REAL,
    sms_total INTEGER NOT NULL DEFAULT 0,
    charged INTEGER NOT NULL DEFAULT 0,
    reply_to TEXT,
    reply_subject TEXT,
    reply_in_reply_to TEXT,
    reply_references TEXT,
    followup_sent INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX requests_by_request_id ON requests (request_id, pk);
CREATE INDEX requests_by_account ON requests (account, pk);

CREATE TABLE mails (
    request_pk INTEGER PRIMARY KEY REFERENCES requests (pk),
    raw BLOB NOT NULL
);

CREATE TABLE sms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_pk INTEGER NOT NULL REFERENCES requests (pk),
    recipient TEXT NOT NULL,
    text TEXT NOT NULL,
    sender TEXT NOT NULL,
    format INTEGER NOT NULL,
    encoding TEXT NOT NULL,
    parts INTEGER NOT NULL,
    state TEXT NOT NULL,
    due REAL NOT NULL,
    first_due REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL,
    provider TEXT,
    provider_id TEXT,
    error TEXT,
    subject TEXT,
    voice TEXT,
    param TEXT
);
CREATE INDEX sms_by_request ON sms (request_pk, state);
-- Claiming reads only these two small partial indexes, never the whole table.
CREATE INDEX sms_scheduled_by_due ON sms (due, id) WHERE state = 'scheduled';
CREATE INDEX sms_sending_by_lease ON sms (lease_until) WHERE state = 'sending';

CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    sms_id INTEGER NOT NULL REFERENCES sms (id),
    at REAL NOT NULL,
    provider TEXT NOT NULL,
    outcome TEXT NOT NULL,
    answer TEXT NOT NULL
);
CREATE INDEX attempts_by_sms ON attempts (sms_id, id);

CREATE TABLE replies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_pk INTEGER NOT NULL REFERENCES requests (pk),
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    in_reply_to TEXT NOT NULL,
    refs TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    due REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_until REAL,
    error TEXT
);
CREATE INDEX replies_queued_by_due ON replies (due, id) WHERE state = 'queued';
CREATE INDEX replies_sending_by_lease ON replies (lease_until) WHERE state = 'sending';
CREATE INDEX replies_by_recipient ON replies (recipient, created_at);

CREATE TABLE ip_errors (ip TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX ip_errors_by_ip ON ip_errors (ip, at);
CREATE INDEX ip_errors_by_at ON ip_errors (at);

CREATE TABLE ip_blocks (
    ip TEXT PRIMARY KEY,
    until REAL NOT NULL,
    refused INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE duplicates (fingerprint TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX duplicates_by_fingerprint ON duplicates (fingerprint, at);
CREATE INDEX duplicates_by_at ON duplicates (at);

CREATE TABLE flood (
    number TEXT PRIMARY KEY,
    last_at REAL NOT NULL,
    streak INTEGER NOT NULL
);
CREATE INDEX flood_by_last_at ON flood (last_at);

CREATE TABLE balances (
    account TEXT PRIMARY KEY,
    charged INTEGER NOT NULL DEFAULT 0
);

-- migration 2 --
-- When the smarthost took a reply, and a request's replies found by request (queue show).
ALTER TABLE replies ADD COLUMN sent_at REAL;
CREATE INDEX replies_by_request ON replies (request_pk, id);

-- migration 3 --
-- Delivery receipts on SMS rows, receipts kept until their id is known, SMS from phones.
ALTER TABLE sms ADD COLUMN sent_at REAL;
ALTER TABLE sms ADD COLUMN receipt_status TEXT;
ALTER TABLE sms ADD COLUMN receipt_error TEXT;
ALTER TABLE sms ADD COLUMN receipt_at REAL;
ALTER TABLE sms ADD COLUMN status_checked_at REAL;
CREATE INDEX sms_by_provider_id ON sms (provider, provider_id) WHERE provider_id IS NOT NULL;
CREATE INDEX sms_sent_by_provider ON sms (provider, sent_at) WHERE state = 'sent';
CREATE INDEX sms_by_recipient_sent ON sms (recipient, sent_at) WHERE sent_at IS NOT NULL;
ALTER TABLE requests ADD COLUMN undelivered_sent INTEGER NOT NULL DEFAULT 0;

CREATE TABLE receipts_kept (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    state TEXT NOT NULL,
    status TEXT NOT NULL,
    error_code TEXT,
    at REAL NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX receipts_kept_by_id ON receipts_kept (provider, provider_id, id);

-- The ids of an SMS sent as several parts (one per part), each with its first final receipt.
CREATE TABLE sms_parts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sms_id INTEGER NOT NULL REFERENCES sms (id),
    provider TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    state TEXT
);
CREATE INDEX sms_parts_by_id ON sms_parts (provider, provider_id);
CREATE INDEX sms_parts_by_sms ON sms_parts (sms_id);

CREATE TABLE inbound (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    source TEXT NOT NULL,
    destination TEXT NOT NULL,
    text TEXT NOT NULL,
    received_at REAL NOT NULL,
    parts INTEGER NOT NULL,
    stored_at REAL NOT NULL,
    request_pk INTEGER REFERENCES requests (pk),
    state TEXT NOT NULL,
    recipient TEXT,
    from_address TEXT,
    subject TEXT,
    in_reply_to TEXT,
    refs TEXT,
    body TEXT,
    due REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_until REAL,
    error TEXT,
    sent_at REAL
);
CREATE INDEX inbound_queued_by_due ON inbound (due, id) WHERE state = 'queued';
CREATE INDEX inbound_sending_by_lease ON inbound (lease_until) WHERE state = 'sending';

CREATE TABLE inbound_parts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    source TEXT NOT NULL,
    destination TEXT NOT NULL,
    reference INTEGER NOT NULL,
    total INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    text TEXT NOT NULL,
    received_at REAL NOT NULL,
    inbound_id INTEGER REFERENCES inbound (id)
);
CREATE UNIQUE INDEX inbound_parts_key
    ON inbound_parts (provider, source, destination, reference, total, sequence);
CREATE INDEX inbound_parts_waiting ON inbound_parts (received_at) WHERE inbound_id IS NULL;
