#include "store/admin.hpp"

#include <pqxx/pqxx>

namespace pgcourier::store {
namespace {

template <typename Fn>
auto Guard(const char* what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const StoreError&) {
    throw;
  } catch (const pqxx::broken_connection& e) {
    throw StoreError(StoreError::Kind::kConnectionLost, std::string(what) + ": " + e.what());
  } catch (const std::exception& e) {
    throw StoreError(StoreError::Kind::kStatement, std::string(what) + ": " + e.what());
  }
}

std::string Text(const pqxx::field& f) { return f.is_null() ? std::string() : f.as<std::string>(); }

}  // namespace

struct AdminStore::Impl {
  pqxx::connection conn;
  explicit Impl(const std::string& url) : conn(url) {}

  void FillSecrets(pqxx::transaction_base& txn, SubscriptionInfo& info) {
    const auto rows = txn.exec_params(
        "SELECT id, last4, to_char(created_at, 'YYYY-MM-DD HH24:MI:SSOF'), "
        "       coalesce(to_char(expires_at, 'YYYY-MM-DD HH24:MI:SSOF'), '') "
        "FROM courier.subscription_secrets "
        "WHERE subscription_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) "
        "ORDER BY created_at DESC",
        info.id);
    for (const auto& r : rows) info.secrets.push_back({Text(r[0]), Text(r[1]), Text(r[2]), Text(r[3])});
  }

  SubscriptionInfo FromRow(const pqxx::row& r) {
    SubscriptionInfo info;
    info.id = Text(r[0]);
    info.tenant_id = Text(r[1]);
    info.url = Text(r[2]);
    info.event_types = Text(r[3]);
    info.policy = Text(r[4]);
    info.active = r[5].as<bool>();
    info.created_at = Text(r[6]);
    return info;
  }
};

constexpr const char* kSubscriptionColumns =
    "SELECT id, tenant_id, url, event_types::text, policy, active, "
    "to_char(created_at, 'YYYY-MM-DD HH24:MI:SSOF') FROM courier.subscriptions ";

AdminStore::AdminStore(const std::string& database_url) {
  Guard("connect", [&] {
    impl_ = std::make_unique<Impl>(database_url);
    return 0;
  });
}
AdminStore::~AdminStore() = default;

std::string AdminStore::CreateSubscription(
    const NewSubscription& sub, const std::function<std::pair<std::string, std::string>(const std::string&)>& seal) {
  return Guard("create subscription", [&] {
    pqxx::work txn(impl_->conn);
    std::vector<const std::string*> types;
    for (const auto& t : sub.event_types) types.push_back(&t);
    const std::string types_literal = ToTextArrayLiteral(types);
    const auto row = txn.exec_params1(
        "INSERT INTO courier.subscriptions (id, tenant_id, url, event_types, policy, description) "
        "VALUES (coalesce(nullif($1, ''), courier.new_id('sub_')), $2, $3, $4::text[], $5, nullif($6, '')) "
        "RETURNING id",
        sub.id, sub.tenant_id, sub.url, types_literal, sub.policy, sub.description);
    const std::string id = row[0].as<std::string>();
    const auto [sealed, last4] = seal(id);
    txn.exec_params("INSERT INTO courier.subscription_secrets (subscription_id, sealed_secret, last4) VALUES ($1, $2, $3)",
                    id, sealed, last4);
    txn.commit();
    return id;
  });
}

std::vector<SubscriptionInfo> AdminStore::ListSubscriptions(const std::string& tenant_id) {
  return Guard("list subscriptions", [&] {
    pqxx::read_transaction txn(impl_->conn);
    const auto rows = txn.exec_params(std::string(kSubscriptionColumns) +
                                          "WHERE $1 = '' OR tenant_id = $1 ORDER BY tenant_id, created_at",
                                      tenant_id);
    std::vector<SubscriptionInfo> out;
    for (const auto& r : rows) {
      out.push_back(impl_->FromRow(r));
      impl_->FillSecrets(txn, out.back());
    }
    return out;
  });
}

std::optional<SubscriptionInfo> AdminStore::ShowSubscription(const std::string& id) {
  return Guard("show subscription", [&]() -> std::optional<SubscriptionInfo> {
    pqxx::read_transaction txn(impl_->conn);
    const auto rows = txn.exec_params(std::string(kSubscriptionColumns) + "WHERE id = $1", id);
    if (rows.empty()) return std::nullopt;
    auto info = impl_->FromRow(rows[0]);
    impl_->FillSecrets(txn, info);
    for (const auto& r : txn.exec_params(
             "SELECT status, count(*) FROM courier.deliveries WHERE subscription_id = $1 GROUP BY status ORDER BY 1",
             id)) {
      info.deliveries_by_status.emplace_back(Text(r[0]), r[1].as<long long>());
    }
    return info;
  });
}

std::string AdminStore::Publish(const std::string& tenant_id, const std::string& event_type,
                                const std::string& payload_json, const std::string& idempotency_key,
                                const std::string& trace_id) {
  return Guard("publish", [&] {
    pqxx::work txn(impl_->conn);
    const auto row = txn.exec_params1("SELECT courier.publish($1, $2, $3::jsonb, nullif($4, ''), nullif($5, ''))",
                                      tenant_id, event_type, payload_json, idempotency_key, trace_id);
    txn.commit();
    return row[0].as<std::string>();
  });
}

std::vector<StatusRow> AdminStore::Status() {
  return Guard("status", [&] {
    pqxx::read_transaction txn(impl_->conn);
    std::vector<StatusRow> out;
    for (const auto& r : txn.exec(
             "SELECT status, deliveries, due_now, coalesce(to_char(oldest_due_at, 'YYYY-MM-DD HH24:MI:SSOF'), '') "
             "FROM courier.queue_summary ORDER BY status")) {
      out.push_back({Text(r[0]), r[1].as<long long>(), r[2].as<long long>(), Text(r[3])});
    }
    return out;
  });
}

std::vector<RecentDelivery> AdminStore::Recent(int limit) {
  return Guard("recent deliveries", [&] {
    pqxx::read_transaction txn(impl_->conn);
    std::vector<RecentDelivery> out;
    for (const auto& r : txn.exec_params(
             "SELECT id, event_type, subscription_id, status, attempts, coalesce(last_status_code::text, ''), "
             "coalesce(last_error, ''), to_char(updated_at, 'YYYY-MM-DD HH24:MI:SS.MS') "
             "FROM courier.delivery_status ORDER BY updated_at DESC LIMIT $1",
             limit)) {
      RecentDelivery d;
      d.id = Text(r[0]);
      d.event_type = Text(r[1]);
      d.subscription_id = Text(r[2]);
      d.status = Text(r[3]);
      d.attempts = r[4].as<int>();
      d.last_status_code = Text(r[5]);
      d.last_error = Text(r[6]);
      d.updated_at = Text(r[7]);
      out.push_back(std::move(d));
    }
    return out;
  });
}

}  // namespace pgcourier::store
