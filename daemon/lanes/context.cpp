#include "lanes/context.hpp"

namespace pgcourier::lanes {

Policies::Policies(std::shared_ptr<const config::PolicySet> policies) { Replace(std::move(policies)); }

void Policies::Replace(std::shared_ptr<const config::PolicySet> policies) {
  current_ = std::move(policies);
  rules_.clear();
}

std::shared_ptr<const netguard::EndpointRules> Policies::RulesFor(const model::Policy& policy) {
  const bool current = current_->Find(policy.name) == &policy;
  std::shared_ptr<const netguard::EndpointRules> uncached;
  auto& rules = current ? rules_[policy.name] : uncached;
  if (!rules) {
    auto compiled = std::make_shared<netguard::EndpointRules>();
    compiled->require_https = policy.endpoint.require_https;
    for (const auto& text : policy.endpoint.allow_cidrs) {
      if (auto cidr = netguard::ParseCidr(text)) compiled->allow_cidrs.push_back(*cidr);  // validated at load
    }
    compiled->allow_hosts = policy.endpoint.allow_hosts;
    rules = std::move(compiled);
  }
  return rules;
}

}  // namespace pgcourier::lanes
