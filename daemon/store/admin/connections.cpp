#include "store/admin/connections.hpp"

#include "store/admin/integrations_sql.hpp"

namespace pgcourier::store::admin {
namespace {

// Sets the connection's status and reason unless its status is one of
// `unless_in` (a text[] literal); its status before, and its pending runs.
std::optional<ConnectionChange> SetStatus(Connection& connection, const std::string& id, const std::string& status,
                                          const std::string& reason, const std::string& unless_in) {
  pqxx::work txn(connection.impl().conn);
  const auto rows = txn.exec_params(R"(
WITH before AS (SELECT c.id, c.status FROM courier.connections c WHERE c.id = $1 FOR UPDATE),
changed AS (UPDATE courier.connections c SET status = $2, status_reason = nullif($3, ''), updated_at = now()
            FROM before b WHERE c.id = b.id AND b.status <> ALL ($4::text[]))
SELECT b.status AS previous_status,
       (SELECT count(*) FROM courier.runs r WHERE r.connection_id = b.id AND r.status = 'pending') AS pending_runs
FROM before b)",
                                    id, status, reason, unless_in);
  if (rows.empty()) return std::nullopt;
  txn.commit();
  static const pg::RowMapping<ConnectionChange> kChange = {
      {"previous_status", &ConnectionChange::previous_status},
      {"pending_runs", &ConnectionChange::pending_runs},
  };
  return kChange.Read(rows[0]);
}

}  // namespace

Checked<std::string> Connections::Create(const NewConnection& c) {
  return pg::Translate("create connection", [&] {
    pqxx::work txn(connection_.impl().conn);
    if (!c.credential_id.empty()) {
      auto refused = CheckCredentialFor(txn, c.credential_id, c.tenant_id);
      if (refused.refusal != Refusal::kNone) return refused;
    }
    const auto row = txn.exec_params1(R"(
INSERT INTO courier.connections (id, tenant_id, provider, base_url, auth_mode, credential_id, api_key_header, token_url,
  client_id, scopes, health_check_method, health_check_path, health_check_expected_status, policy, status,
  rate_limit_per_second, rate_limit_burst, max_in_flight)
VALUES (coalesce(nullif($1, ''), courier.new_id('conn_')), $2, $3, $4, $5, nullif($6, ''), nullif($7, ''),
  nullif($8, ''), nullif($9, ''), nullif($10, ''), $11, nullif($12, ''), $13, $14, $15, $16, $17, $18)
RETURNING id)",
                                      c.id, c.tenant_id, c.provider, c.base_url, c.auth_mode, c.credential_id,
                                      c.api_key_header, c.token_url, c.client_id, c.scopes, c.health_check_method,
                                      c.health_check_path, c.expected_status, c.policy, c.status,
                                      c.rate_limit_per_second, c.rate_limit_burst, c.max_in_flight);
    txn.commit();
    Checked<std::string> out;
    out.value = Text(row["id"]);
    return out;
  });
}

std::vector<ConnectionInfo> Connections::List(const std::string& tenant_id) {
  return pg::Translate("list connections", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    return ReadConnections(txn.exec_params(
        kConnections + "WHERE $1 = '' OR c.tenant_id = $1 ORDER BY c.tenant_id, c.created_at, c.id", tenant_id));
  });
}

std::optional<ConnectionInfo> Connections::Show(const std::string& id) {
  return pg::Translate("show connection", [&]() -> std::optional<ConnectionInfo> {
    pqxx::read_transaction txn(connection_.impl().conn);
    auto rows = ReadConnections(txn.exec_params(kConnections + "WHERE c.id = $1", id));
    if (rows.empty()) return std::nullopt;
    return std::move(rows[0]);
  });
}

std::optional<ConnectionChange> Connections::Retire(const std::string& id) {
  return pg::Translate("retire connection",
                       [&] { return SetStatus(connection_, id, "retired", "retired by an operator", "{retired}"); });
}

std::optional<ConnectionChange> Connections::Activate(const std::string& id) {
  return pg::Translate("activate connection",
                       [&] { return SetStatus(connection_, id, "active", "", "{active,retired}"); });
}

}  // namespace pgcourier::store::admin
