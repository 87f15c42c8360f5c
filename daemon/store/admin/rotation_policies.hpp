// admin::RotationPolicies: a credential's rotation policy
// (courier.credential_rotation_policies, sql/schema/70_providers.sql) and the
// steps of its rotations as the outbox recorded them, for `pgcourierctl
// credential create|rotation|show`. Writes go through
// courier.set_rotation_policy / clear_rotation_policy. Borrows an
// admin::Connection; not thread-safe. Throws StoreError.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "store/admin/connection.hpp"

namespace pgcourier::store::admin {

struct RotationPolicyInfo {
  std::string rotate_every;      // "90 days"
  std::string rotation_command;  // empty: none (the operator is told when it is due)
  std::string next_due_at;
  std::string due_reason;
  std::string state;  // idle, running, verifying, due_raised
  std::string last_rotated_at;
  std::string last_result;
  std::string last_error;
};

// One outbox event about the credential's rotations (CredentialRotation*, CredentialRotated).
struct RotationEvent {
  std::string at;
  std::string event_type;
  std::string body;  // JSON
};

class RotationPolicies {
 public:
  explicit RotationPolicies(Connection& connection) : connection_(connection) {}

  // Returns when the next rotation is due. acting_tenant (empty: an administrator): only that tenant's
  // credentials exist for the call.
  std::string Set(const std::string& credential_id, std::chrono::seconds rotate_every, const std::string& command,
                  const std::string& acting_tenant = "");
  bool Clear(const std::string& credential_id, const std::string& acting_tenant = "");
  std::optional<RotationPolicyInfo> Get(const std::string& credential_id);
  // The newest `limit`, oldest first.
  std::vector<RotationEvent> Events(const std::string& credential_id, int limit);

 private:
  Connection& connection_;
};

}  // namespace pgcourier::store::admin
