// The operator's statements (pgcourierctl, and later an HTTP gateway), by
// topic: subscriptions.hpp (subscriptions and their signing secrets),
// deliveries.hpp (publish, replay, redeliver, inspect), connections.hpp,
// credentials.hpp and runs.hpp (integration runs), status.hpp (the summaries
// of `pgcourierctl status`). Each topic is a small class over one
// admin::Connection; writes go through the management functions of
// sql/schema/50_management.sql where they exist, so the CLI and SQL callers
// meet the same rules.
//
// Connection owns one libpq connection (DateStyle ISO). Not thread-safe: one
// thread at a time, and the topic objects must not outlive it. Every function
// throws StoreError (store/errors.hpp; sqlstate() says what the server refused).
//
// Timestamps are display text in ISO style to the second
// ("2026-11-22 05:00:00+00"); empty means NULL (never, or not set).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "store/errors.hpp"

namespace pgcourier::store::admin {

class Connection {
 public:
  explicit Connection(const std::string& database_url);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  struct Impl;  // daemon/store/admin/impl.hpp: the libpqxx side, internal to store/
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// One attempt of courier.delivery_timeline or courier.run_timeline.
struct AttemptInfo {
  int attempt = 0;
  std::string started_at;  // to the millisecond
  double duration_ms = 0;
  std::optional<int> status_code;  // nullopt: no HTTP response
  std::string outcome;
  std::string error_class;
  bool retryable = false;
  std::string error_summary;
  std::string worker;
  std::string error_code;                   // runs only
  std::optional<int> credential_version;    // runs only; nullopt: no credential
};

}  // namespace pgcourier::store::admin
