#include "store/session.hpp"

#include <algorithm>
#include <cstdio>
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

}  // namespace

Session::Impl::Impl(const SessionOptions& options) : conn(options.database_url), observer(options.observer) {
  // Registered here, prepared by libpqxx on first use: a database that is
  // not migrated yet can still be asked which migrations it lacks.
  for (const auto& q : EmbeddedQueries()) conn.prepare(q.name, q.sql);
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
  pg::Translate("listen", [&] {
    for (const auto& channel : channels) {
      impl_->receivers.push_back(std::make_unique<ChannelReceiver>(impl_->conn, channel, &impl_->notified));
    }
    return 0;
  });
}

int Session::socket() const { return impl_->conn.sock(); }

std::vector<Session::Notified> Session::TakeNotifications() {
  return pg::Translate("notifications", [&] {
    impl_->conn.get_notifs();
    return std::exchange(impl_->notified, {});
  });
}

void Session::NotifyOutbox() {
  pg::Translate(query::kNotifyOutbox, [&] {
    pqxx::nontransaction txn(impl_->conn);
    impl_->Exec(txn, query::kNotifyOutbox);
    return 0;
  });
}

bool Session::TryBecomeLeader() {
  return pg::Translate(query::kTryLeadership, [&] {
    pqxx::nontransaction txn(impl_->conn);
    return impl_->Exec(txn, query::kTryLeadership)[0]["leader"].as<bool>();
  });
}

}  // namespace pgcourier::store
