// Internals shared by the store's translation units (store.cpp: deliveries,
// run_store.cpp: integration runs). Not part of the store's interface: only
// files in daemon/store/ include it.
#pragma once

#include <chrono>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <vector>

#include "store/statements.hpp"
#include "store/store.hpp"

namespace pgcourier::store::detail {


// Runs fn, translating libpqxx exceptions into StoreError at this boundary.
template <typename Fn>
auto Translate(const char* what, Fn&& fn) -> decltype(fn()) {
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
    throw StoreError(StoreError::Kind::kConflict, std::string(what) + ": " + e.what());
  } catch (const pqxx::sql_error& e) {
    // 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now:
    // the server is going away; treat as a lost connection.
    const std::string& state = e.sqlstate();
    auto kind = StoreError::Kind::kStatement;
    if (state.rfind("57P", 0) == 0 || state.rfind("08", 0) == 0) kind = StoreError::Kind::kConnectionLost;
    if (state == "40P01" || state == "40001") kind = StoreError::Kind::kConflict;
    throw StoreError(kind, std::string(what) + ": " + e.what());
  } catch (const std::exception& e) {
    throw StoreError(StoreError::Kind::kStatement, std::string(what) + ": " + e.what());
  }
}

inline std::string Quote(std::string_view item) {
  std::string out;
  out.reserve(item.size() + 2);
  out.push_back('"');
  for (char c : item) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

// Builds array literals column by column for unnest()-based batch statements.
class ArrayBuilder {
 public:
  void AddText(std::string_view value) { Sep(); out_ += Quote(value); }
  void AddNull() { Sep(); out_ += "NULL"; }
  template <typename T>
  void AddNumber(T value) { Sep(); out_ += std::to_string(value); }
  void AddBool(bool value) { Sep(); out_ += value ? "t" : "f"; }
  std::string Finish() const { return "{" + out_ + "}"; }

 private:
  void Sep() {
    if (!first_) out_.push_back(',');
    first_ = false;
  }
  std::string out_;
  bool first_ = true;
};

// Counts the notifications of one channel.
class ChannelCounter final : public pqxx::notification_receiver {
 public:
  ChannelCounter(pqxx::connection_base& conn, const char* channel, int* counter)
      : pqxx::notification_receiver(conn, channel), counter_(counter) {}
  void operator()(const std::string&, int) override { ++*counter_; }

 private:
  int* counter_;
};

// The (ids, delays, reasons) array literals of a release statement.
inline std::vector<std::string> ReleaseArrays(const std::vector<Release>& releases) {
  ArrayBuilder ids, delays, reasons;
  for (const auto& r : releases) {
    ids.AddText(r.delivery_id);
    delays.AddNumber(r.delay_ms);
    reasons.AddText(r.reason);
  }
  return {ids.Finish(), delays.Finish(), reasons.Finish()};
}

}  // namespace pgcourier::store::detail

namespace pgcourier::store {

struct Store::Impl {
  pqxx::connection conn;
  StatementObserver observer;
  std::string delivery_events = "all";  // passed to record_outcomes
  int notifications = 0;
  int run_notifications = 0;
  std::unique_ptr<detail::ChannelCounter> receiver;
  std::unique_ptr<detail::ChannelCounter> run_receiver;

  explicit Impl(const std::string& url, StatementObserver obs) : conn(url), observer(std::move(obs)) {
    for (const auto& [name, sql] : DaemonStatements()) conn.prepare(name, sql);
    for (const auto& [name, sql] : RunStatements()) conn.prepare(name, sql);
  }

  // Times one statement for the observer.
  template <typename Fn>
  auto Timed(const char* name, Fn&& fn) -> decltype(fn()) {
    const auto start = std::chrono::steady_clock::now();
    auto result = fn();
    if (observer) {
      observer(name, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    return result;
  }

  std::vector<std::string> ExecRecord(pqxx::work& txn, const std::string& worker,
                                      const std::vector<model::DeliveryOutcome>& outcomes,
                                      const std::vector<std::string>& owners,
                                      std::vector<SubscriptionHealth>* health);
  std::vector<model::ClaimedDelivery> ExecClaim(pqxx::work& txn, const std::string& worker, const ClaimRequest& claim);
  std::vector<std::string> ExecRecordRuns(pqxx::work& txn, const std::string& worker,
                                          const std::vector<model::RunOutcome>& outcomes);
};

}  // namespace pgcourier::store
