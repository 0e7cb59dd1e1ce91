-- The relay marks every outbox row published once. That UPDATE changes a column that an
-- index depends on, so PostgreSQL writes a new entry into every index of the table for it,
-- and into a unique index only after checking the key against the row's older version.
-- `scripts/profile relay` measured that check on event_id as the most expensive part of a
-- mark: PostgreSQL's CPU per relayed row fell from 19-20 µs to 16-18 µs without it.
--
-- The event id stays unique where it is defined, in deedkit.events, and deedkit writes
-- outbox rows only for events it has just appended in the same transaction. A program that
-- writes outbox rows by itself (write_outbox_rows) is no longer stopped from writing one
-- event twice: the relay publishes such copies one at a time, and JetStream keeps one
-- (docs/relay.md).
-- Dropping the index takes the outbox's strongest lock for a moment. Behind a long open
-- transaction that lock would queue every writer after it, so this migration gives up after
-- ten seconds instead; run `deedkit migrate` again when the outbox is quieter.
SET LOCAL lock_timeout = '10s';
ALTER TABLE deedkit.outbox DROP CONSTRAINT outbox_event_id_key;
