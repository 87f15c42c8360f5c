#include "ingress/ingress.hpp"

#include <spdlog/spdlog.h>

#include "api/api.hpp"
#include "base/file.hpp"
#include "ingress/verify.hpp"
#include "json/json.hpp"
#include "store/errors.hpp"

namespace pgcourier::gateway::ingress {
namespace {

using store::api::Arg;

bool IsId(const std::string& s) {
  if (s.empty() || s.size() > 100) return false;
  for (const unsigned char c : s) {
    if (!std::isalnum(c) && c != '_' && c != '-') return false;
  }
  return true;
}

// The answer of a refused request: the status and its title, nothing else.
Response Refused(int status) { return Problem(status); }

}  // namespace

Ingress::Ingress(IngressOptions options, Shards& shards, const signing::SecretBox* master_key, UnixClock now)
    : shards_(shards), master_key_(master_key), limiter_(options.rate_per_second, options.rate_burst),
      now_(now ? std::move(now) : UnixClock([] {
        return static_cast<std::int64_t>(
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                .count());
      })) {}

std::optional<Response> Ingress::Handle(const Request& r) {
  constexpr std::string_view kPrefix = "/ingress/";
  if (r.path.rfind(kPrefix, 0) != 0) return std::nullopt;
  const std::string source_id = r.path.substr(kPrefix.size());
  if (!IsId(source_id)) return Problem(404);
  if (r.method != "POST") return Problem(405);
  int retry_after = 1;
  if (!limiter_.Allow(source_id, &retry_after)) {
    auto p = Problem(429);
    p.headers.emplace_back("Retry-After", std::to_string(retry_after));
    return p;
  }
  try {
    std::string source;
    const auto found = shards_.Find(source_id, [&](store::api::Pool& pool) {
      try {
        source = pool.CallJson("api_ingress_source", {Arg{source_id}});
        return true;
      } catch (const store::StoreError& e) {
        if (e.sqlstate() == "P0002") return false;  // not in this shard (or disabled)
        throw;
      }
    });
    if (!found.shard) return found.unreachable.empty() ? Problem(404) : ProblemUnreachable(found.unreachable);
    store::api::Pool& pool = shards_.PoolOf(*found.shard);
    if (const auto tenant = json::ValueAtPointer(source, "/tenant_id"); !shards_.Holds(*found.shard, tenant)) {
      // Moving tenants: the source was not copied to the tenant's new shard yet. 503, so that providers
      // which retry do so (nothing is stored on the old shard).
      spdlog::warn(
          "ingress {}: the source is in shard {}, but the shard map puts its tenant {} in {}: refused "
          "(copy the source to the tenant's shard)",
          source_id, shards_.Name(*found.shard), tenant.value_or("?"), shards_.ShardOfTenant(tenant.value_or("")));
      return Problem(503, "this source is not in its tenant's shard");
    }
    if (master_key_ == nullptr) return Problem(503, "no master key is configured");
    const auto sealed = json::ValueAtPointer(source, "/sealed_secret").value_or("");
    auto secret = master_key_->Open(sealed, source_id);
    const std::string scheme = json::ValueAtPointer(source, "/scheme").value_or("");
    const int tolerance = std::stoi(json::ValueAtPointer(source, "/tolerance_seconds").value_or("300"));
    Verdict verdict;
    if (!secret) {
      verdict.status = 401;
      verdict.reason = "the source's secret does not open with this master key";
    } else {
      verdict = Verify(scheme, *secret, r, now_(), tolerance);
      base::Wipe(*secret);
    }
    if (verdict.accepted && !json::IsValid(r.body)) {
      verdict = Verdict{};
      verdict.status = 400;
      verdict.reason = "the body is not JSON";
    }
    if (!verdict.accepted) {
      pool.CallJson("api_ingress_reject", {Arg{source_id}, Arg{verdict.reason}, Arg{verdict.delivery_id}});
      spdlog::info("ingress {}: refused ({})", source_id, verdict.reason);
      return Refused(verdict.status);
    }
    std::string event_type = verdict.event_type.empty() ? "ingress.received" : verdict.event_type;
    const auto accepted = pool.CallJson("api_ingress_accept", {Arg{source_id}, Arg{verdict.delivery_id},
                                                                Arg{event_type}, Arg{r.body, "jsonb"}});
    return Json(accepted, 202);
  } catch (const std::exception& e) {
    return ProblemFromStore(e);
  }
}

}  // namespace pgcourier::gateway::ingress
