// What the subscription topics (subscriptions, status) share on the SQL
// side: the state columns of courier.subscription_health and how they map
// onto SubscriptionState. Internal to daemon/store/admin/.
#pragma once

#include <string>

#include "store/admin/impl.hpp"
#include "store/admin/subscriptions.hpp"

namespace pgcourier::store::admin {

// The state columns of courier.subscription_health h.
inline const std::string kStateColumns =
    "h.subscription_id, h.tenant_id, h.url, h.state, "
    "date_trunc('second', CASE h.state WHEN 'paused' THEN h.paused_at WHEN 'disabled' THEN h.disabled_at END)::text "
    "  AS since, "
    "CASE h.state WHEN 'paused' THEN h.pause_reason WHEN 'disabled' THEN h.disabled_reason END AS reason, "
    "h.consecutive_failures, date_trunc('second', h.failing_since)::text AS failing_since, "
    "date_trunc('second', h.last_success_at)::text AS last_success_at, "
    "date_trunc('second', h.last_failure_at)::text AS last_failure_at, h.last_error, h.held_deliveries ";

inline const pg::RowMapping<SubscriptionState> kState = {
    {"subscription_id", &SubscriptionState::subscription_id},
    {"tenant_id", &SubscriptionState::tenant_id},
    {"url", &SubscriptionState::url},
    {"state", &SubscriptionState::state},
    {"since", &SubscriptionState::since},
    {"reason", &SubscriptionState::reason},
    {"consecutive_failures", &SubscriptionState::consecutive_failures},
    {"failing_since", &SubscriptionState::failing_since},
    {"last_success_at", &SubscriptionState::last_success_at},
    {"last_failure_at", &SubscriptionState::last_failure_at},
    {"last_error", &SubscriptionState::last_error},
    {"held_deliveries", &SubscriptionState::held_deliveries},
};

}  // namespace pgcourier::store::admin
