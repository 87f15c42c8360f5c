#include "ingress/verify.hpp"

#include <charconv>
#include <cstdlib>
#include <vector>

#include "json/json.hpp"
#include "signing/webhook_signature.hpp"

namespace pgcourier::gateway::ingress {
namespace {

Verdict Refuse(int status, std::string reason, std::string delivery_id = "") {
  Verdict v;
  v.status = status;
  v.reason = std::move(reason);
  v.delivery_id = std::move(delivery_id);
  return v;
}

std::optional<std::int64_t> UnixSeconds(const std::string& text) {
  std::int64_t value = 0;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || p != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

bool InWindow(std::int64_t ts, std::int64_t now, int tolerance) { return std::llabs(now - ts) <= tolerance; }

std::vector<std::string> Split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find(sep, start);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string Trim(const std::string& s) {
  const auto b = s.find_first_not_of(' ');
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(' ') - b + 1);
}

Verdict StandardWebhooks(const std::string& secret, const Request& r, std::int64_t now, int tolerance) {
  const auto id = r.Header("webhook-id");
  const auto ts_text = r.Header("webhook-timestamp");
  const auto signatures = r.Header("webhook-signature");
  if (!id || !ts_text || !signatures || id->empty()) return Refuse(400, "missing webhook-id, -timestamp or -signature");
  const auto ts = UnixSeconds(*ts_text);
  if (!ts) return Refuse(400, "webhook-timestamp is not a number", *id);
  const auto key = signing::DecodeWebhookSecret(secret);
  if (!key) return Refuse(401, "the source's secret is not a whsec_ secret", *id);
  const std::string expected = signing::Sign(*key, *id, *ts, r.body);
  bool matched = false;
  for (const auto& part : Split(*signatures, ' ')) {
    if (!part.empty() && signing::ConstantTimeEquals(part, expected)) matched = true;
  }
  if (!matched) return Refuse(401, "no webhook-signature matches", *id);
  if (!InWindow(*ts, now, tolerance)) return Refuse(401, "webhook-timestamp outside the tolerance window", *id);
  Verdict v;
  v.accepted = true;
  v.delivery_id = *id;
  if (auto type = json::ValueAtPointer(r.body, "/type")) v.event_type = *type;
  return v;
}

Verdict GitHub(const std::string& secret, const Request& r) {
  const auto signature = r.Header("x-hub-signature-256");
  const auto delivery = r.Header("x-github-delivery");
  if (!signature || !delivery || delivery->empty()) return Refuse(400, "missing X-Hub-Signature-256 or X-GitHub-Delivery");
  const std::string expected = "sha256=" + signing::HexEncode(signing::HmacSha256(secret, {r.body}));
  if (!signing::ConstantTimeEquals(*signature, expected)) return Refuse(401, "X-Hub-Signature-256 does not match", *delivery);
  Verdict v;
  v.accepted = true;
  v.delivery_id = *delivery;
  if (auto event = r.Header("x-github-event"); event && !event->empty()) v.event_type = "github." + *event;
  return v;
}

Verdict Stripe(const std::string& secret, const Request& r, std::int64_t now, int tolerance) {
  const auto header = r.Header("stripe-signature");
  if (!header) return Refuse(400, "missing Stripe-Signature");
  std::optional<std::int64_t> ts;
  std::vector<std::string> v1;
  for (const auto& item : Split(*header, ',')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) continue;
    const std::string name = Trim(item.substr(0, eq));
    const std::string value = Trim(item.substr(eq + 1));
    if (name == "t") ts = UnixSeconds(value);
    if (name == "v1") v1.push_back(value);
  }
  const std::string id = json::ValueAtPointer(r.body, "/id").value_or("");
  if (!ts || v1.empty()) return Refuse(400, "Stripe-Signature without t= or v1=", id);
  const std::string t = std::to_string(*ts);
  const std::string expected = signing::HexEncode(signing::HmacSha256(secret, {t, ".", r.body}));
  bool matched = false;
  for (const auto& sig : v1) matched = matched || signing::ConstantTimeEquals(sig, expected);
  if (!matched) return Refuse(401, "no v1 signature of Stripe-Signature matches", id);
  if (!InWindow(*ts, now, tolerance)) return Refuse(401, "Stripe-Signature t= outside the tolerance window", id);
  if (id.empty()) return Refuse(400, "the body has no id");
  Verdict v;
  v.accepted = true;
  v.delivery_id = id;
  if (auto type = json::ValueAtPointer(r.body, "/type")) v.event_type = "stripe." + *type;
  return v;
}

Verdict GenericHmac(const std::string& secret, const Request& r, std::int64_t now, int tolerance) {
  auto signature = r.Header("x-signature");
  const auto ts_text = r.Header("x-timestamp");
  if (!signature || !ts_text) return Refuse(400, "missing X-Signature or X-Timestamp");
  const auto ts = UnixSeconds(*ts_text);
  if (!ts) return Refuse(400, "X-Timestamp is not a number");
  std::string sig = *signature;
  if (sig.rfind("sha256=", 0) == 0) sig = sig.substr(7);
  const std::string expected = signing::HexEncode(signing::HmacSha256(secret, {*ts_text, ".", r.body}));
  const std::string delivery = r.Header("x-delivery-id").value_or(expected);
  if (!signing::ConstantTimeEquals(sig, expected)) return Refuse(401, "X-Signature does not match", delivery);
  if (!InWindow(*ts, now, tolerance)) return Refuse(401, "X-Timestamp outside the tolerance window", delivery);
  Verdict v;
  v.accepted = true;
  v.delivery_id = delivery;
  return v;
}

}  // namespace

Verdict Verify(const std::string& scheme, const std::string& secret, const Request& request, std::int64_t now,
               int tolerance_seconds) {
  if (scheme == "standard-webhooks") return StandardWebhooks(secret, request, now, tolerance_seconds);
  if (scheme == "github") return GitHub(secret, request);
  if (scheme == "stripe") return Stripe(secret, request, now, tolerance_seconds);
  if (scheme == "hmac-sha256") return GenericHmac(secret, request, now, tolerance_seconds);
  return Refuse(401, "unknown scheme " + scheme);
}

}  // namespace pgcourier::gateway::ingress
