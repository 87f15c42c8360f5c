// The run lane: integration runs, governed outbound API calls on configured
// connections. Claims due runs, admits each (decide.hpp: poison, unknown
// policy), holds it to its connection's limits, opens its credential (an
// OAuth2 token from tokens.hpp, fetched through the same executor when
// missing), sends it (request.hpp) and decides what its result makes of it.
// As maintenance leader it also probes connections' health checks and
// verifies rotated credentials. Every write (outcomes, releases, degraded
// connections, probe and rotation results) goes to the writer as one job
// per turn. See lanes/lane.hpp for the contract with the engine.
#pragma once

#include <memory>

#include "lanes/context.hpp"
#include "lanes/lane.hpp"

namespace pgcourier::lanes {

std::unique_ptr<Lane> NewRunLane(const LaneContext& context);

}  // namespace pgcourier::lanes
