-- 010_queue_autovacuum: vacuum the queue tables early.
-- Every delivery leaves dead row versions behind (claim, outcome, prune), and
-- the claim-path indexes (deliveries_due, deliveries_leased; runs_due,
-- runs_leased) take new keys at their right end while their left pages empty
-- out: those pages are reused only after a VACUUM. With the default
-- thresholds (20 % of the table dead) a busy queue waits long for it and the
-- indexes grow meanwhile (bench/run health). A vacuum after 1 % + 1,000 dead
-- rows, without cost-based sleeping, keeps them small; autovacuum_naptime
-- (postgresql.conf, default 1 min) decides how soon a worker looks: the README
-- recommends 10 s for a busy queue.
ALTER TABLE courier.deliveries SET (
  autovacuum_vacuum_scale_factor = 0.01,
  autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_insert_scale_factor = 0.05,
  autovacuum_analyze_scale_factor = 0.02,
  autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE courier.runs SET (
  autovacuum_vacuum_scale_factor = 0.01,
  autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_insert_scale_factor = 0.05,
  autovacuum_analyze_scale_factor = 0.02,
  autovacuum_vacuum_cost_delay = 0
);
