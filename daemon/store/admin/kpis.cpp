#include "store/admin/kpis.hpp"

#include <iomanip>
#include <sstream>

#include "store/admin/impl.hpp"

namespace pgcourier::store::admin {

std::vector<KpiRow> Kpis::Snapshots(const std::string& tenant_id, const std::string& width,
                                    const std::string& subscription, const std::string& since, int limit) {
  return pg::Translate("read KPI snapshots", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    static const pg::RowMapping<KpiRow> kRow = {
        {"bucket_start", &KpiRow::bucket_start},
        {"subscription_id", &KpiRow::subscription_id},
        {"attempts", &KpiRow::attempts},
        {"delivered", &KpiRow::delivered},
        {"failed", &KpiRow::failed},
        {"dead_lettered", &KpiRow::dead_lettered},
        {"success_rate", &KpiRow::success_rate},
        {"latency_p50_ms", &KpiRow::latency_p50_ms},
        {"latency_p95_ms", &KpiRow::latency_p95_ms},
    };
    // By the primary key (bucket_width, tenant_id, subscription_id, bucket_start).
    return kRow.ReadAll(txn.exec_params(R"(
SELECT k.bucket_start::text AS bucket_start, k.subscription_id, k.attempts, k.delivered, k.failed, k.dead_lettered,
       k.success_rate, k.latency_p50_ms, k.latency_p95_ms
FROM courier.kpi_snapshots k
WHERE k.bucket_width = $1 AND k.tenant_id = $2
  AND CASE WHEN $3 = '*' THEN true ELSE k.subscription_id = $3 END
  AND ($4 = '' OR k.bucket_start >= $4::timestamptz)
ORDER BY k.bucket_start DESC, k.subscription_id
LIMIT $5)",
                                        width, tenant_id, subscription, since, limit));
  });
}

std::string Kpis::CreateThreshold(const std::string& tenant_id, const std::string& metric, double value,
                                  const std::string& subscription_id) {
  return pg::Translate("create KPI threshold", [&] {
    pqxx::work txn(connection_.impl().conn);
    std::ostringstream exact;
    exact << std::setprecision(17) << value;
    const auto row = txn.exec_params1("SELECT courier.create_kpi_threshold($1, $2, $3::float8, nullif($4, ''))",
                                      tenant_id, metric, exact.str(), subscription_id);
    txn.commit();
    return Text(row[0]);
  });
}

std::vector<KpiThresholdInfo> Kpis::Thresholds(const std::string& tenant_id) {
  return pg::Translate("list KPI thresholds", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    static const pg::RowMapping<KpiThresholdInfo> kThreshold = {
        {"id", &KpiThresholdInfo::id},
        {"tenant_id", &KpiThresholdInfo::tenant_id},
        {"subscription_id", &KpiThresholdInfo::subscription_id},
        {"metric", &KpiThresholdInfo::metric},
        {"value", &KpiThresholdInfo::value},
        {"state", &KpiThresholdInfo::state},
        {"breached_since", &KpiThresholdInfo::breached_since},
        {"last_bucket", &KpiThresholdInfo::last_bucket},
        {"last_observed", &KpiThresholdInfo::last_observed},
    };
    return kThreshold.ReadAll(txn.exec_params(R"(
SELECT t.id, t.tenant_id, t.subscription_id, t.metric, t.value, t.state, t.breached_since::text AS breached_since,
       t.last_bucket::text AS last_bucket, t.last_observed
FROM courier.kpi_thresholds t WHERE $1 = '' OR t.tenant_id = $1 ORDER BY t.tenant_id, t.created_at, t.id)",
                                              tenant_id));
  });
}

bool Kpis::DeleteThreshold(const std::string& id, const std::string& acting_tenant) {
  return pg::Translate("delete KPI threshold", [&] {
    pqxx::work txn(connection_.impl().conn);
    const bool deleted =
        txn.exec_params1("SELECT courier.delete_kpi_threshold($1, nullif($2, ''))", id, acting_tenant)[0].as<bool>();
    txn.commit();
    return deleted;
  });
}

}  // namespace pgcourier::store::admin
