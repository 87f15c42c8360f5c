#include "lanes/deliveries/signing_keys.hpp"

#include "signing/secret_box.hpp"
#include "signing/webhook_signature.hpp"

namespace pgcourier::lanes::deliveries {

std::optional<std::vector<signing::SigningKey>> SigningKeys::For(const model::ClaimedDelivery& d, std::string& reason) {
  if (d.sealed_secrets.empty()) {
    reason = "subscription " + d.subscription_id + " has no active signing secret";
    return std::nullopt;
  }
  if (!box_) {
    reason = "no master key is configured (master_key_file), so signing secrets cannot be opened";
    return std::nullopt;
  }
  std::vector<signing::SigningKey> keys;
  keys.reserve(d.sealed_secrets.size());
  for (const auto& sealed : d.sealed_secrets) {
    auto it = opened_.find(sealed);
    if (it == opened_.end()) {
      auto opened = box_->Open(sealed, d.subscription_id);
      if (!opened) {
        reason = "a signing secret of subscription " + d.subscription_id +
                 " does not open with the configured master key";
        return std::nullopt;
      }
      // The sealed text is the whsec_ form the receiver was given (or the
      // whsk_ private key of a v1a subscription); sign with its key bytes.
      auto key = signing::DecodeSigningSecret(*opened);
      if (!key) {
        reason = "a signing secret of subscription " + d.subscription_id + " is not a valid whsec_ or whsk_ secret";
        return std::nullopt;
      }
      if (opened_.size() > 100000) opened_.clear();
      it = opened_.emplace(sealed, std::move(*key)).first;
    }
    keys.push_back(it->second);
  }
  return keys;
}

}  // namespace pgcourier::lanes::deliveries
