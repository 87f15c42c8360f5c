-- queue_metrics: the one-row summary behind the delivery queue gauges.
SELECT * FROM courier.queue_metrics()
