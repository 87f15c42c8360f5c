#include "store/admin/subscriptions.hpp"

#include <string_view>

#include "store/admin/impl.hpp"
#include "store/admin/subscriptions_sql.hpp"
#include "store/pg/arrays.hpp"

namespace pgcourier::store::admin {
namespace {

// Timestamps are selected as date_trunc('second', column)::text: ISO style
// (DateStyle is set on connecting), NULL stays NULL, 'infinity' reads as such.

// The active secrets of subscription $1: unrevoked, unexpired; newest first.
constexpr const char* kActiveSecrets = R"(
SELECT x.id, x.last4, date_trunc('second', x.created_at)::text AS created_at,
       date_trunc('second', x.expires_at)::text AS expires_at, x.public_key
FROM courier.subscription_secrets x
WHERE x.subscription_id = $1 AND x.revoked_at IS NULL AND (x.expires_at IS NULL OR x.expires_at > now())
ORDER BY x.created_at DESC, x.id DESC)";

const pg::RowMapping<SecretInfo> kSecret = {
    {"id", &SecretInfo::id},
    {"last4", &SecretInfo::last4},
    {"created_at", &SecretInfo::created_at},
    {"expires_at", &SecretInfo::expires_at},
    {"public_key", &SecretInfo::public_key},
};

const std::string kStateOf =
    "SELECT " + kStateColumns + "FROM courier.subscription_health h WHERE h.subscription_id = $1";

// courier.subscriptions s with its state (h); callers add WHERE and ORDER BY.
const std::string kSubscriptions =
    "SELECT s.id, s.event_types, s.policy, s.description, s.ordering, s.ordering_key_field, s.max_in_flight, "
    "  s.rate_limit_per_second, s.rate_limit_burst, s.filter::text AS filter, s.scope::text AS scope_json, "
    "  date_trunc('second', s.created_at)::text AS created_at, "
    "  date_trunc('second', s.updated_at)::text AS updated_at, " +
    kStateColumns + "FROM courier.subscriptions s JOIN courier.subscription_health h ON h.subscription_id = s.id ";

const pg::RowMapping<SubscriptionInfo> kSubscription = {
    {"id", &SubscriptionInfo::id},
    {"tenant_id", &SubscriptionInfo::tenant_id},
    {"url", &SubscriptionInfo::url},
    {"event_types", &SubscriptionInfo::event_types},
    {"policy", &SubscriptionInfo::policy},
    {"description", &SubscriptionInfo::description},
    {"ordering", &SubscriptionInfo::ordering},
    {"ordering_key_field", &SubscriptionInfo::ordering_key_field},
    {"max_in_flight", &SubscriptionInfo::max_in_flight},
    {"rate_limit_per_second", &SubscriptionInfo::rate_limit_per_second},
    {"rate_limit_burst", &SubscriptionInfo::rate_limit_burst},
    {"filter", &SubscriptionInfo::filter},
    {"scope_json", &SubscriptionInfo::scope_json},
    {"created_at", &SubscriptionInfo::created_at},
    {"updated_at", &SubscriptionInfo::updated_at},
};

struct ChangedSecret {
  SecretInfo secret;
  std::string change;  // created, expiring, kept (rotate); revoked, active (revoke)
};

// The rows of rotate_subscription_secret() / revoke_subscription_secrets(), in the function's order.
constexpr std::string_view kChangedSecrets =
    "SELECT r.id, r.last4, date_trunc('second', r.created_at)::text AS created_at, "
    "  date_trunc('second', r.expires_at)::text AS expires_at, r.change, "
    "  (SELECT k.public_key FROM courier.subscription_secrets k WHERE k.id = r.id) AS public_key FROM ";
constexpr std::string_view kInFunctionOrder = " WITH ORDINALITY r ORDER BY r.ordinality";

std::vector<ChangedSecret> ReadChangedSecrets(const pqxx::result& rows) {
  std::vector<ChangedSecret> out;
  for (const auto& row : rows) out.push_back({kSecret.Read(row), Text(row["change"])});
  return out;
}

SubscriptionInfo ReadSubscription(pqxx::transaction_base& txn, const pqxx::row& row) {
  SubscriptionInfo info = kSubscription.Read(row);
  info.state = kState.Read(row);
  info.secrets = kSecret.ReadAll(txn.exec_params(kActiveSecrets, info.id));
  return info;
}

std::optional<SubscriptionInfo> ShowIn(pqxx::transaction_base& txn, const std::string& id) {
  const auto rows = txn.exec_params(kSubscriptions + "WHERE s.id = $1", id);
  if (rows.empty()) return std::nullopt;
  auto info = ReadSubscription(txn, rows[0]);
  for (const auto& r : txn.exec_params(
           "SELECT d.status, count(*) AS deliveries FROM courier.deliveries d WHERE d.subscription_id = $1 "
           "GROUP BY d.status ORDER BY d.status",
           id)) {
    info.deliveries_by_status.emplace_back(Text(r["status"]), r["deliveries"].as<long long>());
  }
  return info;
}

bool IsNoData(const StoreError& e) { return e.sqlstate() == "P0002"; }

// courier.pause_subscription / disable_subscription (false: no such
// subscription); the state afterwards.
std::optional<SubscriptionState> Control(Connection& connection, const char* function, const std::string& id,
                                         const std::string& reason) {
  pqxx::work txn(connection.impl().conn);
  if (!NamedCall(function).Arg("subscription_id", id).ArgUnlessEmpty("reason", reason).Exec1(txn, "SELECT ")[0].as<bool>()) {
    return std::nullopt;
  }
  auto state = kState.Read(txn.exec_params1(kStateOf, id));
  txn.commit();
  return state;
}

}  // namespace

std::string Subscriptions::NewId() {
  return pg::Translate("new subscription id", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    return Text(txn.exec1("SELECT courier.new_id('sub_') AS id")["id"]);
  });
}

std::string Subscriptions::Create(const NewSubscription& sub) {
  return pg::Translate("create subscription", [&] {
    pqxx::work txn(connection_.impl().conn);
    NamedCall call("courier.create_subscription");
    call.Arg("tenant_id", sub.tenant_id)
        .Arg("url", sub.url)
        .Arg("event_types", pg::TextArray(sub.event_types), "text[]")
        .Arg("policy", sub.policy)
        .ArgUnlessEmpty("description", sub.description)
        .Arg("subscription_id", sub.id)
        .ArgUnlessEmpty("sealed_secret", sub.public_key.empty() ? sub.sealed_secret : "")
        .ArgUnlessEmpty("secret_last4", sub.public_key.empty() ? sub.secret_last4 : "");
    auto id = Text(call.Exec1(txn, "SELECT ")[0]);
    if (!sub.public_key.empty()) {
      NamedCall("courier.rotate_subscription_key")
          .Arg("subscription_id", id)
          .Arg("sealed_secret", sub.sealed_secret)
          .Arg("public_key", sub.public_key)
          .Arg("grace", "0 seconds", "interval")
          .Exec(txn, "SELECT 1 FROM ");
    }
    if (!sub.filter.empty() || !sub.scope_json.empty()) {
      txn.exec_params(
          "SELECT 1 FROM courier.update_subscription($1, jsonb_strip_nulls(jsonb_build_object("
          "'filter', nullif($2, ''), 'scope', nullif($3, '')::jsonb)))",
          id, sub.filter, sub.scope_json);
    }
    txn.commit();
    return id;
  });
}

std::optional<SubscriptionInfo> Subscriptions::Update(const std::string& id, const std::string& changes_json) {
  try {
    return pg::Translate("update subscription", [&] {
      pqxx::work txn(connection_.impl().conn);
      NamedCall("courier.update_subscription").Arg("subscription_id", id).Arg("changes", changes_json, "jsonb").Exec(
          txn, "SELECT 1 FROM ");
      auto info = ShowIn(txn, id);
      txn.commit();
      return info;
    });
  } catch (const StoreError& e) {
    if (IsNoData(e)) return std::nullopt;
    throw;
  }
}

std::vector<SubscriptionInfo> Subscriptions::List(const std::string& tenant_id) {
  return pg::Translate("list subscriptions", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    const auto rows = txn.exec_params(kSubscriptions +
                                          "WHERE $1 = '' OR s.tenant_id = $1 ORDER BY s.tenant_id, s.created_at, s.id",
                                      tenant_id);
    std::vector<SubscriptionInfo> out;
    out.reserve(rows.size());
    for (const auto& row : rows) out.push_back(ReadSubscription(txn, row));
    return out;
  });
}

std::optional<SubscriptionInfo> Subscriptions::Show(const std::string& id) {
  return pg::Translate("show subscription", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    return ShowIn(txn, id);
  });
}

bool Subscriptions::TenantHasSubscriptions(const std::string& tenant_id) {
  return pg::Translate("tenant subscriptions", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    return txn
        .exec_params1("SELECT EXISTS (SELECT 1 FROM courier.subscription_health h WHERE h.tenant_id = $1) AS found",
                      tenant_id)["found"]
        .as<bool>();
  });
}

std::optional<SubscriptionState> Subscriptions::Pause(const std::string& id, const std::string& reason) {
  return pg::Translate("pause subscription",
                       [&] { return Control(connection_, "courier.pause_subscription", id, reason); });
}

std::optional<SubscriptionState> Subscriptions::Disable(const std::string& id, const std::string& reason) {
  return pg::Translate("disable subscription",
                       [&] { return Control(connection_, "courier.disable_subscription", id, reason); });
}

std::optional<int> Subscriptions::Resume(const std::string& id) {
  try {
    return pg::Translate("resume subscription", [&]() -> std::optional<int> {
      pqxx::work txn(connection_.impl().conn);
      const int released =
          NamedCall("courier.resume_subscription").Arg("subscription_id", id).Exec1(txn, "SELECT ")[0].as<int>();
      txn.commit();
      return released;
    });
  } catch (const StoreError& e) {
    if (IsNoData(e)) return std::nullopt;
    throw;
  }
}

std::optional<SecretRotation> Subscriptions::RotateSecret(const std::string& subscription_id,
                                                          const std::string& sealed_secret, const std::string& last4,
                                                          std::chrono::seconds grace, const std::string& public_key) {
  try {
    return pg::Translate("rotate secret", [&]() -> std::optional<SecretRotation> {
      pqxx::work txn(connection_.impl().conn);
      NamedCall call(public_key.empty() ? "courier.rotate_subscription_secret" : "courier.rotate_subscription_key");
      call.Arg("subscription_id", subscription_id).Arg("sealed_secret", sealed_secret);
      if (public_key.empty()) {
        call.Arg("secret_last4", last4);
      } else {
        call.Arg("public_key", public_key);
      }
      const auto rows = call.Arg("grace", std::to_string(grace.count()) + " seconds", "interval")
                            .Exec(txn, kChangedSecrets, kInFunctionOrder);
      SecretRotation rotation;
      for (auto& changed : ReadChangedSecrets(rows)) {
        if (changed.change == "created") {
          rotation.created = std::move(changed.secret);
        } else {
          (changed.change == "expiring" ? rotation.expiring : rotation.kept).push_back(std::move(changed.secret));
        }
      }
      txn.commit();
      return rotation;
    });
  } catch (const StoreError& e) {
    if (IsNoData(e)) return std::nullopt;
    throw;
  }
}

SecretRevocation Subscriptions::RevokeSecrets(const std::string& subscription_id, const std::string& secret_id) {
  return pg::Translate("revoke secret", [&] {
    pqxx::work txn(connection_.impl().conn);
    const auto rows = NamedCall("courier.revoke_subscription_secrets")
                          .Arg("subscription_id", subscription_id)
                          .ArgUnlessEmpty("secret_id", secret_id)
                          .Exec(txn, kChangedSecrets, kInFunctionOrder);
    SecretRevocation out;
    for (auto& changed : ReadChangedSecrets(rows)) {
      (changed.change == "revoked" ? out.revoked : out.active).push_back(std::move(changed.secret));
    }
    txn.commit();
    return out;
  });
}

}  // namespace pgcourier::store::admin
