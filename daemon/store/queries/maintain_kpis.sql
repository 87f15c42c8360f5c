-- maintain_kpis: the KPI snapshots of the complete minute buckets since the
-- last call (at most $1 minutes), their thresholds, and KPI retention
-- (courier.maintain_kpis, 70_providers.sql); returns the minutes summarised.
SELECT courier.maintain_kpis($1) AS minutes
