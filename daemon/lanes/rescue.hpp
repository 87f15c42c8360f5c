// The attempt a rescue records when a lease expired before its holder wrote
// a result (the maintenance leader takes the lease back): the next attempt
// number, "lease_expired", transient and retryable, naming who held it, and
// applying only while that lease is still the expired one (rescue = true,
// expected_owner = the holder). Both lanes fill the common part of their
// outcome with it; each then decides the next state by its own rules
// (deliveries/decide.hpp Rescued, runs/decide.hpp RescuedRun). Pure.
#pragma once

#include <cstdint>
#include <string>

#include "model/delivery.hpp"

namespace pgcourier::lanes {

void RecordLeaseExpired(model::AttemptRecord& record, const std::string& lease_owner, int previous_attempts,
                        std::int64_t now_unix_us);

}  // namespace pgcourier::lanes
