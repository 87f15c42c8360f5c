// The delivery lane: webhooks, one per (event, subscription). Claims due
// deliveries, admits each (decide.hpp), holds it to its subscription's
// limits and its endpoint's circuit, signs it (signing_keys.hpp,
// request.hpp), and after its attempt decides what it becomes; outcomes,
// releases, 410 disables and auto-pauses go to the writer as one job per
// turn. See lanes/lane.hpp for the contract with the engine.
#pragma once

#include <memory>

#include "lanes/context.hpp"
#include "lanes/lane.hpp"

namespace pgcourier::lanes {

std::unique_ptr<Lane> NewDeliveryLane(const LaneContext& context);

}  // namespace pgcourier::lanes
