-- The append-only event log. Its table and column names are a public contract: operators and
-- tools read the log with SQL. docs/schema.md documents every column.

CREATE TABLE deedkit.events (
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The top-level transaction that wrote the row. Readers of the global log order by
    -- (transaction_id, global_position) and stop below the oldest transaction still running,
    -- so an event committed late is never skipped (docs/ordering.md).
    transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    stream_id text NOT NULL
        CHECK (length(stream_id) BETWEEN 1 AND 255),
    stream_version bigint NOT NULL CHECK (stream_version >= 1),
    event_id uuid NOT NULL,
    event_type text NOT NULL CHECK (length(event_type) BETWEEN 1 AND 255),
    schema_version integer NOT NULL DEFAULT 1 CHECK (schema_version >= 1),
    payload bytea NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version),
    CONSTRAINT events_event_id_key UNIQUE (event_id)
);

CREATE INDEX events_commit_order_idx ON deedkit.events (transaction_id, global_position);

COMMENT ON TABLE deedkit.events IS
    'Append-only event log; UPDATE, DELETE and TRUNCATE are refused by triggers.';

-- History is immutable in the database itself, whatever the client does: even the table's
-- owner is refused. (A superuser can still drop the trigger; that is a deliberate act.)
CREATE FUNCTION deedkit.refuse_event_rewrite() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'deedkit.events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Correct history by appending a compensating event.';
END;
$$;

CREATE TRIGGER events_refuse_update_delete
    BEFORE UPDATE OR DELETE ON deedkit.events
    FOR EACH ROW EXECUTE FUNCTION deedkit.refuse_event_rewrite();

CREATE TRIGGER events_refuse_truncate
    BEFORE TRUNCATE ON deedkit.events
    FOR EACH STATEMENT EXECUTE FUNCTION deedkit.refuse_event_rewrite();

-- The role the service runs as: it may read and append events, never rewrite them. Roles are
-- cluster-wide, so another database's migration may have created it already.
DO $$
BEGIN
    CREATE ROLE deedkit_writer NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END;
$$;

GRANT USAGE ON SCHEMA deedkit TO deedkit_writer;
GRANT SELECT, INSERT ON deedkit.events TO deedkit_writer;
