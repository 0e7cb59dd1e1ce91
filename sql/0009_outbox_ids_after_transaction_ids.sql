-- An outbox row's id is now drawn only once its transaction holds a PostgreSQL transaction
-- id. The relay relies on it to skip, per partition, the rows it has already dealt with
-- (docs/relay.md, "Fetching"): once every transaction running after the sequence reached a
-- value N has ended, no row with an id up to N can still appear. With an identity column the
-- id came first and the transaction id only at the row's write, and in between no snapshot
-- showed the writer, so nothing proved that a lower id would not commit later.
--
-- The identity becomes a plain sequence of the same name, continuing from the same value,
-- behind a column default that asks for the transaction id first (pg_current_xact_id()
-- assigns one when there is none; CASE evaluates its condition before its result). The
-- sequence must keep CACHE 1: a cached block lets one session draw low ids long after
-- another has drawn higher ones.
-- The table lock waits for every open writer; behind a long one it would queue all the
-- others, so the migration gives up after ten seconds instead: run `deedkit migrate` again.
SET LOCAL lock_timeout = '10s';

-- Writers that drew an id and have not committed hold their lock on the table until they
-- end, so once this lock is granted the sequence's last value is final.
LOCK TABLE deedkit.outbox IN ACCESS EXCLUSIVE MODE;

CREATE FUNCTION deedkit.next_outbox_id() RETURNS bigint
LANGUAGE sql VOLATILE PARALLEL UNSAFE AS $$
  SELECT CASE WHEN pg_current_xact_id() IS NOT NULL
              THEN nextval('deedkit.outbox_outbox_id_seq') END
$$;

DO $$
DECLARE
  last_id bigint;
BEGIN
  SELECT greatest(
           (SELECT CASE WHEN is_called THEN last_value ELSE 0 END
              FROM deedkit.outbox_outbox_id_seq),
           (SELECT coalesce(max(outbox_id), 0) FROM deedkit.outbox))
    INTO last_id;
  ALTER TABLE deedkit.outbox ALTER COLUMN outbox_id DROP IDENTITY;
  CREATE SEQUENCE deedkit.outbox_outbox_id_seq CACHE 1 OWNED BY deedkit.outbox.outbox_id;
  IF last_id > 0 THEN
    PERFORM setval('deedkit.outbox_outbox_id_seq', last_id);
  END IF;
END
$$;

ALTER TABLE deedkit.outbox ALTER COLUMN outbox_id SET DEFAULT deedkit.next_outbox_id();

-- Every role that may write outbox rows draws from the sequence now; the relay reads it.
GRANT USAGE ON SEQUENCE deedkit.outbox_outbox_id_seq TO deedkit_writer;
GRANT SELECT ON SEQUENCE deedkit.outbox_outbox_id_seq TO deedkit_relay;
