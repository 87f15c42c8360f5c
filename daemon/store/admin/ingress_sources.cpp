#include "store/admin/ingress_sources.hpp"

#include "store/admin/impl.hpp"

namespace pgcourier::store::admin {

std::string IngressSources::NewId() {
  return pg::Translate("new ingress source id", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    return Text(txn.exec1("SELECT courier.new_id('src_') AS id")["id"]);
  });
}

std::string IngressSources::Create(const NewIngressSource& s) {
  return pg::Translate("create ingress source", [&] {
    pqxx::work txn(connection_.impl().conn);
    const auto row = txn.exec_params1(
        "SELECT courier.create_ingress_source($1, $2, $3, $4, nullif($5, ''), $6) AS id", s.id, s.tenant_id, s.scheme,
        s.sealed_secret, s.event_type, s.tolerance_seconds);
    txn.commit();
    return Text(row["id"]);
  });
}

std::vector<IngressSourceInfo> IngressSources::List() {
  return pg::Translate("list ingress sources", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    static const pg::RowMapping<IngressSourceInfo> kSource = {
        {"id", &IngressSourceInfo::id},
        {"tenant_id", &IngressSourceInfo::tenant_id},
        {"scheme", &IngressSourceInfo::scheme},
        {"event_type", &IngressSourceInfo::event_type},
        {"tolerance_seconds", &IngressSourceInfo::tolerance_seconds},
        {"created_at", &IngressSourceInfo::created_at},
        {"accepted", &IngressSourceInfo::accepted},
        {"refused", &IngressSourceInfo::refused},
    };
    return kSource.ReadAll(txn.exec(
        "SELECT s.id, s.tenant_id, s.scheme, s.event_type, s.tolerance_seconds, "
        "date_trunc('second', s.created_at) AS created_at, s.accepted, s.refused FROM courier.list_ingress_sources() s"));
  });
}

}  // namespace pgcourier::store::admin
