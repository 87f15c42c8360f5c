#include "lanes/context.hpp"

#include "netguard/egress.hpp"

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
  if (!rules) rules = std::make_shared<const netguard::EndpointRules>(netguard::CompileEndpointRules(policy.endpoint));
  return rules;
}

}  // namespace pgcourier::lanes
