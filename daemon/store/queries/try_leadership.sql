-- try_leadership: maintenance runs in one daemon at a time, the holder of
-- this session lock. It is released when the holder's connection closes.
SELECT pg_try_advisory_lock(hashtext('pgcourier.maintenance')) AS leader
