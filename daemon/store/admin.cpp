#include "store/admin.hpp"

#include <algorithm>
#include <pqxx/pqxx>
#include <string_view>

namespace pgcourier::store {
namespace {

// What the server said, without the parts meant for SQL authors: the primary
// message ("ERROR:  " dropped) and any DETAIL or HINT; no CONTEXT, LINE or caret.
std::string ServerMessage(std::string_view text) {
  std::string out;
  while (!text.empty()) {
    const auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (out.empty()) {
      for (std::string_view prefix : {"ERROR:  ", "FATAL:  "}) {
        if (line.substr(0, prefix.size()) == prefix) line.remove_prefix(prefix.size());
      }
      out = line;
    } else if (line.rfind("DETAIL:", 0) == 0 || line.rfind("HINT:", 0) == 0) {
      const auto colon = line.find(':');
      const auto rest = line.find_first_not_of(' ', colon + 1);
      out.append("; ").append(line.substr(0, colon + 1)).append(" ").append(line.substr(std::min(rest, line.size())));
    }
  }
  return out;
}

template <typename Fn>
auto Guard(const char* what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const StoreError&) {
    throw;
  } catch (const pqxx::broken_connection& e) {
    throw StoreError(StoreError::Kind::kConnectionLost, std::string(what) + ": " + e.what());
  } catch (const pqxx::sql_error& e) {
    throw StoreError(StoreError::Kind::kStatement, std::string(what) + ": " + ServerMessage(e.what()));
  } catch (const std::exception& e) {
    throw StoreError(StoreError::Kind::kStatement, std::string(what) + ": " + e.what());
  }
}

std::string Text(const pqxx::field& f) { return f.is_null() ? std::string() : f.as<std::string>(); }

// Timestamps are selected as date_trunc('second', column)::text: ISO style
// (DateStyle is set on connecting), NULL stays NULL and 'infinity' reads as such.

// An unrevoked, unexpired secret: the ones the daemon signs with.
constexpr const char* kSecretIsActive = "(revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()))";
constexpr const char* kSecretColumns =
    "id, last4, date_trunc('second', created_at)::text, date_trunc('second', expires_at)::text";
constexpr const char* kNewestSecretFirst = " ORDER BY created_at DESC, id DESC";

SecretInfo SecretFromRow(const pqxx::row& r) { return {Text(r[0]), Text(r[1]), Text(r[2]), Text(r[3])}; }

// Columns of courier.subscription_health (as h), read by StateFromRow.
constexpr const char* kStateColumns =
    "h.subscription_id, h.tenant_id, h.url, h.state, "
    "date_trunc('second', CASE h.state WHEN 'paused' THEN h.paused_at WHEN 'disabled' THEN h.disabled_at END)::text, "
    "CASE h.state WHEN 'paused' THEN h.pause_reason WHEN 'disabled' THEN h.disabled_reason END, "
    "h.consecutive_failures, date_trunc('second', h.failing_since)::text, "
    "date_trunc('second', h.last_success_at)::text, date_trunc('second', h.last_failure_at)::text, "
    "h.last_error, h.held_deliveries ";

SubscriptionState StateFromRow(const pqxx::row& r, pqxx::row::size_type first) {
  SubscriptionState s;
  s.subscription_id = Text(r[first]);
  s.tenant_id = Text(r[first + 1]);
  s.url = Text(r[first + 2]);
  s.state = Text(r[first + 3]);
  s.since = Text(r[first + 4]);
  s.reason = Text(r[first + 5]);
  s.consecutive_failures = r[first + 6].as<int>();
  s.failing_since = Text(r[first + 7]);
  s.last_success_at = Text(r[first + 8]);
  s.last_failure_at = Text(r[first + 9]);
  s.last_error = Text(r[first + 10]);
  s.held_deliveries = r[first + 11].as<long long>();
  return s;
}

const std::string& SubscriptionSelect() {
  static const std::string sql =
      std::string("SELECT s.id, s.tenant_id, s.url, s.event_types::text, s.policy, "
                  "date_trunc('second', s.created_at)::text, ") +
      kStateColumns + "FROM courier.subscriptions s JOIN courier.subscription_health h ON h.subscription_id = s.id ";
  return sql;
}

SubscriptionInfo SubscriptionFromRow(const pqxx::row& r) {
  SubscriptionInfo info;
  info.id = Text(r[0]);
  info.tenant_id = Text(r[1]);
  info.url = Text(r[2]);
  info.event_types = Text(r[3]);
  info.policy = Text(r[4]);
  info.created_at = Text(r[5]);
  info.state = StateFromRow(r, 6);
  return info;
}

// A call of a SQL function in named notation with only the arguments given,
// so the function's own defaults apply to the others.
class NamedCall {
 public:
  explicit NamedCall(std::string function) : function_(std::move(function)) {}

  NamedCall& Arg(std::string_view name, std::string value, std::string_view type = "text") {
    params_.push_back(std::move(value));
    if (!args_.empty()) args_ += ", ";
    args_.append(name).append(" => $").append(std::to_string(params_.size())).append("::").append(type);
    return *this;
  }
  NamedCall& ArgUnlessEmpty(std::string_view name, std::string value, std::string_view type = "text") {
    return value.empty() ? *this : Arg(name, std::move(value), type);
  }

  // `select` is what comes before the call: "SELECT " or "SELECT a, b FROM ".
  pqxx::row Exec1(pqxx::transaction_base& txn, std::string_view select) const {
    return txn.exec_params1(std::string(select) + function_ + "(" + args_ + ")",
                            pqxx::prepare::make_dynamic_params(params_));
  }

 private:
  std::string function_;
  std::string args_;
  std::vector<std::string> params_;
};

}  // namespace

struct AdminStore::Impl {
  pqxx::connection conn;
  explicit Impl(const std::string& url) : conn(url) { conn.set_variable("DateStyle", "ISO"); }

  std::vector<SecretInfo> ActiveSecrets(pqxx::transaction_base& txn, const std::string& subscription_id) {
    std::vector<SecretInfo> out;
    for (const auto& r : txn.exec_params(std::string("SELECT ") + kSecretColumns +
                                             " FROM courier.subscription_secrets WHERE subscription_id = $1 AND " +
                                             kSecretIsActive + kNewestSecretFirst,
                                         subscription_id)) {
      out.push_back(SecretFromRow(r));
    }
    return out;
  }

  SubscriptionState State(pqxx::transaction_base& txn, const std::string& subscription_id) {
    return StateFromRow(
        txn.exec_params1(std::string("SELECT ") + kStateColumns +
                             "FROM courier.subscription_health h WHERE h.subscription_id = $1",
                         subscription_id),
        0);
  }

  // Locks the subscription's row for the rest of the transaction, so that
  // changes to it and its secrets are serialized; false if there is none.
  bool LockSubscription(pqxx::transaction_base& txn, const std::string& subscription_id) {
    return !txn.exec_params("SELECT 1 FROM courier.subscriptions WHERE id = $1 FOR UPDATE", subscription_id).empty();
  }

  // courier.pause_subscription / disable_subscription; the state afterwards.
  std::optional<SubscriptionState> Control(const char* function, const std::string& id, const std::string& reason) {
    pqxx::work txn(conn);
    if (!LockSubscription(txn, id)) return std::nullopt;
    NamedCall(function).Arg("subscription_id", id).ArgUnlessEmpty("reason", reason).Exec1(txn, "SELECT ");
    auto state = State(txn, id);
    txn.commit();
    return state;
  }
};

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
    auto id = row[0].as<std::string>();
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
    const auto rows = txn.exec_params(SubscriptionSelect() + "WHERE $1 = '' OR s.tenant_id = $1 "
                                                             "ORDER BY s.tenant_id, s.created_at, s.id",
                                      tenant_id);
    std::vector<SubscriptionInfo> out;
    for (const auto& r : rows) {
      out.push_back(SubscriptionFromRow(r));
      out.back().secrets = impl_->ActiveSecrets(txn, out.back().id);
    }
    return out;
  });
}

std::optional<SubscriptionInfo> AdminStore::ShowSubscription(const std::string& id) {
  return Guard("show subscription", [&]() -> std::optional<SubscriptionInfo> {
    pqxx::read_transaction txn(impl_->conn);
    const auto rows = txn.exec_params(SubscriptionSelect() + "WHERE s.id = $1", id);
    if (rows.empty()) return std::nullopt;
    auto info = SubscriptionFromRow(rows[0]);
    info.secrets = impl_->ActiveSecrets(txn, id);
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

std::optional<SubscriptionState> AdminStore::PauseSubscription(const std::string& id, const std::string& reason) {
  return Guard("pause subscription", [&] { return impl_->Control("courier.pause_subscription", id, reason); });
}

std::optional<SubscriptionState> AdminStore::DisableSubscription(const std::string& id, const std::string& reason) {
  return Guard("disable subscription", [&] { return impl_->Control("courier.disable_subscription", id, reason); });
}

std::optional<int> AdminStore::ResumeSubscription(const std::string& id) {
  return Guard("resume subscription", [&]() -> std::optional<int> {
    pqxx::work txn(impl_->conn);
    if (!impl_->LockSubscription(txn, id)) return std::nullopt;
    const int released =
        NamedCall("courier.resume_subscription").Arg("subscription_id", id).Exec1(txn, "SELECT ")[0].as<int>();
    txn.commit();
    return released;
  });
}

std::vector<SubscriptionState> AdminStore::SubscriptionsNeedingAttention() {
  return Guard("subscription health", [&] {
    pqxx::read_transaction txn(impl_->conn);
    std::vector<SubscriptionState> out;
    for (const auto& r : txn.exec(std::string("SELECT ") + kStateColumns +
                                  "FROM courier.subscription_health h "
                                  "WHERE h.state <> 'active' OR h.consecutive_failures > 0 "
                                  "ORDER BY h.tenant_id, h.subscription_id")) {
      out.push_back(StateFromRow(r, 0));
    }
    return out;
  });
}

std::optional<SecretRotation> AdminStore::RotateSecret(const std::string& subscription_id,
                                                       const std::string& sealed_secret, const std::string& last4,
                                                       std::chrono::seconds grace) {
  return Guard("rotate secret", [&]() -> std::optional<SecretRotation> {
    pqxx::work txn(impl_->conn);
    if (!impl_->LockSubscription(txn, subscription_id)) return std::nullopt;
    SecretRotation rotation;
    rotation.created = SecretFromRow(
        txn.exec_params1(std::string("INSERT INTO courier.subscription_secrets (subscription_id, sealed_secret, last4) "
                                     "VALUES ($1, $2, $3) RETURNING ") +
                             kSecretColumns,
                         subscription_id, sealed_secret, last4));
    // The other active secrets: those without an earlier expiry now expire
    // after the grace period (the outer SELECT sees them as they were).
    const auto others = txn.exec_params(
        std::string("WITH expiring AS ("
                    "  UPDATE courier.subscription_secrets SET expires_at = now() + $3::bigint * interval '1 second'"
                    "  WHERE subscription_id = $1 AND id <> $2 AND revoked_at IS NULL"
                    "    AND (expires_at IS NULL OR expires_at > now() + $3::bigint * interval '1 second')"
                    "  RETURNING ") +
            kSecretColumns + ", true) "
            "SELECT * FROM expiring "
            "UNION ALL SELECT " + kSecretColumns + ", false FROM courier.subscription_secrets "
            "WHERE subscription_id = $1 AND id <> $2 AND " + kSecretIsActive +
            " AND id NOT IN (SELECT id FROM expiring) "
            "ORDER BY 3 DESC, 1 DESC",
        subscription_id, rotation.created.id, static_cast<long long>(grace.count()));
    for (const auto& r : others) (r[4].as<bool>() ? rotation.expiring : rotation.kept).push_back(SecretFromRow(r));
    txn.commit();
    return rotation;
  });
}

SecretRevocation AdminStore::RevokeSecrets(const std::string& subscription_id, const std::string& secret_id) {
  using Result = SecretRevocation::Result;
  return Guard("revoke secret", [&] {
    pqxx::work txn(impl_->conn);
    SecretRevocation out;
    if (!impl_->LockSubscription(txn, subscription_id)) {
      out.result = Result::kNoSubscription;
      return out;
    }
    // $1 subscription, then the condition on its secrets; the revoked ones come back newest first.
    const auto revoke = [&](const std::string& which, auto&&... more) {
      return txn.exec_params(std::string("WITH revoked AS (UPDATE courier.subscription_secrets SET revoked_at = now() "
                                         "WHERE subscription_id = $1 AND ") +
                                 which + " RETURNING id, last4, created_at, expires_at) SELECT " + kSecretColumns +
                                 " FROM revoked" + kNewestSecretFirst,
                             subscription_id, more...);
    };
    pqxx::result revoked;
    if (secret_id.empty()) {
      revoked = revoke(std::string(kSecretIsActive) +
                       " AND id <> (SELECT id FROM courier.subscription_secrets WHERE subscription_id = $1 AND " +
                       kSecretIsActive + kNewestSecretFirst + " LIMIT 1)");
    } else {
      const auto found = txn.exec_params(std::string("SELECT ") + kSecretIsActive +
                                             " FROM courier.subscription_secrets WHERE subscription_id = $1 AND id = $2",
                                         subscription_id, secret_id);
      out.active = impl_->ActiveSecrets(txn, subscription_id);
      if (found.empty()) {
        out.result = Result::kUnknownSecret;
      } else if (!found[0][0].as<bool>()) {
        out.result = Result::kNotActive;
      } else if (out.active.size() <= 1) {
        out.result = Result::kLastActiveSecret;
      }
      if (out.result != Result::kRevoked) return out;
      revoked = revoke("id = $2", secret_id);
    }
    for (const auto& r : revoked) out.revoked.push_back(SecretFromRow(r));
    out.active = impl_->ActiveSecrets(txn, subscription_id);
    txn.commit();
    return out;
  });
}

int AdminStore::ReplayDeliveries(const ReplayFilter& filter) {
  return Guard("replay deliveries", [&] {
    NamedCall call("courier.replay_deliveries");
    call.ArgUnlessEmpty("tenant_id", filter.tenant_id)
        .ArgUnlessEmpty("subscription_id", filter.subscription_id)
        .ArgUnlessEmpty("event_type", filter.event_type)
        .ArgUnlessEmpty("since", filter.since, "timestamptz")
        .ArgUnlessEmpty("until", filter.until, "timestamptz")
        .Arg("include_delivered", filter.include_delivered ? "true" : "false", "boolean")
        .Arg("dry_run", filter.dry_run ? "true" : "false", "boolean");
    if (!filter.statuses.empty()) {
      std::vector<const std::string*> statuses;
      for (const auto& s : filter.statuses) statuses.push_back(&s);
      call.Arg("statuses", ToTextArrayLiteral(statuses), "text[]");
    }
    pqxx::work txn(impl_->conn);
    const int n = call.Exec1(txn, "SELECT ")[0].as<int>();
    if (!filter.dry_run) txn.commit();  // a dry run changes nothing, whatever the function does
    return n;
  });
}

RedeliverResult AdminStore::RedeliverEvents(const RedeliverRequest& request) {
  return Guard("redeliver events", [&] {
    NamedCall call("courier.redeliver_events");
    call.Arg("subscription_id", request.subscription_id)
        .ArgUnlessEmpty("from_event", request.from_event)
        .ArgUnlessEmpty("since", request.since, "timestamptz");
    if (request.max_events) call.Arg("max_events", std::to_string(*request.max_events), "integer");
    pqxx::work txn(impl_->conn);
    const auto row = call.Exec1(txn, "SELECT events_processed, next_cursor FROM ");
    txn.commit();
    return RedeliverResult{row[0].as<int>(), Text(row[1])};
  });
}

std::optional<DeliveryDetail> AdminStore::InspectDelivery(const std::string& id) {
  return Guard("inspect delivery", [&]() -> std::optional<DeliveryDetail> {
    pqxx::read_transaction txn(impl_->conn);
    const auto rows = txn.exec_params(
        "SELECT id, tenant_id, status, attempts, subscription_id, url, event_id, event_type, "
        "       date_trunc('second', next_attempt_at)::text, lease_owner, date_trunc('second', lease_expires_at)::text, "
        "       last_status_code::text, last_error, date_trunc('second', created_at)::text, "
        "       date_trunc('second', updated_at)::text, date_trunc('second', completed_at)::text "
        "FROM courier.delivery_status WHERE id = $1",
        id);
    if (rows.empty()) return std::nullopt;
    const auto& r = rows[0];
    DeliveryDetail d;
    d.id = Text(r[0]);
    d.tenant_id = Text(r[1]);
    d.status = Text(r[2]);
    d.attempts = r[3].as<int>();
    d.subscription_id = Text(r[4]);
    d.url = Text(r[5]);
    d.event_id = Text(r[6]);
    d.event_type = Text(r[7]);
    d.next_attempt_at = Text(r[8]);
    d.lease_owner = Text(r[9]);
    d.lease_expires_at = Text(r[10]);
    d.last_status_code = Text(r[11]);
    d.last_error = Text(r[12]);
    d.created_at = Text(r[13]);
    d.updated_at = Text(r[14]);
    d.completed_at = Text(r[15]);
    for (const auto& a : txn.exec_params(
             "SELECT attempt, to_char(started_at, 'YYYY-MM-DD HH24:MI:SS.MSOF'), duration_ms, status_code::text, "
             "       outcome, error_class, retryable, error_summary, worker "
             "FROM courier.delivery_timeline WHERE delivery_id = $1 ORDER BY attempt",
             id)) {
      d.timeline.push_back({a[0].as<int>(), Text(a[1]), a[2].as<double>(), Text(a[3]), Text(a[4]), Text(a[5]),
                            a[6].as<bool>(), Text(a[7]), Text(a[8])});
    }
    return d;
  });
}

}  // namespace pgcourier::store
