-- Aggregate snapshots: an optimisation only. Deleting every row changes no result; loads
-- then fold the whole stream again.
CREATE TABLE deedkit.snapshots (
    stream_id text PRIMARY KEY,
    -- The stream version the state includes: events after it are folded on load.
    stream_version bigint NOT NULL CHECK (stream_version >= 1),
    state_type text NOT NULL,
    -- A snapshot whose schema version differs from the aggregate's current one is ignored
    -- and replaced by the next snapshot taken.
    state_schema_version integer NOT NULL,
    state bytea NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE, DELETE ON deedkit.snapshots TO deedkit_writer;
