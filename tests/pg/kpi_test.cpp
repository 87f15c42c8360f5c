// KPI snapshots and thresholds (sql/schema/70_providers.sql): what
// courier.maintain_kpis() (the maintenance leader's call) summarises, that it
// is incremental, how thresholds breach and clear once each, retention, and
// that no tenant's threshold watches another tenant's subscription.
#include <doctest/doctest.h>

#include <string>

#include "test_db.hpp"

namespace {

using pgtest::AddSubscription;
using pgtest::Count;
using pgtest::ErrorOf;
using pgtest::Exec;
using pgtest::NewDelivery;
using pgtest::Scalar;
using pgtest::TestDb;

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// An attempt of `delivery` started `minutes_ago` whole minutes ago (+ 5 s), answered with `status`.
void Attempt(pqxx::connection& conn, const std::string& delivery, int attempt, int minutes_ago, int status,
             double duration_ms) {
  Exec(conn,
       "INSERT INTO courier.delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, outcome, "
       "  error_class, worker) "
       "VALUES ($1, $2, date_trunc('minute', now()) - $3 * interval '1 minute' + interval '5 seconds', $4, $5, "
       "  CASE WHEN $5 BETWEEN 200 AND 299 THEN 'delivered' ELSE 'http_error' END, "
       "  CASE WHEN $5 BETWEEN 200 AND 299 THEN NULL ELSE 'transient' END, 'w1')",
       delivery, attempt, minutes_ago, duration_ms, status);
}

// The summariser starts `minutes_ago` minutes back, with no settling delay.
void StartAt(pqxx::connection& conn, int minutes_ago) {
  Exec(conn, "UPDATE courier.kpi_settings SET settle = '0'");
  Exec(conn, "UPDATE courier.kpi_progress SET next_bucket = date_trunc('minute', now()) - $1 * interval '1 minute'",
       minutes_ago);
}

long long Outbox(pqxx::connection& conn, const std::string& type) {
  return Count(conn, "SELECT count(*) FROM courier.outbox WHERE event_type = $1", type);
}

}  // namespace

TEST_CASE("kpi: per tenant and subscription per minute, rolled up to the hour, incrementally") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto a = AddSubscription(conn, "acme", {"*"});
  const auto b = AddSubscription(conn, "acme", {"*"});
  const auto other = AddSubscription(conn, "globex", {"*"});
  const auto d1 = NewDelivery(conn, "acme", a);
  const auto d2 = NewDelivery(conn, "acme", b);
  const auto d3 = NewDelivery(conn, "globex", other);
  StartAt(conn, 3);
  Attempt(conn, d1, 1, 3, 500, 100);
  Attempt(conn, d1, 2, 3, 200, 300);
  Attempt(conn, d2, 1, 3, 200, 200);
  Attempt(conn, d3, 1, 2, 200, 50);
  Exec(conn,
       "INSERT INTO courier.delivery_dead_letters VALUES ($1, 'acme', $2, "
       "date_trunc('minute', now()) - interval '3 minutes' + interval '30 seconds')",
       d2, b);
  Attempt(conn, d1, 3, 0, 200, 1);  // the current minute: not complete, not summarised yet
  CHECK(Scalar<int>(conn, "SELECT courier.maintain_kpis()") == 3);
  const auto tenant = pgtest::Row(conn,
                                  "SELECT attempts, delivered, failed, dead_lettered, success_rate, latency_p50_ms, "
                                  "latency_p95_ms FROM courier.kpi_snapshots WHERE bucket_width = '1m' AND "
                                  "tenant_id = 'acme' AND subscription_id = ''");
  CHECK(tenant["attempts"].as<int>() == 3);
  CHECK(tenant["delivered"].as<int>() == 2);
  CHECK(tenant["failed"].as<int>() == 1);
  CHECK(tenant["dead_lettered"].as<int>() == 1);
  CHECK(tenant["success_rate"].as<double>() == doctest::Approx(2.0 / 3));
  CHECK(tenant["latency_p50_ms"].as<double>() == doctest::Approx(200));
  CHECK(tenant["latency_p95_ms"].as<double>() == doctest::Approx(290));
  CHECK(Scalar<double>(conn,
                       "SELECT success_rate FROM courier.kpi_snapshots WHERE bucket_width = '1m' AND "
                       "subscription_id = $1",
                       a) == doctest::Approx(0.5));
  CHECK(Count(conn, "SELECT count(*) FROM courier.kpi_snapshots WHERE bucket_width = '1m' AND tenant_id = 'globex'") ==
        2);
  CHECK(Count(conn,
              "SELECT attempts FROM courier.kpi_snapshots WHERE bucket_width = '1h' AND tenant_id = 'acme' AND "
              "subscription_id = '' AND bucket_start = date_trunc('hour', date_trunc('minute', now()) - "
              "interval '3 minutes')") == 3);
  // incremental: nothing new is complete; then only the next minute
  CHECK(Scalar<int>(conn, "SELECT courier.maintain_kpis()") == 0);
  Exec(conn,
       "UPDATE courier.kpi_progress SET next_bucket = next_bucket - interval '1 minute'");  // as if a minute passed
  CHECK(Scalar<int>(conn, "SELECT courier.maintain_kpis()") == 1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.kpi_snapshots WHERE bucket_width = '1m'") == 5);
  // retention
  Exec(conn,
       "UPDATE courier.kpi_snapshots SET bucket_start = bucket_start - interval '8 days' WHERE tenant_id = 'globex'");
  Exec(conn, "UPDATE courier.kpi_progress SET next_bucket = next_bucket - interval '1 minute'");
  Exec(conn, "SELECT courier.maintain_kpis()");
  CHECK(Count(conn, "SELECT count(*) FROM courier.kpi_snapshots WHERE tenant_id = 'globex' AND bucket_width = '1m'") ==
        0);
  CHECK(Count(conn, "SELECT count(*) FROM courier.kpi_snapshots WHERE tenant_id = 'globex' AND bucket_width = '1h'") ==
        2);
}

TEST_CASE("kpi: a threshold raises KpiThresholdBreached once per breach and KpiThresholdCleared when it ends") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  const auto d = NewDelivery(conn, "acme", sub);
  const auto rate = Scalar<std::string>(conn, "SELECT courier.create_kpi_threshold('acme', 'success_rate_below', 0.9)");
  const auto p95 =
      Scalar<std::string>(conn, "SELECT courier.create_kpi_threshold('acme', 'p95_above_ms', 1000, $1)", sub);
  StartAt(conn, 5);
  Attempt(conn, d, 1, 5, 500, 2000);  // minute -5: rate 0, p95 2000: both breach
  Attempt(conn, d, 2, 4, 500, 10);    // minute -4: rate 0 (still), p95 10 (clears)
  // minute -3: no attempts: nothing measured, both stay as they are
  Attempt(conn, d, 3, 2, 200, 10);  // minute -2: rate 1: clears
  Attempt(conn, d, 4, 1, 503, 10);  // minute -1: rate 0: breaches again
  Exec(conn, "SELECT courier.maintain_kpis()");
  CHECK(Count(conn, "SELECT count(*) FROM courier.outbox WHERE subject_id = $1 AND event_type = 'KpiThresholdBreached'",
              rate) == 2);
  CHECK(Count(conn, "SELECT count(*) FROM courier.outbox WHERE subject_id = $1 AND event_type = 'KpiThresholdCleared'",
              rate) == 1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.outbox WHERE subject_id = $1 AND event_type = 'KpiThresholdBreached'",
              p95) == 1);
  CHECK(Count(conn, "SELECT count(*) FROM courier.outbox WHERE subject_id = $1 AND event_type = 'KpiThresholdCleared'",
              p95) == 1);
  CHECK(Scalar<std::string>(conn, "SELECT state FROM courier.kpi_thresholds WHERE id = $1", rate) == "breached");
  const auto body = Scalar<std::string>(
      conn, "SELECT body::text FROM courier.outbox WHERE subject_id = $1 ORDER BY position LIMIT 1", rate);
  CHECK(Contains(body, "\"metric\": \"success_rate_below\""));
  CHECK(Contains(body, "\"observed\": 0"));
  // evaluated once per bucket: running again changes nothing
  Exec(conn, "SELECT courier.maintain_kpis()");
  CHECK(Outbox(conn, "KpiThresholdBreached") == 3);
}

TEST_CASE("kpi: a dead-letter threshold, bad input, and no threshold on another tenant's subscription") {
  TestDb db;
  pqxx::connection conn(db.url());
  const auto sub = AddSubscription(conn, "acme", {"*"});
  const auto foreign = AddSubscription(conn, "globex", {"*"});
  CHECK(Contains(ErrorOf(conn, "SELECT courier.create_kpi_threshold('acme', 'p95_above_ms', 10, $1)", foreign),
                 "is not a subscription of tenant acme"));
  CHECK(Contains(ErrorOf(conn, "SELECT courier.create_kpi_threshold('acme', 'success_rate_below', 95)"),
                 "a success rate is from 0 to 1"));
  CHECK(Contains(ErrorOf(conn, "SELECT courier.create_kpi_threshold('acme', 'latency', 1)"), "metric: \"latency\""));
  const auto dl = Scalar<std::string>(conn, "SELECT courier.create_kpi_threshold('acme', 'dead_letters_above', 0)");
  CHECK_FALSE(Scalar<bool>(conn, "SELECT courier.delete_kpi_threshold($1, 'globex')", dl));
  const auto d = NewDelivery(conn, "acme", sub);
  StartAt(conn, 2);
  Exec(conn,
       "INSERT INTO courier.delivery_dead_letters VALUES ($1, 'acme', $2, "
       "date_trunc('minute', now()) - interval '2 minutes')",
       d, sub);
  Exec(conn, "SELECT courier.maintain_kpis()");
  CHECK(Outbox(conn, "KpiThresholdBreached") == 1);
  CHECK(Outbox(conn, "KpiThresholdCleared") == 1);  // the next minute had none
  CHECK(Scalar<bool>(conn, "SELECT courier.delete_kpi_threshold($1, 'acme')", dl));
}
