-- What the outbox relay needs beside the outbox itself (docs/relay.md): a way to tell a
-- discarded dead letter from a published row, a fast lookup of parked streams, and a role
-- with exactly the privileges the relay uses.

-- An operator can discard a dead letter so that its stream moves on. The row then leaves the
-- pending set like a published one (published_at is set, and retention deletes it in time);
-- discarded_at says that it never reached the broker. Nullable without a default, so adding
-- it rewrites nothing.
ALTER TABLE deedkit.outbox ADD COLUMN discarded_at timestamptz;

COMMENT ON COLUMN deedkit.outbox.discarded_at IS
    'Set when an operator discarded the row as a dead letter; it was never published.';

-- The relay skips every stream that has a dead letter (its later rows wait behind it), so
-- each fetch asks, per pending row, whether its stream is parked.
CREATE INDEX outbox_dead_letters_stream_idx ON deedkit.outbox_dead_letters (stream_id);

-- The role a relay process runs as. Roles are cluster-wide, so another database's migration
-- may have created it already.
DO $$
BEGIN
    CREATE ROLE deedkit_relay NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END;
$$;

GRANT USAGE ON SCHEMA deedkit TO deedkit_relay;
-- Reads pending rows, marks them published or failed, and deletes old published rows.
GRANT SELECT, DELETE ON deedkit.outbox TO deedkit_relay;
GRANT UPDATE (published_at, attempts, last_error, discarded_at) ON deedkit.outbox
    TO deedkit_relay;
-- Parks refused messages; `deedkit outbox retry|discard` remove them again.
GRANT SELECT, INSERT, DELETE ON deedkit.outbox_dead_letters TO deedkit_relay;
-- The relay's wake-up check reads the identity sequence's last value (no NOTIFY involved).
GRANT SELECT ON SEQUENCE deedkit.outbox_outbox_id_seq TO deedkit_relay;
