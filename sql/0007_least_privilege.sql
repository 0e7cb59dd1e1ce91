-- Least privilege for the running processes (docs/schema.md, "Roles"). Migrations run as
-- the owner; `serve`, `relay` and `projections run` may each log in as a member of one role
-- below and start without the owner's rights, provided the schema is already current.

-- Every process checks at start that the schema is current, which only reads this table.
GRANT SELECT ON deedkit.schema_migrations
    TO deedkit_writer, deedkit_relay, deedkit_projector, deedkit_reader;

-- The service answers /v1/listings and /v1/owners/{id}/portfolio from the read models, and
-- /metrics shows dead letters and each projection's lag.
GRANT deedkit_reader TO deedkit_writer;
GRANT SELECT ON deedkit.outbox_dead_letters TO deedkit_writer;
GRANT SELECT ON deedkit.projection_generations TO deedkit_writer;

-- Every outbox row is updated once (published) and deleted once (retention), so half the
-- table's row versions are dead at any time. Vacuum it after 2% churn instead of the 20%
-- default, so a busy outbox stays the size of its backlog rather than of its history.
ALTER TABLE deedkit.outbox SET (autovacuum_vacuum_scale_factor = 0.02,
                                autovacuum_vacuum_threshold = 1000);
