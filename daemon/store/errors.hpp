// StoreError: the only exception type that leaves daemon/store/. kind() says
// what the caller should do about it; sqlstate() and server_message() keep
// what the server said, for callers that word a refusal themselves (the
// operator CLI: "no subscription sub_x" for no_data_found). No libpqxx type
// appears here.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace pgcourier::store {

class StoreError : public std::runtime_error {
 public:
  // kConnectionLost: reconnect, keep what is unwritten, try again later.
  // kConflict: deadlock or serialization failure; the transaction can be retried.
  // kSchema: a migration failed or the schema is not what this build needs.
  // kStatement: the statement failed for another reason (a constraint, bad input).
  enum class Kind { kConnectionLost, kSchema, kStatement, kConflict };
  StoreError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  // `sqlstate` is the server's five-character code ("P0002"), `server_message`
  // its message (with DETAIL and HINT, no statement name); both empty when the
  // error did not come from the server.
  StoreError(Kind kind, const std::string& message, std::string sqlstate, std::string server_message)
      : std::runtime_error(message), kind_(kind), sqlstate_(std::move(sqlstate)),
        server_message_(std::move(server_message)) {}
  Kind kind() const { return kind_; }
  const std::string& sqlstate() const { return sqlstate_; }
  const std::string& server_message() const { return server_message_; }

 private:
  Kind kind_;
  std::string sqlstate_;
  std::string server_message_;
};

}  // namespace pgcourier::store
