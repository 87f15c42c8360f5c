// The signing keys of a claimed delivery: its subscription's sealed secrets
// opened with the master key, remembered by sealed text so a busy
// subscription's secrets are opened once, not once per delivery.
// Not synchronised: the engine's thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/delivery.hpp"
#include "signing/webhook_signature.hpp"

namespace pgcourier::signing {
class SecretBox;
}

namespace pgcourier::lanes::deliveries {

class SigningKeys {
 public:
  explicit SigningKeys(std::shared_ptr<const signing::SecretBox> box) : box_(std::move(box)) {}

  // The keys, newest first: HMAC key bytes (whsec_, v1) or ed25519 seeds
  // (whsk_, v1a); nullopt with `reason` set when the delivery cannot be
  // signed (no active secret, no master key, a secret that does not open or
  // is neither a whsec_ nor a whsk_ secret).
  std::optional<std::vector<signing::SigningKey>> For(const model::ClaimedDelivery& delivery, std::string& reason);

 private:
  std::shared_ptr<const signing::SecretBox> box_;  // may be null
  std::unordered_map<std::string, signing::SigningKey> opened_;  // sealed text -> key
};

}  // namespace pgcourier::lanes::deliveries
