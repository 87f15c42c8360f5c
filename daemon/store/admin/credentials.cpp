#include "store/admin/credentials.hpp"

#include "store/admin/integrations_sql.hpp"

namespace pgcourier::store::admin {
namespace {

// courier.credentials c with its active version v; the expiry from courier.credential_expiry e.
constexpr const char* kCredentials = R"(
SELECT c.id, c.tenant_id, c.name, c.status, v.version AS active_version, v.fingerprint,
       date_trunc('second', e.expires_at)::text AS expires_at,
       CASE WHEN e.expires_in <= interval '0' THEN 'expired' ELSE date_trunc('minute', e.expires_in)::text END
         AS expires_in,
       date_trunc('second', c.created_at)::text AS created_at, date_trunc('second', c.updated_at)::text AS updated_at
FROM courier.credentials c
LEFT JOIN courier.credential_versions v ON v.credential_id = c.id AND v.status = 'active'
LEFT JOIN courier.credential_expiry e ON e.credential_id = c.id )";

const pg::RowMapping<CredentialInfo> kCredential = {
    {"id", &CredentialInfo::id},
    {"tenant_id", &CredentialInfo::tenant_id},
    {"name", &CredentialInfo::name},
    {"status", &CredentialInfo::status},
    {"active_version", &CredentialInfo::active_version},
    {"fingerprint", &CredentialInfo::fingerprint},
    {"expires_at", &CredentialInfo::expires_at},
    {"expires_in", &CredentialInfo::expires_in},
    {"created_at", &CredentialInfo::created_at},
    {"updated_at", &CredentialInfo::updated_at},
};

// courier.credential_versions: never sealed_secret.
constexpr const char* kVersions = R"(
SELECT v.version, v.status, v.fingerprint, date_trunc('second', v.created_at)::text AS created_at,
       date_trunc('second', v.activated_at)::text AS activated_at,
       date_trunc('second', v.retired_at)::text AS retired_at,
       date_trunc('second', v.expires_at)::text AS expires_at, v.verification_error
FROM courier.credential_versions v WHERE v.credential_id = $1 ORDER BY v.version DESC)";

const pg::RowMapping<CredentialVersionInfo> kVersion = {
    {"version", &CredentialVersionInfo::version},
    {"status", &CredentialVersionInfo::status},
    {"fingerprint", &CredentialVersionInfo::fingerprint},
    {"created_at", &CredentialVersionInfo::created_at},
    {"activated_at", &CredentialVersionInfo::activated_at},
    {"retired_at", &CredentialVersionInfo::retired_at},
    {"expires_at", &CredentialVersionInfo::expires_at},
    {"verification_error", &CredentialVersionInfo::verification_error},
};

}  // namespace

std::string Credentials::Create(
    const NewCredential& credential,
    const std::function<std::pair<std::string, std::string>(const std::string&)>& seal) {
  return pg::Translate("create credential", [&] {
    pqxx::work txn(connection_.impl().conn);
    std::string id = credential.id.empty() ? Text(txn.exec1("SELECT courier.new_id('cred_') AS id")["id"])
                                           : credential.id;
    const auto [sealed, fingerprint] = seal(id);
    txn.exec_params("SELECT courier.create_credential($1, $2, nullif($3, '')::timestamptz, $4, $5, $6)",
                    credential.tenant_id, credential.name, credential.expires_at, id, sealed, fingerprint);
    txn.commit();
    return id;
  });
}

int Credentials::Rotate(const std::string& credential_id, const std::string& sealed_secret,
                        const std::string& fingerprint, const std::string& expires_at) {
  return pg::Translate("rotate credential", [&] {
    pqxx::work txn(connection_.impl().conn);
    const int version = txn.exec_params1("SELECT courier.rotate_credential($1, $2, $3, nullif($4, '')::timestamptz) "
                                         "AS version",
                                         credential_id, sealed_secret, fingerprint, expires_at)["version"]
                            .as<int>();
    txn.commit();
    return version;
  });
}

std::vector<CredentialInfo> Credentials::List(const std::string& tenant_id) {
  return pg::Translate("list credentials", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    return kCredential.ReadAll(txn.exec_params(
        std::string(kCredentials) +
            "WHERE $1 = '' OR c.tenant_id = $1 ORDER BY e.expires_at NULLS LAST, c.tenant_id, c.created_at, c.id",
        tenant_id));
  });
}

std::optional<CredentialDetail> Credentials::Show(const std::string& id) {
  return pg::Translate("show credential", [&]() -> std::optional<CredentialDetail> {
    pqxx::read_transaction txn(connection_.impl().conn);
    const auto rows = txn.exec_params(std::string(kCredentials) + "WHERE c.id = $1", id);
    if (rows.empty()) return std::nullopt;
    CredentialDetail detail;
    detail.credential = kCredential.Read(rows[0]);
    detail.versions = kVersion.ReadAll(txn.exec_params(kVersions, id));
    detail.connections = ReadConnections(txn.exec_params(kConnections + "WHERE c.credential_id = $1 ORDER BY c.id", id));
    return detail;
  });
}

}  // namespace pgcourier::store::admin
