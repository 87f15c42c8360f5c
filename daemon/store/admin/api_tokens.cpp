#include "store/admin/api_tokens.hpp"

#include "store/admin/impl.hpp"

namespace pgcourier::store::admin {

NewApiToken ApiTokens::Create(const std::string& tenant_id, const std::string& name, bool operator_token) {
  return pg::Translate("create api token", [&] {
    pqxx::work txn(connection_.impl().conn);
    const auto row = txn.exec_params1(
        "SELECT t.id, t.token FROM courier.create_api_token(nullif($1, ''), $2, $3) t", tenant_id, name,
        operator_token);
    txn.commit();
    return NewApiToken{Text(row["id"]), Text(row["token"])};
  });
}

std::vector<ApiTokenInfo> ApiTokens::List() {
  return pg::Translate("list api tokens", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    static const pg::RowMapping<ApiTokenInfo> kToken = {
        {"id", &ApiTokenInfo::id},
        {"tenant_id", &ApiTokenInfo::tenant_id},
        {"name", &ApiTokenInfo::name},
        {"created_at", &ApiTokenInfo::created_at},
        {"revoked_at", &ApiTokenInfo::revoked_at},
        {"last_used_at", &ApiTokenInfo::last_used_at},
    };
    return kToken.ReadAll(txn.exec(
        "SELECT t.id, t.tenant_id, t.name, date_trunc('second', t.created_at) AS created_at, "
        "date_trunc('second', t.revoked_at) AS revoked_at, date_trunc('second', t.last_used_at) AS last_used_at "
        "FROM courier.list_api_tokens() t"));
  });
}

bool ApiTokens::Revoke(const std::string& id) {
  return pg::Translate("revoke api token", [&] {
    pqxx::work txn(connection_.impl().conn);
    const bool revoked = txn.exec_params1("SELECT courier.revoke_api_token($1) AS revoked", id)["revoked"].as<bool>();
    txn.commit();
    return revoked;
  });
}

}  // namespace pgcourier::store::admin
