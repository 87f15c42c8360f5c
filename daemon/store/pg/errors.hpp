// The one place where libpqxx exceptions become store::StoreError. Every store
// function (the daemon's lanes, the operator statements, migrations) runs its
// database work inside Translate(), so callers see one error type whose kind()
// says what to do: reconnect (kConnectionLost), retry the transaction
// (kConflict), or report (kStatement, kSchema). Internal to daemon/store/.
#pragma once

#include <pqxx/pqxx>
#include <string>
#include <string_view>

#include "store/errors.hpp"

namespace pgcourier::store::pg {

// What the server said, without the parts meant for SQL authors: the primary
// message ("ERROR:  " dropped) and any DETAIL or HINT; no CONTEXT, LINE or caret.
std::string ServerMessage(std::string_view text);

// The kind of a libpqxx exception: a lost connection (including the server
// shutting down, 57P*, and connection exceptions, 08*), a conflict (deadlock,
// serialization failure), or a failed statement.
StoreError::Kind KindOf(const pqxx::sql_error& error);

// Runs fn, translating libpqxx exceptions into StoreError named `what` (the
// statement's name). A StoreError thrown inside passes through unchanged.
template <typename Fn>
auto Translate(std::string_view what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const StoreError&) {
    throw;
  } catch (const pqxx::broken_connection& e) {
    throw StoreError(StoreError::Kind::kConnectionLost, std::string(what) + ": connection lost: " + e.what());
  } catch (const pqxx::in_doubt_error& e) {
    throw StoreError(StoreError::Kind::kConnectionLost, std::string(what) + ": commit in doubt: " + e.what());
  } catch (const pqxx::transaction_rollback& e) {
    // Deadlock or serialization failure (not an sql_error in libpqxx 6.4).
    throw StoreError(StoreError::Kind::kConflict, std::string(what) + ": " + ServerMessage(e.what()));
  } catch (const pqxx::sql_error& e) {
    std::string message = ServerMessage(e.what());
    throw StoreError(KindOf(e), std::string(what) + ": " + message, e.sqlstate(), message);
  } catch (const std::exception& e) {
    throw StoreError(StoreError::Kind::kStatement, std::string(what) + ": " + e.what());
  }
}

}  // namespace pgcourier::store::pg
