// StoreError: the only exception type that leaves daemon/store/. kind() says
// what the caller should do about it. No libpqxx type appears here.
#pragma once

#include <stdexcept>
#include <string>

namespace pgcourier::store {

class StoreError : public std::runtime_error {
 public:
  // kConnectionLost: reconnect, keep what is unwritten, try again later.
  // kConflict: deadlock or serialization failure; the transaction can be retried.
  // kSchema: a migration failed or the schema is not what this build needs.
  // kStatement: the statement failed for another reason (a constraint, bad input).
  enum class Kind { kConnectionLost, kSchema, kStatement, kConflict };
  StoreError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

}  // namespace pgcourier::store
