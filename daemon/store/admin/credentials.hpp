// admin::Credentials: the sealed, versioned credentials of connections
// (courier.credentials, courier.credential_versions) for the operator:
// create, rotate, list, show. Secrets arrive sealed with the master key and
// are never read back: only fingerprints and metadata. Borrows an
// admin::Connection; not thread-safe. Throws StoreError.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/admin/connections.hpp"

namespace pgcourier::store::admin {

struct NewCredential {
  std::string id;  // empty: generated
  std::string tenant_id;
  std::string name;
  std::string expires_at;  // timestamptz input text; empty: does not expire
};

// A credential with its active version (courier.credential_expiry for the expiry).
struct CredentialInfo {
  std::string id;
  std::string tenant_id;
  std::string name;
  std::string status;  // active, rotating or revoked
  std::optional<int> active_version;
  std::string fingerprint;
  std::string expires_at;  // of the active version; empty: does not expire
  std::string expires_in;  // "6 days 23:59:00", or "expired"
  std::string created_at;
  std::string updated_at;
};

// A credential version's metadata: never the sealed secret.
struct CredentialVersionInfo {
  int version = 0;
  std::string status;
  std::string fingerprint;
  std::string created_at;
  std::string activated_at;
  std::string retired_at;
  std::string expires_at;
  std::string verification_error;
};

struct CredentialDetail {
  CredentialInfo credential;
  std::vector<CredentialVersionInfo> versions;  // newest first
  std::vector<ConnectionInfo> connections;      // those using it
};

class Credentials {
 public:
  explicit Credentials(Connection& connection) : connection_(connection) {}

  // courier.create_credential (the API's rules too): the credential and its
  // version 1, active, in one transaction. `seal` gets the credential id (the
  // given one, else a new one) and returns (sealed secret, fingerprint).
  // Refusals (an expiry not in the future, ...) are StoreErrors with the
  // database's message. The id.
  std::string Create(const NewCredential& credential,
                     const std::function<std::pair<std::string, std::string>(const std::string&)>& seal);
  // courier.rotate_credential: the next version, rotating, and the credential
  // rotating; refused while revoked, while a version is rotating, or with the
  // active version's secret. The new version number.
  int Rotate(const std::string& credential_id, const std::string& sealed_secret, const std::string& fingerprint,
             const std::string& expires_at);
  std::vector<CredentialInfo> List(const std::string& tenant_id);  // empty tenant: all; soonest expiry first
  std::optional<CredentialDetail> Show(const std::string& id);

 private:
  Connection& connection_;
};

}  // namespace pgcourier::store::admin
