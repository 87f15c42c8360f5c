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

namespace pgcourier::signing {
class SecretBox;
}

namespace pgcourier::lanes::deliveries {

class SigningKeys {
 public:
  explicit SigningKeys(std::shared_ptr<const signing::SecretBox> box) : box_(std::move(box)) {}

  // The raw key bytes, newest first; nullopt with `reason` set when the
  // delivery cannot be signed (no active secret, no master key, a secret
  // that does not open or is not a whsec_ secret).
  std::optional<std::vector<std::string>> For(const model::ClaimedDelivery& delivery, std::string& reason);

 private:
  std::shared_ptr<const signing::SecretBox> box_;  // may be null
  std::unordered_map<std::string, std::string> opened_;  // sealed text -> key bytes
};

}  // namespace pgcourier::lanes::deliveries
