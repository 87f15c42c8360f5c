// admin::Kpis: KPI snapshots and thresholds (sql/schema/70_providers.sql) for
// `pgcourierctl kpi` and `kpi-threshold ...`. Snapshots are read for one
// tenant at a time; thresholds are written through
// courier.create_kpi_threshold / delete_kpi_threshold. Borrows an
// admin::Connection; not thread-safe. Throws StoreError.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "store/admin/connection.hpp"

namespace pgcourier::store::admin {

struct KpiRow {
  std::string bucket_start;
  std::string subscription_id;  // empty: the tenant's total
  long long attempts = 0;
  long long delivered = 0;
  long long failed = 0;
  long long dead_lettered = 0;
  std::optional<double> success_rate;
  std::optional<double> latency_p50_ms;
  std::optional<double> latency_p95_ms;
};

struct KpiThresholdInfo {
  std::string id;
  std::string tenant_id;
  std::string subscription_id;  // empty: the tenant's total
  std::string metric;
  double value = 0;
  std::string state;
  std::string breached_since;
  std::string last_bucket;
  std::optional<double> last_observed;
};

class Kpis {
 public:
  explicit Kpis(Connection& connection) : connection_(connection) {}

  // The tenant's newest `limit` buckets of `width` ("1m", "1h"), newest first; subscription: "" the
  // tenant's totals, "*" every subscription's rows, else that subscription's.
  std::vector<KpiRow> Snapshots(const std::string& tenant_id, const std::string& width, const std::string& subscription,
                                const std::string& since, int limit);
  std::string CreateThreshold(const std::string& tenant_id, const std::string& metric, double value,
                              const std::string& subscription_id);
  std::vector<KpiThresholdInfo> Thresholds(const std::string& tenant_id);
  bool DeleteThreshold(const std::string& id, const std::string& acting_tenant);

 private:
  Connection& connection_;
};

}  // namespace pgcourier::store::admin
