#include "store/session.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "store/migrations.hpp"
#include "store/pg/session_impl.hpp"
#include "store/queries.hpp"

namespace pgcourier::store {
namespace {

// Counts the notifications of its channel.
class ChannelReceiver final : public pqxx::notification_receiver {
 public:
  ChannelReceiver(pqxx::connection_base& conn, const std::string& channel, std::vector<Session::Notified>* notified)
      : pqxx::notification_receiver(conn, channel), notified_(notified) {}
  void operator()(const std::string&, int) override {
    auto it = std::find_if(notified_->begin(), notified_->end(),
                           [&](const Session::Notified& n) { return n.channel == channel(); });
    if (it == notified_->end()) it = notified_->insert(notified_->end(), Session::Notified{channel(), 0});
    ++it->count;
  }

 private:
  std::vector<Session::Notified>* notified_;
};

// A conninfo value, quoted for the key=value form.
std::string Quoted(const char* value) {
  std::string out = "'";
  for (const char* p = value; *p; ++p) {
    if (*p == '\\' || *p == '\'') out += '\\';
    out += *p;
  }
  return out + "'";
}

}  // namespace

std::string WithDeadlines(const std::string& url, std::chrono::milliseconds timeout) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (options == nullptr) {
    std::string message = error ? error : "out of memory";
    PQfreemem(error);
    while (!message.empty() && message.back() == '\n') message.pop_back();
    throw StoreError(StoreError::Kind::kStatement, "database_url: " + message);
  }
  const long long seconds = std::max<long long>(1, timeout.count() / 1000);
  // A connection attempt (per host of the URL) gets a third of the timeout,
  // 2 to 10 s (libpq's minimum is 2): short enough that trying every host,
  // or a stop meanwhile, is not held long by a server that accepts TCP and
  // never answers. Keepalives: idle a third of the timeout, then a probe
  // every sixth, three of them: a dead peer is noticed within the timeout.
  const long long connect = std::clamp<long long>(seconds / 3, 2, 10);
  const long long idle = std::max<long long>(1, seconds / 3), interval = std::max<long long>(1, seconds / 6);
  std::map<std::string, std::string> wanted = {
      {"connect_timeout", std::to_string(connect)},
      {"keepalives", "1"},
      {"keepalives_idle", std::to_string(idle)},
      {"keepalives_interval", std::to_string(interval)},
      {"keepalives_count", "3"},
      {"tcp_user_timeout", std::to_string(timeout.count())},
  };
  std::string out;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    wanted.erase(o->keyword);
    out.append(out.empty() ? "" : " ").append(o->keyword).append("=").append(Quoted(o->val));
  }
  PQconninfoFree(options);
  for (const auto& [key, value] : wanted) out.append(out.empty() ? "" : " ").append(key).append("=").append(value);
  return out;
}

Session::Impl::Impl(const SessionOptions& options)
    : conn(options.watchdog ? WithDeadlines(options.database_url, options.round_trip_timeout) : options.database_url),
      observer(options.observer),
      watchdog(options.watchdog),
      round_trip_timeout(options.round_trip_timeout),
      prepared(options.prepared_statements) {
  // Registered here, prepared by libpqxx on first use: a database that is
  // not migrated yet can still be asked which migrations it lacks.
  for (const auto& q : EmbeddedQueries()) {
    if (prepared) {
      conn.prepare(q.name, q.sql);
    } else {
      text.emplace(q.name, q.sql);
    }
  }
  // Through a transaction pooler a SET would stay with whichever server
  // connection ran it: the watchdog's deadline is the bound there.
  if (prepared && options.statement_timeout.count() > 0) {
    Guarded("statement_timeout", [&] {
      pqxx::nontransaction txn(conn);
      txn.exec("SET statement_timeout = " + std::to_string(options.statement_timeout.count()));
      return 0;
    });
  }
}

Session::Session(const SessionOptions& options) {
  pg::Translate("connect", [&] {
    impl_ = std::make_unique<Impl>(options);
    return 0;
  });
}

Session::~Session() = default;

SchemaStatus Session::CheckSchema() {
  SchemaStatus status;
  const auto& migrations = EmbeddedMigrations();
  status.required_version = migrations.empty() ? 0 : migrations.back().version;
  std::set<int> applied;
  if (impl_->ExecRead(query::kSchemaTableExists)[0]["migrated"].as<bool>()) {
    for (const auto& row : impl_->ExecRead(query::kSchemaVersions)) applied.insert(row["version"].as<int>());
  }
  for (const auto& m : migrations) {
    if (applied.count(m.version)) {
      status.current_version = std::max(status.current_version, m.version);
    } else {
      char label[16];
      std::snprintf(label, sizeof label, "%03d_", m.version);
      status.missing.push_back(label + m.name);
    }
  }
  return status;
}

void Session::Listen(const std::vector<std::string>& channels) {
  impl_->Guarded("listen", [&] {
    for (const auto& channel : channels) {
      impl_->receivers.push_back(std::make_unique<ChannelReceiver>(impl_->conn, channel, &impl_->notified));
    }
    return 0;
  });
}

int Session::socket() const { return impl_->conn.sock(); }

std::vector<Session::Notified> Session::TakeNotifications() {
  return impl_->Guarded("notifications", [&] {
    impl_->conn.get_notifs();
    return std::exchange(impl_->notified, {});
  });
}

void Session::NotifyOutbox() {
  impl_->Guarded(query::kNotifyOutbox, [&] {
    pqxx::nontransaction txn(impl_->conn);
    impl_->Exec(txn, query::kNotifyOutbox);
    return 0;
  });
}

bool Session::TryBecomeLeader() {
  return impl_->Guarded(query::kTryLeadership, [&] {
    pqxx::nontransaction txn(impl_->conn);
    return impl_->Exec(txn, query::kTryLeadership)[0]["leader"].as<bool>();
  });
}

std::int64_t Session::DatabaseNowMicros() {
  return impl_->ExecRead(query::kDatabaseNow)[0]["now_us"].as<std::int64_t>();
}

}  // namespace pgcourier::store
