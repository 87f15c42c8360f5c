// Fair shares of a daemon's request slots between endpoints and tenants
// (issue 15: no tenant and no endpoint may hold more than its share while
// others have due work). Per daemon, in memory: what it shares is its own
// slots, and the claim carries its bounds (claim_due.sql), so several daemons
// each apply the rule to their own slots.
//
// Endpoints (subscriptions: one URL each) get a window of requests in
// flight, AIMD like TCP's congestion window: it starts at kInitialWindow-ish
// (concurrency / 32) and grows by one with every success up to the
// concurrency. Failures shrink it the way TCP treats its two kinds of loss:
//  - a request that got no answer (timeout, connection/TLS/DNS/protocol
//    error) held its slot for nothing, and every such one halves the window
//    (TCP's retransmission timeout); so an endpoint that accepts connections
//    and never answers holds a handful of slots for one request timeout,
//    then one;
//  - an answer that says the endpoint is failing or overloaded (5xx, 429,
//    408) halves the window once per window of requests (TCP NewReno's fast
//    recovery): the requests already in flight when it halved were sent under
//    the old window and their answers carry no news, so they cannot halve it
//    again. An endpoint that fails a steady share of its requests quickly
//    settles where its successes balance its failures (at about half failing
//    it keeps its window) instead of being driven to one request at a time
//    by answers that cost the others nothing: a fast 500 frees its slot as
//    fast as a 200.
// A healthy endpoint ramps up to everything the daemon has within a few
// hundred successes.
//
// Tenants: once more than one tenant has been active (in flight or
// claimed) within kActiveWindow (10 minutes), a tenant may hold at most
// concurrency * kTenantShare slots, so that some are always free for the
// others' new events the moment they come; a daemon that has served one
// tenant only for that long lets it use all of them. The window is long on
// purpose: the cap must already hold when another tenant's first event
// arrives, not only after.
//
// Idle endpoints are forgotten after kForgetAfter (their window starts
// again from the initial one), tenants after kActiveWindow.
// Time comes from the injected clock. Not synchronised: the engine's thread.
#pragma once

#include <chrono>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/clock.hpp"
#include "store/types.hpp"

namespace pgcourier::lanes::deliveries {

// What an attempt's result says about its endpoint.
enum class EndpointSignal {
  kHealthy,       // it answered with success
  kFailing,       // it answered, failing or overloaded (5xx, 429, 408)
  kUnresponsive,  // no answer: timeout, connection, DNS, TLS or protocol error
  kNeither,       // nothing about its health (a 4xx, a refused destination, not sent)
};

class Fairness {
 public:
  static constexpr double kTenantShare = 0.75;
  static constexpr std::chrono::seconds kActiveWindow{600};
  static constexpr std::chrono::seconds kForgetAfter{60};

  Fairness(const base::Clock& clock, int concurrency);

  // The claim's fair-share bounds for `slots` more requests.
  void Bound(store::DeliveryClaimRequest& request) const;
  // A claimed delivery of `subscription` / `tenant` is in flight from now on.
  void Started(const std::string& subscription, const std::string& tenant);
  // It finished (any way: sent or not), saying `signal` of its endpoint.
  void Finished(const std::string& subscription, const std::string& tenant, EndpointSignal signal);
  // Forgets what went idle; call now and then (every claim is fine).
  void Tidy();
  // A claim (bounded by Bound, before Started) leased rows of these
  // subscriptions, one entry per row. The next claim visits the
  // subscriptions from just after the last of them in the visit order (ids
  // after the cursor, then round from the start), so every subscription with
  // work gets its turn however long the others' backlogs are. A subscription
  // that filled all its free slots probably has more due: backlogged() says
  // so until a claim gives it fewer rows than it could have taken.
  void Claimed(const std::vector<std::string>& subscriptions);
  const std::string& cursor() const { return cursor_; }
  bool backlogged(const std::string& subscription) const;
  // Whether a claim for it is worth a transaction now: it is backlogged and
  // has a useful batch of slots free (half its window, at most concurrency
  // / 8, at least one). A window-bound endpoint (a failing one keeps a few
  // slots) then claims a few rows at a time instead of one per finished
  // request.
  bool worth_claiming(const std::string& subscription) const;

  int initial_window() const { return initial_window_; }
  int window(const std::string& subscription) const;
  // Requests the claim may still lease for it (window - in flight).
  int free_slots(const std::string& subscription) const;
  int in_flight(const std::string& subscription) const;
  // The cap of `tenant` now (concurrency when it is the only active tenant).
  int tenant_cap() const;
  int active_tenants() const;

 private:
  struct Endpoint {
    int window = 0;
    int in_flight = 0;
    // Finishes still to come of the requests that were in flight when a
    // failing answer last halved the window: until then, another failing
    // answer does not halve it again.
    int recovering = 0;
    std::string tenant;
    std::chrono::steady_clock::time_point last_active{};
    bool backlogged = false;
  };
  struct Tenant {
    int in_flight = 0;
    std::chrono::steady_clock::time_point last_active{};
  };

  const base::Clock& clock_;
  const int concurrency_;
  const int initial_window_;
  std::unordered_map<std::string, Endpoint> endpoints_;  // by subscription id
  std::unordered_map<std::string, Tenant> tenants_;
  std::string cursor_;  // the last subscription a claim visited ("": none yet)
};

// The signal of an attempt's result (classified by retry::Classify).
EndpointSignal SignalOf(bool success, const std::string& outcome, int status_code);

}  // namespace pgcourier::lanes::deliveries
