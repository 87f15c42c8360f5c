#include "store/admin/connections.hpp"

#include "store/admin/integrations_sql.hpp"

namespace pgcourier::store::admin {
namespace {

// courier.set_connection_status (40_integrations.sql): the rules the API follows too.
std::optional<ConnectionChange> SetStatus(Connection& connection, const std::string& id, const std::string& action) {
  pqxx::work txn(connection.impl().conn);
  const auto row = txn.exec_params1(
      "SELECT c ->> 'previous_status' AS previous_status, (c ->> 'pending_runs')::bigint AS pending_runs "
      "FROM courier.set_connection_status($1, $2) c",
      id, action);
  txn.commit();
  if (row["previous_status"].is_null()) return std::nullopt;
  static const pg::RowMapping<ConnectionChange> kChange = {
      {"previous_status", &ConnectionChange::previous_status},
      {"pending_runs", &ConnectionChange::pending_runs},
  };
  return kChange.Read(row);
}

}  // namespace

// courier.create_connection (40_integrations.sql) checks the credential and
// inserts: the rules POST /api/v1/connections follows too. Empty settings
// are left out of the spec (the column's default or NULL).
std::string Connections::Create(const NewConnection& c) {
  return pg::Translate("create connection", [&] {
    pqxx::work txn(connection_.impl().conn);
    const auto row = txn.exec_params1(R"(
SELECT courier.create_connection($2, jsonb_strip_nulls(jsonb_build_object(
  'provider', $3::text, 'base_url', $4::text, 'auth_mode', $5::text, 'credential_id', nullif($6, ''),
  'api_key_header', nullif($7, ''), 'token_url', nullif($8, ''), 'client_id', nullif($9, ''),
  'scopes', nullif($10, ''), 'health_check_method', $11::text, 'health_check_path', nullif($12, ''),
  'health_check_expected_status', $13::int, 'policy', $14::text, 'status', $15::text,
  'rate_limit_per_second', $16::double precision, 'rate_limit_burst', $17::int, 'max_in_flight', $18::int)),
  $1) AS id)",
                                      c.id, c.tenant_id, c.provider, c.base_url, c.auth_mode, c.credential_id,
                                      c.api_key_header, c.token_url, c.client_id, c.scopes, c.health_check_method,
                                      c.health_check_path, c.expected_status, c.policy, c.status,
                                      c.rate_limit_per_second, c.rate_limit_burst, c.max_in_flight);
    txn.commit();
    return Text(row["id"]);
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
                       [&] { return SetStatus(connection_, id, "retire"); });
}

std::optional<ConnectionChange> Connections::Activate(const std::string& id) {
  return pg::Translate("activate connection",
                       [&] { return SetStatus(connection_, id, "activate"); });
}

}  // namespace pgcourier::store::admin
