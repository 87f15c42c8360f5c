-- run_queue_metrics: the one-row summary behind the run gauges; $1 the
-- credential expiry warning window in ms.
SELECT * FROM courier.run_queue_metrics($1::bigint * interval '1 millisecond')
