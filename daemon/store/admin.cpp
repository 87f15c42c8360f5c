#include "store/admin.hpp"

#include "store/pg/arrays.hpp"
#include "store/pg/errors.hpp"

#include <algorithm>
#include <pqxx/pqxx>
#include <string_view>
#include <type_traits>
#include <variant>

namespace pgcourier::store {
namespace {

// Every statement below runs inside the store's one error translator.
template <typename Fn>
auto Guard(const char* what, Fn&& fn) -> decltype(fn()) {
  return pg::Translate(what, std::forward<Fn>(fn));
}

std::string Text(const pqxx::field& f) { return f.is_null() ? std::string() : f.as<std::string>(); }

// A SELECT list and the field of S each of its columns is read into, written
// side by side so that they cannot drift apart. Text fields read NULL as "".
template <typename S>
class Columns {
 public:
  using Field = std::variant<std::string S::*, int S::*, long long S::*, double S::*, bool S::*>;
  struct Column {
    const char* sql;
    Field field;
  };

  Columns(std::initializer_list<Column> columns) : columns_(columns) {}
  Columns(const Columns& first, std::initializer_list<Column> more) : columns_(first.columns_) {
    columns_.insert(columns_.end(), more);
  }

  pqxx::row::size_type size() const { return static_cast<pqxx::row::size_type>(columns_.size()); }

  // "a, b, c"
  std::string List() const {
    std::string out;
    for (const auto& c : columns_) out.append(out.empty() ? "" : ", ").append(c.sql);
    return out;
  }
  // "SELECT a, b, c " + from + rest
  std::string Select(std::string_view from, std::string_view rest = "") const {
    return "SELECT " + List() + " " + std::string(from) + std::string(rest);
  }

  // The columns from `first` on.
  S Read(const pqxx::row& row, pqxx::row::size_type first = 0) const {
    S out{};
    for (const auto& c : columns_) {
      const pqxx::field f = row[first++];
      std::visit(
          [&](auto member) {
            auto& target = out.*member;
            using T = std::remove_reference_t<decltype(target)>;
            if constexpr (std::is_same_v<T, std::string>) {
              target = Text(f);
            } else {
              target = f.template as<T>();
            }
          },
          c.field);
    }
    return out;
  }
  std::vector<S> ReadAll(const pqxx::result& rows) const {
    std::vector<S> out;
    for (const auto& r : rows) out.push_back(Read(r));
    return out;
  }

 private:
  std::vector<Column> columns_;
};

// Timestamps are selected as date_trunc('second', column)::text: ISO style
// (DateStyle is set on connecting), NULL stays NULL and 'infinity' reads as such.

// An unrevoked, unexpired secret: the ones the daemon signs with.
constexpr const char* kSecretIsActive = "(revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()))";
constexpr const char* kSecretColumns =
    "id, last4, date_trunc('second', created_at)::text, date_trunc('second', expires_at)::text";
constexpr const char* kNewestSecretFirst = " ORDER BY created_at DESC, id DESC";

SecretInfo SecretFromRow(const pqxx::row& r) { return {Text(r[0]), Text(r[1]), Text(r[2]), Text(r[3])}; }

// courier.subscription_health h.
const Columns<SubscriptionState> kStateColumns = {
    {"h.subscription_id", &SubscriptionState::subscription_id},
    {"h.tenant_id", &SubscriptionState::tenant_id},
    {"h.url", &SubscriptionState::url},
    {"h.state", &SubscriptionState::state},
    {"date_trunc('second', CASE h.state WHEN 'paused' THEN h.paused_at WHEN 'disabled' THEN h.disabled_at END)::text",
     &SubscriptionState::since},
    {"CASE h.state WHEN 'paused' THEN h.pause_reason WHEN 'disabled' THEN h.disabled_reason END",
     &SubscriptionState::reason},
    {"h.consecutive_failures", &SubscriptionState::consecutive_failures},
    {"date_trunc('second', h.failing_since)::text", &SubscriptionState::failing_since},
    {"date_trunc('second', h.last_success_at)::text", &SubscriptionState::last_success_at},
    {"date_trunc('second', h.last_failure_at)::text", &SubscriptionState::last_failure_at},
    {"h.last_error", &SubscriptionState::last_error},
    {"h.held_deliveries", &SubscriptionState::held_deliveries},
};

// courier.subscriptions s; its state follows (kStateColumns).
const Columns<SubscriptionInfo> kSubscriptionColumns = {
    {"s.id", &SubscriptionInfo::id},
    {"s.tenant_id", &SubscriptionInfo::tenant_id},
    {"s.url", &SubscriptionInfo::url},
    {"s.event_types::text", &SubscriptionInfo::event_types},
    {"s.policy", &SubscriptionInfo::policy},
    {"date_trunc('second', s.created_at)::text", &SubscriptionInfo::created_at},
};

const std::string& SubscriptionSelect() {
  static const std::string sql =
      kSubscriptionColumns.Select(", " + kStateColumns.List() +
                                  " FROM courier.subscriptions s "
                                  "JOIN courier.subscription_health h ON h.subscription_id = s.id ");
  return sql;
}

SubscriptionInfo SubscriptionFromRow(const pqxx::row& r) {
  auto info = kSubscriptionColumns.Read(r);
  info.state = kStateColumns.Read(r, kSubscriptionColumns.size());
  return info;
}

// courier.delivery_timeline or courier.run_timeline.
const Columns<AttemptInfo> kAttemptColumns = {
    {"attempt", &AttemptInfo::attempt},
    {"to_char(started_at, 'YYYY-MM-DD HH24:MI:SS.MSOF')", &AttemptInfo::started_at},
    {"duration_ms", &AttemptInfo::duration_ms},
    {"status_code::text", &AttemptInfo::status_code},
    {"outcome", &AttemptInfo::outcome},
    {"error_class", &AttemptInfo::error_class},
    {"retryable", &AttemptInfo::retryable},
    {"error_summary", &AttemptInfo::error_summary},
    {"worker", &AttemptInfo::worker},
};
const Columns<AttemptInfo> kRunAttemptColumns(kAttemptColumns,
                                              {
                                                  {"error_code", &AttemptInfo::error_code},
                                                  {"credential_version::text", &AttemptInfo::credential_version},
                                              });

// courier.delivery_status.
const Columns<DeliveryDetail> kDeliveryColumns = {
    {"id", &DeliveryDetail::id},
    {"tenant_id", &DeliveryDetail::tenant_id},
    {"status", &DeliveryDetail::status},
    {"attempts", &DeliveryDetail::attempts},
    {"subscription_id", &DeliveryDetail::subscription_id},
    {"url", &DeliveryDetail::url},
    {"event_id", &DeliveryDetail::event_id},
    {"event_type", &DeliveryDetail::event_type},
    {"date_trunc('second', next_attempt_at)::text", &DeliveryDetail::next_attempt_at},
    {"lease_owner", &DeliveryDetail::lease_owner},
    {"date_trunc('second', lease_expires_at)::text", &DeliveryDetail::lease_expires_at},
    {"last_status_code::text", &DeliveryDetail::last_status_code},
    {"last_error", &DeliveryDetail::last_error},
    {"date_trunc('second', created_at)::text", &DeliveryDetail::created_at},
    {"date_trunc('second', updated_at)::text", &DeliveryDetail::updated_at},
    {"date_trunc('second', completed_at)::text", &DeliveryDetail::completed_at},
};

// courier.delivery_status.
const Columns<RecentDelivery> kRecentColumns = {
    {"id", &RecentDelivery::id},
    {"event_type", &RecentDelivery::event_type},
    {"subscription_id", &RecentDelivery::subscription_id},
    {"status", &RecentDelivery::status},
    {"attempts", &RecentDelivery::attempts},
    {"coalesce(last_status_code::text, '')", &RecentDelivery::last_status_code},
    {"coalesce(last_error, '')", &RecentDelivery::last_error},
    {"to_char(updated_at, 'YYYY-MM-DD HH24:MI:SS.MS')", &RecentDelivery::updated_at},
};

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

// ---- integration runs ----

// courier.connection_health h: what the courier_operator role may read.
const Columns<ConnectionInfo> kConnectionHealthColumns = {
    {"h.id", &ConnectionInfo::id},
    {"h.tenant_id", &ConnectionInfo::tenant_id},
    {"h.provider", &ConnectionInfo::provider},
    {"h.base_url", &ConnectionInfo::base_url},
    {"h.auth_mode", &ConnectionInfo::auth_mode},
    {"h.status", &ConnectionInfo::status},
    {"h.status_reason", &ConnectionInfo::status_reason},
    {"h.health", &ConnectionInfo::health},
    {"h.consecutive_probe_failures", &ConnectionInfo::consecutive_probe_failures},
    {"date_trunc('second', h.last_checked_at)::text", &ConnectionInfo::last_checked_at},
    {"h.last_health_error", &ConnectionInfo::last_health_error},
    {"h.credential_id", &ConnectionInfo::credential_id},
    {"h.credential_version::text", &ConnectionInfo::credential_version},
    {"date_trunc('second', h.credential_expires_at)::text", &ConnectionInfo::credential_expires_at},
    {"h.runs_waiting", &ConnectionInfo::runs_waiting},
    {"h.open_failures", &ConnectionInfo::open_failures},
};
// With the settings of courier.connections c (kConnectionFrom).
const Columns<ConnectionInfo> kConnectionColumns(
    kConnectionHealthColumns,
    {
        {"c.api_key_header", &ConnectionInfo::api_key_header},
        {"c.token_url", &ConnectionInfo::token_url},
        {"c.client_id", &ConnectionInfo::client_id},
        {"c.scopes", &ConnectionInfo::scopes},
        {"c.health_check_method || ' ' || c.health_check_path", &ConnectionInfo::health_check},
        {"c.health_check_expected_status::text", &ConnectionInfo::expected_status},
        {"c.policy", &ConnectionInfo::policy},
        {"c.max_in_flight::text", &ConnectionInfo::max_in_flight},
        {"c.rate_limit_per_second::text", &ConnectionInfo::rate_limit_per_second},
        {"c.rate_limit_burst::text", &ConnectionInfo::rate_limit_burst},
        {"date_trunc('second', c.created_at)::text", &ConnectionInfo::created_at},
        {"date_trunc('second', c.updated_at)::text", &ConnectionInfo::updated_at},
    });
constexpr const char* kConnectionFrom = "FROM courier.connections c JOIN courier.connection_health h ON h.id = c.id ";

// courier.credentials c with its active version v; the expiry from courier.credential_expiry e.
const Columns<CredentialInfo> kCredentialColumns = {
    {"c.id", &CredentialInfo::id},
    {"c.tenant_id", &CredentialInfo::tenant_id},
    {"c.name", &CredentialInfo::name},
    {"c.status", &CredentialInfo::status},
    {"v.version::text", &CredentialInfo::active_version},
    {"v.fingerprint", &CredentialInfo::fingerprint},
    {"date_trunc('second', e.expires_at)::text", &CredentialInfo::expires_at},
    {"CASE WHEN e.expires_in <= interval '0' THEN 'expired' ELSE date_trunc('minute', e.expires_in)::text END",
     &CredentialInfo::expires_in},
    {"date_trunc('second', c.created_at)::text", &CredentialInfo::created_at},
    {"date_trunc('second', c.updated_at)::text", &CredentialInfo::updated_at},
};
constexpr const char* kCredentialFrom =
    "FROM courier.credentials c "
    "LEFT JOIN courier.credential_versions v ON v.credential_id = c.id AND v.status = 'active' "
    "LEFT JOIN courier.credential_expiry e ON e.credential_id = c.id ";

// courier.credential_versions: never sealed_secret.
const Columns<CredentialVersionInfo> kCredentialVersionColumns = {
    {"version", &CredentialVersionInfo::version},
    {"status", &CredentialVersionInfo::status},
    {"fingerprint", &CredentialVersionInfo::fingerprint},
    {"date_trunc('second', created_at)::text", &CredentialVersionInfo::created_at},
    {"date_trunc('second', activated_at)::text", &CredentialVersionInfo::activated_at},
    {"date_trunc('second', retired_at)::text", &CredentialVersionInfo::retired_at},
    {"date_trunc('second', expires_at)::text", &CredentialVersionInfo::expires_at},
    {"verification_error", &CredentialVersionInfo::verification_error},
};

// courier.run_status s with courier.runs r (kRunFrom) for the idempotency key and pointer.
const Columns<RunInfo> kRunColumns = {
    {"s.id", &RunInfo::id},
    {"s.tenant_id", &RunInfo::tenant_id},
    {"s.connection_id", &RunInfo::connection_id},
    {"s.provider", &RunInfo::provider},
    {"s.operation", &RunInfo::operation},
    {"s.method", &RunInfo::method},
    {"s.path", &RunInfo::path},
    {"s.status", &RunInfo::status},
    {"s.attempts", &RunInfo::attempts},
    {"date_trunc('second', s.next_attempt_at)::text", &RunInfo::next_attempt_at},
    {"s.lease_owner", &RunInfo::lease_owner},
    {"date_trunc('second', s.lease_expires_at)::text", &RunInfo::lease_expires_at},
    {"s.external_ref", &RunInfo::external_ref},
    {"s.last_status_code::text", &RunInfo::last_status_code},
    {"s.last_error", &RunInfo::last_error},
    {"s.last_error_code", &RunInfo::last_error_code},
    {"s.trace_id", &RunInfo::trace_id},
    {"date_trunc('second', s.created_at)::text", &RunInfo::created_at},
    {"date_trunc('second', s.started_at)::text", &RunInfo::started_at},
    {"date_trunc('second', s.completed_at)::text", &RunInfo::completed_at},
    {"round(s.latency_ms::numeric, 1)::text", &RunInfo::latency_ms},
    {"s.waiting_for", &RunInfo::waiting_for},
    {"r.idempotency_key", &RunInfo::idempotency_key},
    {"r.external_ref_pointer", &RunInfo::external_ref_pointer},
};
constexpr const char* kRunFrom = "FROM courier.run_status s JOIN courier.runs r ON r.id = s.id ";

// courier.failures f.
const Columns<FailureInfo> kFailureColumns = {
    {"f.id", &FailureInfo::id},
    {"date_trunc('second', f.created_at)::text", &FailureInfo::created_at},
    {"f.category", &FailureInfo::category},
    {"f.error_code", &FailureInfo::error_code},
    {"f.message", &FailureInfo::message},
    {"f.attempt::text", &FailureInfo::attempt},
    {"f.next_action", &FailureInfo::next_action},
    {"date_trunc('second', f.resolved_at)::text", &FailureInfo::resolved_at},
    {"f.resolution", &FailureInfo::resolution},
    {"(SELECT count(*) FROM courier.escalations e WHERE e.failure_id = f.id)", &FailureInfo::escalations},
};

// courier.run_queue_metrics().
const Columns<RunQueueMetrics> kRunQueueColumns = {
    {"due", &RunQueueMetrics::due},
    {"scheduled", &RunQueueMetrics::scheduled},
    {"waiting", &RunQueueMetrics::waiting},
    {"running", &RunQueueMetrics::running},
    {"dead_lettered", &RunQueueMetrics::dead_lettered},
    {"unhealthy_connections", &RunQueueMetrics::unhealthy_connections},
    {"degraded_connections", &RunQueueMetrics::degraded_connections},
    {"credentials_expiring", &RunQueueMetrics::credentials_expiring},
    {"open_escalations", &RunQueueMetrics::open_escalations},
};

template <typename T>
Checked<T> Refuse(Refusal refusal, const std::string& detail = "") {
  Checked<T> out;
  out.refusal = refusal;
  out.detail = detail;
  return out;
}

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
    return kStateColumns.Read(txn.exec_params1(
        kStateColumns.Select("FROM courier.subscription_health h WHERE h.subscription_id = $1"), subscription_id));
  }

  // Locks the subscription's row for the rest of the transaction, so that
  // changes to it and its secrets are serialized; false if there is none.
  bool LockSubscription(pqxx::transaction_base& txn, const std::string& subscription_id) {
    return !txn.exec_params("SELECT 1 FROM courier.subscriptions WHERE id = $1 FOR UPDATE", subscription_id).empty();
  }

  // True when expires_at (timestamptz text; empty: never) is not in the future.
  bool ExpiryInPast(pqxx::transaction_base& txn, const std::string& expires_at) {
    return txn.exec_params1("SELECT coalesce(nullif($1, '')::timestamptz <= now(), false)", expires_at)[0].as<bool>();
  }

  // Why a connection of `tenant_id` may not use the credential, if it may not;
  // the credential stays locked against changes until the transaction ends.
  Checked<std::string> CheckCredentialFor(pqxx::transaction_base& txn, const std::string& credential_id,
                                          const std::string& tenant_id) {
    const auto rows =
        txn.exec_params("SELECT tenant_id, status FROM courier.credentials WHERE id = $1 FOR SHARE", credential_id);
    if (rows.empty()) return Refuse<std::string>(Refusal::kNotFound);
    if (Text(rows[0][0]) != tenant_id) return Refuse<std::string>(Refusal::kOtherTenant, Text(rows[0][0]));
    if (Text(rows[0][1]) == "revoked") return Refuse<std::string>(Refusal::kRevoked);
    return {};
  }

  // Sets the connection's status and reason unless its status is one of
  // `unless_in` (a text[] literal); its status before, and its pending runs.
  std::optional<ConnectionChange> SetConnectionStatus(const std::string& id, const std::string& status,
                                                      const std::string& reason, const std::string& unless_in) {
    pqxx::work txn(conn);
    const auto rows = txn.exec_params(
        "WITH before AS (SELECT id, status FROM courier.connections WHERE id = $1 FOR UPDATE), "
        "changed AS (UPDATE courier.connections c SET status = $2, status_reason = nullif($3, ''), updated_at = now() "
        "            FROM before b WHERE c.id = b.id AND b.status <> ALL ($4::text[])) "
        "SELECT b.status, (SELECT count(*) FROM courier.runs r WHERE r.connection_id = b.id AND r.status = 'pending') "
        "FROM before b",
        id, status, reason, unless_in);
    if (rows.empty()) return std::nullopt;
    txn.commit();
    return ConnectionChange{Text(rows[0][0]), rows[0][1].as<long long>()};
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
    const std::string types_literal = pg::TextArray(types);
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
    return kRecentColumns.ReadAll(txn.exec_params(
        kRecentColumns.Select("FROM courier.delivery_status ORDER BY updated_at DESC LIMIT $1"), limit));
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
    return kStateColumns.ReadAll(txn.exec(kStateColumns.Select(
        "FROM courier.subscription_health h "
        "WHERE h.state <> 'active' OR h.consecutive_failures > 0 ORDER BY h.tenant_id, h.subscription_id")));
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
      call.Arg("statuses", pg::TextArray(statuses), "text[]");
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
    const auto rows = txn.exec_params(kDeliveryColumns.Select("FROM courier.delivery_status WHERE id = $1"), id);
    if (rows.empty()) return std::nullopt;
    auto d = kDeliveryColumns.Read(rows[0]);
    d.timeline = kAttemptColumns.ReadAll(txn.exec_params(
        kAttemptColumns.Select("FROM courier.delivery_timeline WHERE delivery_id = $1 ORDER BY attempt"), id));
    return d;
  });
}

// ---- integration runs ----

Checked<std::string> AdminStore::CreateConnection(const NewConnection& c) {
  return Guard("create connection", [&] {
    pqxx::work txn(impl_->conn);
    if (!c.credential_id.empty()) {
      auto refused = impl_->CheckCredentialFor(txn, c.credential_id, c.tenant_id);
      if (refused.refusal != Refusal::kNone) return refused;
    }
    const auto row = txn.exec_params1(
        "INSERT INTO courier.connections (id, tenant_id, provider, base_url, auth_mode, credential_id, "
        "  api_key_header, token_url, client_id, scopes, health_check_method, health_check_path, "
        "  health_check_expected_status, policy, status, rate_limit_per_second, rate_limit_burst, max_in_flight) "
        "VALUES (coalesce(nullif($1, ''), courier.new_id('conn_')), $2, $3, $4, $5, nullif($6, ''), nullif($7, ''), "
        "  nullif($8, ''), nullif($9, ''), nullif($10, ''), $11, nullif($12, ''), $13, $14, $15, $16, $17, $18) "
        "RETURNING id",
        c.id, c.tenant_id, c.provider, c.base_url, c.auth_mode, c.credential_id, c.api_key_header, c.token_url,
        c.client_id, c.scopes, c.health_check_method, c.health_check_path, c.expected_status, c.policy, c.status,
        c.rate_limit_per_second, c.rate_limit_burst, c.max_in_flight);
    txn.commit();
    Checked<std::string> out;
    out.value = Text(row[0]);
    return out;
  });
}

std::vector<ConnectionInfo> AdminStore::ListConnections(const std::string& tenant_id) {
  return Guard("list connections", [&] {
    pqxx::read_transaction txn(impl_->conn);
    return kConnectionColumns.ReadAll(txn.exec_params(
        kConnectionColumns.Select(kConnectionFrom,
                                  "WHERE $1 = '' OR c.tenant_id = $1 ORDER BY c.tenant_id, c.created_at, c.id"),
        tenant_id));
  });
}

std::optional<ConnectionInfo> AdminStore::ShowConnection(const std::string& id) {
  return Guard("show connection", [&]() -> std::optional<ConnectionInfo> {
    pqxx::read_transaction txn(impl_->conn);
    const auto rows = txn.exec_params(kConnectionColumns.Select(kConnectionFrom, "WHERE c.id = $1"), id);
    if (rows.empty()) return std::nullopt;
    return kConnectionColumns.Read(rows[0]);
  });
}

std::optional<ConnectionChange> AdminStore::RetireConnection(const std::string& id) {
  return Guard("retire connection",
               [&] { return impl_->SetConnectionStatus(id, "retired", "retired by an operator", "{retired}"); });
}

std::optional<ConnectionChange> AdminStore::ActivateConnection(const std::string& id) {
  return Guard("activate connection", [&] { return impl_->SetConnectionStatus(id, "active", "", "{active,retired}"); });
}

std::vector<ConnectionInfo> AdminStore::ConnectionsNeedingAttention() {
  return Guard("connection health", [&] {
    pqxx::read_transaction txn(impl_->conn);
    return kConnectionHealthColumns.ReadAll(txn.exec(kConnectionHealthColumns.Select(
        "FROM courier.connection_health h "
        "WHERE h.status IN ('pending', 'degraded') OR (h.status = 'active' AND h.health IN ('degraded', 'unhealthy')) "
        "ORDER BY h.tenant_id, h.id")));
  });
}

Checked<std::string> AdminStore::CreateCredential(
    const NewCredential& credential,
    const std::function<std::pair<std::string, std::string>(const std::string&)>& seal) {
  return Guard("create credential", [&] {
    pqxx::work txn(impl_->conn);
    if (impl_->ExpiryInPast(txn, credential.expires_at)) return Refuse<std::string>(Refusal::kExpiryPast);
    const auto row = txn.exec_params1(
        "INSERT INTO courier.credentials (id, tenant_id, name) "
        "VALUES (coalesce(nullif($1, ''), courier.new_id('cred_')), $2, nullif($3, '')) RETURNING id",
        credential.id, credential.tenant_id, credential.name);
    Checked<std::string> out;
    out.value = Text(row[0]);
    const auto [sealed, fingerprint] = seal(out.value);
    txn.exec_params(
        "INSERT INTO courier.credential_versions "
        "  (credential_id, version, sealed_secret, fingerprint, status, expires_at, activated_at) "
        "VALUES ($1, 1, $2, $3, 'active', nullif($4, '')::timestamptz, now())",
        out.value, sealed, fingerprint, credential.expires_at);
    txn.commit();
    return out;
  });
}

Checked<int> AdminStore::RotateCredential(const std::string& credential_id, const std::string& sealed_secret,
                                          const std::string& fingerprint, const std::string& expires_at) {
  return Guard("rotate credential", [&] {
    pqxx::work txn(impl_->conn);
    const auto rows = txn.exec_params(
        "SELECT c.status, "
        "  (SELECT v.version::text FROM courier.credential_versions v "
        "   WHERE v.credential_id = c.id AND v.status = 'rotating'), "
        "  (SELECT v.version::text FROM courier.credential_versions v "
        "   WHERE v.credential_id = c.id AND v.status = 'active' AND v.fingerprint = $2) "
        "FROM courier.credentials c WHERE c.id = $1 FOR UPDATE",
        credential_id, fingerprint);
    if (rows.empty()) return Refuse<int>(Refusal::kNotFound);
    if (Text(rows[0][0]) == "revoked") return Refuse<int>(Refusal::kRevoked);
    if (!rows[0][1].is_null()) return Refuse<int>(Refusal::kRotating, Text(rows[0][1]));
    if (!rows[0][2].is_null()) return Refuse<int>(Refusal::kSameSecret, Text(rows[0][2]));
    if (impl_->ExpiryInPast(txn, expires_at)) return Refuse<int>(Refusal::kExpiryPast);
    Checked<int> out;
    out.value = txn.exec_params1(
                       "INSERT INTO courier.credential_versions "
                       "  (credential_id, version, sealed_secret, fingerprint, status, expires_at) "
                       "SELECT $1, max(version) + 1, $2, $3, 'rotating', nullif($4, '')::timestamptz "
                       "FROM courier.credential_versions WHERE credential_id = $1 RETURNING version",
                       credential_id, sealed_secret, fingerprint, expires_at)[0]
                    .as<int>();
    txn.exec_params("UPDATE courier.credentials SET status = 'rotating', updated_at = now() WHERE id = $1",
                    credential_id);
    txn.commit();
    return out;
  });
}

std::vector<CredentialInfo> AdminStore::ListCredentials(const std::string& tenant_id) {
  return Guard("list credentials", [&] {
    pqxx::read_transaction txn(impl_->conn);
    return kCredentialColumns.ReadAll(
        txn.exec_params(kCredentialColumns.Select(kCredentialFrom,
                                                  "WHERE $1 = '' OR c.tenant_id = $1 "
                                                  "ORDER BY e.expires_at NULLS LAST, c.tenant_id, c.created_at, c.id"),
                        tenant_id));
  });
}

std::optional<CredentialDetail> AdminStore::ShowCredential(const std::string& id) {
  return Guard("show credential", [&]() -> std::optional<CredentialDetail> {
    pqxx::read_transaction txn(impl_->conn);
    const auto rows = txn.exec_params(kCredentialColumns.Select(kCredentialFrom, "WHERE c.id = $1"), id);
    if (rows.empty()) return std::nullopt;
    CredentialDetail detail;
    detail.credential = kCredentialColumns.Read(rows[0]);
    detail.versions = kCredentialVersionColumns.ReadAll(
        txn.exec_params(kCredentialVersionColumns.Select(
                            "FROM courier.credential_versions WHERE credential_id = $1 ORDER BY version DESC"),
                        id));
    detail.connections = kConnectionColumns.ReadAll(
        txn.exec_params(kConnectionColumns.Select(kConnectionFrom, "WHERE c.credential_id = $1 ORDER BY c.id"), id));
    return detail;
  });
}

EnqueuedRun AdminStore::EnqueueRun(const NewRun& run) {
  return Guard("enqueue run", [&] {
    NamedCall call("courier.enqueue_run");
    call.Arg("tenant_id", run.tenant_id)
        .Arg("connection_id", run.connection_id)
        .Arg("operation", run.operation)
        .ArgUnlessEmpty("method", run.method)
        .ArgUnlessEmpty("path", run.path)
        .ArgUnlessEmpty("body", run.body)
        .ArgUnlessEmpty("headers", run.headers_json, "jsonb")
        .ArgUnlessEmpty("idempotency_key", run.idempotency_key)
        .ArgUnlessEmpty("trace_id", run.trace_id)
        .ArgUnlessEmpty("external_ref_pointer", run.external_ref_pointer);
    pqxx::work txn(impl_->conn);
    EnqueuedRun out;
    out.id = Text(call.Exec1(txn, "SELECT ")[0]);
    // A run inserted by this transaction was created at its now().
    out.created = txn.exec_params1("SELECT created_at = now() FROM courier.runs WHERE id = $1", out.id)[0].as<bool>();
    const auto connection =
        txn.exec_params(kConnectionColumns.Select(
                            kConnectionFrom, "WHERE c.id = (SELECT connection_id FROM courier.runs WHERE id = $1)"),
                        out.id);
    if (!connection.empty()) out.connection = kConnectionColumns.Read(connection[0]);
    txn.commit();
    return out;
  });
}

std::vector<RunInfo> AdminStore::ListRuns(const RunFilter& filter) {
  return Guard("list runs", [&] {
    pqxx::read_transaction txn(impl_->conn);
    return kRunColumns.ReadAll(
        txn.exec_params(kRunColumns.Select(kRunFrom,
                                           "WHERE ($1 = '' OR s.tenant_id = $1) AND ($2 = '' OR s.status = $2) "
                                           "ORDER BY s.created_at DESC, s.id DESC LIMIT $3"),
                        filter.tenant_id, filter.status, filter.limit));
  });
}

std::optional<RunDetail> AdminStore::ShowRun(const std::string& id) {
  return Guard("show run", [&]() -> std::optional<RunDetail> {
    pqxx::read_transaction txn(impl_->conn);
    const auto rows = txn.exec_params(kRunColumns.Select(kRunFrom, "WHERE s.id = $1"), id);
    if (rows.empty()) return std::nullopt;
    RunDetail detail;
    detail.run = kRunColumns.Read(rows[0]);
    detail.timeline = kRunAttemptColumns.ReadAll(
        txn.exec_params(kRunAttemptColumns.Select("FROM courier.run_timeline WHERE run_id = $1 ORDER BY attempt"), id));
    detail.failures = kFailureColumns.ReadAll(
        txn.exec_params(kFailureColumns.Select("FROM courier.failures f WHERE f.source = 'run' AND f.source_id = $1 "
                                               "ORDER BY f.created_at, f.id"),
                        id));
    return detail;
  });
}

RunReplay AdminStore::ReplayRun(const std::string& id) {
  return Guard("replay run", [&] {
    pqxx::work txn(impl_->conn);
    // From the view, which courier_operator may read; replay_run() locks the run itself.
    const auto before = txn.exec_params("SELECT status FROM courier.run_status WHERE id = $1", id);
    RunReplay out;
    if (!before.empty()) out.previous_status = Text(before[0][0]);
    // Called whatever the status: its refusals are the database's.
    out.replayed = NamedCall("courier.replay_run").Arg("run_id", id).Exec1(txn, "SELECT ")[0].as<bool>();
    txn.commit();
    return out;
  });
}

RunQueueMetrics AdminStore::RunMetrics(std::chrono::seconds expiry_window) {
  return Guard("run metrics", [&] {
    pqxx::read_transaction txn(impl_->conn);
    return kRunQueueColumns.Read(
        txn.exec_params1(kRunQueueColumns.Select("FROM courier.run_queue_metrics($1::bigint * interval '1 second')"),
                         static_cast<long long>(expiry_window.count())));
  });
}

}  // namespace pgcourier::store
