-- The queries of mailbridge.storage.sqlite.
--
-- File format:
--     -- query_name --
--     -- description
--     QUERY with :named parameters
-- State literals are written in the text (not bound) so that SQLite uses the
-- partial indexes of sqlite_schema.sql.

-- count_replies --
-- Replies queued to a recipient within the rate window
SELECT count(*) FROM replies
 WHERE recipient = :recipient AND created_at > :since AND created_at <= :now;

-- intake_counters --
-- What an intake decides on: the next request number (the pk AUTOINCREMENT gives; read
-- inside the write transaction, so that its request ID and result line are written with
-- the row), identical requests within the window, the account's charge, the numbers'
-- flood streaks (JSON [number, epoch, streak]) and the IP's counted errors (JSON epochs).
-- Epochs go through printf('%.17g'), which gives every bit of the REAL back. A mail to one
-- number looks it up by key (:number); json_each (a virtual table, ≈ 3 µs a statement) only
-- runs for several (:more_numbers), and the IP's errors only when an error is counted (:ip).
SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'requests'), 0),
           coalesce((SELECT max(pk) FROM requests), 0)) + 1,
       (SELECT count(*) FROM duplicates
         WHERE fingerprint = :fingerprint AND at > :dup_since AND at <= :now),
       (SELECT charged FROM balances WHERE account = :account),
       (SELECT json_group_array(json_array(number, printf('%.17g', last_at), streak))
          FROM (SELECT number, last_at, streak FROM flood WHERE number = :number
                UNION ALL
                SELECT number, last_at, streak FROM flood
                 WHERE :more_numbers IS NOT NULL
                   AND number IN (SELECT value FROM json_each(:more_numbers)))),
       CASE WHEN :ip IS NOT NULL THEN
         (SELECT json_group_array(printf('%.17g', at))
            FROM ip_errors WHERE ip = :ip AND at > :ip_since AND at <= :now)
       END;

-- ip_block --
-- When a client IP's block ends, if it has one
SELECT until FROM ip_blocks WHERE ip = :ip;

-- record_blocked --
-- Count a request refused with ERROR = 4
UPDATE ip_blocks SET refused = refused + 1 WHERE ip = :ip;

-- next_request_pk --
-- The pk AUTOINCREMENT gives the next request (intake_counters gives it already)
SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'requests'), 0),
           coalesce((SELECT max(pk) FROM requests), 0)) + 1;

-- insert_request --
-- One mail's request row, under the pk next_request_pk gave
INSERT INTO requests (pk, request_id, account, client_ip, mail_from, rcpt_to, mode, received_at,
                      result, error, error_detail, test, sender, format, translit, due,
                      sms_total, charged, reply_to, reply_subject, reply_in_reply_to,
                      reply_references)
VALUES (:pk, :request_id, :account, :client_ip, :mail_from, :rcpt_to, :mode, :received_at,
        :result, :error, :error_detail, :test, :sender, :format, :translit, :due,
        :sms_total, :charged, :reply_to, :reply_subject, :reply_in_reply_to,
        :reply_references);

-- insert_mail --
-- The raw mail of a request
INSERT INTO mails (request_pk, raw) VALUES (:request_pk, :raw);

-- insert_sms --
-- One (message, recipient) row, scheduled
INSERT INTO sms (request_pk, recipient, text, sender, format, encoding, parts, state, due,
                 first_due, subject, voice, param)
VALUES (:request_pk, :recipient, :text, :sender, :format, :encoding, :parts, 'scheduled', :due,
        :due, :subject, :voice, :param);

-- save_flood --
-- A number's new flood streak
INSERT INTO flood (number, last_at, streak) VALUES (:number, :last_at, :streak)
ON CONFLICT (number) DO UPDATE SET last_at = excluded.last_at, streak = excluded.streak;

-- insert_duplicate --
-- Remember an accepted request's fingerprint
INSERT INTO duplicates (fingerprint, at) VALUES (:fingerprint, :at);

-- charge --
-- Add (or, negative, refund) parts to an account's charge
INSERT INTO balances (account, charged) VALUES (:account, :parts)
ON CONFLICT (account) DO UPDATE SET charged = charged + excluded.charged;

-- insert_ip_error --
-- Count an error for a client IP
INSERT INTO ip_errors (ip, at) VALUES (:ip, :at);

-- save_ip_block --
-- Block a client IP until a time
INSERT INTO ip_blocks (ip, until) VALUES (:ip, :until)
ON CONFLICT (ip) DO UPDATE SET until = excluded.until;

-- insert_reply --
-- Queue a reply mail, due at once
INSERT INTO replies (request_pk, recipient, subject, in_reply_to, refs, body, created_at, due)
VALUES (:request_pk, :recipient, :subject, :in_reply_to, :refs, :body, :now, :now);

-- prune_duplicates --
-- Forget fingerprints older than the window (at most once a second, see prune_due)
DELETE FROM duplicates WHERE at <= :before;

-- forget_duplicate --
-- Nothing: prune_duplicates forgets every old fingerprint at once

-- prune_ip_errors --
-- Forget IP errors older than the window (of every IP)
DELETE FROM ip_errors WHERE at <= :before;

-- prune_ip_blocks --
-- Forget blocks that have ended
DELETE FROM ip_blocks WHERE until <= :now;

-- prune_flood --
-- Forget streaks that a new SMS would restart anyway
DELETE FROM flood WHERE last_at <= :before;

-- next_due --
-- Earliest time an SMS row becomes claimable
SELECT min(t) FROM (
    SELECT min(due) AS t FROM sms WHERE state = 'scheduled'
    UNION ALL
    SELECT min(lease_until) AS t FROM sms WHERE state = 'sending'
);

-- claim_due --
-- Due rows (scheduled and due, or sending with an expired lease), oldest due first
SELECT s.id, r.request_id, r.account, s.recipient, s.text, s.sender, s.format, s.encoding,
       s.parts, s.due, s.first_due, s.attempts, s.subject, s.voice, s.param, s.provider
  FROM (
        SELECT * FROM (SELECT id FROM sms WHERE state = 'scheduled' AND due <= :now
                        ORDER BY due, id LIMIT :limit)
        UNION ALL
        SELECT * FROM (SELECT id FROM sms WHERE state = 'sending' AND lease_until <= :now
                        ORDER BY lease_until LIMIT :limit)
       ) AS c
  JOIN sms AS s ON s.id = c.id
  JOIN requests AS r ON r.pk = s.request_pk
 ORDER BY s.due, s.id
 LIMIT :limit;

-- claim_due_lease --
-- Hand one row claim_due found out under a lease
UPDATE sms SET state = 'sending', lease_owner = :owner, lease_until = :until WHERE id = :id;

-- sending_row --
-- A row in sending, with what a state change needs of its request
SELECT s.id, s.parts, r.pk, r.request_id, r.account, r.charged, r.error, r.test,
       r.followup_sent, r.reply_to, r.reply_subject, r.reply_in_reply_to, r.reply_references
  FROM sms AS s JOIN requests AS r ON r.pk = s.request_pk
 WHERE s.id = :id AND s.state = 'sending';

-- sending_ids --
-- Which of some rows (a JSON array of ids) are in sending, with their request
SELECT id, request_pk FROM sms
 WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'sending';

-- insert_attempt --
-- One delivery attempt
INSERT INTO attempts (sms_id, at, provider, outcome, answer)
VALUES (:sms_id, :at, :provider, :outcome, :answer);

-- set_sent --
-- The provider took the SMS
UPDATE sms SET state = 'sent', attempts = attempts + 1, provider = :provider,
               provider_id = :provider_id, error = NULL, lease_owner = NULL, lease_until = NULL,
               sent_at = :now, receipt_status = NULL, receipt_error = NULL, receipt_at = NULL,
               status_checked_at = NULL
 WHERE id = :id;

-- set_retry --
-- Back to scheduled after a transient failure
UPDATE sms SET state = 'scheduled', attempts = attempts + 1, due = :due, provider = :provider,
               error = :error, lease_owner = NULL, lease_until = NULL
 WHERE id = :id;

-- set_failed --
-- A final failure (failed or expired)
UPDATE sms SET state = :state, attempts = attempts + :attempted,
               provider = coalesce(:provider, provider), error = :error,
               lease_owner = NULL, lease_until = NULL
 WHERE id = :id;

-- lock_request --
-- Whether a request's follow-up reply is queued (one writer: nothing to lock)
SELECT followup_sent FROM requests WHERE pk = :pk;

-- set_followup_sent --
-- The one follow-up reply of a request is queued
UPDATE requests SET followup_sent = 1 WHERE pk = :pk;

-- next_reply_due --
-- Earliest time a reply becomes claimable
SELECT min(t) FROM (
    SELECT min(due) AS t FROM replies WHERE state = 'queued'
    UNION ALL
    SELECT min(lease_until) AS t FROM replies WHERE state = 'sending'
);

-- claim_replies --
-- Due replies, oldest first
SELECT p.id, r.request_id, p.recipient, p.subject, p.in_reply_to, p.refs, p.body, p.attempts,
       p.due
  FROM (
        SELECT * FROM (SELECT id FROM replies WHERE state = 'queued' AND due <= :now
                        ORDER BY due, id LIMIT :limit)
        UNION ALL
        SELECT * FROM (SELECT id FROM replies WHERE state = 'sending' AND lease_until <= :now
                        ORDER BY lease_until LIMIT :limit)
       ) AS c
  JOIN replies AS p ON p.id = c.id
  JOIN requests AS r ON r.pk = p.request_pk
 ORDER BY p.due, p.id
 LIMIT :limit;

-- claim_replies_lease --
-- Hand one reply claim_replies found out under a lease
UPDATE replies SET state = 'sending', lease_until = :until WHERE id = :id;

-- set_reply_sent --
-- The smarthost took the reply
UPDATE replies SET state = 'sent', attempts = attempts + 1, lease_until = NULL, error = NULL,
                   sent_at = :now
 WHERE id = :id AND state != 'sent';

-- set_reply_retry --
-- The smarthost failed: queued again
UPDATE replies SET state = 'queued', attempts = attempts + 1, due = :due, lease_until = NULL,
                   error = :error
 WHERE id = :id AND state != 'sent';

-- set_reply_dropped --
-- The smarthost refused the reply for good (5xx): not tried again
UPDATE replies SET state = 'dropped', attempts = attempts + 1, lease_until = NULL,
                   error = :error
 WHERE id = :id AND state != 'sent';

-- balance_charges --
-- Parts charged per account (net of refunds and top-ups)
SELECT account, charged FROM balances ORDER BY account;

-- charged_of --
-- One account's charge
SELECT charged FROM balances WHERE account = :account;

-- list_requests --
-- Requests, newest first, filtered by account and by a state some row is in
SELECT pk, request_id, account, received_at, mode, result, sms_total
  FROM requests AS r
 WHERE (:account IS NULL OR r.account = :account)
   AND (:state IS NULL OR EXISTS (SELECT 1 FROM sms AS s
                                   WHERE s.request_pk = r.pk AND s.state = :state))
 ORDER BY pk DESC
 LIMIT :limit;

-- request_states --
-- How many rows of some requests (a JSON array of pks) are in each state
SELECT request_pk, state, count(*) FROM sms
 WHERE request_pk IN (SELECT value FROM json_each(:pks)) GROUP BY request_pk, state;

-- newest_request --
-- The newest request with an ID (client IDs need not be unique)
SELECT pk, request_id, account, received_at, mode, result, sms_total, client_ip, mail_from,
       sender, format, due, charged
  FROM requests WHERE request_id = :request_id ORDER BY pk DESC LIMIT 1;

-- request_sms --
-- The rows of a request
SELECT id, recipient, state, parts, due, provider, provider_id, error, receipt_status,
       receipt_error, receipt_at, sent_at
  FROM sms WHERE request_pk = :pk ORDER BY id;

-- request_attempts --
-- The attempts of a request's rows
SELECT a.sms_id, a.at, a.provider, a.outcome, a.answer
  FROM attempts AS a JOIN sms AS s ON s.id = a.sms_id
 WHERE s.request_pk = :pk ORDER BY a.id;

-- request_replies --
-- The reply mails of a request, oldest first
SELECT id, recipient, state, attempts, body, due, sent_at
  FROM replies WHERE request_pk = :pk ORDER BY id;

-- retryable_rows --
-- Rows an operator may put back to scheduled
SELECT id, parts FROM sms
 WHERE request_pk = :pk AND state IN ('failed', 'expired', 'cancelled');

-- reschedule --
-- Put one row back to scheduled now; validity counts again from now
UPDATE sms SET state = 'scheduled', due = :now, first_due = :now, error = NULL,
               lease_owner = NULL, lease_until = NULL
 WHERE id = :id;

-- scheduled_rows --
-- Rows of a request still waiting
SELECT id, parts FROM sms WHERE request_pk = :pk AND state = 'scheduled';

-- cancel_row --
-- Cancel one scheduled row
UPDATE sms SET state = 'cancelled' WHERE id = :id;

-- ip_error_times --
-- A client IP's counted errors within the block window (for an AUTH failure)
SELECT at FROM ip_errors WHERE ip = :ip AND at > :since AND at <= :now;

-- claim_owners --
-- The dispatchers that hold rows in sending
SELECT DISTINCT lease_owner FROM sms WHERE state = 'sending' AND lease_owner IS NOT NULL;

-- release_owner --
-- Put back at once the rows a dispatcher that is gone held
UPDATE sms SET state = 'scheduled', lease_owner = NULL, lease_until = NULL
 WHERE state = 'sending' AND lease_owner = :owner;

-- retention_cutoff --
-- The newest request received before a time (request numbers grow with time)
SELECT max(pk) FROM requests WHERE received_at < :before;

-- old_raw_mails --
-- Raw mails of requests up to the cutoff, oldest first
SELECT request_pk FROM mails WHERE request_pk <= :cutoff ORDER BY request_pk LIMIT :limit;

-- finished_requests --
-- Requests up to the cutoff with no SMS or reply still to send, oldest first
SELECT pk FROM requests AS r
 WHERE pk <= :cutoff
   AND NOT EXISTS (SELECT 1 FROM sms AS s
                    WHERE s.request_pk = r.pk AND s.state IN ('scheduled', 'sending'))
   AND NOT EXISTS (SELECT 1 FROM replies AS p
                    WHERE p.request_pk = r.pk AND p.state IN ('queued', 'sending'))
 ORDER BY pk LIMIT :limit;

-- delete_mails_of --
-- The raw mails of these requests
DELETE FROM mails WHERE request_pk IN (SELECT value FROM json_each(:pks));

-- delete_attempts_of --
-- The delivery attempts of the SMS of these requests
DELETE FROM attempts
 WHERE sms_id IN (SELECT id FROM sms WHERE request_pk IN (SELECT value FROM json_each(:pks)));

-- delete_parts_of --
-- The part ids of the SMS of these requests
DELETE FROM sms_parts
 WHERE sms_id IN (SELECT id FROM sms WHERE request_pk IN (SELECT value FROM json_each(:pks)));

-- detach_inbound_of --
-- SMS from phones answering these requests stay, no longer linked to them
UPDATE inbound SET request_pk = NULL WHERE request_pk IN (SELECT value FROM json_each(:pks));

-- delete_sms_of --
-- The SMS rows of these requests
DELETE FROM sms WHERE request_pk IN (SELECT value FROM json_each(:pks));

-- delete_replies_of --
-- The reply mails of these requests
DELETE FROM replies WHERE request_pk IN (SELECT value FROM json_each(:pks));

-- delete_requests --
-- These requests
DELETE FROM requests WHERE pk IN (SELECT value FROM json_each(:pks));

-- heartbeat --
-- Nothing: one dispatcher per SQLite file, which releases what a dead one left at start

-- stale_owners --
-- None (see heartbeat)
SELECT NULL WHERE 0;

-- forget_owner --
-- Nothing (see heartbeat)

-- queue_states --
-- SMS rows by state (monitoring; a scan of the per-request index)
SELECT state, count(*) FROM sms GROUP BY state;

-- oldest_due --
-- The due time of the oldest scheduled row that is due (monitoring)
SELECT min(due) FROM sms WHERE state = 'scheduled' AND due <= :now;

-- replies_waiting --
-- Reply mails not yet taken by the smarthost (monitoring)
SELECT count(*) FROM replies WHERE state IN ('queued', 'sending');

-- sms_by_provider_id --
-- The row a delivery receipt names: the newest row the provider gave that id
SELECT id, state, request_pk FROM sms
 WHERE provider = :provider AND provider_id = :provider_id ORDER BY id DESC LIMIT 1;

-- set_receipt --
-- What a receipt says of a row: its state (sent for an interim one), word, error code, time
UPDATE sms SET state = :state, receipt_status = :status, receipt_error = :error_code,
               receipt_at = :at
 WHERE id = :id;

-- keep_receipt --
-- A receipt for an id no row in sent carries yet, kept until mark_sent records it
INSERT INTO receipts_kept (provider, provider_id, state, status, error_code, at, received_at)
VALUES (:provider, :provider_id, :state, :status, :error_code, :at, :now);

-- any_kept_receipt --
-- Whether any receipt is kept at all
SELECT 1 FROM receipts_kept LIMIT 1;

-- kept_receipts --
-- The receipts kept for an id, in the order they came
SELECT state, status, error_code, at FROM receipts_kept
 WHERE provider = :provider AND provider_id = :provider_id ORDER BY id;

-- drop_kept_receipts --
-- Forget the receipts kept for an id once applied
DELETE FROM receipts_kept WHERE provider = :provider AND provider_id = :provider_id;

-- lock_request_undelivered --
-- What the not-delivered mail needs of a request (one writer: nothing to lock)
SELECT undelivered_sent, request_id, error, reply_to, reply_subject, reply_in_reply_to,
       reply_references
  FROM requests WHERE pk = :pk;

-- request_outcomes --
-- Each row of a request: number, state, receipt word, error code, receipt time
SELECT recipient, state, receipt_status, receipt_error, receipt_at
  FROM sms WHERE request_pk = :pk ORDER BY id;

-- set_undelivered_sent --
-- The request's not-delivered mail is queued
UPDATE requests SET undelivered_sent = 1 WHERE pk = :pk;

-- status_candidates --
-- Rows of a provider in sent, sent within the validity, not asked about within the interval
SELECT id, recipient, provider_id, sent_at FROM sms
 WHERE state = 'sent' AND provider = :provider AND sent_at >= :sent_since
   AND provider_id IS NOT NULL
   AND (status_checked_at IS NULL OR status_checked_at <= :asked_before)
 ORDER BY coalesce(status_checked_at, sent_at), id LIMIT :limit;

-- set_status_checked --
-- A row was asked about
UPDATE sms SET status_checked_at = :now WHERE id = :id;

-- last_request_to --
-- The newest request that sent an SMS to a number since a time, with its reply thread
SELECT r.request_id, r.mail_from, s.sent_at, r.reply_in_reply_to, r.reply_references, r.pk
  FROM sms AS s JOIN requests AS r ON r.pk = s.request_pk
 WHERE s.recipient = :recipient AND s.sent_at IS NOT NULL AND s.sent_at >= :since
 ORDER BY s.sent_at DESC, s.id DESC LIMIT 1;

-- insert_inbound_part --
-- One part of a concatenated inbound SMS (nothing when that part is already stored)
INSERT INTO inbound_parts (provider, source, destination, reference, total, sequence, text,
                           received_at)
VALUES (:provider, :source, :destination, :reference, :total, :sequence, :text, :received_at)
ON CONFLICT DO NOTHING
RETURNING id;

-- inbound_group --
-- The parts of one concatenated inbound SMS still waiting
SELECT sequence, text, received_at FROM inbound_parts
 WHERE provider = :provider AND source = :source AND destination = :destination
   AND reference = :reference AND total = :total AND inbound_id IS NULL
 ORDER BY sequence, id;

-- set_parts_done --
-- The waiting parts of a group became an inbound message
UPDATE inbound_parts SET inbound_id = :inbound_id
 WHERE provider = :provider AND source = :source AND destination = :destination
   AND reference = :reference AND total = :total AND inbound_id IS NULL;

-- stale_part_groups --
-- Groups of waiting parts whose first part came before a time
SELECT provider, source, destination, reference, total, min(received_at) FROM inbound_parts
 WHERE inbound_id IS NULL
 GROUP BY provider, source, destination, reference, total
HAVING min(received_at) < :before;

-- prune_done_parts --
-- Forget parts joined long ago (kept a while to recognise repeats)
DELETE FROM inbound_parts WHERE inbound_id IS NOT NULL AND received_at < :before;

-- insert_inbound --
-- One whole inbound SMS, its mail queued (due now) or kept
INSERT INTO inbound (provider, source, destination, text, received_at, parts, stored_at,
                     request_pk, state, recipient, from_address, subject, in_reply_to, refs,
                     body, due)
VALUES (:provider, :source, :destination, :text, :received_at, :parts, :now, :request_pk,
        :state, :recipient, :from_address, :subject, :in_reply_to, :refs, :body,
        CASE WHEN :state = 'queued' THEN :now END)
RETURNING id;

-- next_inbound_due --
-- Earliest time an inbound mail becomes claimable
SELECT min(t) FROM (
    SELECT min(due) AS t FROM inbound WHERE state = 'queued'
    UNION ALL
    SELECT min(lease_until) FROM inbound WHERE state = 'sending'
);

-- set_inbound_sent --
-- The smarthost took the inbound mail
UPDATE inbound SET state = 'sent', attempts = attempts + 1, lease_until = NULL, error = NULL,
                   sent_at = :now
 WHERE id = :id AND state != 'sent';

-- set_inbound_retry --
-- The smarthost failed: queued again
UPDATE inbound SET state = 'queued', attempts = attempts + 1, due = :due, lease_until = NULL,
                   error = :error
 WHERE id = :id AND state != 'sent';

-- list_inbound --
-- Inbound SMS, newest first
SELECT i.id, i.provider, i.source, i.destination, i.text, i.received_at, i.parts, i.state,
       i.recipient, r.request_id, i.attempts, i.sent_at
  FROM inbound AS i LEFT JOIN requests AS r ON r.pk = i.request_pk
 ORDER BY i.id DESC LIMIT :limit;

-- claim_inbound --
-- Due inbound mails, oldest first
SELECT i.id, i.recipient, i.from_address, i.subject, i.in_reply_to, i.refs, i.body, i.attempts,
       i.due
  FROM (
        SELECT * FROM (SELECT id FROM inbound WHERE state = 'queued' AND due <= :now
                        ORDER BY due, id LIMIT :limit)
        UNION ALL
        SELECT * FROM (SELECT id FROM inbound WHERE state = 'sending' AND lease_until <= :now
                        ORDER BY lease_until LIMIT :limit)
       ) AS c
  JOIN inbound AS i ON i.id = c.id
 ORDER BY i.due, i.id
 LIMIT :limit;

-- claim_inbound_lease --
-- Hand one inbound mail claim_inbound found out under a lease
UPDATE inbound SET state = 'sending', lease_until = :until WHERE id = :id;

-- sms_part_by_id --
-- The row one part's id belongs to (an SMS sent as several parts)
SELECT p.id, s.id, s.state, s.request_pk FROM sms_parts AS p JOIN sms AS s ON s.id = p.sms_id
 WHERE p.provider = :provider AND p.provider_id = :provider_id ORDER BY p.id DESC LIMIT 1;

-- set_part_state --
-- A part's first final receipt
UPDATE sms_parts SET state = :state WHERE id = :id AND state IS NULL;

-- sms_part_states --
-- The final receipt state of each part of a row (NULL: none yet)
SELECT state FROM sms_parts WHERE sms_id = :sms_id ORDER BY id;

-- delete_sms_parts --
-- Forget a row's part ids (it is sent again)
DELETE FROM sms_parts WHERE sms_id = :sms_id;

-- insert_sms_part --
-- One part id of a row sent as several parts
INSERT INTO sms_parts (sms_id, provider, provider_id) VALUES (:sms_id, :provider, :provider_id);

-- old_inbound --
-- SMS from phones stored before a time whose mail is sent, or that had no one to mail to,
-- oldest first (retention; a scan in id order: the table has no index by age)
SELECT id FROM inbound WHERE state IN ('sent', 'kept') AND stored_at < :before
 ORDER BY id LIMIT :limit;

-- delete_inbound_parts_of --
-- The parts these SMS from phones were joined from (a JSON array of ids)
DELETE FROM inbound_parts WHERE inbound_id IN (SELECT value FROM json_each(:ids));

-- delete_inbound --
-- These SMS from phones (a JSON array of ids)
DELETE FROM inbound WHERE id IN (SELECT value FROM json_each(:ids));
