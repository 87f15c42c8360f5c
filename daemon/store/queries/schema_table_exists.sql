-- schema_table_exists: whether any migration ever ran here.
SELECT to_regclass('courier.schema_migrations') IS NOT NULL AS migrated
