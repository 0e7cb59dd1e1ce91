-- The read side (docs/projections.md): where projections keep their checkpoints, the events
-- an operator chose to skip, and the two schemas their read models live in.

-- The public read models: views only. Their names and columns are a contract that the HTTP
-- service and operators query; docs/projections.md documents every column. Each view reads
-- the tables of its projection's live generation, and a rebuild repoints it in the same
-- transaction that makes the new generation live.
CREATE SCHEMA deedkit_read;

-- The tables behind those views, one set per generation ("asset_summary_g3"). Only the
-- projection runner creates and drops them; nothing else should depend on their names.
CREATE SCHEMA deedkit_read_data;

-- Generation numbers are unique across projections, so table names never collide even when
-- a generation was dropped and its projection rebuilt again.
CREATE SEQUENCE deedkit.projection_generation_seq AS integer;

-- One row per generation of a projection: a set of tables built by one version of the
-- projection's code, and the checkpoint that says how far into the global log they are.
-- The checkpoint is updated in the same transaction as the tables, which is what makes each
-- event take effect exactly once.
CREATE TABLE deedkit.projection_generations (
    projection text NOT NULL CHECK (projection ~ '^[a-z][a-z0-9_]{0,39}$'),
    generation integer NOT NULL,
    version integer NOT NULL CHECK (version >= 1),
    -- live: the views read these tables. building: a rebuild fills them while the live ones
    -- keep serving. retired: switched away from, waiting for its tables to be dropped.
    role text NOT NULL CHECK (role IN ('live', 'building', 'retired')),
    -- Qualified names of the tables this generation owns, so they can be dropped even after
    -- the projection's code has changed its table list.
    tables text[] NOT NULL,
    -- The last event applied, in commit-safe order (docs/ordering.md); 0/0 before the first.
    transaction_id xid8 NOT NULL DEFAULT '0',
    global_position bigint NOT NULL DEFAULT 0,
    -- Events passed (every event of the log up to the checkpoint) and events applied (those
    -- of the types the projection handles, skips excluded).
    events_read bigint NOT NULL DEFAULT 0,
    events_applied bigint NOT NULL DEFAULT 0,
    -- Estimated size of the log when a rebuild started, for its progress display.
    events_at_start bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    checkpointed_at timestamptz,
    switched_at timestamptz,
    -- Set when applying an event failed: the generation stops at that event until an
    -- operator retries (clears these) or skips it (records it in projection_skips).
    failed_at timestamptz,
    failed_transaction_id xid8,
    failed_global_position bigint,
    failed_stream_id text,
    failed_stream_version bigint,
    failed_event_id uuid,
    failed_event_type text,
    failed_error text,
    PRIMARY KEY (projection, generation),
    CHECK ((failed_at IS NULL) = (failed_event_id IS NULL))
);

CREATE UNIQUE INDEX projection_generations_live_key
    ON deedkit.projection_generations (projection) WHERE role = 'live';
CREATE UNIQUE INDEX projection_generations_building_key
    ON deedkit.projection_generations (projection) WHERE role = 'building';

COMMENT ON TABLE deedkit.projection_generations IS
    'Projection checkpoints, one row per generation of tables; see docs/projections.md.';

-- Events an operator skipped on purpose with `deedkit projections skip`. A rebuild of the
-- same projection version skips them again, so the rebuilt tables match the ones they
-- replace; a new version does not inherit them.
CREATE TABLE deedkit.projection_skips (
    projection text NOT NULL,
    version integer NOT NULL,
    generation integer NOT NULL,
    event_id uuid NOT NULL,
    transaction_id xid8 NOT NULL,
    global_position bigint NOT NULL,
    stream_id text NOT NULL,
    stream_version bigint NOT NULL,
    event_type text NOT NULL,
    error text NOT NULL,
    skipped_by text NOT NULL,
    skipped_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, generation, event_id)
);

CREATE INDEX projection_skips_version_idx
    ON deedkit.projection_skips (projection, version);

-- Roles are cluster-wide, so another database's migration may have created them already.
DO $$
BEGIN
    CREATE ROLE deedkit_reader NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END;
$$;

DO $$
BEGIN
    CREATE ROLE deedkit_projector NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END;
$$;

-- Readers see the views and nothing else: a view runs with its owner's rights, so the
-- generation tables stay private.
GRANT USAGE ON SCHEMA deedkit_read TO deedkit_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA deedkit_read GRANT SELECT ON TABLES TO deedkit_reader;

-- The runner reads the log, keeps the bookkeeping, and creates and drops generations. It
-- must also own the views it repoints (CREATE OR REPLACE VIEW requires ownership).
GRANT USAGE ON SCHEMA deedkit TO deedkit_projector;
GRANT SELECT ON deedkit.events TO deedkit_projector;
GRANT SELECT ON SEQUENCE deedkit.events_global_position_seq TO deedkit_projector;
GRANT SELECT, INSERT, UPDATE, DELETE ON deedkit.projection_generations TO deedkit_projector;
GRANT SELECT, INSERT ON deedkit.projection_skips TO deedkit_projector;
GRANT USAGE ON SEQUENCE deedkit.projection_generation_seq TO deedkit_projector;
GRANT USAGE, CREATE ON SCHEMA deedkit_read, deedkit_read_data TO deedkit_projector;
