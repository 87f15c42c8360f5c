// The engine's pure pieces: the drain/stop state machine, the backoff, and
// the limits lanes share (lanes/limiter.hpp), all with time passed in.
#include <doctest/doctest.h>

#include <chrono>

#include "engine/backoff.hpp"
#include "engine/shutdown.hpp"
#include "lanes/limiter.hpp"

using namespace std::chrono_literals;
using pgcourier::engine::Backoff;
using pgcourier::engine::Shutdown;

namespace {
const Shutdown::Steady kT0{std::chrono::hours(1)};
}

TEST_CASE("shutdown: drain drops waiting requests, waits for in flight, ends when settled") {
  Shutdown s(25s);  // 23 s of draining, then 2 s to write the releases
  CHECK(s.claiming());
  CHECK_FALSE(s.Step(kT0, true).done);  // running: settled means nothing
  s.RequestDrain();
  auto a = s.Step(kT0, false);
  CHECK(a.drop_waiting);
  CHECK_FALSE(a.abort_all);
  CHECK_FALSE(a.done);
  CHECK_FALSE(s.claiming());
  CHECK(s.deadline() == kT0 + 23s);
  a = s.Step(kT0 + 1s, false);
  CHECK_FALSE(a.drop_waiting);  // once
  a = s.Step(kT0 + 2s, true);
  CHECK(a.done);
  CHECK_FALSE(a.unwritten);
}

TEST_CASE("shutdown: the whole stop fits in the grace period: the drain, then an abort and a window to write") {
  Shutdown s(25s, 2s);
  s.RequestDrain();
  s.Step(kT0, false);
  CHECK_FALSE(s.Step(kT0 + 22s, false).abort_all);
  auto a = s.Step(kT0 + 23s, false);
  CHECK(a.abort_all);
  CHECK(s.phase() == Shutdown::Phase::kAborting);
  CHECK(s.deadline() == kT0 + 25s);
  CHECK_FALSE(s.Step(kT0 + 24s, false).done);
  a = s.Step(kT0 + 25s, false);  // the database is unreachable: leave with results unwritten
  CHECK(a.done);
  CHECK(a.unwritten);
  // A short grace keeps three quarters of it for the requests in flight.
  Shutdown brief(4s, 2s);
  brief.RequestDrain();
  brief.Step(kT0, false);
  CHECK(brief.deadline() == kT0 + 3s);
  CHECK(brief.Step(kT0 + 3s, false).abort_all);
  CHECK(brief.deadline() == kT0 + 4s);
}

TEST_CASE("shutdown: a second signal aborts at once, also while draining") {
  Shutdown s(25s, 2s);
  s.RequestDrain();
  s.Step(kT0, false);
  s.RequestStop();
  auto a = s.Step(kT0 + 1s, false);
  CHECK(a.abort_all);
  CHECK(s.deadline() == kT0 + 3s);
  CHECK(s.Step(kT0 + 1500ms, true).done);
  Shutdown direct(25s, 2s);
  direct.RequestStop();
  a = direct.Step(kT0, false);
  CHECK(a.abort_all);
  CHECK_FALSE(a.drop_waiting);
}

TEST_CASE("backoff: 100 ms doubling to 5 s, reset after a success") {
  Backoff b;
  CHECK(b.Next() == 100ms);
  CHECK(b.Next() == 200ms);
  CHECK(b.Next() == 400ms);
  for (int i = 0; i < 10; ++i) b.Next();
  CHECK(b.Next() == 5000ms);
  CHECK_FALSE(b.reset());
  b.Reset();
  CHECK(b.Next() == 100ms);
}

TEST_CASE("limiter: at most max_in_flight per key until Done; the policy's limit when the key has none") {
  pgcourier::model::Policy::Limits policy;
  policy.max_in_flight = 2;
  pgcourier::lanes::Limiter limiter("subscription");
  const pgcourier::lanes::LimitSpec spec{0, 0, 0, &policy};
  CHECK_FALSE(limiter.Admit("sub_1", spec, 0).has_value());
  CHECK_FALSE(limiter.Admit("sub_1", spec, 0).has_value());
  const auto wait = limiter.Admit("sub_1", spec, 0);
  REQUIRE(wait.has_value());
  CHECK(wait->delay_ms == pgcourier::lanes::kInFlightWaitMs);
  CHECK(wait->reason == "waiting: subscription at its limit of 2 request(s) in flight");
  CHECK_FALSE(limiter.Admit("sub_2", spec, 0).has_value());  // another key is not slowed down
  limiter.Done("sub_1");
  CHECK(limiter.in_flight("sub_1") == 1);
  CHECK_FALSE(limiter.Admit("sub_1", spec, 0).has_value());
  const pgcourier::lanes::LimitSpec own{1, 0, 0, &policy};  // the key's own limit wins
  CHECK(limiter.Admit("sub_3", own, 0) == std::nullopt);
  CHECK(limiter.Admit("sub_3", own, 0).has_value());
}

TEST_CASE("limiter: a rate limit gives the wait until the next token") {
  pgcourier::model::Policy::Limits policy;
  pgcourier::lanes::Limiter limiter("connection");
  const pgcourier::lanes::LimitSpec spec{0, 2.0, 1, &policy};  // 2 per second, burst 1
  CHECK_FALSE(limiter.Admit("conn_1", spec, 1000).has_value());
  limiter.Done("conn_1");
  const auto wait = limiter.Admit("conn_1", spec, 1000);
  REQUIRE(wait.has_value());
  CHECK(wait->delay_ms == 500);
  CHECK(wait->reason == "waiting: connection rate limit");
  CHECK_FALSE(limiter.Admit("conn_1", spec, 1500).has_value());
}
