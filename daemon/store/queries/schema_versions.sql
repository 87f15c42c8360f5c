-- schema_versions: the migrations applied to this database.
SELECT version FROM courier.schema_migrations
