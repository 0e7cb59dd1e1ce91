-- Idempotency claims and stored responses. A row exists only once its command committed:
-- the claim is inserted at the start of the command's transaction and the response is
-- written before the same commit, so a failed attempt leaves nothing behind, and a
-- concurrent attempt with the same key waits on the row lock of the first.
CREATE TABLE deedkit.idempotency_keys (
    -- Whose key it is (the principal or tenant); keys never cross scopes.
    scope text NOT NULL,
    idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    command_name text NOT NULL,
    -- SHA-256 over the command name and its deterministic Protobuf encoding.
    fingerprint text NOT NULL,
    fingerprint_version smallint NOT NULL,
    -- What the caller needs to answer a retry byte for byte.
    response_status integer,
    response_headers text[],  -- "Name: value" lines
    response_body bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, idempotency_key)
);

-- The retention purge walks keys oldest first.
CREATE INDEX idempotency_keys_created_at_idx ON deedkit.idempotency_keys (created_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON deedkit.idempotency_keys TO deedkit_writer;
