#include "lanes/deliveries/fairness.hpp"

#include <algorithm>

namespace pgcourier::lanes::deliveries {

Fairness::Fairness(const base::Clock& clock, int concurrency)
    : clock_(clock), concurrency_(std::max(1, concurrency)), initial_window_(std::max(2, concurrency_ / 32)) {}

int Fairness::window(const std::string& subscription) const {
  const auto it = endpoints_.find(subscription);
  return it == endpoints_.end() ? initial_window_ : it->second.window;
}

int Fairness::free_slots(const std::string& subscription) const {
  const auto it = endpoints_.find(subscription);
  return it == endpoints_.end() ? initial_window_ : std::max(0, it->second.window - it->second.in_flight);
}

bool Fairness::backlogged(const std::string& subscription) const {
  const auto it = endpoints_.find(subscription);
  return it != endpoints_.end() && it->second.backlogged;
}

bool Fairness::worth_claiming(const std::string& subscription) const {
  const auto it = endpoints_.find(subscription);
  if (it == endpoints_.end() || !it->second.backlogged) return false;
  const int useful = std::max(1, std::min(it->second.window / 2, concurrency_ / 8));
  return it->second.window - it->second.in_flight >= useful;
}

int Fairness::in_flight(const std::string& subscription) const {
  const auto it = endpoints_.find(subscription);
  return it == endpoints_.end() ? 0 : it->second.in_flight;
}

int Fairness::active_tenants() const {
  const auto now = clock_.Now();
  int active = 0;
  for (const auto& [id, t] : tenants_) {
    if (t.in_flight > 0 || now - t.last_active < kActiveWindow) ++active;
  }
  return active;
}

int Fairness::tenant_cap() const {
  if (active_tenants() <= 1) return concurrency_;
  return std::max(1, static_cast<int>(concurrency_ * kTenantShare));
}

void Fairness::Bound(store::DeliveryClaimRequest& request) const {
  request.default_slots = initial_window_;
  request.resume_after = cursor_;
  for (const auto& [subscription, e] : endpoints_) {
    const int slots = std::max(0, e.window - e.in_flight);
    if (slots == 0) {
      request.excluded_subscriptions.push_back(subscription);
    } else if (slots != initial_window_) {
      request.window_subscriptions.push_back(subscription);
      request.window_slots.push_back(slots);
    }
  }
  const int cap = tenant_cap();
  if (cap < concurrency_) {
    for (const auto& [tenant, t] : tenants_) {
      if (t.in_flight >= cap) request.excluded_tenants.push_back(tenant);
    }
  }
}

void Fairness::Claimed(const std::vector<std::string>& subscriptions) {
  // The visit went through the ids after the cursor, then wrapped round to
  // the ids up to it: the last one visited is the largest wrapped id if there
  // is one, else the largest id after the cursor.
  const std::string* after = nullptr;
  const std::string* wrapped = nullptr;
  std::unordered_map<std::string, int> leased;
  for (const std::string& s : subscriptions) {
    const std::string*& slot = s > cursor_ ? after : wrapped;
    if (slot == nullptr || s > *slot) slot = &s;
    ++leased[s];
  }
  for (const auto& [s, n] : leased) {
    const int free = free_slots(s);
    auto [it, fresh] = endpoints_.try_emplace(s);
    if (fresh) it->second.window = initial_window_;
    it->second.backlogged = n >= free;
  }
  if (wrapped != nullptr) {
    cursor_ = *wrapped;
  } else if (after != nullptr) {
    cursor_ = *after;
  }
}

void Fairness::Started(const std::string& subscription, const std::string& tenant) {
  const auto now = clock_.Now();
  auto [it, fresh] = endpoints_.try_emplace(subscription);
  auto& e = it->second;
  if (fresh) e.window = initial_window_;
  e.tenant = tenant;
  ++e.in_flight;
  e.last_active = now;
  auto& t = tenants_[tenant];
  ++t.in_flight;
  t.last_active = now;
}

void Fairness::Finished(const std::string& subscription, const std::string& tenant, EndpointSignal signal) {
  const auto now = clock_.Now();
  if (auto it = endpoints_.find(subscription); it != endpoints_.end()) {
    auto& e = it->second;
    e.in_flight = std::max(0, e.in_flight - 1);
    e.last_active = now;
    const bool recovering = e.recovering > 0;
    if (recovering) --e.recovering;
    switch (signal) {
      case EndpointSignal::kHealthy:
        e.window = std::min(concurrency_, e.window + 1);
        break;
      case EndpointSignal::kUnresponsive:
        e.window = std::max(1, e.window / 2);
        break;
      case EndpointSignal::kFailing:
        if (!recovering) {
          e.window = std::max(1, e.window / 2);
          e.recovering = e.in_flight;
        }
        break;
      case EndpointSignal::kNeither:
        break;
    }
  }
  if (auto it = tenants_.find(tenant); it != tenants_.end()) {
    it->second.in_flight = std::max(0, it->second.in_flight - 1);
    it->second.last_active = now;
  }
}

void Fairness::Tidy() {
  const auto now = clock_.Now();
  for (auto it = endpoints_.begin(); it != endpoints_.end();) {
    if (it->second.in_flight == 0 && now - it->second.last_active >= kForgetAfter) {
      it = endpoints_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = tenants_.begin(); it != tenants_.end();) {
    if (it->second.in_flight == 0 && now - it->second.last_active >= kActiveWindow) {
      it = tenants_.erase(it);
    } else {
      ++it;
    }
  }
}

EndpointSignal SignalOf(bool success, const std::string& outcome, int status_code) {
  if (success) return EndpointSignal::kHealthy;
  if (status_code >= 500 || status_code == 429 || status_code == 408) return EndpointSignal::kFailing;
  if (outcome == "timeout" || outcome == "connection_error" || outcome == "dns_error" || outcome == "tls_error" ||
      outcome == "protocol_error" || outcome == "transport_error") {
    return EndpointSignal::kUnresponsive;
  }
  // A rejected request (4xx), a refused destination, an invalid request: nothing about the endpoint's health.
  return EndpointSignal::kNeither;
}

}  // namespace pgcourier::lanes::deliveries
