// Fair shares of the daemon's request slots (lanes/deliveries/fairness.hpp):
// per-endpoint AIMD windows, the tenant cap, and the bounds a claim carries.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "base/clock.hpp"
#include "lanes/deliveries/fairness.hpp"

using pgcourier::base::ManualClock;
using pgcourier::lanes::deliveries::EndpointSignal;
using pgcourier::lanes::deliveries::Fairness;
using pgcourier::lanes::deliveries::SignalOf;
using pgcourier::store::DeliveryClaimRequest;

namespace {

DeliveryClaimRequest Bounds(const Fairness& f) {
  DeliveryClaimRequest r;
  f.Bound(r);
  return r;
}

bool Contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

int SlotsOf(const DeliveryClaimRequest& r, const std::string& subscription) {
  if (Contains(r.excluded_subscriptions, subscription)) return 0;
  for (std::size_t i = 0; i < r.window_subscriptions.size(); ++i) {
    if (r.window_subscriptions[i] == subscription) return r.window_slots[i];
  }
  return r.default_slots;
}

}  // namespace

TEST_CASE("an endpoint starts with concurrency / 32 slots (at least 2) and every other one is bounded the same") {
  ManualClock clock;
  CHECK(Fairness(clock, 256).initial_window() == 8);
  CHECK(Fairness(clock, 16).initial_window() == 2);
  CHECK(Fairness(clock, 1).initial_window() == 2);
  const Fairness f(clock, 256);
  const auto r = Bounds(f);
  CHECK(r.default_slots == 8);
  CHECK(r.excluded_subscriptions.empty());
  CHECK(r.excluded_tenants.empty());
}

TEST_CASE("an endpoint whose window is full is not looked at; a finished request frees its slot") {
  ManualClock clock;
  Fairness f(clock, 64);  // window 2
  f.Started("sub_a", "acme");
  CHECK(SlotsOf(Bounds(f), "sub_a") == 1);
  f.Started("sub_a", "acme");
  CHECK(Contains(Bounds(f).excluded_subscriptions, "sub_a"));
  CHECK(SlotsOf(Bounds(f), "sub_b") == 2);  // another endpoint is not affected
  f.Finished("sub_a", "acme", EndpointSignal::kNeither);
  CHECK(SlotsOf(Bounds(f), "sub_a") == 1);
}

TEST_CASE("successes widen an endpoint's window by one up to the concurrency; every unanswered request halves it, to 1 at least") {
  ManualClock clock;
  Fairness f(clock, 16);  // window 2
  for (int i = 0; i < 30; ++i) {
    f.Started("sub", "acme");
    f.Finished("sub", "acme", EndpointSignal::kHealthy);
  }
  CHECK(f.window("sub") == 16);  // capped at the concurrency
  f.Started("sub", "acme");
  f.Finished("sub", "acme", EndpointSignal::kUnresponsive);
  CHECK(f.window("sub") == 8);
  for (int i = 0; i < 10; ++i) {
    f.Started("sub", "acme");
    f.Finished("sub", "acme", EndpointSignal::kUnresponsive);
  }
  CHECK(f.window("sub") == 1);  // never 0: the endpoint can still show it recovered
  f.Started("sub", "acme");
  f.Finished("sub", "acme", EndpointSignal::kNeither);  // a 4xx says nothing of the endpoint's health
  CHECK(f.window("sub") == 1);
}

TEST_CASE("twenty silent endpoints of one tenant leave slots for another tenant's endpoint") {
  ManualClock clock;
  const int concurrency = 256;
  Fairness f(clock, concurrency);
  f.Started("sub_b", "bravo");  // bravo was active: two tenants share the daemon
  f.Finished("sub_b", "bravo", EndpointSignal::kHealthy);
  // Every endpoint of acme fills its window with requests that never answer.
  int acme = 0;
  for (int s = 0; s < 20; ++s) {
    const std::string sub = "sub_a" + std::to_string(s);
    while (SlotsOf(Bounds(f), sub) > 0 && !Contains(Bounds(f).excluded_tenants, "acme")) {
      f.Started(sub, "acme");
      ++acme;
    }
  }
  CHECK(acme == 20 * f.initial_window());  // 160: each endpoint its window
  CHECK(acme <= f.tenant_cap());
  CHECK(concurrency - acme >= 64);  // free for bravo
  CHECK(SlotsOf(Bounds(f), "sub_b") > 0);
  // Their requests time out: each endpoint gets half as many next time.
  for (int s = 0; s < 20; ++s) {
    const std::string sub = "sub_a" + std::to_string(s);
    for (int i = 0; i < f.initial_window(); ++i) f.Finished(sub, "acme", EndpointSignal::kUnresponsive);
    CHECK(f.window(sub) == 1);  // halved eight times: each of them held a slot for nothing
  }
}

TEST_CASE("a tenant is capped at 3/4 of the slots once another tenant was active, not while it is alone") {
  ManualClock clock;
  Fairness f(clock, 8);  // cap 6 with two tenants
  CHECK(f.tenant_cap() == 8);
  for (int s = 0; s < 8; ++s) f.Started("sub_" + std::to_string(s), "acme");
  CHECK(f.active_tenants() == 1);
  CHECK(Bounds(f).excluded_tenants.empty());  // alone: it may use every slot
  f.Started("sub_b", "bravo");
  CHECK(f.active_tenants() == 2);
  CHECK(f.tenant_cap() == 6);
  CHECK(Contains(Bounds(f).excluded_tenants, "acme"));
  CHECK_FALSE(Contains(Bounds(f).excluded_tenants, "bravo"));
  // bravo stays "active" for the window after its last request, then is forgotten.
  f.Finished("sub_b", "bravo", EndpointSignal::kHealthy);
  clock.Advance(Fairness::kActiveWindow - std::chrono::seconds(1));
  CHECK(f.active_tenants() == 2);
  clock.Advance(std::chrono::seconds(2));
  f.Tidy();
  CHECK(f.active_tenants() == 1);
  CHECK(Bounds(f).excluded_tenants.empty());
}

TEST_CASE("an idle endpoint is forgotten and starts again from the initial window") {
  ManualClock clock;
  Fairness f(clock, 256);
  f.Started("sub", "acme");
  f.Finished("sub", "acme", EndpointSignal::kUnresponsive);
  CHECK(f.window("sub") == 4);
  clock.Advance(Fairness::kForgetAfter - std::chrono::seconds(1));
  f.Tidy();
  CHECK(f.window("sub") == 4);
  clock.Advance(std::chrono::seconds(2));
  f.Tidy();
  CHECK(f.window("sub") == 8);
  // One with a request in flight is never forgotten.
  f.Started("busy", "acme");
  clock.Advance(Fairness::kForgetAfter * 2);
  f.Tidy();
  CHECK(f.in_flight("busy") == 1);
}

TEST_CASE("a failing answer halves the window once per window of requests, not once per answer") {
  ManualClock clock;
  Fairness f(clock, 64);  // window 2
  for (int i = 0; i < 14; ++i) {
    f.Started("sub", "acme");
    f.Finished("sub", "acme", EndpointSignal::kHealthy);
  }
  REQUIRE(f.window("sub") == 16);
  for (int i = 0; i < 16; ++i) f.Started("sub", "acme");
  // The whole window answers 503: the first answer halves it; the other 15
  // were sent under the old window and say nothing new.
  f.Finished("sub", "acme", EndpointSignal::kFailing);
  CHECK(f.window("sub") == 8);
  for (int i = 0; i < 15; ++i) f.Finished("sub", "acme", EndpointSignal::kFailing);
  CHECK(f.window("sub") == 8);
  CHECK(f.in_flight("sub") == 0);
  // A failure of the next window halves it again.
  f.Started("sub", "acme");
  f.Finished("sub", "acme", EndpointSignal::kFailing);
  CHECK(f.window("sub") == 4);
  // An unanswered request always halves it, recovering or not.
  f.Started("sub", "acme");
  f.Started("sub", "acme");
  f.Finished("sub", "acme", EndpointSignal::kFailing);
  CHECK(f.window("sub") == 2);
  f.Finished("sub", "acme", EndpointSignal::kUnresponsive);
  CHECK(f.window("sub") == 1);
}

namespace {

// A closed loop like the daemon's: fill the endpoint's free slots, finish
// the oldest request with the next signal of `pattern`, `n` times. The
// windows seen over the second half (the steady state).
struct Steady {
  double mean = 0;
  int min = 0;
};

Steady SteadyWindow(Fairness& f, const std::vector<EndpointSignal>& pattern, int n) {
  double sum = 0;
  int min = 1 << 30;
  for (int i = 0; i < n; ++i) {
    while (f.free_slots("sub") > 0) f.Started("sub", "acme");
    f.Finished("sub", "acme", pattern[static_cast<std::size_t>(i) % pattern.size()]);
    if (i >= n / 2) {
      sum += f.window("sub");
      min = std::min(min, f.window("sub"));
    }
  }
  return {sum / (n - n / 2), min};
}

}  // namespace

TEST_CASE("an endpoint failing half its requests keeps its window; one failing nearly all of them drops to one") {
  ManualClock clock;
  {
    Fairness f(clock, 256);  // window 8
    const Steady w = SteadyWindow(f, {EndpointSignal::kHealthy, EndpointSignal::kFailing}, 20000);
    // It swings between half its window and its window: halved once, then
    // a window's worth of answers of which half are successes grow it back.
    // Halving on every 500 held it at a mean of 1.5 (the drain of a
    // half-failing endpoint fell from 9,998/s to 186/s in make bench).
    CHECK(w.min >= f.initial_window() / 2);
    CHECK(w.mean >= 0.75 * f.initial_window());
  }
  {
    Fairness f(clock, 256);
    std::vector<EndpointSignal> nine_in_ten(10, EndpointSignal::kFailing);
    nine_in_ten[0] = EndpointSignal::kHealthy;
    CHECK(SteadyWindow(f, nine_in_ten, 20000).mean < 3);
  }
  {
    Fairness f(clock, 256);
    CHECK(SteadyWindow(f, {EndpointSignal::kHealthy}, 2000).min == 256);
  }
}

TEST_CASE("what an attempt's result says about its endpoint") {
  CHECK(SignalOf(true, "delivered", 200) == EndpointSignal::kHealthy);
  CHECK(SignalOf(false, "http_error", 503) == EndpointSignal::kFailing);
  CHECK(SignalOf(false, "http_error", 429) == EndpointSignal::kFailing);
  CHECK(SignalOf(false, "http_error", 408) == EndpointSignal::kFailing);
  CHECK(SignalOf(false, "timeout", -1) == EndpointSignal::kUnresponsive);
  CHECK(SignalOf(false, "connection_error", -1) == EndpointSignal::kUnresponsive);
  CHECK(SignalOf(false, "tls_error", -1) == EndpointSignal::kUnresponsive);
  CHECK(SignalOf(false, "http_error", 400) == EndpointSignal::kNeither);
  CHECK(SignalOf(false, "blocked_destination", -1) == EndpointSignal::kNeither);
  CHECK(SignalOf(false, "invalid_request", -1) == EndpointSignal::kNeither);
}

TEST_CASE("the claim cursor is the last subscription of the visit order, wrapping round") {
  ManualClock clock;
  Fairness f(clock, 256);
  CHECK(f.cursor().empty());
  f.Claimed({"sub_b", "sub_a", "sub_c"});  // a fresh visit: ids after "" in order, the last is sub_c
  CHECK(f.cursor() == "sub_c");
  CHECK(Bounds(f).resume_after == "sub_c");
  f.Claimed({"sub_d", "sub_a"});  // after sub_c: sub_d, then wrapped round to sub_a
  CHECK(f.cursor() == "sub_a");
  f.Claimed({"sub_b", "sub_c"});  // no wrap
  CHECK(f.cursor() == "sub_c");
  f.Claimed({});  // nothing leased: the cursor stays
  CHECK(f.cursor() == "sub_c");
}

TEST_CASE("a subscription that took every free slot is backlogged until a claim gives it fewer") {
  ManualClock clock;
  Fairness f(clock, 64);  // window 2
  f.Claimed({"full", "full", "half"});
  CHECK(f.backlogged("full"));
  CHECK_FALSE(f.backlogged("half"));
  CHECK_FALSE(f.backlogged("never"));
  f.Started("full", "acme");
  f.Started("full", "acme");
  f.Finished("full", "acme", EndpointSignal::kHealthy);  // window 3, one in flight: two free
  f.Claimed({"full"});
  CHECK_FALSE(f.backlogged("full"));
}

TEST_CASE("a backlogged subscription is worth a claim once half its window is free (at most concurrency / 8)") {
  ManualClock clock;
  Fairness f(clock, 256);  // window 8, a useful batch 4
  f.Claimed(std::vector<std::string>(8, "sub"));  // took every free slot: more is probably due
  for (int i = 0; i < 8; ++i) f.Started("sub", "acme");
  REQUIRE(f.backlogged("sub"));
  CHECK_FALSE(f.worth_claiming("sub"));
  // Answers that neither widen nor narrow the window free one slot each.
  for (int i = 0; i < 3; ++i) f.Finished("sub", "acme", EndpointSignal::kNeither);
  CHECK_FALSE(f.worth_claiming("sub"));  // 3 free: not yet a batch
  f.Finished("sub", "acme", EndpointSignal::kNeither);
  CHECK(f.worth_claiming("sub"));  // 4 free
  CHECK_FALSE(f.worth_claiming("idle"));  // nothing claimed for it: not backlogged

  // A wide window needs at most concurrency / 8 free.
  Fairness g(clock, 64);  // window 2
  for (int i = 0; i < 62; ++i) {
    g.Started("wide", "acme");
    g.Finished("wide", "acme", EndpointSignal::kHealthy);
  }
  REQUIRE(g.window("wide") == 64);
  g.Claimed(std::vector<std::string>(64, "wide"));
  for (int i = 0; i < 64; ++i) g.Started("wide", "acme");
  for (int i = 0; i < 7; ++i) g.Finished("wide", "acme", EndpointSignal::kNeither);
  CHECK_FALSE(g.worth_claiming("wide"));
  g.Finished("wide", "acme", EndpointSignal::kNeither);
  CHECK(g.worth_claiming("wide"));  // 8 = 64 / 8 free, not 32

  // A window of one claims as soon as its one slot is free.
  Fairness h(clock, 256);
  h.Started("one", "acme");
  h.Finished("one", "acme", EndpointSignal::kUnresponsive);
  h.Finished("one", "acme", EndpointSignal::kUnresponsive);
  h.Finished("one", "acme", EndpointSignal::kUnresponsive);
  REQUIRE(h.window("one") == 1);
  h.Claimed({"one"});
  h.Started("one", "acme");
  CHECK_FALSE(h.worth_claiming("one"));
  h.Finished("one", "acme", EndpointSignal::kNeither);
  CHECK(h.worth_claiming("one"));
}
