#include "api/url_check.hpp"

#include <spdlog/spdlog.h>

#include <utility>

#include "netguard/egress.hpp"
#include "validate/endpoint_url.hpp"

namespace pgcourier::gateway {

UrlCheck::UrlCheck(std::string file) : file_(std::move(file)) {
  if (file_.empty()) {
    spdlog::info("no policies file: API URLs are checked for syntax only (the daemon applies each policy's "
                 "endpoint rules before every request)");
    return;
  }
  if (!Reload()) spdlog::warn("API URLs are checked for syntax only until {} loads (SIGHUP)", file_);
}

bool UrlCheck::Reload() {
  if (file_.empty()) return true;
  try {
    auto loaded = std::make_shared<const config::PolicySet>(config::LoadPoliciesFile(file_));
    const std::lock_guard lock(mu_);
    policies_ = std::move(loaded);
  } catch (const std::exception& e) {
    spdlog::error("policies file {} refused, the previous policies stay: {}", file_, e.what());
    return false;
  }
  spdlog::info("API URLs are checked against the endpoint rules of {}", file_);
  return true;
}

std::shared_ptr<const config::PolicySet> UrlCheck::Snapshot() const {
  const std::lock_guard lock(mu_);
  return policies_;
}

std::optional<UrlCheck::Refusal> UrlCheck::Check(const std::string& field, const std::string& url,
                                                 const std::string& policy) const {
  const auto parsed = validate::ParseEndpointUrl(url);
  if (!parsed.url) {
    return Refusal{field, field + ": an absolute http:// or https:// URL is required: " + parsed.problem.message};
  }
  const auto policies = Snapshot();
  if (!policies) return std::nullopt;
  const model::Policy* p = policies->Find(policy);
  if (p == nullptr) {
    std::string names;
    for (const auto& [name, unused] : policies->all()) names += (names.empty() ? "" : ", ") + name;
    return Refusal{"policy", "policy: '" + policy + "' is not a policy of this installation (it has " + names + ")"};
  }
  if (auto refused = validate::CheckDestination(*parsed.url, netguard::CompileEndpointRules(p->endpoint))) {
    return Refusal{field, field + ": the endpoint rules of policy '" + policy + "' refuse it: " + *refused +
                              "; the daemon would fail every request with blocked_destination"};
  }
  return std::nullopt;
}

}  // namespace pgcourier::gateway
