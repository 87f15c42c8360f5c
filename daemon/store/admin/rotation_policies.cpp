#include "store/admin/rotation_policies.hpp"

#include "store/admin/impl.hpp"

namespace pgcourier::store::admin {

std::string RotationPolicies::Set(const std::string& credential_id, std::chrono::seconds rotate_every,
                                  const std::string& command, const std::string& acting_tenant) {
  return pg::Translate("set rotation policy", [&] {
    pqxx::work txn(connection_.impl().conn);
    const auto row = txn.exec_params1(
        "SELECT date_trunc('second', courier.set_rotation_policy($1, $2::bigint * interval '1 second', "
        "nullif($3, ''), nullif($4, '')))::text AS due",
        credential_id, static_cast<long long>(rotate_every.count()), command, acting_tenant);
    txn.commit();
    return Text(row["due"]);
  });
}

bool RotationPolicies::Clear(const std::string& credential_id, const std::string& acting_tenant) {
  return pg::Translate("clear rotation policy", [&] {
    pqxx::work txn(connection_.impl().conn);
    const bool cleared = txn.exec_params1("SELECT courier.clear_rotation_policy($1, nullif($2, ''))", credential_id, acting_tenant)[0]
            .as<bool>();
    txn.commit();
    return cleared;
  });
}

std::optional<RotationPolicyInfo> RotationPolicies::Get(const std::string& credential_id) {
  return pg::Translate("show rotation policy", [&]() -> std::optional<RotationPolicyInfo> {
    pqxx::read_transaction txn(connection_.impl().conn);
    const auto rows = txn.exec_params(R"(
SELECT justify_hours(p.rotate_every)::text AS rotate_every, p.rotation_command, date_trunc('second', p.next_due_at)::text AS next_due_at,
       p.due_reason, p.state, date_trunc('second', p.last_rotated_at)::text AS last_rotated_at, p.last_result,
       p.last_error
FROM courier.credential_rotation_policies p WHERE p.credential_id = $1)",
                                      credential_id);
    if (rows.empty()) return std::nullopt;
    static const pg::RowMapping<RotationPolicyInfo> kPolicy = {
        {"rotate_every", &RotationPolicyInfo::rotate_every},
        {"rotation_command", &RotationPolicyInfo::rotation_command},
        {"next_due_at", &RotationPolicyInfo::next_due_at},
        {"due_reason", &RotationPolicyInfo::due_reason},
        {"state", &RotationPolicyInfo::state},
        {"last_rotated_at", &RotationPolicyInfo::last_rotated_at},
        {"last_result", &RotationPolicyInfo::last_result},
        {"last_error", &RotationPolicyInfo::last_error},
    };
    return kPolicy.Read(rows[0]);
  });
}

std::vector<RotationEvent> RotationPolicies::Events(const std::string& credential_id, int limit) {
  return pg::Translate("list rotation events", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    static const pg::RowMapping<RotationEvent> kEvent = {
        {"at", &RotationEvent::at},
        {"event_type", &RotationEvent::event_type},
        {"body", &RotationEvent::body},
    };
    return kEvent.ReadAll(txn.exec_params(R"(
SELECT e.at, e.event_type, e.body FROM (
  SELECT date_trunc('second', o.created_at)::text AS at, o.event_type, o.body::text AS body, o.position
  FROM courier.outbox o
  -- by (tenant_id, event_type, position): the outbox's own index
  WHERE o.tenant_id = (SELECT c.tenant_id FROM courier.credentials c WHERE c.id = $1) AND o.subject_id = $1
    AND o.event_type = ANY ('{CredentialRotationDue,CredentialRotationStarted,CredentialRotationVersionStored,
                             CredentialRotationFailed,CredentialRotated}'::text[])
  ORDER BY o.position DESC LIMIT $2) e
ORDER BY e.position)",
                                          credential_id, limit));
  });
}

}  // namespace pgcourier::store::admin
