-- The transactional outbox: one row per event, written in the same transaction as the
-- event. The relay publishes pending rows to NATS JetStream and marks them published; a
-- retention job deletes published rows later, in bounded batches.
CREATE TABLE deedkit.outbox (
    outbox_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The event id doubles as the message id (Nats-Msg-Id), so JetStream drops a re-publish.
    event_id uuid NOT NULL UNIQUE,
    stream_id text NOT NULL,
    stream_version bigint NOT NULL,
    -- Relays lease partitions of the stream-id hash; all of a stream's rows share one, so
    -- one relay at a time publishes a stream, in version order.
    partition smallint GENERATED ALWAYS AS ((hashtext(stream_id) & 63)::smallint) STORED,
    event_type text NOT NULL,
    schema_version integer NOT NULL,
    payload bytea NOT NULL,
    metadata jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    -- NULL while pending.
    published_at timestamptz
);

CREATE INDEX outbox_pending_idx ON deedkit.outbox (partition, outbox_id)
    WHERE published_at IS NULL;
CREATE INDEX outbox_published_idx ON deedkit.outbox (published_at)
    WHERE published_at IS NOT NULL;

-- Messages the broker refused permanently, parked with their stream's later rows.
CREATE TABLE deedkit.outbox_dead_letters (
    outbox_id bigint PRIMARY KEY,
    event_id uuid NOT NULL,
    stream_id text NOT NULL,
    stream_version bigint NOT NULL,
    reason text NOT NULL,
    dead_at timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT ON deedkit.outbox TO deedkit_writer;
