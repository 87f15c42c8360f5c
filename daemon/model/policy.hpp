// Policy: how one class of subscriptions is retried and timed out.
// Plain data, filled by config/ from YAML and read by retry/, lanes/ and netguard/
// (which compiles the endpoint block into the rules http/ applies).
// Value type; no ownership concerns; not synchronised (copy it per thread).
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace pgcourier::model {

using Millis = std::chrono::milliseconds;

// Inclusive range of HTTP status codes, e.g. {500, 599} for "5xx".
struct StatusRange {
  int first = 0;
  int last = 0;
  bool Contains(int status) const { return status >= first && status <= last; }
  bool operator==(const StatusRange&) const = default;
};

struct Backoff {
  Millis base{5000};      // delay before the 2nd attempt (without jitter)
  double factor = 2.0;    // growth per attempt, >= 1
  Millis cap{3600000};    // no delay is ever longer than this (jitter included)
  double jitter = 0.2;    // fraction in [0, 1]: delay * (1 +/- jitter)
  // When not empty, replaces base/factor: delay before attempt n+1 is
  // schedule[n-1], the last entry repeating. Jitter and cap still apply.
  std::vector<Millis> schedule;
};

struct Policy {
  std::string name;
  int max_attempts = 8;  // total attempts, including the first; >= 1
  Backoff backoff;
  Millis connect_timeout{5000};
  Millis request_timeout{30000};  // whole request, connect included
  // Statuses that are retried; everything else non-2xx fails at once.
  std::vector<StatusRange> retryable_statuses{{408, 408}, {425, 425}, {429, 429}, {500, 599}};
  // Maximum bytes of response body kept in the attempt row.
  std::size_t response_excerpt_bytes = 1024;
  // Largest request body (the envelope) sent; a bigger event fails its
  // delivery with a clear error instead of being sent.
  std::size_t max_body_bytes = 1 << 20;

  // Endpoint safety: which destinations may be contacted.
  struct Endpoint {
    bool require_https = true;
    std::vector<std::string> allow_cidrs;  // e.g. "127.0.0.0/8": allowed although not global
    std::vector<std::string> allow_hosts;  // e.g. "localhost", "*.svc.internal"
    // Controlled egress. Non-empty: the only hosts that may be contacted
    // (names, "*.suffix", IP addresses), everything else is refused.
    std::vector<std::string> allow_only_hosts;
    std::string proxy;           // "http://host:port" (canonical); empty: connect directly
    std::string proxy_user;      // Basic credentials for the proxy, read from
    std::string proxy_password;  // proxy_credentials_file/_env at load; never logged
  } endpoint;

  // Per-subscription limits (a subscription row's own values win). 0 = none.
  struct Limits {
    int max_in_flight = 0;
    double per_second = 0;
    int burst = 0;  // 0: max(1, per_second)
  } limits;

  // Per-endpoint circuit breaker. failures 0 = off.
  struct CircuitBreaker {
    int failures = 0;   // consecutive failures that open the circuit
    Millis cooldown{30000};
  } circuit_breaker;

  // Automatic pause of a subscription whose endpoint keeps failing. 0 = off.
  struct AutoPause {
    int consecutive_failures = 0;
    Millis failing_for{0};  // failing without a single success for this long
  } auto_pause;

  // Integration runs on connections that use this policy.
  struct Integration {
    Millis health_check_interval{30000};  // how often a connection's health check runs
    int unhealthy_after = 1;              // consecutive failed probes that make it unhealthy (runs wait)
    bool run_when_degraded = false;       // whether runs execute while its health is 'degraded'
    int max_rate_limited_waits = 20;      // 429 answers that do not count against max_attempts
    Millis token_refresh_margin{60000};   // OAuth2 tokens are renewed this long before they expire
  } integration;
};

}  // namespace pgcourier::model
