-- database_now: the database's clock, in unix microseconds (the one clock
-- every lease and schedule is measured by; the engine watches it for steps).
SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us
