-- The relay marks every outbox row published once. That UPDATE changes a column that an
-- index depends on, so PostgreSQL writes a new entry into every index of the table for it:
-- each index here costs every published row one more index insertion, on the busiest path
-- of the relay (scripts/profile relay). Two of them are not worth it.

-- The event id is unique already in deedkit.events, and outbox rows are only written from
-- appended events (outbox_writer.hpp), so this second unique index checked nothing new.
-- JetStream drops a second message with the same event id as a duplicate in any case.
ALTER TABLE deedkit.outbox DROP CONSTRAINT outbox_event_id_key;

-- Retention looks for rows published before a cutoff. A BRIN index answers that from a
-- summary per block range, which stays valid as long as rows are published roughly in the
-- order they were stored, and a mark touches it only when it widens a range: nearly free,
-- where the B-tree took one insertion per published row.
DROP INDEX deedkit.outbox_published_idx;
CREATE INDEX outbox_published_brin ON deedkit.outbox USING brin (published_at);
