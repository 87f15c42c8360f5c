// libFuzzer target: decoding of webhook secrets and sealed secrets from the database.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "signing/secret_box.hpp"
#include "signing/webhook_signature.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  namespace sg = pgcourier::signing;
  if (auto bytes = sg::Base64Decode(text)) {
    if (sg::Base64Encode(*bytes) != text) __builtin_trap();  // strict decoding: canonical only
  }
  if (auto key = sg::DecodeWebhookSecret(text)) {
    if (key->size() < 24 || key->size() > 64) __builtin_trap();
  }
  static const sg::SecretBox box(std::string(32, 'k'));
  (void)box.Open(text, "sub_fuzz");
  return 0;
}
