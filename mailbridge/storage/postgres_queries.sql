-- The queries of mailbridge.storage.postgres.
--
-- File format:
--     -- query_name --
--     -- description
--     QUERY with %(named)s parameters (psycopg style; a literal percent sign is %%)
-- State literals are written in the text (not bound) so that the planner uses
-- the partial indexes of postgres_schema.sql.

-- lock_keys --
-- Take the transaction's advisory locks, in ascending key order (no deadlock between two intakes)
SELECT count(pg_advisory_xact_lock(k))
  FROM (SELECT k FROM unnest(%(keys)s::bigint[]) AS k ORDER BY k) AS ordered;

-- intake_counters --
-- Everything an intake decides on, in one round trip, read after its locks: the request number
-- (when the gateway numbers it), identical requests within the window, the account's charge,
-- the numbers' flood streaks (JSON text: [number, epoch, streak]), the IP's counted errors
-- (JSON text: epochs)
SELECT CASE WHEN %(with_pk)s::boolean THEN nextval(pg_get_serial_sequence('requests', 'pk')) END,
       (SELECT count(*) FROM duplicates
         WHERE fingerprint = %(fingerprint)s::text AND at > %(dup_since)s),
       (SELECT charged FROM balances WHERE account = %(account)s::text),
       (SELECT json_agg(json_build_array(number, extract(epoch FROM last_at), streak))
          FROM flood WHERE number = ANY(%(numbers)s::text[]))::text,
       (SELECT json_agg(extract(epoch FROM least(at, %(now)s)))
          FROM ip_errors WHERE ip = %(ip)s::text AND at > %(ip_since)s)::text;

-- count_replies --
-- Replies queued to a recipient within the rate window (later stamps count, as above)
SELECT count(*) FROM replies WHERE recipient = %(recipient)s AND created_at > %(since)s;

-- ip_block --
-- When a client IP's block ends, if it has one
SELECT until FROM ip_blocks WHERE ip = %(ip)s;

-- record_blocked --
-- Count a request refused with ERROR = 4
UPDATE ip_blocks SET refused = refused + 1 WHERE ip = %(ip)s;

-- next_request_pk --
-- The next gateway request number (the identity sequence of requests)
SELECT nextval(pg_get_serial_sequence('requests', 'pk'));

-- insert_request --
-- One mail's request row, its pk taken from the sequence beforehand
INSERT INTO requests (pk, request_id, account, client_ip, mail_from, rcpt_to, mode, received_at,
                      result, error, error_detail, test, sender, format, translit, due,
                      sms_total, charged, reply_to, reply_subject, reply_in_reply_to,
                      reply_references)
VALUES (%(pk)s, %(request_id)s, %(account)s, %(client_ip)s, %(mail_from)s, %(rcpt_to)s,
        %(mode)s, %(received_at)s, %(result)s, %(error)s, %(error_detail)s, %(test)s,
        %(sender)s, %(format)s, %(translit)s, %(due)s, %(sms_total)s, %(charged)s,
        %(reply_to)s, %(reply_subject)s, %(reply_in_reply_to)s, %(reply_references)s);

-- insert_mail --
-- The raw mail of a request
INSERT INTO mails (request_pk, raw) VALUES (%(request_pk)s, %(raw)s);

-- insert_sms --
-- One (message, recipient) row, scheduled (run for each row, in one pipeline)
INSERT INTO sms (request_pk, recipient, text, encoding, parts, sender, format, state, due,
                 first_due, subject, voice, param)
VALUES (%(request_pk)s, %(recipient)s, %(text)s, %(encoding)s, %(parts)s, %(sender)s,
        %(format)s, 'scheduled', %(due)s, %(due)s, %(subject)s, %(voice)s, %(param)s);

-- notify --
-- Wake the dispatchers (mailbridge_due) or reply mailers (mailbridge_reply) of every instance;
-- sent after the commit it announces, outside any transaction of an intake
SELECT pg_notify(%(channel)s, %(origin)s);

-- save_flood --
-- A number's new flood streak
INSERT INTO flood (number, last_at, streak) VALUES (%(number)s, %(last_at)s, %(streak)s)
ON CONFLICT (number) DO UPDATE SET last_at = excluded.last_at, streak = excluded.streak;

-- insert_duplicate --
-- Remember an accepted request's fingerprint
INSERT INTO duplicates (fingerprint, at) VALUES (%(fingerprint)s, %(at)s);

-- charge --
-- Add (or, negative, refund) parts to an account's charge
INSERT INTO balances (account, charged) VALUES (%(account)s, %(parts)s)
ON CONFLICT (account) DO UPDATE SET charged = balances.charged + excluded.charged;

-- insert_ip_error --
-- Count an error for a client IP
INSERT INTO ip_errors (ip, at) VALUES (%(ip)s, %(at)s);

-- save_ip_block --
-- Block a client IP until a time
INSERT INTO ip_blocks (ip, until) VALUES (%(ip)s, %(until)s)
ON CONFLICT (ip) DO UPDATE SET until = excluded.until;

-- insert_reply --
-- Queue a reply mail, due at once
INSERT INTO replies (request_pk, recipient, subject, in_reply_to, refs, body, created_at, due)
VALUES (%(request_pk)s, %(recipient)s, %(subject)s, %(in_reply_to)s, %(refs)s, %(body)s,
        %(now)s, %(now)s);

-- forget_duplicate --
-- Forget a fingerprint's entries older than the window
DELETE FROM duplicates WHERE fingerprint = %(fingerprint)s AND at <= %(before)s;

-- prune_duplicates --
-- Nothing: each intake forgets its own fingerprint (forget_duplicate), the sweep the rest

-- prune_flood --
-- Nothing: the sweep (sweep_flood) forgets old streaks

-- prune_ip_errors --
-- Forget a client IP's errors older than the window
DELETE FROM ip_errors WHERE ip = %(ip)s AND at <= %(before)s;

-- prune_ip_blocks --
-- Forget a client IP's block that has ended
DELETE FROM ip_blocks WHERE ip = %(ip)s AND until <= %(now)s;

-- sweep_duplicates --
-- Forget old fingerprints of every request (housekeeping, a few rows at a time)
DELETE FROM duplicates WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM duplicates WHERE at <= %(before)s LIMIT 1000 FOR UPDATE SKIP LOCKED));

-- sweep_ip_errors --
-- Forget old IP errors (housekeeping)
DELETE FROM ip_errors WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM ip_errors WHERE at <= %(before)s LIMIT 1000 FOR UPDATE SKIP LOCKED));

-- sweep_ip_blocks --
-- Forget ended blocks (housekeeping)
DELETE FROM ip_blocks WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM ip_blocks WHERE until <= %(now)s LIMIT 1000 FOR UPDATE SKIP LOCKED));

-- sweep_flood --
-- Forget streaks that a new SMS would restart anyway (housekeeping)
DELETE FROM flood WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM flood WHERE last_at <= %(before)s LIMIT 1000 FOR UPDATE SKIP LOCKED));

-- next_due --
-- Earliest time an SMS row becomes claimable
SELECT least((SELECT min(due) FROM sms WHERE state = 'scheduled'),
             (SELECT min(lease_until) FROM sms WHERE state = 'sending'));

-- claim_due --
-- Lease due rows (scheduled and due, or sending with an expired lease), oldest due first;
-- rows another instance is claiming right now are skipped, never waited for
WITH due_rows AS (
    SELECT id FROM sms WHERE state = 'scheduled' AND due <= %(now)s
     ORDER BY due, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), lapsed AS (
    SELECT id FROM sms WHERE state = 'sending' AND lease_until <= %(now)s
     ORDER BY lease_until LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT s.id FROM sms AS s
     WHERE s.id IN (SELECT id FROM due_rows UNION ALL SELECT id FROM lapsed)
     ORDER BY s.due, s.id LIMIT %(limit)s
)
UPDATE sms AS s SET state = 'sending', lease_owner = %(owner)s, lease_until = %(until)s
  FROM picked AS p, requests AS r
 WHERE s.id = p.id AND r.pk = s.request_pk
RETURNING s.id, r.request_id, r.account, s.recipient, s.text, s.sender, s.format, s.encoding,
          s.parts, s.due, s.first_due, s.attempts, s.subject, s.voice, s.param, s.provider;

-- sending_row --
-- A row in sending, locked, with what a state change needs of its request
SELECT s.id, s.parts, r.pk, r.request_id, r.account, r.charged, r.error, r.test,
       r.followup_sent, r.reply_to, r.reply_subject, r.reply_in_reply_to, r.reply_references
  FROM sms AS s JOIN requests AS r ON r.pk = s.request_pk
 WHERE s.id = %(id)s AND s.state = 'sending'
   FOR UPDATE OF s;

-- lock_request --
-- Lock a request row (one follow-up reply per request across instances)
SELECT followup_sent FROM requests WHERE pk = %(pk)s FOR UPDATE;

-- sending_ids --
-- Which of some rows are in sending, with their request
SELECT id, request_pk FROM sms WHERE id = ANY(%(ids)s::bigint[]) AND state = 'sending';

-- insert_attempt --
-- One delivery attempt
INSERT INTO attempts (sms_id, at, provider, outcome, answer)
VALUES (%(sms_id)s, %(at)s, %(provider)s, %(outcome)s, %(answer)s);

-- set_sent --
-- The provider took the SMS
UPDATE sms SET state = 'sent', attempts = attempts + 1, provider = %(provider)s,
               provider_id = %(provider_id)s, error = NULL, lease_owner = NULL,
               lease_until = NULL, sent_at = %(now)s, receipt_status = NULL,
               receipt_error = NULL, receipt_at = NULL, status_checked_at = NULL
 WHERE id = %(id)s;

-- set_retry --
-- Back to scheduled after a transient failure
UPDATE sms SET state = 'scheduled', attempts = attempts + 1, due = %(due)s,
               provider = %(provider)s, error = %(error)s, lease_owner = NULL,
               lease_until = NULL
 WHERE id = %(id)s;

-- set_failed --
-- A final failure (failed or expired)
UPDATE sms SET state = %(state)s, attempts = attempts + %(attempted)s,
               provider = coalesce(%(provider)s::text, provider), error = %(error)s,
               lease_owner = NULL, lease_until = NULL
 WHERE id = %(id)s;

-- set_followup_sent --
-- The one follow-up reply of a request is queued
UPDATE requests SET followup_sent = true WHERE pk = %(pk)s;

-- next_reply_due --
-- Earliest time a reply becomes claimable
SELECT least((SELECT min(due) FROM replies WHERE state = 'queued'),
             (SELECT min(lease_until) FROM replies WHERE state = 'sending'));

-- claim_replies --
-- Lease due replies, oldest first, skipping those another instance is claiming
WITH queued AS (
    SELECT id FROM replies WHERE state = 'queued' AND due <= %(now)s
     ORDER BY due, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), lapsed AS (
    SELECT id FROM replies WHERE state = 'sending' AND lease_until <= %(now)s
     ORDER BY lease_until LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT p.id FROM replies AS p
     WHERE p.id IN (SELECT id FROM queued UNION ALL SELECT id FROM lapsed)
     ORDER BY p.due, p.id LIMIT %(limit)s
)
UPDATE replies AS p SET state = 'sending', lease_until = %(until)s
  FROM picked AS k, requests AS r
 WHERE p.id = k.id AND r.pk = p.request_pk
RETURNING p.id, r.request_id, p.recipient, p.subject, p.in_reply_to, p.refs, p.body,
          p.attempts, p.due;

-- set_reply_sent --
-- The smarthost took the reply
UPDATE replies SET state = 'sent', attempts = attempts + 1, lease_until = NULL, error = NULL,
                   sent_at = %(now)s
 WHERE id = %(id)s AND state <> 'sent';

-- set_reply_retry --
-- The smarthost failed: queued again
UPDATE replies SET state = 'queued', attempts = attempts + 1, due = %(due)s, lease_until = NULL,
                   error = %(error)s
 WHERE id = %(id)s AND state <> 'sent';

-- set_reply_dropped --
-- The smarthost refused the reply for good (5xx): not tried again
UPDATE replies SET state = 'dropped', attempts = attempts + 1, lease_until = NULL,
                   error = %(error)s
 WHERE id = %(id)s AND state <> 'sent';

-- balance_charges --
-- Parts charged per account (net of refunds and top-ups)
SELECT account, charged FROM balances ORDER BY account;

-- charged_of --
-- One account's charge
SELECT charged FROM balances WHERE account = %(account)s;

-- list_requests --
-- Requests, newest first, filtered by account and by a state some row is in
SELECT pk, request_id, account, received_at, mode, result, sms_total
  FROM requests AS r
 WHERE (%(account)s::text IS NULL OR r.account = %(account)s::text)
   AND (%(state)s::text IS NULL OR EXISTS (SELECT 1 FROM sms AS s
                                           WHERE s.request_pk = r.pk
                                             AND s.state = %(state)s::text))
 ORDER BY pk DESC
 LIMIT %(limit)s;

-- request_states --
-- How many rows of some requests are in each state
SELECT request_pk, state, count(*) FROM sms
 WHERE request_pk = ANY(%(pks)s::bigint[]) GROUP BY request_pk, state;

-- newest_request --
-- The newest request with an ID (client IDs need not be unique)
SELECT pk, request_id, account, received_at, mode, result, sms_total, client_ip, mail_from,
       sender, format, due, charged
  FROM requests WHERE request_id = %(request_id)s ORDER BY pk DESC LIMIT 1;

-- request_sms --
-- The rows of a request
SELECT id, recipient, state, parts, due, provider, provider_id, error, receipt_status,
       receipt_error, receipt_at, sent_at
  FROM sms WHERE request_pk = %(pk)s ORDER BY id;

-- request_attempts --
-- The attempts of a request's rows
SELECT a.sms_id, a.at, a.provider, a.outcome, a.answer
  FROM attempts AS a JOIN sms AS s ON s.id = a.sms_id
 WHERE s.request_pk = %(pk)s ORDER BY a.id;

-- request_replies --
-- The reply mails of a request, oldest first
SELECT id, recipient, state, attempts, body, due, sent_at
  FROM replies WHERE request_pk = %(pk)s ORDER BY id;

-- retryable_rows --
-- Rows an operator may put back to scheduled, locked
SELECT id, parts FROM sms
 WHERE request_pk = %(pk)s AND state IN ('failed', 'expired', 'cancelled')
   FOR UPDATE;

-- reschedule --
-- Put one row back to scheduled now; validity counts again from now
UPDATE sms SET state = 'scheduled', due = %(now)s, first_due = %(now)s, error = NULL,
               lease_owner = NULL, lease_until = NULL
 WHERE id = %(id)s;

-- scheduled_rows --
-- Rows of a request still waiting, locked (skipping none: a claim in progress is waited for)
SELECT id, parts FROM sms WHERE request_pk = %(pk)s AND state = 'scheduled' FOR UPDATE;

-- cancel_row --
-- Cancel one scheduled row
UPDATE sms SET state = 'cancelled' WHERE id = %(id)s;

-- ip_error_times --
-- A client IP's counted errors within the block window (for an AUTH failure)
SELECT at FROM ip_errors WHERE ip = %(ip)s AND at > %(since)s;

-- claim_owners --
-- The dispatchers that hold rows in sending
SELECT DISTINCT lease_owner FROM sms WHERE state = 'sending' AND lease_owner IS NOT NULL;

-- release_owner --
-- Put back at once the rows a dispatcher that is gone held
UPDATE sms SET state = 'scheduled', lease_owner = NULL, lease_until = NULL
 WHERE state = 'sending' AND lease_owner = %(owner)s;

-- retention_cutoff --
-- The newest request received before a time (request numbers grow with time)
SELECT max(pk) FROM requests WHERE received_at < %(before)s;

-- old_raw_mails --
-- Raw mails of requests up to the cutoff, oldest first
SELECT request_pk FROM mails WHERE request_pk <= %(cutoff)s ORDER BY request_pk LIMIT %(limit)s;

-- finished_requests --
-- Requests up to the cutoff with no SMS or reply still to send, oldest first
SELECT pk FROM requests AS r
 WHERE pk <= %(cutoff)s
   AND NOT EXISTS (SELECT 1 FROM sms AS s
                    WHERE s.request_pk = r.pk AND s.state IN ('scheduled', 'sending'))
   AND NOT EXISTS (SELECT 1 FROM replies AS p
                    WHERE p.request_pk = r.pk AND p.state IN ('queued', 'sending'))
 ORDER BY pk LIMIT %(limit)s;

-- delete_mails_of --
-- The raw mails of these requests
DELETE FROM mails WHERE request_pk = ANY(%(pks)s::bigint[]);

-- delete_attempts_of --
-- The delivery attempts of the SMS of these requests
DELETE FROM attempts
 WHERE sms_id IN (SELECT id FROM sms WHERE request_pk = ANY(%(pks)s::bigint[]));

-- delete_parts_of --
-- The part ids of the SMS of these requests
DELETE FROM sms_parts
 WHERE sms_id IN (SELECT id FROM sms WHERE request_pk = ANY(%(pks)s::bigint[]));

-- detach_inbound_of --
-- SMS from phones answering these requests stay, no longer linked to them
UPDATE inbound SET request_pk = NULL WHERE request_pk = ANY(%(pks)s::bigint[]);

-- delete_sms_of --
-- The SMS rows of these requests
DELETE FROM sms WHERE request_pk = ANY(%(pks)s::bigint[]);

-- delete_replies_of --
-- The reply mails of these requests
DELETE FROM replies WHERE request_pk = ANY(%(pks)s::bigint[]);

-- delete_requests --
-- These requests
DELETE FROM requests WHERE pk = ANY(%(pks)s::bigint[]);

-- heartbeat --
-- A dispatcher is alive (the database's clock, so hosts' clocks need not agree)
INSERT INTO instances (owner, seen_at) VALUES (%(owner)s, now())
ON CONFLICT (owner) DO UPDATE SET seen_at = excluded.seen_at;

-- stale_owners --
-- Dispatchers not heard of for stale_s seconds
SELECT owner FROM instances WHERE seen_at < now() - make_interval(secs => %(stale_s)s);

-- forget_owner --
-- A dispatcher that is gone (its rows released)
DELETE FROM instances WHERE owner = %(owner)s;

-- queue_states --
-- SMS rows by state (monitoring; a scan of the per-request index)
SELECT state, count(*) FROM sms GROUP BY state;

-- oldest_due --
-- The due time of the oldest scheduled row that is due (monitoring)
SELECT min(due) FROM sms WHERE state = 'scheduled' AND due <= %(now)s;

-- replies_waiting --
-- Reply mails not yet taken by the smarthost (monitoring)
SELECT count(*) FROM replies WHERE state IN ('queued', 'sending');

-- sms_by_provider_id --
-- The row a delivery receipt names: the newest row the provider gave that id
SELECT id, state, request_pk FROM sms
 WHERE provider = %(provider)s AND provider_id = %(provider_id)s ORDER BY id DESC LIMIT 1;

-- set_receipt --
-- What a receipt says of a row: its state (sent for an interim one), word, error code, time
UPDATE sms SET state = %(state)s, receipt_status = %(status)s, receipt_error = %(error_code)s,
               receipt_at = %(at)s
 WHERE id = %(id)s;

-- keep_receipt --
-- A receipt for an id no row in sent carries yet, kept until mark_sent records it
INSERT INTO receipts_kept (provider, provider_id, state, status, error_code, at, received_at)
VALUES (%(provider)s, %(provider_id)s, %(state)s, %(status)s, %(error_code)s, %(at)s, %(now)s);

-- any_kept_receipt --
-- Whether any receipt is kept at all
SELECT 1 FROM receipts_kept LIMIT 1;

-- kept_receipts --
-- The receipts kept for an id, in the order they came
SELECT state, status, error_code, at FROM receipts_kept
 WHERE provider = %(provider)s AND provider_id = %(provider_id)s ORDER BY id;

-- drop_kept_receipts --
-- Forget the receipts kept for an id once applied
DELETE FROM receipts_kept WHERE provider = %(provider)s AND provider_id = %(provider_id)s;

-- lock_request_undelivered --
-- What the not-delivered mail needs of a request (locked: one mail per request across instances)
SELECT undelivered_sent, request_id, error, reply_to, reply_subject, reply_in_reply_to,
       reply_references
  FROM requests WHERE pk = %(pk)s FOR UPDATE;

-- request_outcomes --
-- Each row of a request: number, state, receipt word, error code, receipt time
SELECT recipient, state, receipt_status, receipt_error, receipt_at
  FROM sms WHERE request_pk = %(pk)s ORDER BY id;

-- set_undelivered_sent --
-- The request's not-delivered mail is queued
UPDATE requests SET undelivered_sent = true WHERE pk = %(pk)s;

-- status_candidates --
-- Rows of a provider in sent, sent within the validity, not asked about within the interval
SELECT id, recipient, provider_id, sent_at FROM sms
 WHERE state = 'sent' AND provider = %(provider)s AND sent_at >= %(sent_since)s
   AND provider_id IS NOT NULL
   AND (status_checked_at IS NULL OR status_checked_at <= %(asked_before)s)
 ORDER BY coalesce(status_checked_at, sent_at), id LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED;

-- set_status_checked --
-- A row was asked about
UPDATE sms SET status_checked_at = %(now)s WHERE id = %(id)s;

-- last_request_to --
-- The newest request that sent an SMS to a number since a time, with its reply thread
SELECT r.request_id, r.mail_from, s.sent_at, r.reply_in_reply_to, r.reply_references, r.pk
  FROM sms AS s JOIN requests AS r ON r.pk = s.request_pk
 WHERE s.recipient = %(recipient)s AND s.sent_at IS NOT NULL AND s.sent_at >= %(since)s
 ORDER BY s.sent_at DESC, s.id DESC LIMIT 1;

-- insert_inbound_part --
-- One part of a concatenated inbound SMS (nothing when that part is already stored)
INSERT INTO inbound_parts (provider, source, destination, reference, total, sequence, text,
                           received_at)
VALUES (%(provider)s, %(source)s, %(destination)s, %(reference)s, %(total)s, %(sequence)s, %(text)s, %(received_at)s)
ON CONFLICT DO NOTHING
RETURNING id;

-- inbound_group --
-- The parts of one concatenated inbound SMS still waiting
SELECT sequence, text, received_at FROM inbound_parts
 WHERE provider = %(provider)s AND source = %(source)s AND destination = %(destination)s
   AND reference = %(reference)s AND total = %(total)s AND inbound_id IS NULL
 ORDER BY sequence, id;

-- set_parts_done --
-- The waiting parts of a group became an inbound message
UPDATE inbound_parts SET inbound_id = %(inbound_id)s
 WHERE provider = %(provider)s AND source = %(source)s AND destination = %(destination)s
   AND reference = %(reference)s AND total = %(total)s AND inbound_id IS NULL;

-- stale_part_groups --
-- Groups of waiting parts whose first part came before a time
SELECT provider, source, destination, reference, total, min(received_at) FROM inbound_parts
 WHERE inbound_id IS NULL
 GROUP BY provider, source, destination, reference, total
HAVING min(received_at) < %(before)s;

-- prune_done_parts --
-- Forget parts joined long ago (kept a while to recognise repeats)
DELETE FROM inbound_parts WHERE inbound_id IS NOT NULL AND received_at < %(before)s;

-- insert_inbound --
-- One whole inbound SMS, its mail queued (due now) or kept
INSERT INTO inbound (provider, source, destination, text, received_at, parts, stored_at,
                     request_pk, state, recipient, from_address, subject, in_reply_to, refs,
                     body, due)
VALUES (%(provider)s, %(source)s, %(destination)s, %(text)s, %(received_at)s, %(parts)s, %(now)s, %(request_pk)s,
        %(state)s, %(recipient)s, %(from_address)s, %(subject)s, %(in_reply_to)s, %(refs)s, %(body)s,
        CASE WHEN %(state)s::text = 'queued' THEN %(now)s::timestamptz END)
RETURNING id;

-- next_inbound_due --
-- Earliest time an inbound mail becomes claimable
SELECT least((SELECT min(due) FROM inbound WHERE state = 'queued'),
             (SELECT min(lease_until) FROM inbound WHERE state = 'sending'));

-- set_inbound_sent --
-- The smarthost took the inbound mail
UPDATE inbound SET state = 'sent', attempts = attempts + 1, lease_until = NULL, error = NULL,
                   sent_at = %(now)s
 WHERE id = %(id)s AND state != 'sent';

-- set_inbound_retry --
-- The smarthost failed: queued again
UPDATE inbound SET state = 'queued', attempts = attempts + 1, due = %(due)s, lease_until = NULL,
                   error = %(error)s
 WHERE id = %(id)s AND state != 'sent';

-- list_inbound --
-- Inbound SMS, newest first
SELECT i.id, i.provider, i.source, i.destination, i.text, i.received_at, i.parts, i.state,
       i.recipient, r.request_id, i.attempts, i.sent_at
  FROM inbound AS i LEFT JOIN requests AS r ON r.pk = i.request_pk
 ORDER BY i.id DESC LIMIT %(limit)s;

-- claim_inbound --
-- Lease due inbound mails, oldest first, skipping those another instance is claiming
WITH queued AS (
    SELECT id FROM inbound WHERE state = 'queued' AND due <= %(now)s
     ORDER BY due, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), lapsed AS (
    SELECT id FROM inbound WHERE state = 'sending' AND lease_until <= %(now)s
     ORDER BY lease_until LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT i.id FROM inbound AS i
     WHERE i.id IN (SELECT id FROM queued UNION ALL SELECT id FROM lapsed)
     ORDER BY i.due, i.id LIMIT %(limit)s
)
UPDATE inbound AS i SET state = 'sending', lease_until = %(until)s
  FROM picked AS k
 WHERE i.id = k.id
RETURNING i.id, i.recipient, i.from_address, i.subject, i.in_reply_to, i.refs, i.body,
          i.attempts, i.due;

-- sms_part_by_id --
-- The row one part's id belongs to (an SMS sent as several parts)
SELECT p.id, s.id, s.state, s.request_pk FROM sms_parts AS p JOIN sms AS s ON s.id = p.sms_id
 WHERE p.provider = %(provider)s AND p.provider_id = %(provider_id)s ORDER BY p.id DESC LIMIT 1;

-- set_part_state --
-- A part's first final receipt
UPDATE sms_parts SET state = %(state)s WHERE id = %(id)s AND state IS NULL;

-- sms_part_states --
-- The final receipt state of each part of a row (NULL: none yet)
SELECT state FROM sms_parts WHERE sms_id = %(sms_id)s ORDER BY id;

-- delete_sms_parts --
-- Forget a row's part ids (it is sent again)
DELETE FROM sms_parts WHERE sms_id = %(sms_id)s;

-- insert_sms_part --
-- One part id of a row sent as several parts
INSERT INTO sms_parts (sms_id, provider, provider_id) VALUES (%(sms_id)s, %(provider)s, %(provider_id)s);

-- old_inbound --
-- SMS from phones stored before a time whose mail is sent, or that had no one to mail to,
-- oldest first (retention; a scan in id order: the table has no index by age)
SELECT id FROM inbound WHERE state IN ('sent', 'kept') AND stored_at < %(before)s
 ORDER BY id LIMIT %(limit)s;

-- delete_inbound_parts_of --
-- The parts these SMS from phones were joined from
DELETE FROM inbound_parts WHERE inbound_id = ANY(%(ids)s::bigint[]);

-- delete_inbound --
-- These SMS from phones
DELETE FROM inbound WHERE id = ANY(%(ids)s::bigint[]);
